"""Gas used by each ledger operation, measured on a fresh embedded chain.

Each operation runs twice: the first time touches storage slots for the first time (a new
owner's ERC-721 balance, the first anchored head, a signer's first nonce), the second is the
steady state every later call pays. Targets from the foundation issue are shown with the ratio
of steady-state gas to target (<= 1.00 meets it).

    .venv/bin/python scripts/bench_gas.py [--markdown]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from eth_account import Account

from ledger.chain.client import LedgerChain
from ledger.chain.embedded import EmbeddedChain
from ledger.chain.models import Credit, TxResult
from ledger.protocol import eip712
from ledger.protocol.messages import GrantTerms, Registration, typed_grant, typed_register

TARGETS = {"register": 150_000, "grant": 80_000, "anchor": 60_000}


def h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def measure() -> list[tuple[str, int, int]]:
    operator, dept, ent, ent2 = (Account.create() for _ in range(4))
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedChain(Path(tmp) / "chain.sqlite", funded=[operator.address, dept.address])
        chain, _ = LedgerChain.deploy(backend, operator)
        office = chain.acting_as(dept)
        now = int(backend.w3.eth.get_block("latest")["timestamp"])
        deadline = now + 3600
        rows: list[tuple[str, int, int]] = []
        counter = iter(range(10**6))

        def twice(name: str, op: Callable[[], TxResult]) -> None:
            rows.append((name, op().gas_used, op().gas_used))

        members = iter([dept, ent])
        twice(
            "onboard",
            lambda: chain.onboard(
                next(members).address,
                kind="department",
                name_hash=h("member"),
                key_suite=1,
                encryption_key=os.urandom(32),
            ),
        )
        chain.onboard(
            ent2.address,
            kind="enterprise",
            name_hash=h("e2"),
            key_suite=1,
            encryption_key=b"k" * 32,
        )
        twice(
            "register",
            lambda: office.register(Registration(h(f"c{next(counter)}"), h("m"), "internal"))[1],
        )

        def relayed_register() -> TxResult:
            reg = Registration(h(f"c{next(counter)}"), h("m"), "internal")
            nonce = chain.nonce("DataRegistry", dept.address)
            sig = eip712.sign_typed(
                dept,
                typed_register(
                    chain.deployment.domains, dept.address, reg, nonce=nonce, deadline=deadline
                ),
            )
            return chain.register_for(
                dept.address, reg, nonce=nonce, deadline=deadline, signature=sig
            )[1]

        twice("register (relayed, owner-signed)", relayed_register)
        datasets = iter(range(1, 5))
        grantees = iter([ent.address, ent2.address] * 4)

        def terms() -> GrantTerms:
            return GrantTerms(next(datasets), next(grantees), h("purpose"), deadline, 10, h("t"))

        twice("grant", lambda: office.grant(terms()))

        def relayed_grant() -> TxResult:
            t = terms()
            nonce = chain.nonce("AccessLedger", dept.address)
            sig = eip712.sign_typed(
                dept, typed_grant(chain.deployment.domains, t, nonce=nonce, deadline=deadline)
            )
            return chain.grant_for(t, nonce=nonce, deadline=deadline, signature=sig)

        twice("grant (relayed, owner-signed)", relayed_grant)
        uses = iter([(1, ent.address), (1, ent.address)])
        twice("record use", lambda: chain.record_use(*next(uses)))
        revokes = iter([(1, ent.address), (2, ent2.address)])
        twice("revoke", lambda: office.revoke(*next(revokes)))
        sizes = iter([10, 20])
        twice("anchor", lambda: chain.anchor(next(sizes), h(f"root{next(counter)}")))
        twice("mint", lambda: chain.mint(3, ent.address, 5, h(f"r{next(counter)}")))
        batch = lambda: chain.mint_batch(  # noqa: E731 - one-off
            [Credit(4, ent2.address, 1, h(f"r{next(counter)}")) for _ in range(10)]
        )
        twice("mint batch of 10", batch)
        backend.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Gas per ledger operation.")
    parser.parse_args()
    rows = measure()
    print("| operation | gas, first time | gas, steady state | target | steady / target |")
    print("|---|---:|---:|---:|---:|")
    for name, first, steady in rows:
        target = TARGETS.get(name)
        ratio = f"{steady / target:.2f}" if target else ""
        print(f"| {name} | {first:,} | {steady:,} | {f'{target:,}' if target else ''} | {ratio} |")


if __name__ == "__main__":
    main()

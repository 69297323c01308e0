"""Gas used by each ledger operation, measured on a fresh embedded chain.

Each operation runs twice: the first time touches storage slots for the first time (a new
owner's ERC-721 balance, the first anchored head, an owner's first credit), the second is the
steady state every later call pays. Targets from the foundation issue are shown with the ratio
of steady-state gas to target (<= 1.00 meets it). Relayed operations are sent by the BROKER key
with the actor's EIP-712 signature; ``mintBatch`` rows are gas per receipt (the transaction's gas
divided by the receipts in it, so the batch of 1 carries the whole 21,000 base cost).

    .venv/bin/python scripts/bench_gas.py
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.client import LedgerChain, encode_approval
from ledger.chain.embedded import EmbeddedChain
from ledger.chain.models import SignedReceipt, TxResult
from ledger.protocol import eip712
from ledger.protocol.actions import ACTIONS
from ledger.protocol.messages import (
    GrantTerms,
    Registration,
    typed_approval,
    typed_grant,
    typed_register,
)

TARGETS = {"register": 150_000, "grant": 80_000, "anchor": 60_000}
Row = tuple[str, int, int]


def h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class Bench:
    """A fresh deployment: ADMIN and a department act directly, the broker relays."""

    def __init__(self, backend: EmbeddedChain, admin: LocalAccount, broker: LocalAccount) -> None:
        self.broker_chain, _ = LedgerChain.deploy(backend, broker, admin=admin.address)
        self.chain = self.broker_chain.acting_as(admin)
        self.admin = admin
        self.domains = self.chain.deployment.domains
        self.deadline = int(backend.w3.eth.get_block("latest")["timestamp"]) + 24 * 3600
        self.counter = iter(range(10**6))

    def sign(self, account: LocalAccount, action: str, message: dict[str, Any]) -> bytes:
        typed = eip712.typed_message(
            ACTIONS[action].primary, message, self.domains.for_action(action)
        )
        return eip712.sign_typed(account, typed)

    def member(self, kind: str = "department", account: LocalAccount | None = None) -> Any:
        account = account or Account.create()
        self.chain.onboard(
            account.address,
            kind=kind,  # type: ignore[arg-type]
            name_hash=h(account.address),
            key_suite=1,
            encryption_key=os.urandom(32),
        )
        return account

    def dataset(self, owner: LocalAccount, classification: str = "internal") -> int:
        reg = Registration(h(f"c{next(self.counter)}"), h("m"), classification)  # type: ignore[arg-type]
        nonce = self.chain.nonce("DataRegistry", owner.address)
        sig = eip712.sign_typed(
            owner,
            typed_register(self.domains, owner.address, reg, nonce=nonce, deadline=self.deadline),
        )
        dataset_id, _ = self.broker_chain.register_for(
            owner.address, reg, nonce=nonce, deadline=self.deadline, signature=sig
        )
        return dataset_id

    def terms(self, dataset_id: int, grantee: str, max_uses: int = 100) -> GrantTerms:
        return GrantTerms(dataset_id, grantee, h("purpose"), self.deadline, max_uses, h("t"))

    def relay_grant(self, owner: LocalAccount, terms: GrantTerms, approval: bytes = b"") -> Any:
        nonce = self.chain.nonce("AccessLedger", owner.address)
        sig = eip712.sign_typed(
            owner, typed_grant(self.domains, terms, nonce=nonce, deadline=self.deadline)
        )
        return self.broker_chain.grant_for(
            terms, nonce=nonce, deadline=self.deadline, signature=sig, admin_approval=approval
        )

    def approval(self, terms: GrantTerms) -> bytes:
        nonce = secrets.randbits(256)
        message = typed_approval(
            self.domains, terms, generation=1, nonce=nonce, deadline=self.deadline
        )
        return encode_approval(1, nonce, self.deadline, eip712.sign_typed(self.admin, message))

    def use(self, dataset_id: int, grantee: LocalAccount) -> tuple[int, TxResult]:
        nonce = secrets.randbits(256)
        message = {
            "grantee": grantee.address,
            "datasetId": dataset_id,
            "nonce": nonce,
            "deadline": self.deadline,
        }
        result = self.broker_chain.record_use(
            dataset_id,
            grantee.address,
            nonce=nonce,
            deadline=self.deadline,
            signature=self.sign(grantee, "fetch", message),
        )
        return nonce, result

    def receipt(self, consumer: LocalAccount, dataset_id: int, fetch_nonce: int) -> SignedReceipt:
        content = self.chain.dataset(dataset_id).content_hash
        nonce = secrets.randbits(256)
        message = {
            "consumer": consumer.address,
            "datasetId": dataset_id,
            "contentHash": content,
            "grantGeneration": 1,
            "fetchNonce": fetch_nonce,
            "nonce": nonce,
            "deadline": self.deadline,
        }
        return SignedReceipt(
            dataset_id=dataset_id,
            consumer=consumer.address,
            content_hash=content,
            grant_generation=1,
            fetch_nonce=fetch_nonce,
            nonce=nonce,
            deadline=self.deadline,
            signature=self.sign(consumer, "receipt", message),
        )


def measure() -> list[Row]:
    admin, broker, dept = (Account.create() for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        backend = EmbeddedChain(
            Path(tmp) / "chain.sqlite", funded=[admin.address, broker.address, dept.address]
        )
        b = Bench(backend, admin, broker)
        chain, relay = b.chain, b.broker_chain
        office = chain.acting_as(dept)
        rows: list[Row] = []

        def twice(name: str, op: Callable[[], TxResult]) -> None:
            rows.append((name, op().gas_used, op().gas_used))

        b.member(account=dept)
        twice(
            "onboard",
            lambda: chain.onboard(
                Account.create().address,
                kind="department",
                name_hash=h("member"),
                key_suite=1,
                encryption_key=os.urandom(32),
            ),
        )

        def onboard_for() -> TxResult:
            member, nonce, key = Account.create(), secrets.randbits(256), os.urandom(32)
            message = {
                "member": member.address,
                "kind": 2,
                "name": "Acme Analytics",
                "keySuite": 1,
                "encryptionKey": key,
                "nonce": nonce,
                "deadline": b.deadline,
            }
            return relay.onboard_for(
                member.address,
                kind="enterprise",
                name="Acme Analytics",
                key_suite=1,
                encryption_key=key,
                nonce=nonce,
                deadline=b.deadline,
                signature=b.sign(admin, "onboard", message),
            )

        twice("onboard (relayed, ADMIN-signed)", onboard_for)
        ent, ent2 = b.member("enterprise"), b.member("enterprise")
        twice(
            "register",
            lambda: office.register(Registration(h(f"c{next(b.counter)}"), h("m"), "internal"))[1],
        )

        def relayed_register() -> TxResult:
            reg = Registration(h(f"c{next(b.counter)}"), h("m"), "internal")
            nonce = chain.nonce("DataRegistry", dept.address)
            sig = eip712.sign_typed(
                dept,
                typed_register(b.domains, dept.address, reg, nonce=nonce, deadline=b.deadline),
            )
            return relay.register_for(
                dept.address, reg, nonce=nonce, deadline=b.deadline, signature=sig
            )[1]

        twice("register (relayed, owner-signed)", relayed_register)
        datasets = iter(range(1, 5))
        grantees = iter([ent.address, ent2.address] * 4)

        def terms() -> GrantTerms:
            return b.terms(next(datasets), next(grantees))

        twice("grant", lambda: office.grant(terms()))
        twice("grant (relayed, owner-signed)", lambda: b.relay_grant(dept, terms()))
        sensitive = iter([b.dataset(dept, "sensitive") for _ in range(2)])

        def approved_grant() -> TxResult:
            t = b.terms(next(sensitive), ent.address)
            return b.relay_grant(dept, t, b.approval(t))

        twice("grant (relayed, SENSITIVE, ADMIN approval)", approved_grant)
        twice("recordUse (grantee-signed Fetch)", lambda: b.use(1, ent)[1])
        revokes = iter([(1, ent.address), (2, ent2.address)])
        twice("revoke", lambda: office.revoke(*next(revokes)))
        sizes = iter([10, 20])
        twice("anchor", lambda: relay.anchor(next(sizes), h(f"root{next(b.counter)}")))
        rows += _mint_rows(b, dept)
        backend.close()
    return rows


def _mint_rows(b: Bench, owner: LocalAccount) -> list[Row]:
    """mintBatch gas per receipt: first credits of new pairs, then repeat credits of the same."""
    consumers = [b.member() for _ in range(11)]
    dataset_id = b.dataset(owner)
    for consumer in consumers:
        b.relay_grant(owner, b.terms(dataset_id, consumer.address))

    def mint(group: list[LocalAccount]) -> int:
        batch = [b.receipt(c, dataset_id, b.use(dataset_id, c)[0]) for c in group]
        result = b.broker_chain.mint_batch(batch)
        assert sum(ev.name == "CreditsMinted" for ev in result.events) == len(group)
        return result.gas_used // len(group)

    single, group = consumers[:1], consumers[1:]
    return [
        ("mintBatch of 1 (per receipt)", mint(single), mint(single)),
        ("mintBatch of 10 (per receipt)", mint(group), mint(group)),
    ]


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

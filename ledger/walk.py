"""The on-chain walk: onboarding, a registration, a grant, a use, an anchor and credits.

It drives the real contracts on the broker's chain exactly as the broker will: members sign
EIP-712 messages with their own keys, the operator relays and pays gas. Member identities and
the walk's small signed-action log persist in the home directory, so a second run continues the
same chain (new extracts registered as derivatives, the log grows, the anchored head grows).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger import crypto
from ledger.chain import typed_data
from ledger.chain.client import LedgerChain
from ledger.chain.home import open_chain
from ledger.chain.models import GrantTerms, Registration, TxResult
from ledger.keys import load_account, save_account, save_secret
from ledger.log.merkle import root
from ledger.types import MemberKind

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "building_permits.csv"
DAY = 24 * 3600


@dataclass(frozen=True)
class Step:
    """One printed line of the walk."""

    title: str
    tx: TxResult | None = None
    detail: str = ""


def _member(
    home: Path, handle: str, passphrase: str
) -> tuple[LocalAccount, crypto.PublicKey, bool]:
    """Load or create a member identity (signing key + HPKE key), encrypted at rest."""
    folder = home / "broker" / "walk-members" / handle
    key_file = folder / "signing.key.json"
    if key_file.exists():
        account = load_account(key_file, passphrase)
        public = crypto.load_public_key("x25519", bytes.fromhex((folder / "hpke.pub").read_text()))
        return account, public, False
    account = Account.create()
    private, public = crypto.generate_keypair("x25519")
    save_secret(folder / "hpke.key.json", private.to_bytes(), passphrase, label="hpke-x25519")
    (folder / "hpke.pub").write_text(public.to_bytes().hex())
    save_account(key_file, account, passphrase)
    return account, public, True


def _extracts(sample: Path) -> Iterator[tuple[str, bytes]]:
    """Derived extracts of the sample: one CSV per (ward, month), in a stable order."""
    with sample.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    keys = sorted({(r["ward"], r["issued_on"][:7]) for r in rows})
    for ward, month in keys:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in rows if r["ward"] == ward and r["issued_on"][:7] == month)
        yield f"permits {ward} {month}", buf.getvalue().encode()


def _content_hash(data: bytes) -> bytes:
    return crypto.content_hash(io.BytesIO(data))


def walk(home: Path, passphrase: str, emit: Callable[[Step], None]) -> None:
    """Run the walk against the chain under ``home/broker``, reporting each step."""
    opened = open_chain(home / "broker", passphrase)
    chain = opened.chain
    try:
        if opened.created:
            emit(Step("new chain: operator key generated and funded in genesis"))
            for title, tx in opened.steps:
                emit(Step(title, tx))
        else:
            head = chain.w3.eth.block_number
            emit(Step(f"reopened chain {chain.deployment.chain_id} at block {head}"))
        _run(home, passphrase, chain, emit)
    finally:
        opened.close()


def _run(home: Path, passphrase: str, chain: LedgerChain, emit: Callable[[Step], None]) -> None:
    log_path = home / "broker" / "walk-log.jsonl"
    members: dict[str, LocalAccount] = {}
    specs: tuple[tuple[str, MemberKind, str], ...] = (
        ("permits-office", "department", "District Planning Office"),
        ("solar-coop", "enterprise", "Harbour Solar Cooperative"),
    )
    for handle, kind, name in specs:
        account, public, _ = _member(home, handle, passphrase)
        members[handle] = account
        if chain.member(account.address).kind is None:
            tx = chain.onboard(
                account.address,
                kind=kind,
                name_hash=hashlib.sha256(name.encode()).digest(),
                key_suite=public.suite.id,
                encryption_key=public.to_bytes(),
            )
            emit(Step(f"onboard {kind} {name!r} {account.address}", tx))
    office, coop = members["permits-office"], members["solar-coop"]
    deadline = int(chain.w3.eth.get_block("latest")["timestamp"]) + 3600

    def relay_register(title: str, data: bytes, parents: tuple[int, ...]) -> int | None:
        content = _content_hash(data)
        existing = chain.dataset_id_of(content)
        if existing:
            return None
        metadata = hashlib.sha256(json.dumps({"title": title}).encode()).digest()
        reg = Registration(content, metadata, "internal", parents=parents)
        nonce = chain.nonce("DataRegistry", office.address)
        message = chain.register_message(office.address, reg, nonce=nonce, deadline=deadline)
        signature = typed_data.sign(office, message)
        dataset_id, tx = chain.register_for(
            office.address, reg, nonce=nonce, deadline=deadline, signature=signature
        )
        _append(log_path, "register", office.address, signature)
        emit(Step(f"register #{dataset_id} {title!r} (signed by the office, relayed)", tx))
        return dataset_id

    base = relay_register("District building permits 2025", SAMPLE.read_bytes(), ())
    base_id = base or chain.dataset_id_of(_content_hash(SAMPLE.read_bytes()))
    dataset_id = base
    if dataset_id is None:
        for title, data in _extracts(SAMPLE):
            dataset_id = relay_register(title, data, (base_id,))
            if dataset_id is not None:
                break
    if dataset_id is None:
        emit(Step("every extract of the sample is registered already; nothing new to register"))
        dataset_id = base_id

    terms = GrantTerms(
        dataset_id=dataset_id,
        grantee=coop.address,
        purpose_hash=hashlib.sha256(b"rooftop solar potential study").digest(),
        expires_at=deadline + 30 * DAY,
        max_uses=5,
        terms_hash=hashlib.sha256(b"no re-identification; delete after study").digest(),
    )
    nonce = chain.nonce("AccessLedger", office.address)
    signature = typed_data.sign(office, chain.grant_message(terms, nonce=nonce, deadline=deadline))
    tx = chain.grant_for(terms, nonce=nonce, deadline=deadline, signature=signature)
    _append(log_path, "grant", office.address, signature)
    emit(Step(f"grant #{dataset_id} to the cooperative: 30 days, 5 uses", tx))

    tx = chain.record_use(dataset_id, coop.address)
    left = chain.grant_of(dataset_id, coop.address).uses_left
    receipt_id = hashlib.sha256(f"{tx.tx_hash}:{coop.address}".encode()).digest()
    _append(log_path, "use", coop.address, receipt_id)
    emit(Step(f"record one use by the cooperative ({left} left)", tx))

    leaves = [line.encode() for line in log_path.read_text().splitlines()]
    tx = chain.anchor(len(leaves), root(leaves))
    emit(Step(f"anchor flow-log head: {len(leaves)} signed actions", tx))

    tx = chain.mint(dataset_id, coop.address, 10, receipt_id)
    minted = tx.event("CreditsMinted").args["amount"]
    emit(Step(f"mint {minted} sharing credits to the office", tx))
    emit(
        Step(
            "done",
            detail=(
                f"office credits {chain.credits_of(office.address)}, "
                f"datasets {chain.dataset_count()}, "
                f"anchored heads {chain.latest_head().head_count}, "
                f"block {chain.w3.eth.block_number}"
            ),
        )
    )


def _append(path: Path, action: str, actor: str, proof: bytes) -> None:
    """Append one signed action to the walk's log (fsynced: an anchored leaf must not vanish)."""
    with path.open("a") as fh:
        fh.write(json.dumps({"action": action, "actor": actor, "proof": proof.hex()}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

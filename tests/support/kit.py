"""Building blocks for in-process exchange tests: a broker core and members with real keys."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from ledger import crypto
from ledger.chain.client import LedgerChain
from ledger.chain.embedded import EmbeddedChain
from ledger.client.member import MemberKeys, open_delivery, prepare_grant, prepare_upload, sign
from ledger.services import access, datasets, exchange, members, requests
from ledger.services.context import Ledger
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database
from ledger.store.models import AccessRequest, Dataset, Delivery, Grant, Member
from ledger.types import Classification, MemberKind

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "building_permits.csv"


@dataclass
class Broker:
    """A broker core on an embedded chain, SQLite (or a given URL) and a blob directory."""

    ledger: Ledger
    root: Path
    operator: MemberKeys

    def close(self) -> None:
        self.ledger.chain.backend.close()
        self.ledger.db.dispose()


def new_keys(suite: str = "x25519") -> MemberKeys:
    private, _ = crypto.generate_keypair(suite)  # type: ignore[arg-type]
    return MemberKeys(account=Account.create(), hpke=private)


def make_broker(root: Path, *, db_url: str | None = None) -> Broker:
    root.mkdir(parents=True, exist_ok=True)
    operator = new_keys()
    backend = EmbeddedChain(root / "chain.sqlite", funded=[operator.address])
    chain, _ = LedgerChain.deploy(backend, operator.account)
    db = Database(db_url or f"sqlite:///{root / 'broker.db'}")
    db.upgrade()
    ledger = Ledger(chain=chain, db=db, blobs=FileBlobStore(root / "blobs"))
    return Broker(ledger=ledger, root=root, operator=operator)


def onboard(broker: Broker, kind: MemberKind, name: str, *, suite: str = "x25519") -> MemberKeys:
    keys = new_keys(suite)
    signed = sign(
        broker.operator,
        "onboard",
        {
            "member": keys.address,
            "kind": kind,
            "name": name,
            "keySuite": keys.hpke.suite.id,
            "encryptionKey": keys.public_key.to_bytes(),
        },
        broker.ledger.domains,
    )
    members.onboard(broker.ledger, signed)
    return keys


def register(
    broker: Broker,
    owner: MemberKeys,
    source: Path,
    *,
    workdir: Path,
    title: str = "District building permits 2025",
    classification: Classification = "internal",
    parents: tuple[int, ...] = (),
) -> Dataset:
    ledger = broker.ledger
    prepared = prepare_upload(
        owner,
        source,
        workdir=workdir,
        title=title,
        domains=ledger.domains,
        chain_nonce=ledger.chain.nonce("DataRegistry", owner.address),
        classification=classification,
        parents=parents,
    )
    with prepared.ciphertext_path.open("rb") as fh:
        return datasets.register(
            ledger,
            prepared.signed,
            metadata=prepared.metadata,
            owner_wrapped_key=prepared.owner_wrapped_key,
            ciphertext=fh,
        )


def request(
    broker: Broker,
    requester: MemberKeys,
    dataset_id: int,
    *,
    days: int = 30,
    uses: int = 5,
    purpose: str = "rooftop solar potential study for the district",
) -> AccessRequest:
    signed = sign(
        requester,
        "request",
        {
            "requester": requester.address,
            "datasetId": dataset_id,
            "purpose": purpose,
            "days": days,
            "maxUses": uses,
        },
        broker.ledger.domains,
    )
    return requests.request_access(broker.ledger, signed)


def approve(broker: Broker, owner: MemberKeys, req: AccessRequest) -> Grant:
    ledger = broker.ledger
    with ledger.db.session() as session:
        target = session.get(Dataset, req.dataset_id)
        requester = session.get(Member, req.requester)
        from sqlmodel import select

        from ledger.store.models import WrappedKey

        owner_key = session.exec(
            select(WrappedKey).where(
                WrappedKey.dataset_id == req.dataset_id, WrappedKey.generation == 0
            )
        ).one()
        assert target is not None
        assert requester is not None
        content_hash, suite, pub = (
            target.content_hash,
            requester.key_suite,
            requester.encryption_key,
        )
        wrapped_owner = owner_key.wrapped
    signed, wrapped = prepare_grant(
        owner,
        request_id=int(req.id or 0),
        dataset_id=req.dataset_id,
        content_hash=content_hash,
        requester=req.requester,
        requester_suite=suite,
        requester_key=pub,
        purpose=req.purpose,
        days=req.days,
        max_uses=req.max_uses,
        owner_wrapped_key=wrapped_owner,
        chain_nonce=ledger.chain.nonce("AccessLedger", owner.address),
        domains=ledger.domains,
    )
    return access.approve(ledger, int(req.id or 0), signed, wrapped_key=wrapped)


def fetch_and_open(
    broker: Broker, grantee: MemberKeys, dataset_id: int, out: Path
) -> tuple[exchange.Fetched, bytes]:
    ledger = broker.ledger
    signed = sign(
        grantee, "fetch", {"grantee": grantee.address, "datasetId": dataset_id}, ledger.domains
    )
    fetched = exchange.fetch(ledger, signed)
    with ledger.blobs.open(fetched.dataset.ciphertext_sha256) as fh:
        digest = open_delivery(
            grantee,
            fh,
            out,
            wrapped_key=fetched.wrapped_key,
            content_hash=fetched.dataset.content_hash,
        )
    return fetched, digest


def receipt(broker: Broker, consumer: MemberKeys, fetched: exchange.Fetched) -> Delivery:
    signed = sign(
        consumer,
        "receipt",
        {
            "consumer": consumer.address,
            "datasetId": fetched.dataset.id,
            "contentHash": fetched.dataset.content_hash,
            "grantGeneration": fetched.generation,
        },
        broker.ledger.domains,
    )
    return exchange.acknowledge(broker.ledger, signed)


def rate(broker: Broker, rater: MemberKeys, dataset_id: int, score: int) -> None:
    signed = sign(
        rater,
        "rate",
        {
            "rater": rater.address,
            "datasetId": dataset_id,
            "score": score,
            "comment": "complete and well documented",
        },
        broker.ledger.domains,
    )
    exchange.rate(broker.ledger, signed)


def small_csv(path: Path, rows: int = 200, tag: str = "") -> Path:
    lines = ["permit_id,ward,cost"] + [f"BP-{tag}{i:05d},Harbour,{1000 + i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read(path: Path) -> bytes:
    return io.FileIO(path).readall()

"""Building blocks for in-process exchange tests: a broker core and members with real keys.

The broker core runs as in production since issue 8: the contracts are deployed by the hot
BROKER key (it pays, relays, records uses, anchors and mints), and ADMIN is a separate key
(``Broker.operator``) that signs onboarding and co-signatures the broker only relays.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlmodel import select

from ledger import crypto
from ledger.chain.client import LedgerChain
from ledger.chain.embedded import EmbeddedChain
from ledger.chain.models import CreditRules
from ledger.client.member import MemberKeys, open_delivery, prepare_grant, prepare_upload, sign
from ledger.protocol.actions import SignedAction
from ledger.quality import check_file
from ledger.services import access, datasets, exchange, members, requests
from ledger.services.context import Ledger
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database
from ledger.store.models import AccessRequest, Dataset, Delivery, Grant, Member, WrappedKey
from ledger.types import Classification, MemberKind, kind_code

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "building_permits.csv"


@dataclass
class Broker:
    """A broker core on an embedded chain, SQLite (or a given URL) and a blob directory.

    ``operator`` holds the ADMIN key (``ledger.operator``); ``broker_key`` is the BROKER key the
    chain client signs with. They are different keys, as the contracts require.
    """

    ledger: Ledger
    root: Path
    operator: MemberKeys
    broker_key: LocalAccount

    def close(self) -> None:
        self.ledger.chain.backend.close()
        self.ledger.db.dispose()


def new_keys(suite: str = "x25519") -> MemberKeys:
    private, _ = crypto.generate_keypair(suite)  # type: ignore[arg-type]
    return MemberKeys(account=Account.create(), hpke=private)


def deploy(
    chain_file: Path, *, rules: CreditRules | None = None
) -> tuple[LedgerChain, MemberKeys, LocalAccount]:
    """A fresh embedded chain with the contracts deployed: (broker's client, ADMIN, BROKER).

    Only the broker key is funded: the ADMIN key never sends a transaction here, its
    signatures are relayed.
    """
    operator = new_keys()
    broker_key: LocalAccount = Account.create()
    backend = EmbeddedChain(chain_file, funded=[broker_key.address])
    chain, _ = LedgerChain.deploy(backend, broker_key, admin=operator.address, rules=rules)
    return chain, operator, broker_key


def make_broker(
    root: Path, *, db_url: str | None = None, rules: CreditRules | None = None
) -> Broker:
    root.mkdir(parents=True, exist_ok=True)
    chain, operator, broker_key = deploy(root / "chain.sqlite", rules=rules)
    db = Database(db_url or f"sqlite:///{root / 'broker.db'}")
    db.upgrade()
    ledger = Ledger(chain=chain, db=db, blobs=FileBlobStore(root / "blobs"))
    return Broker(ledger=ledger, root=root, operator=operator, broker_key=broker_key)


def onboard(broker: Broker, kind: MemberKind, name: str, *, suite: str = "x25519") -> MemberKeys:
    """A new member, onboarded with the ADMIN key's signed Onboard (relayed by the broker)."""
    keys = new_keys(suite)
    signed = sign(
        broker.operator,
        "onboard",
        {
            "member": keys.address,
            "kind": kind_code(kind),
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
    # As `drl dataset register` does: the owner's frictionless report goes into the signed
    # metadata, and the quality score (which weighs credits) starts from it.
    schema, report = check_file(source)
    prepared = prepare_upload(
        owner,
        source,
        workdir=workdir,
        title=title,
        domains=ledger.domains,
        chain_nonce=ledger.chain.nonce("DataRegistry", owner.address),
        classification=classification,
        parents=parents,
        schema=schema,
        quality=report.summary(),
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
    """The owner approves; a grant that waits for the operator's co-signature gets it."""
    outcome = approve_only(broker, owner, req)
    if isinstance(outcome, AccessRequest):
        return cosign(broker, outcome)
    return outcome


def approve_only(broker: Broker, owner: MemberKeys, req: AccessRequest) -> Grant | AccessRequest:
    """The owner's signed grant, as ``access.approve`` answers it (the request if it waits)."""
    ledger = broker.ledger
    with ledger.db.session() as session:
        target = session.get(Dataset, req.dataset_id)
        requester = session.get(Member, req.requester)
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
        form=access.form_of(req),
    )
    return access.approve(ledger, int(req.id or 0), signed, wrapped_key=wrapped)


def cosign(broker: Broker, req: AccessRequest) -> Grant:
    """The operator's GrantApproval for a grant awaiting it (the generation it creates)."""
    ledger = broker.ledger
    assert req.pending_grant_json is not None, "the request is not awaiting a co-signature"
    grant = SignedAction.from_json(json.loads(req.pending_grant_json))
    terms = {
        k: grant.message[k]
        for k in ("datasetId", "grantee", "purposeHash", "expiresAt", "maxUses", "termsHash")
    }
    generation = ledger.chain.grant_of(int(terms["datasetId"]), str(terms["grantee"])).generation
    approval = sign(
        broker.operator, "approval", {**terms, "generation": generation + 1}, ledger.domains
    )
    return access.cosign(ledger, int(req.id or 0), approval)


@dataclass(frozen=True)
class Opened:
    """A fetch the grantee opened: the broker's answer, the verified content hash, and the
    grantee's signed Fetch (its nonce is what the delivery receipt acknowledges)."""

    fetched: exchange.Fetched
    digest: bytes
    fetch: SignedAction

    @property
    def fetch_nonce(self) -> int:
        return int(self.fetch.message["nonce"])


def sign_fetch(broker: Broker, grantee: MemberKeys, dataset_id: int) -> SignedAction:
    """The grantee's signed Fetch (AccessLedger domain, a random nonce)."""
    return sign(
        grantee,
        "fetch",
        {"grantee": grantee.address, "datasetId": dataset_id},
        broker.ledger.domains,
    )


def fetch_and_open(broker: Broker, grantee: MemberKeys, dataset_id: int, out: Path) -> Opened:
    ledger = broker.ledger
    signed = sign_fetch(broker, grantee, dataset_id)
    fetched = exchange.fetch(ledger, signed)
    with ledger.blobs.open(fetched.dataset.ciphertext_sha256) as fh:
        digest = open_delivery(
            grantee,
            fh,
            out,
            wrapped_key=fetched.wrapped_key,
            content_hash=fetched.dataset.content_hash,
        )
    return Opened(fetched=fetched, digest=digest, fetch=signed)


def sign_receipt(broker: Broker, consumer: MemberKeys, opened: Opened) -> SignedAction:
    """The consumer's signed DeliveryReceipt for one fetch (SharingCredits domain)."""
    fetched = opened.fetched
    return sign(
        consumer,
        "receipt",
        {
            "consumer": consumer.address,
            "datasetId": fetched.dataset.id,
            "contentHash": fetched.dataset.content_hash,
            "grantGeneration": fetched.generation,
            "fetchNonce": opened.fetch_nonce,
        },
        broker.ledger.domains,
    )


def receipt(broker: Broker, consumer: MemberKeys, opened: Opened) -> Delivery:
    return exchange.acknowledge(broker.ledger, sign_receipt(broker, consumer, opened))


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

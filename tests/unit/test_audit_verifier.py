"""Member-side verify (ledger.audit.verifier): a fake broker log over a real Merkle tree, real
signed actions and checkpoints, and a fake chain of ``ledger.chain.models.Event``s."""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.audit import AuditState, verify
from ledger.audit import verifier as verifier_module
from ledger.audit.links import BY_ACTION, LINKS
from ledger.audit.verifier import AuditReport
from ledger.chain.models import Event
from ledger.errors import BrokerUnreachable, ChainUnavailable, ConfigurationError
from ledger.merkle.proofs import leaf_hash
from ledger.merkle.tree import MemoryNodeStore, MerkleTree
from ledger.protocol.actions import ACTIONS, Domains, SignedAction, new_nonce, sign_action
from ledger.protocol.canonical import canonical
from ledger.protocol.checkpoint import Checkpoint, origin_for, sign_checkpoint
from ledger.protocol.codes import ErrorCode
from ledger.types import TxHash

CHAIN_ID = 31337
DOMAINS = Domains(
    chain_id=CHAIN_ID,
    flow_log="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    member_registry="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    data_registry="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    access_ledger="0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    sharing_credits="0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
)
ORIGIN = origin_for(CHAIN_ID, DOMAINS.flow_log)
BROKER = Account.from_key(b"\x01" * 32)
ALICE = Account.from_key(b"\x02" * 32)  # an owner
BOB = Account.from_key(b"\x03" * 32)  # a consumer
MALLORY = Account.from_key(b"\x04" * 32)
DEADLINE = 2_000_000_000


# -- a fake broker and a fake chain --------------------------------------------------------------


class FakeLog:
    """The broker's log: records, a real tree over them, checkpoints signed by ``signer``.

    ``served`` overrides what ``records`` answers (a tampering broker); ``calls`` records every
    request so tests can see what an incremental run read.
    """

    def __init__(self, signer: LocalAccount = BROKER) -> None:
        self.signer = signer
        self.leaves: list[bytes] = []
        self.tree = MerkleTree(MemoryNodeStore())
        self.served: list[bytes] | None = None
        self.note: str | None = None
        self.calls: list[tuple[str, int, int]] = []
        self.on_checkpoint: Callable[[], None] | None = None
        self.fail_records_after: int | None = None

    def append(
        self, signed: SignedAction, context: dict[str, Any] | None = None, *, seq: int | None = None
    ) -> int:
        n = len(self.leaves)
        leaf = leaf_of(n if seq is None else seq, signed, context)
        self.leaves.append(leaf)
        self.tree.append(leaf)
        return n

    def head(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        return sign_checkpoint(self.signer, Checkpoint(ORIGIN, size, self.tree.root(size)))

    def checkpoint(self) -> str:
        self.calls.append(("checkpoint", 0, 0))
        if self.on_checkpoint is not None:
            self.on_checkpoint()
        return self.note if self.note is not None else self.head()

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        self.calls.append(("consistency", old_size, new_size))
        return self.tree.consistency_proof(old_size, new_size)

    def inclusion(self, seq: int, tree_size: int) -> list[bytes]:
        return self.tree.inclusion_proof(seq, tree_size)

    def records(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        self.calls.append(("records", after, limit))
        if self.fail_records_after is not None and after >= self.fail_records_after:
            raise BrokerUnreachable("the broker went away")
        leaves = self.served if self.served is not None else self.leaves
        return [(i, leaves[i]) for i in range(after + 1, min(len(leaves), after + 1 + limit))]


class FakeChain:
    """Events by block (one event a block), BROKER holders, and a switch to go offline."""

    def __init__(self) -> None:
        self.block = 10
        self.logs: list[Event] = []
        self.brokers = {BROKER.address}
        self.offline = False

    def emit(self, contract: str, name: str, **args: Any) -> Event:
        self.block += 1
        event = Event(contract, name, args, self.block, TxHash(f"0x{self.block:064x}"), 0)
        self.logs.append(event)
        return event

    def latest_block(self) -> int:
        return self.block

    def events(self, contract: str, event: str, *, from_block: int, to_block: int) -> list[Event]:
        if self.offline:
            raise ChainUnavailable("the node is down")
        return [
            e
            for e in self.logs
            if e.contract == contract
            and e.name == event
            and from_block <= e.block_number <= to_block
        ]

    def is_broker(self, address: str) -> bool:
        return address in self.brokers


def leaf_of(seq: int, signed: SignedAction, context: dict[str, Any] | None = None) -> bytes:
    return canonical(
        {
            "v": 1,
            "seq": seq,
            "at": f"2025-01-01T00:00:{seq % 60:02d}.000000+00:00",
            "signed": signed.to_json(),
            "context": context or {},
        }
    )


class World:
    """A broker and a chain that behave: every action is relayed, then logged."""

    def __init__(self) -> None:
        self.log = FakeLog()
        self.chain = FakeChain()
        self.state = AuditState.in_memory()

    def verify(self, **kwargs: Any) -> AuditReport:
        return verify(self.log, self.chain, self.state, domains=DOMAINS, origin=ORIGIN, **kwargs)

    # broker-domain actions (no chain event)
    def request(self, who: LocalAccount = BOB, dataset_id: int = 1) -> SignedAction:
        signed = sign_action(
            who,
            "request",
            {
                "requester": who.address,
                "datasetId": dataset_id,
                "purpose": "quarterly statistics",
                "days": 30,
                "maxUses": 3,
                "nonce": new_nonce(),
                "deadline": DEADLINE,
            },
            DOMAINS,
        )
        self.log.append(signed)
        return signed

    def deny(self, who: LocalAccount = ALICE, request_id: int = 1, dataset_id: int = 1) -> None:
        signed = sign_action(
            who,
            "deny",
            {
                "owner": who.address,
                "requestId": request_id,
                "reason": "not now",
                "nonce": new_nonce(),
                "deadline": DEADLINE,
            },
            DOMAINS,
        )
        self.log.append(signed, {"dataset_id": dataset_id})

    def rate(self, who: LocalAccount = BOB, dataset_id: int = 1) -> SignedAction:
        signed = sign_action(
            who,
            "rate",
            {
                "rater": who.address,
                "datasetId": dataset_id,
                "score": 4,
                "comment": "clean",
                "nonce": new_nonce(),
                "deadline": DEADLINE,
            },
            DOMAINS,
        )
        self.log.append(signed)
        return signed

    # contract actions (relayed: the event first, then the record)
    def register(
        self, who: LocalAccount = ALICE, dataset_id: int = 1, parents: tuple[int, ...] = ()
    ) -> SignedAction:
        message = {
            "owner": who.address,
            "contentHash": bytes([dataset_id]) * 32,
            "metadataHash": b"\x11" * 32,
            "classification": 1,
            "parents": list(parents),
            "previousVersion": 0,
            "nonce": dataset_id,
            "deadline": DEADLINE,
        }
        signed = sign_action(who, "register", message, DOMAINS)
        tx = self.chain.emit(
            "DataRegistry",
            "DatasetRegistered",
            datasetId=dataset_id,
            owner=who.address,
            contentHash=message["contentHash"],
            metadataHash=message["metadataHash"],
            classification=1,
            parents=parents,
            previousVersion=0,
        )
        self.log.append(signed, {"tx": tx.tx_hash, "dataset_id": dataset_id})
        return signed

    def fetch(
        self, who: LocalAccount = BOB, dataset_id: int = 1, *, on_chain: bool = True
    ) -> SignedAction:
        signed = self.sign_fetch(who, dataset_id)
        if on_chain:
            self.used(signed)
        self.log.append(signed)
        return signed

    def sign_fetch(self, who: LocalAccount = BOB, dataset_id: int = 1) -> SignedAction:
        message = {
            "grantee": who.address,
            "datasetId": dataset_id,
            "nonce": new_nonce(),
            "deadline": DEADLINE,
        }
        return sign_action(who, "fetch", message, DOMAINS)

    def used(self, fetch: SignedAction, uses: int = 1) -> Event:
        m = fetch.message
        return self.chain.emit(
            "AccessLedger",
            "AccessUsed",
            datasetId=m["datasetId"],
            grantee=m["grantee"],
            uses=uses,
            nonce=m["nonce"],
        )

    def receipt(self, fetch: SignedAction, who: LocalAccount = BOB) -> SignedAction:
        m = fetch.message
        signed = sign_action(
            who,
            "receipt",
            {
                "consumer": who.address,
                "datasetId": m["datasetId"],
                "contentHash": "0x" + "ab" * 32,
                "grantGeneration": 1,
                "fetchNonce": m["nonce"],
                "nonce": new_nonce(),
                "deadline": DEADLINE,
            },
            DOMAINS,
        )
        self.log.append(signed)
        return signed

    def mint(self, receipt: SignedAction, owner: LocalAccount = ALICE, quality: int = 50) -> Event:
        """Credits for ``receipt``; a registration without a quality summary scores 50."""
        m = receipt.message
        return self.chain.emit(
            "SharingCredits",
            "CreditsMinted",
            owner=owner.address,
            datasetId=m["datasetId"],
            consumer=m["consumer"],
            receiptId=receipt.digest(DOMAINS),
            amount=3,
            epoch=0,
            quality=quality,
        )

    def anchor(self, size: int | None = None, root: bytes | None = None) -> Event:
        size = self.log.tree.size if size is None else size
        return self.chain.emit(
            "FlowLog",
            "TreeHeadAnchored",
            treeSize=size,
            rootHash=self.log.tree.root(size) if root is None else root,
            headIndex=0,
            anchoredAt=0,
        )


def wheres(report: AuditReport, code: str) -> list[str]:
    return [p.where for p in report.problems if p.code == code]


@pytest.fixture
def world() -> World:
    return World()


def busy(world: World) -> None:
    """A little of everything, all well-behaved."""
    world.register(ALICE, 1)
    world.request(BOB, 1)
    fetch = world.fetch(BOB, 1)
    receipt = world.receipt(fetch)
    world.anchor()
    world.mint(receipt)
    world.rate(BOB, 1)


# -- clean runs ---------------------------------------------------------------------------------


def test_clean_first_run(world: World) -> None:
    busy(world)
    seen: list[tuple[str, int, int]] = []
    report = world.verify(progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert report.ok, report.problems
    assert report.pending == []
    assert report.advanced
    assert not report.incremental
    assert report.tree_size == 5
    assert report.kept_note == world.log.head()
    assert report.counts == {
        "records": 5,
        "signatures": 5,
        "anchors": 1,
        "events": 3,
        "matched": 3,
    }
    assert ("records", 5, 5) in seen
    assert world.state.size == 5
    assert world.state.checkpoint_note == world.log.head()
    assert world.state.last_block == world.chain.block


def test_incremental_run_reads_only_the_new_records(world: World) -> None:
    busy(world)
    assert world.verify().ok
    world.log.calls.clear()
    world.request(BOB, 2)
    world.fetch(BOB, 2)
    report = world.verify()
    assert report.ok, report.problems
    assert report.incremental
    assert report.advanced
    assert (report.previous_size, report.tree_size) == (5, 7)
    assert report.counts["records"] == 2
    assert report.counts["events"] == 1
    assert [c for c in world.log.calls if c[0] == "records"] == [("records", 4, 2)]
    assert ("consistency", 5, 7) in world.log.calls


def test_nothing_new_reads_no_records(world: World) -> None:
    busy(world)
    world.verify()
    world.log.calls.clear()
    report = world.verify()
    assert report.ok
    assert report.incremental
    assert report.counts["records"] == 0
    assert [c[0] for c in world.log.calls] == ["checkpoint"]


def test_pages(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier_module, "PAGE_SIZE", 2)
    for _ in range(5):
        world.request()
    report = world.verify()
    assert report.ok
    assert [c for c in world.log.calls if c[0] == "records"] == [
        ("records", -1, 2),
        ("records", 1, 2),
        ("records", 3, 1),
    ]


def test_state_file_permissions(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "broker.sqlite"
    world = World()
    world.state = AuditState.open(path)
    world.request()
    assert world.verify().ok
    world.state.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with AuditState.open(path) as again:
        assert again.size == 1
        assert again.origin == ORIGIN


def test_state_of_another_log_is_refused(world: World) -> None:
    world.request()
    world.verify()
    with pytest.raises(ConfigurationError):
        verify(
            world.log,
            world.chain,
            world.state,
            domains=DOMAINS,
            origin=origin_for(1, DOMAINS.flow_log),
        )


# -- the checkpoint -----------------------------------------------------------------------------


def test_checkpoint_of_a_non_broker(world: World) -> None:
    world.request()
    world.log.signer = MALLORY
    report = world.verify()
    assert report.codes() == [ErrorCode.CHECKPOINT_NOT_BROKER]
    assert not report.advanced
    assert world.state.checkpoint_note is None


def test_checkpoint_of_another_log(world: World) -> None:
    world.request()
    world.log.note = sign_checkpoint(
        BROKER, Checkpoint(origin_for(5, DOMAINS.flow_log), 1, world.log.tree.root())
    )
    assert world.verify().codes() == [ErrorCode.CHECKPOINT_WRONG_ORIGIN]


def test_checkpoint_malformed(world: World) -> None:
    world.request()
    world.log.note = world.log.head().replace("\n\n", "\n")
    assert world.verify().codes() == [ErrorCode.CHECKPOINT_MALFORMED]


# -- rewritten, dropped, reordered, forged ------------------------------------------------------


def test_rewritten_record_is_named(world: World) -> None:
    for _ in range(6):
        world.request()
    served = list(world.log.leaves)
    # The broker's unsigned part of record 3 changed after the head was signed.
    served[3] = served[3].replace(b"2025-01-01", b"2024-12-31")
    world.log.served = served
    report = world.verify()
    assert report.codes() == [ErrorCode.RECORD_MISMATCH]
    assert wheres(report, ErrorCode.RECORD_MISMATCH) == ["log record 3"]
    assert not report.advanced
    assert world.state.size == 0


def test_rewritten_signed_part_fails_its_signature(world: World) -> None:
    world.request()
    signed = world.request()
    forged = replace(signed, message={**signed.message, "maxUses": 99})
    world.log.leaves[1] = leaf_of(1, forged)
    world.log.tree = MerkleTree(MemoryNodeStore())
    world.log.tree.append_many(world.log.leaves)  # the broker re-signs the rewritten tree
    report = world.verify()
    assert report.codes() == [ErrorCode.INVALID_SIGNATURE]
    assert wheres(report, ErrorCode.INVALID_SIGNATURE) == ["log record 1"]


def test_history_rewritten_after_it_was_kept(world: World) -> None:
    for _ in range(4):
        world.request()
    assert world.verify().ok
    kept = world.state.checkpoint_note
    # The broker rewrites record 1 (unsigned part), rebuilds its tree and signs a longer head.
    world.log.leaves[1] = world.log.leaves[1].replace(b"2025-01-01", b"2024-12-31")
    world.log.tree = MerkleTree(MemoryNodeStore())
    world.log.tree.append_many(world.log.leaves)
    world.request()
    report = world.verify()
    assert report.codes() == [ErrorCode.LOG_INCONSISTENT]
    assert not report.advanced
    assert report.kept_note == kept
    assert world.state.checkpoint_note == kept
    assert world.state.size == 4
    (evidence,) = world.state.evidence()
    assert (evidence.kept_note, evidence.served_note) == (kept, world.log.head())
    assert report.evidence[0].served_note == world.log.head()


def test_dropped_record(world: World) -> None:
    for _ in range(5):
        world.request()
    world.log.served = world.log.leaves[:2] + world.log.leaves[3:]
    report = world.verify()
    assert wheres(report, ErrorCode.RECORD_OUT_OF_ORDER) == ["log record 2"]
    assert "positions 2-3 hold records 3-4" in report.problems[0].what
    assert wheres(report, ErrorCode.RECORD_MISSING) == ["log record 4"]
    assert not report.advanced


def test_dropped_record_renumbered_and_resigned(world: World) -> None:
    """A broker that drops record 1 and renumbers the rest: caught against what was kept."""
    for _ in range(3):
        world.request()
    assert world.verify().ok
    signed = [SignedAction.from_json(_json(leaf)["signed"]) for leaf in world.log.leaves]
    world.log.leaves, world.log.tree = [], MerkleTree(MemoryNodeStore())
    for action in [signed[0], signed[2]]:
        world.log.append(action)
    world.request()
    world.request()
    report = world.verify()
    assert report.codes() == [ErrorCode.LOG_INCONSISTENT]


def test_reordered_pair(world: World) -> None:
    for _ in range(6):
        world.request()
    served = list(world.log.leaves)
    served[2], served[3] = served[3], served[2]
    world.log.served = served
    report = world.verify()
    assert wheres(report, ErrorCode.RECORD_OUT_OF_ORDER) == ["log record 2", "log record 3"]
    assert wheres(report, ErrorCode.RECORD_MISMATCH) == ["log record 2"]


def test_reordered_pair_with_seq_fields_rewritten(world: World) -> None:
    for _ in range(6):
        world.request()
    served = list(world.log.leaves)
    a, b = _json(served[2]), _json(served[3])
    served[2] = leaf_of(2, SignedAction.from_json(b["signed"]))
    served[3] = leaf_of(3, SignedAction.from_json(a["signed"]))
    world.log.served = served
    report = world.verify()
    assert wheres(report, ErrorCode.RECORD_MISMATCH) == ["log record 2"]


def test_forged_signature(world: World) -> None:
    world.request()
    # Mallory signs a request in Bob's name; the broker logs it and signs the head.
    message = {
        "requester": BOB.address,
        "datasetId": 1,
        "purpose": "quarterly statistics",
        "days": 30,
        "maxUses": 3,
        "nonce": new_nonce(),
        "deadline": DEADLINE,
    }
    forged = replace(sign_action(MALLORY, "request", message, DOMAINS), actor=BOB.address)
    world.log.append(forged)
    world.request()
    report = world.verify()
    assert report.codes() == [ErrorCode.INVALID_SIGNATURE]
    assert wheres(report, ErrorCode.INVALID_SIGNATURE) == ["log record 1"]
    assert "signed by " + MALLORY.address in report.problems[0].what


def test_replayed_action(world: World) -> None:
    signed = world.request()
    world.rate()
    world.log.append(signed)
    report = world.verify()
    assert report.codes() == [ErrorCode.NONCE_REPLAYED]
    assert wheres(report, ErrorCode.NONCE_REPLAYED) == ["log record 2"]


def test_replay_across_runs(world: World) -> None:
    signed = world.request()
    assert world.verify().ok
    world.log.append(signed)
    assert world.verify().codes() == [ErrorCode.NONCE_REPLAYED]


def test_malformed_record(world: World) -> None:
    world.request()
    world.log.leaves.append(b'{"v":1, "seq":1}')
    world.log.tree.append(world.log.leaves[-1])
    report = world.verify()
    assert report.codes() == [ErrorCode.RECORD_MALFORMED]


# -- forks --------------------------------------------------------------------------------------


def test_fork_two_heads_of_one_size(world: World) -> None:
    for _ in range(3):
        world.request()
    assert world.verify().ok
    kept = world.state.checkpoint_note
    other = World()
    for _ in range(3):
        other.request()
    world.log.note = other.log.head()  # the same broker key, the same size, another history
    report = world.verify()
    assert report.codes() == [ErrorCode.LOG_INCONSISTENT]
    assert "fork" in report.problems[0].what
    (evidence,) = world.state.evidence()
    assert evidence.kept_note == kept
    assert evidence.served_note == other.log.head()
    assert world.state.checkpoint_note == kept


def test_inconsistent_new_head(world: World) -> None:
    for _ in range(3):
        world.request()
    assert world.verify().ok
    other = World()
    for _ in range(5):
        other.request()
    world.log = other.log  # a longer head from another history (its proofs are its own)
    report = world.verify()
    assert report.codes() == [ErrorCode.LOG_INCONSISTENT]
    assert "rewritten or forked" in report.problems[0].what


def test_shrunk_log(world: World) -> None:
    for _ in range(3):
        world.request()
    assert world.verify().ok
    world.log.note = world.log.head(2)
    report = world.verify()
    assert report.codes() == [ErrorCode.LOG_INCONSISTENT]
    assert "shrank" in report.problems[0].what


# -- anchors ------------------------------------------------------------------------------------


def test_anchored_root_mismatch(world: World) -> None:
    for _ in range(4):
        world.request()
    world.anchor(2)
    bad = world.anchor(3, root=b"\x66" * 32)
    report = world.verify()
    assert report.codes() == [ErrorCode.ANCHOR_MISMATCH]
    assert wheres(report, ErrorCode.ANCHOR_MISMATCH) == [f"anchor of size 3 (tx {bad.tx_hash})"]
    assert report.counts["anchors"] == 2
    assert not report.advanced
    assert world.state.last_block == -1


def test_anchor_beyond_the_head_is_checked_next_run(world: World) -> None:
    for _ in range(3):
        world.request()
    world.log.note = world.log.head(2)  # the broker serves an older head than it anchored
    world.anchor(3)
    report = world.verify()
    assert report.ok
    assert [p.code for p in report.pending] == [ErrorCode.ANCHOR_MISMATCH]
    assert report.counts["anchors"] == 0
    world.log.note = None
    report = world.verify()
    assert report.ok
    assert report.pending == []
    assert report.counts["anchors"] == 1
    # ... and a wrong one is caught then too.
    world.request()
    world.log.note = world.log.head(3)
    world.anchor(4, root=b"\x01" * 32)
    assert world.verify().ok
    world.log.note = None
    assert world.verify().codes() == [ErrorCode.ANCHOR_MISMATCH]


# -- chain events against signed records --------------------------------------------------------


def test_every_action_with_a_chain_trace_is_in_the_table() -> None:
    on_chain = {name for name, spec in ACTIONS.items() if spec.on_chain} - {"approval"}
    assert on_chain <= set(BY_ACTION)
    assert len({(link.contract, link.event) for link in LINKS}) == len(LINKS)


def test_chain_event_without_record(world: World) -> None:
    busy(world)
    fake = world.used(world.sign_fetch(BOB, 1), uses=2)  # recordUse with no fetch logged
    report = world.verify()
    assert report.codes() == [ErrorCode.CHAIN_EVENT_UNMATCHED]
    assert wheres(report, ErrorCode.CHAIN_EVENT_UNMATCHED) == [f"tx {fake.tx_hash}"]
    assert "AccessLedger.AccessUsed" in report.problems[0].what
    # Not a log problem: the state moves on, and the event stays open for the next run.
    assert report.advanced
    again = world.verify()
    assert again.codes() == [ErrorCode.CHAIN_EVENT_UNMATCHED]


def test_minted_credit_without_receipt(world: World) -> None:
    busy(world)
    fetch = world.fetch(BOB, 1)
    made_up = sign_action(
        MALLORY,
        "receipt",
        {
            "consumer": MALLORY.address,
            "datasetId": 1,
            "contentHash": "0x" + "ab" * 32,
            "grantGeneration": 1,
            "fetchNonce": fetch.message["nonce"],
            "nonce": new_nonce(),
            "deadline": DEADLINE,
        },
        DOMAINS,
    )
    minted = world.mint(made_up)  # never logged
    report = world.verify()
    assert wheres(report, ErrorCode.CHAIN_EVENT_UNMATCHED) == [f"tx {minted.tx_hash}"]


def test_record_without_event(world: World) -> None:
    busy(world)
    world.fetch(BOB, 1, on_chain=False)
    report = world.verify()
    assert report.codes() == [ErrorCode.RECORD_UNCONFIRMED]
    assert wheres(report, ErrorCode.RECORD_UNCONFIRMED) == ["log record 5"]
    assert report.advanced
    # The use shows up on chain later: the next run matches it and the problem is gone.
    fetch = SignedAction.from_json(_json(world.log.leaves[5])["signed"])
    world.used(fetch, uses=2)
    report = world.verify()
    assert report.ok
    assert report.counts["matched"] == 1
    (row,) = world.state.leaf_rows(actions=["fetch"])[-1:]
    assert row.chain == "matched"
    assert row.tx_hash == world.chain.logs[-1].tx_hash


def test_event_with_other_key_does_not_match(world: World) -> None:
    fetch = world.sign_fetch(BOB, 1)
    world.chain.emit(
        "AccessLedger",
        "AccessUsed",
        datasetId=2,  # another dataset than the one signed
        grantee=BOB.address,
        uses=1,
        nonce=fetch.message["nonce"],
    )
    world.log.append(fetch)
    report = world.verify()
    assert sorted(report.codes()) == [
        ErrorCode.CHAIN_EVENT_UNMATCHED,
        ErrorCode.RECORD_UNCONFIRMED,
    ]


def test_receipt_waits_for_its_credit(world: World) -> None:
    fetch = world.fetch()
    receipt = world.receipt(fetch)
    report = world.verify()
    assert report.ok
    assert [(p.code, p.where) for p in report.pending] == [
        (ErrorCode.RECORD_UNCONFIRMED, "log record 1")
    ]
    world.anchor()
    world.mint(receipt)
    report = world.verify()
    assert report.ok
    assert report.pending == []
    assert report.counts["matched"] == 1


def test_withheld_credit_matches_the_receipt(world: World) -> None:
    receipt = world.receipt(world.fetch())
    world.chain.emit(
        "SharingCredits",
        "CreditWithheld",
        receiptId=receipt.digest(DOMAINS),
        datasetId=1,
        reason=3,
    )
    report = world.verify()
    assert report.ok
    assert report.pending == []


def test_event_newer_than_the_head_is_pending(world: World) -> None:
    busy(world)
    late = world.sign_fetch()

    def relayed_while_verifying() -> None:
        world.used(late)  # mined after the verifier read the chain's block, record not yet in

    world.log.on_checkpoint = relayed_while_verifying
    report = world.verify()
    assert report.ok
    assert [p.code for p in report.pending] == [ErrorCode.CHAIN_EVENT_UNMATCHED]
    world.log.on_checkpoint = None
    world.log.append(late)
    report = world.verify()
    assert report.ok
    assert report.pending == []
    assert report.counts["matched"] == 1


def test_register_takes_its_dataset_id_from_the_chain(world: World) -> None:
    world.register(ALICE, 7)
    assert world.verify().ok
    (row,) = world.state.leaf_rows(actions=["register"])
    assert (row.dataset_id, row.dataset_from, row.chain) == (7, "chain", "matched")


# -- failures midway ----------------------------------------------------------------------------


def _snapshot(state: AuditState) -> tuple[Any, ...]:
    return (
        state.checkpoint_note,
        state.last_block,
        state.size,
        len(state.nodes.get_many([(0, i) for i in range(64)])),
        state.open_records(),
        state.open_events(),
        state.anchors(),
    )


def test_chain_failure_midway_leaves_state_unchanged(world: World) -> None:
    busy(world)
    world.fetch(BOB, 1, on_chain=False)
    world.verify()
    before = _snapshot(world.state)
    world.request()
    world.fetch()
    world.anchor()
    world.chain.offline = True
    with pytest.raises(ChainUnavailable):
        world.verify()
    assert _snapshot(world.state) == before
    world.chain.offline = False
    report = world.verify()
    assert report.incremental
    assert report.counts["records"] == 2
    assert report.codes() == [ErrorCode.RECORD_UNCONFIRMED]  # still the one from before


def test_broker_failure_between_pages_leaves_state_unchanged(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verifier_module, "PAGE_SIZE", 2)
    for _ in range(3):
        world.request()
    assert world.verify().ok
    before = _snapshot(world.state)
    for _ in range(5):
        world.request()
    world.log.fail_records_after = 4  # the second page of the new records fails
    with pytest.raises(BrokerUnreachable):
        world.verify()
    assert _snapshot(world.state) == before
    world.log.fail_records_after = None
    report = world.verify()
    assert report.ok
    assert report.counts["records"] == 5
    assert world.state.size == 8


def _json(leaf: bytes) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(leaf)
    return data


def test_reads_the_version_the_broker_writes() -> None:
    from ledger.audit.records import LEAF_VERSION
    from ledger.services.flowlog import LEAF_VERSION as WRITTEN

    assert LEAF_VERSION == WRITTEN


def test_empty_log(world: World) -> None:
    report = world.verify()
    assert report.ok
    assert report.tree_size == 0
    world.log.note = sign_checkpoint(BROKER, Checkpoint(ORIGIN, 0, b"\x05" * 32))
    assert World().verify().ok
    fresh = World()
    fresh.log.note = world.log.note
    assert fresh.verify().codes() == [ErrorCode.RECORD_MISMATCH]


# -- several problems at once, each with its message ---------------------------------------------


def test_a_log_kept_empty_then_grown_is_read_from_the_start(world: World) -> None:
    """From a kept head of size 0 any larger head is consistent: nothing to prove yet."""
    assert world.verify().advanced
    world.request()
    world.request()
    report = world.verify()
    assert report.ok
    assert report.advanced
    assert (report.previous_size, report.tree_size, report.counts["records"]) == (0, 2, 2)


def test_a_fork_is_named_at_the_checkpoint_with_dated_evidence(world: World) -> None:
    for _ in range(2):
        world.request()
    assert world.verify().ok
    other = World()
    for _ in range(2):
        other.request()
    world.log.note = other.log.head()
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.LOG_INCONSISTENT,
            "checkpoint",
            "two signed heads of size 2 with different roots (a fork)",
        )
    ]
    (evidence,) = world.state.evidence()
    found = dt.datetime.fromisoformat(evidence.found_at)
    assert found.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - found) < dt.timedelta(minutes=5)
    assert (evidence.code, evidence.detail) == (ErrorCode.LOG_INCONSISTENT, report.problems[0].what)


def test_a_rewrite_under_an_older_head_is_located_against_that_head(world: World) -> None:
    """The broker serves a head older than its tree: proofs must be asked for at that size."""
    for _ in range(6):
        world.request()
    world.log.note = world.log.head(4)
    served = list(world.log.leaves)
    served[2] = served[2].replace(b"2025-01-01", b"2024-12-31")
    world.log.served = served
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.RECORD_MISMATCH,
            "log record 2",
            "the records served do not make the signed head of size 4: record 2 is the first "
            "that differs (rewritten, dropped or reordered)",
        )
    ]


def test_every_unconfirmed_record_is_named_and_kept_open(world: World) -> None:
    """Two uses without their event and a receipt not yet credited: each is reported."""
    world.register(ALICE, 1)
    first = world.fetch(BOB, 1, on_chain=False)
    second = world.fetch(BOB, 1, on_chain=False)
    receipt = world.receipt(world.fetch(BOB, 1))
    report = world.verify()
    fetch_says = f"fetch signed by {BOB.address} has no matching AccessLedger.AccessUsed on chain"
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (ErrorCode.RECORD_UNCONFIRMED, "log record 1", fetch_says),
        (ErrorCode.RECORD_UNCONFIRMED, "log record 2", fetch_says),
    ]
    assert [(p.code, p.where, p.what) for p in report.pending] == [
        (
            ErrorCode.RECORD_UNCONFIRMED,
            "log record 4",
            f"receipt signed by {BOB.address}: no SharingCredits.CreditsMinted or "
            "SharingCredits.CreditWithheld on chain yet",
        )
    ]
    chain = {row.seq: row.chain for row in world.state.leaf_rows()}
    assert chain == {0: "matched", 1: "unmatched", 2: "unmatched", 3: "matched", 4: "pending"}
    assert [seq for seq, _ in world.state.open_records()] == [1, 2, 4]
    del first, second, receipt


def test_a_matched_record_keeps_its_transaction_and_block(world: World) -> None:
    world.register(ALICE, 1)
    fetch = world.fetch(BOB, 1)
    assert world.verify().ok
    event = next(e for e in world.chain.logs if e.name == "AccessUsed")
    (row,) = world.state.leaf_rows(actions=["fetch"])
    assert (row.chain, row.tx_hash, row.block_number) == (
        "matched",
        event.tx_hash,
        event.block_number,
    )
    assert fetch.message["datasetId"] == row.dataset_id == 1


def test_state_opens_in_new_nested_folders_and_from_another_thread(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "home" / "audit" / "broker.sqlite"
    with AuditState.open(path) as state:
        assert state.path == path
        sizes: list[int] = []
        worker = threading.Thread(target=lambda: sizes.append(state.size))
        worker.start()
        worker.join()
        assert sizes == [0]  # opened with check_same_thread=False: usable from any thread


def test_a_state_that_cannot_be_opened_says_which(tmp_path: Path) -> None:
    from ledger.errors import StorageError

    folder = tmp_path / "state.sqlite"
    folder.mkdir()
    with pytest.raises(StorageError) as caught:
        AuditState.open(folder)
    assert str(folder) in caught.value.message
    assert caught.value.message.startswith("cannot open the audit state ")


def test_a_kept_head_of_one_record_still_needs_a_consistency_proof(world: World) -> None:
    world.request()
    assert world.verify().ok
    other = World()
    for _ in range(3):
        other.request()
    world.log = other.log  # a longer head of another history
    report = world.verify()
    assert report.codes() == [ErrorCode.LOG_INCONSISTENT]
    (evidence,) = report.evidence
    assert dt.datetime.fromisoformat(evidence.found_at).utcoffset() == dt.timedelta(0)


def test_an_anchor_whose_root_is_not_bytes_cannot_be_read(world: World) -> None:
    world.request()
    world.anchor(root=12345)  # type: ignore[arg-type]
    report = world.verify()
    assert [(p.code, p.what) for p in report.problems] == [
        (ErrorCode.ANCHOR_MISMATCH, "an anchor event that cannot be read")
    ]


def test_kept_rows_filter_by_dataset_and_several_actions(world: World) -> None:
    busy(world)
    assert world.verify().ok
    rows = world.state.leaf_rows(dataset_id=1, actions=["fetch", "receipt"])
    assert [(r.seq, r.action) for r in rows] == [(2, "fetch"), (3, "receipt")]
    assert rows[0].leaf_hash == leaf_hash(world.log.leaves[2])
    assert rows[0].at == "2025-01-01T00:00:02.000000+00:00"
    world.state.nodes.put(9, 9, b"\x01" * 32)
    assert world.state.nodes.get(9, 9) == b"\x01" * 32


# -- exact findings and helpers (each pinned to its wording and numbers) -------------------------


def test_a_run_of_shifted_records_is_named_once_with_its_first_and_last_position(
    world: World,
) -> None:
    for _ in range(6):
        world.request()
    world.log.served = world.log.leaves[:1] + world.log.leaves[2:]
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.RECORD_OUT_OF_ORDER,
            "log record 1",
            "positions 1-4 hold records 2-5 (records dropped, inserted or reordered)",
        ),
        (
            ErrorCode.RECORD_MISSING,
            "log record 5",
            "the log served 5 of the 6 new records its signed head holds",
        ),
    ]


def test_records_missing_from_an_incremental_run_are_counted_from_the_kept_head(
    world: World,
) -> None:
    for _ in range(2):
        world.request()
    assert world.verify().ok
    for _ in range(3):
        world.request()
    world.log.served = world.log.leaves[:3]
    seen: list[tuple[str, int, int]] = []
    report = world.verify(progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.RECORD_MISSING,
            "log record 3",
            "the log served 1 of the 3 new records its signed head holds",
        )
    ]
    assert [s for s in seen if s[0] == "records"] == [("records", 1, 3)]


def test_a_malformed_record_and_a_replay_are_named_with_their_reason(world: World) -> None:
    signed = world.request()
    world.log.leaves.append(b'{"v":1, "seq":1}')
    world.log.tree.append(world.log.leaves[-1])
    world.log.append(signed)
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.RECORD_MALFORMED,
            "log record 1",
            "a record is canonical JSON (RFC 8785 with exact integers)",
        ),
        (
            ErrorCode.NONCE_REPLAYED,
            "log record 2",
            f"the same request by {BOB.address} as log record 0 (a replay)",
        ),
    ]


def test_a_node_behind_the_last_scanned_block_is_noted(world: World) -> None:
    world.request()
    assert world.verify().ok
    scanned = world.state.last_block
    world.chain.block = scanned - 3
    report = world.verify()
    assert report.problems == []
    assert [(p.code, p.where, p.what) for p in report.pending] == [
        (
            ErrorCode.CHAIN_ERROR,
            "chain",
            f"the node is at block {scanned - 3}, behind block {scanned} scanned before",
        )
    ]
    assert world.state.last_block == scanned


def test_progress_counts_every_kind_of_event_read(world: World) -> None:
    busy(world)
    seen: list[tuple[str, int, int]] = []
    assert world.verify(progress=lambda *step: seen.append(step)).ok
    kinds = len(verifier_module.BY_EVENT)
    assert kinds > 1
    assert [s for s in seen if s[0] == "events"] == [
        ("events", done, kinds) for done in range(1, kinds + 1)
    ]
    # register, fetch and receipt have chain traces to match; request and rate have none
    assert [s for s in seen if s[0] == "matching"] == [("matching", 3, 3)]


def _record(signed: SignedAction, context: dict[str, Any] | None = None) -> Any:
    from ledger.audit.records import parse_leaf

    return parse_leaf(leaf_of(0, signed, context))


def test_an_anchor_root_reads_from_bytes_or_0x_hex_only() -> None:
    as_bytes = verifier_module._as_bytes
    assert as_bytes(b"\x01\x02") == b"\x01\x02"
    assert as_bytes(bytearray(b"\x03")) == b"\x03"
    assert as_bytes("0x0aFF") == b"\x0a\xff"
    assert as_bytes("0x") == b""
    for unreadable in ("0a0b", "0xzz", "0x0", 12345, None, ["0x00"]):
        assert as_bytes(unreadable) is None, unreadable


def test_a_record_is_filed_under_the_signed_dataset_else_the_brokers_word() -> None:
    dataset_of = verifier_module._dataset_of
    fetch = World().sign_fetch(BOB, 7)
    assert dataset_of(_record(fetch, {"dataset_id": 9})) == (7, "signed")
    deny = sign_action(
        ALICE,
        "deny",
        {"owner": ALICE.address, "requestId": 3, "reason": "no", "nonce": 2**64, "deadline": 1},
        DOMAINS,
    )
    assert dataset_of(_record(deny, {"dataset_id": 9})) == (9, "context")
    for context in ({}, {"dataset_id": None}, {"dataset_id": True}, {"dataset_id": "9"}):
        assert dataset_of(_record(deny, context)) == (None, None), context


def test_a_record_names_its_actor_and_every_address_in_its_message() -> None:
    parties = verifier_module._parties
    onboard = sign_action(
        BROKER,
        "onboard",
        {
            "member": ALICE.address,
            "kind": 1,
            "name": "Alice",
            "keySuite": 1,
            "encryptionKey": b"\x01" * 32,
            "nonce": 2**64,
            "deadline": DEADLINE,
        },
        DOMAINS,
    )
    assert parties(_record(onboard)) == (BROKER.address.lower(), ALICE.address.lower())
    fetch = World().sign_fetch(BOB, 1)
    assert parties(_record(fetch)) == (BOB.address.lower(),)


def test_a_record_carries_exactly_one_signed_action() -> None:
    from ledger.audit.records import carries

    fetch = World().sign_fetch(BOB, 1)
    other = World().sign_fetch(BOB, 1)
    assert carries(_record(fetch), fetch)
    assert not carries(_record(fetch), other)


def test_a_kept_record_without_a_dataset_reads_back_with_none() -> None:
    world = World()
    deny = sign_action(
        ALICE,
        "deny",
        {"owner": ALICE.address, "requestId": 3, "reason": "no", "nonce": 2**64, "deadline": 1},
        DOMAINS,
    )
    world.log.append(deny)
    assert world.verify().ok
    (row,) = world.state.leaf_rows()
    assert (row.seq, row.action, row.dataset_id, row.dataset_from) == (0, "deny", None, None)
    assert row.actor == ALICE.address


def _register_labelled(
    world: World, metadata: dict[str, Any], classification: int, signed_hash: str
) -> None:
    from ledger.protocol.documents import metadata_hash

    message = {
        "owner": ALICE.address,
        "contentHash": b"\x07" * 32,
        "metadataHash": signed_hash or "0x" + metadata_hash(metadata).hex(),
        "classification": classification,
        "parents": [],
        "previousVersion": 0,
        "nonce": 7,
        "deadline": DEADLINE,
    }
    signed = sign_action(ALICE, "register", message, DOMAINS)
    tx = world.chain.emit(
        "DataRegistry",
        "DatasetRegistered",
        datasetId=7,
        owner=ALICE.address,
        contentHash=message["contentHash"],
        metadataHash=bytes.fromhex(signed.message["metadataHash"][2:]),
        classification=classification,
        parents=(),
        previousVersion=0,
    )
    world.log.append(signed, {"tx": tx.tx_hash, "dataset_id": 7, "metadata": metadata})


@pytest.mark.parametrize(
    ("metadata", "classification", "signed_hash", "finding"),
    [
        (
            {"v": 1, "title": "t", "personal_data": True},
            0,
            "",
            (
                ErrorCode.LABEL_RULE_BROKEN,
                "register: personal data cannot be PUBLIC: classify it internal or sensitive",
            ),
        ),
        (
            {"v": 1, "title": "t", "themes": ["JUST"]},
            1,
            "",
            (
                ErrorCode.LABEL_RULE_BROKEN,
                "register: theme JUST needs classification SENSITIVE, not INTERNAL",
            ),
        ),
        (
            {"v": 1, "title": "t"},
            1,
            "0x" + "11" * 32,
            (
                ErrorCode.METADATA_MISMATCH,
                "the registration's metadata document does not hash to the signed metadataHash",
            ),
        ),
    ],
    ids=["personal-public", "theme-below-sensitive", "unsigned-document"],
)
def test_a_registration_breaking_a_labelling_rule_is_named_with_the_rule(
    metadata: dict[str, Any], classification: int, signed_hash: str, finding: tuple[str, str]
) -> None:
    world = World()
    _register_labelled(world, metadata, classification, signed_hash)
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (*finding[:1], "log record 0", finding[1])
    ]


def test_labels_are_checked_only_against_a_document_the_owner_signed_and_a_known_class() -> None:
    from ledger.protocol.documents import metadata_hash

    personal = {"v": 1, "title": "t", "personal_data": True}
    upper = World()  # the signed hash in upper-case hex names the same document
    _register_labelled(upper, personal, 2, "0x" + metadata_hash(personal).hex().upper())
    assert upper.verify().ok
    for classification in (3, 255):  # no such class: the chain refuses it, not the labels
        world = World()
        _register_labelled(world, personal, classification, "")
        assert world.verify().problems == []
    unlabelled = World()  # a registration that carries no document is not checked here
    message_only = sign_action(
        ALICE,
        "register",
        {
            "owner": ALICE.address,
            "contentHash": b"\x07" * 32,
            "metadataHash": b"\x11" * 32,
            "classification": 0,
            "parents": [],
            "previousVersion": 0,
            "nonce": 7,
            "deadline": DEADLINE,
        },
        DOMAINS,
    )
    unlabelled.log.append(message_only, {"metadata": "not a document"})
    assert unlabelled.verify().codes() == [ErrorCode.RECORD_UNCONFIRMED]


def test_anchors_and_unexplained_events_are_named_with_sizes_roots_and_arguments(
    world: World,
) -> None:
    for _ in range(4):
        world.request()
    world.anchor(2)
    bad = world.anchor(3, root=b"\x66" * 32)
    world.log.note = world.log.head(3)  # the broker serves an older head than it anchored
    beyond = world.anchor(4)
    fake = world.used(world.sign_fetch(BOB, 1), uses=2)
    report = world.verify()
    nonce = str(fake.args["nonce"])
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size 3 (tx {bad.tx_hash})",
            f"the chain holds root 0x{'66' * 32} for the first 3 records; the log's records "
            f"make 0x{world.log.tree.root(3).hex()}",
        ),
        (
            ErrorCode.CHAIN_EVENT_UNMATCHED,
            f"tx {fake.tx_hash}",
            f"AccessLedger.AccessUsed at block {fake.block_number} (datasetId=1, "
            f"grantee={BOB.address[:12]}…, uses=2, nonce={nonce[:12]}…) has no signed record "
            "in the log",
        ),
    ]
    assert [(p.code, p.where, p.what) for p in report.pending] == [
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size 4 (tx {beyond.tx_hash})",
            "anchored beyond the signed head (3 records): checked next run",
        )
    ]
    assert report.counts["anchors"] == 2
    assert not report.advanced


def test_an_event_mined_after_the_head_was_read_is_pending_by_name(world: World) -> None:
    late = world.sign_fetch()
    relayed: list[Event] = []
    world.log.on_checkpoint = lambda: relayed.append(world.used(late))
    report = world.verify()
    (event,) = relayed
    nonce = str(event.args["nonce"])
    assert report.problems == []
    assert [(p.code, p.where, p.what) for p in report.pending] == [
        (
            ErrorCode.CHAIN_EVENT_UNMATCHED,
            f"tx {event.tx_hash}",
            f"AccessLedger.AccessUsed at block {event.block_number} (datasetId=1, "
            f"grantee={BOB.address[:12]}…, uses=1, nonce={nonce[:12]}…) has no signed record "
            "in the log yet (newer than the head)",
        )
    ]


def test_event_arguments_are_shown_whole_up_to_20_characters() -> None:
    show = verifier_module._show_args
    args = {"a": "x" * 20, "b": "y" * 21, "c": 5}
    assert show(args) == f"a={'x' * 20}, b={'y' * 12}…, c=5"
    assert show(args, ["c", "a"]) == f"a={'x' * 20}, c=5"
    assert show({}) == ""


def test_checkpoint_findings_name_the_signer_the_sizes_and_the_empty_tree() -> None:
    stranger = World()
    stranger.request()
    stranger.log.signer = MALLORY
    assert [(p.code, p.where, p.what) for p in stranger.verify().problems] == [
        (
            ErrorCode.CHECKPOINT_NOT_BROKER,
            "checkpoint",
            f"signed by {MALLORY.address}, which holds no BROKER role on FlowLog",
        )
    ]
    shrunk = World()
    shrunk.request()
    shrunk.request()
    assert shrunk.verify().ok
    shrunk.log.note = shrunk.log.head(1)
    assert [(p.code, p.where, p.what) for p in shrunk.verify().problems] == [
        (ErrorCode.LOG_INCONSISTENT, "checkpoint", "the log shrank from 2 to 1 records")
    ]
    forked = World()
    forked.request()
    assert forked.verify().ok
    other = World()
    for _ in range(3):
        other.request()
    forked.log = other.log
    assert [(p.code, p.where, p.what) for p in forked.verify().problems] == [
        (
            ErrorCode.LOG_INCONSISTENT,
            "checkpoint",
            "the head of size 3 does not extend the kept head of size 1 (no valid consistency "
            "proof): history was rewritten or forked",
        )
    ]
    empty = World()
    empty.log.note = sign_checkpoint(BROKER, Checkpoint(ORIGIN, 0, b"\x05" * 32))
    assert [(p.code, p.where, p.what) for p in empty.verify().problems] == [
        (
            ErrorCode.RECORD_MISMATCH,
            "checkpoint",
            "the signed root of 0 records is not the empty tree's",
        )
    ]


def test_a_state_of_another_log_or_a_damaged_one_is_refused_by_name(world: World) -> None:
    world.request()
    assert world.verify().ok
    other = origin_for(1, DOMAINS.flow_log)
    with pytest.raises(ConfigurationError) as caught:
        verify(world.log, world.chain, world.state, domains=DOMAINS, origin=other)
    assert caught.value.message == f"this audit state is of log {ORIGIN!r}, not of {other!r}"


def test_a_kept_checkpoint_that_no_longer_fits_the_state_is_refused_by_name(
    world: World,
) -> None:
    world.request()
    world.request()
    assert world.verify().ok
    with world.state.transaction():
        world.state.advance(
            origin=ORIGIN, checkpoint_note=world.log.head(1), last_block=world.state.last_block
        )
    with pytest.raises(ConfigurationError) as damaged:
        world.verify()
    assert damaged.value.message == "the audit state is damaged: 2 records kept for a head of 1"
    with world.state.transaction():
        world.state.advance(
            origin=ORIGIN, checkpoint_note="garbage", last_block=world.state.last_block
        )
    with pytest.raises(ConfigurationError) as unparsable:
        world.verify()
    assert unparsable.value.message == (
        "the kept checkpoint no longer parses: a checkpoint is three body lines, an empty line "
        "and one signature line"
    )


def test_a_record_served_as_anything_but_bytes_counts_as_the_empty_leaf(world: World) -> None:
    """The tree is over bytes: a record served as text is hashed as b"" (and is malformed)."""
    world.request()
    world.log.leaves.append(b"")
    world.log.tree.append(b"")  # the signed tree holds an empty leaf at position 1
    world.log.served = [world.log.leaves[0], ""]  # type: ignore[list-item]
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (ErrorCode.RECORD_MALFORMED, "log record 1", "a record is canonical JSON")
    ]


def test_a_checked_anchor_is_not_checked_again_nor_kept_twice(world: World) -> None:
    world.request()
    event = world.anchor()
    first = world.verify()
    assert (first.ok, first.counts["anchors"]) == (True, 1)
    again = world.verify()
    assert (again.ok, again.counts["anchors"]) == (True, 0)
    assert [(a.tree_size, a.tx_hash, a.status) for a in world.state.anchors()] == [
        (1, event.tx_hash, "ok")
    ]


def test_each_record_out_of_place_is_named_with_the_record_it_holds(world: World) -> None:
    for _ in range(6):
        world.request()
    served = list(world.log.leaves)
    served[2], served[3] = served[3], served[2]
    world.log.served = served
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.RECORD_OUT_OF_ORDER,
            "log record 2",
            "position 2 holds record 3 (records dropped, inserted or reordered)",
        ),
        (
            ErrorCode.RECORD_OUT_OF_ORDER,
            "log record 3",
            "position 3 holds record 2 (records dropped, inserted or reordered)",
        ),
        (
            ErrorCode.RECORD_MISMATCH,
            "log record 2",
            "the records served do not make the signed head of size 6: record 2 is the first "
            "that differs (rewritten, dropped or reordered)",
        ),
    ]


def test_an_anchor_beyond_the_records_served_waits_for_them(world: World) -> None:
    for _ in range(4):
        world.request()
    anchor = world.anchor(3)
    world.log.served = world.log.leaves[:2]
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.RECORD_MISSING,
            "log record 2",
            "the log served 2 of the 4 new records its signed head holds",
        )
    ]
    assert [(p.code, p.where, p.what) for p in report.pending] == [
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size 3 (tx {anchor.tx_hash})",
            "anchored beyond the signed head (4 records): checked next run",
        )
    ]


def test_every_anchor_is_checked_after_one_that_waits_or_cannot_be_read(world: World) -> None:
    for _ in range(4):
        world.request()
    world.log.note = world.log.head(3)
    beyond = world.anchor(4)
    bad = world.anchor(2, root=b"\x01" * 32)
    unreadable = world.anchor(1, root="zz")  # type: ignore[arg-type]
    flag = world.chain.emit(
        "FlowLog",
        "TreeHeadAnchored",
        treeSize=True,
        rootHash=b"\x00" * 32,
        headIndex=0,
        anchoredAt=0,
    )
    wrong = world.anchor(3, root=b"\x02" * 32)
    report = world.verify()
    tree = world.log.tree

    def mismatch(size: int, root: bytes) -> str:
        return (
            f"the chain holds root 0x{root.hex()} for the first {size} records; the log's "
            f"records make 0x{tree.root(size).hex()}"
        )

    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size 2 (tx {bad.tx_hash})",
            mismatch(2, b"\x01" * 32),
        ),
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size 1 (tx {unreadable.tx_hash})",
            "an anchor event that cannot be read",
        ),
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size True (tx {flag.tx_hash})",
            "an anchor event that cannot be read",
        ),
        (
            ErrorCode.ANCHOR_MISMATCH,
            f"anchor of size 3 (tx {wrong.tx_hash})",
            mismatch(3, b"\x02" * 32),
        ),
    ]
    assert [(p.code, p.where) for p in report.pending] == [
        (ErrorCode.ANCHOR_MISMATCH, f"anchor of size 4 (tx {beyond.tx_hash})")
    ]


def test_open_records_are_matched_in_chunks_until_none_is_left(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verifier_module, "_CHUNK", 2)
    world.register(ALICE, 1)
    for _ in range(4):
        world.fetch(BOB, 1)
    seen: list[tuple[str, int, int]] = []
    report = world.verify(progress=lambda *step: seen.append(step))
    assert report.ok, report.problems
    assert report.counts["matched"] == 5
    assert [s for s in seen if s[0] == "matching"] == [
        ("matching", 2, 2),
        ("matching", 4, 4),
        ("matching", 5, 5),
    ]


def test_unexplained_events_are_named_in_block_order_and_again_next_run(world: World) -> None:
    used = world.used(world.sign_fetch(BOB, 1))
    registered = world.chain.emit(
        "DataRegistry",
        "DatasetRegistered",
        datasetId=9,
        owner=ALICE.address,
        contentHash=b"\x09" * 32,
        metadataHash=b"\x11" * 32,
        classification=1,
        parents=(),
        previousVersion=0,
    )
    used_again = world.used(world.sign_fetch(BOB, 1))
    expected = [f"tx {e.tx_hash}" for e in (used, registered, used_again)]
    first = world.verify()
    assert wheres(first, ErrorCode.CHAIN_EVENT_UNMATCHED) == expected
    assert first.advanced
    again = world.verify()
    assert wheres(again, ErrorCode.CHAIN_EVENT_UNMATCHED) == expected


def test_an_anchor_left_pending_is_replaced_once_checked(world: World) -> None:
    for _ in range(3):
        world.request()
    world.log.note = world.log.head(2)
    anchor = world.anchor(3)
    assert world.verify().ok
    assert [(a.tree_size, a.status) for a in world.state.anchors()] == [(3, "pending")]
    world.log.note = None
    assert world.verify().ok
    assert [(a.tree_size, a.tx_hash, a.status) for a in world.state.anchors()] == [
        (3, anchor.tx_hash, "ok")
    ]


def test_a_parsed_record_keeps_its_leaf_bytes() -> None:
    from ledger.audit.records import parse_leaf

    leaf = leaf_of(4, World().sign_fetch(BOB, 1), {"k": 1})
    record = parse_leaf(leaf)
    assert (record.leaf, record.seq, record.context) == (leaf, 4, {"k": 1})


def test_open_records_are_read_1000_at_a_time_by_default() -> None:
    from ledger.audit.state import LeafRow

    state = AuditState.in_memory()
    rows = [
        LeafRow(i, b"\x00" * 32, "fetch", BOB.address, 1, "signed", "t", b"{}", "unmatched")
        for i in range(1001)
    ]
    with state.transaction():
        state.add_leaves(rows)
    assert [seq for seq, _ in state.open_records()] == list(range(1000))
    assert [seq for seq, _ in state.open_records(after=999)] == [1000]


def test_a_first_run_refused_at_the_checkpoint_reports_what_was_served(world: World) -> None:
    world.request()
    world.log.note = world.log.head().replace("\n\n", "\n")
    report = world.verify()
    assert [(p.code, p.where, p.what) for p in report.problems] == [
        (
            ErrorCode.CHECKPOINT_MALFORMED,
            "checkpoint",
            "a checkpoint is three body lines, an empty line and one signature line",
        )
    ]
    assert (report.origin, report.served_note) == (ORIGIN, world.log.note)
    assert (report.previous_size, report.tree_size, report.kept_note) == (0, 0, None)
    assert not report.incremental


def test_a_kept_checkpoint_of_another_log_is_refused(world: World) -> None:
    world.request()
    assert world.verify().ok
    foreign = sign_checkpoint(
        BROKER, Checkpoint(origin_for(5, DOMAINS.flow_log), 1, world.log.tree.root(1))
    )
    with world.state.transaction():
        world.state.advance(origin=ORIGIN, checkpoint_note=foreign, last_block=0)
    with pytest.raises(ConfigurationError) as caught:
        world.verify()
    assert caught.value.message.startswith("the kept checkpoint no longer parses: ")


def test_a_state_of_another_schema_is_refused_by_name(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "broker.sqlite"
    with AuditState.open(path):
        pass
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(ConfigurationError) as caught:
        AuditState.open(path)
    from ledger.audit.state import SCHEMA_VERSION

    assert caught.value.message == (
        f"the audit state {path} has schema 99, this code reads {SCHEMA_VERSION}"
    )


def test_an_in_memory_state_is_usable_from_another_thread() -> None:
    import threading

    state = AuditState.in_memory()
    sizes: list[int] = []
    worker = threading.Thread(target=lambda: sizes.append(state.size))
    worker.start()
    worker.join()
    assert sizes == [0]


# -- refused fetches: logged by the broker, never on chain ----------------------------------------


def refused_fetch(world: World, code: str = "access_ledger_grant_revoked") -> SignedAction:
    """A grantee's signed fetch the broker refused and logged (context ``refused``)."""
    signed = world.sign_fetch(BOB, 1)
    world.log.append(signed, {"refused": code})
    return signed


def test_a_refused_fetch_expects_no_chain_event(world: World) -> None:
    world.register(ALICE, 1)
    refused_fetch(world)
    report = world.verify()
    assert report.ok, report.problems
    assert report.pending == []
    (row,) = world.state.leaf_rows(actions=["fetch"])
    assert (row.seq, row.chain) == (1, "none")
    assert world.state.open_records() == []


def test_a_served_fetch_next_to_a_refused_one_still_needs_its_use_on_chain(world: World) -> None:
    world.register(ALICE, 1)
    refused_fetch(world)
    world.fetch(BOB, 1)  # served: AccessUsed, then the record
    world.fetch(BOB, 1, on_chain=False)  # logged as served, never on chain
    report = world.verify()
    assert report.codes() == [ErrorCode.RECORD_UNCONFIRMED]
    assert wheres(report, ErrorCode.RECORD_UNCONFIRMED) == ["log record 3"]
    chains = [row.chain for row in world.state.leaf_rows(actions=["fetch"])]
    assert chains == ["none", "matched", "unmatched"]


def test_a_refused_mark_that_is_not_an_error_code_is_not_a_refusal(world: World) -> None:
    world.register(ALICE, 1)
    for context in ({"refused": True}, {"refused": None}, {"refusal": "no_grant"}):
        world.log.append(world.sign_fetch(BOB, 1), context)
    report = world.verify()
    assert wheres(report, ErrorCode.RECORD_UNCONFIRMED) == [
        "log record 1",
        "log record 2",
        "log record 3",
    ]


def test_a_refused_fetch_whose_use_later_shows_up_on_chain_is_flagged(world: World) -> None:
    world.register(ALICE, 1)
    signed = refused_fetch(world, "no_grant")
    assert world.verify().ok
    relayed = world.used(signed)  # the broker relays the refused signature after all
    report = world.verify()
    assert report.codes() == [ErrorCode.CHAIN_EVENT_UNMATCHED]
    assert wheres(report, ErrorCode.CHAIN_EVENT_UNMATCHED) == [f"tx {relayed.tx_hash}"]
    (row,) = world.state.leaf_rows(actions=["fetch"])
    assert row.chain == "none"  # the refusal explains no use


def test_a_refused_fetch_logged_again_as_served_is_a_replay(world: World) -> None:
    world.register(ALICE, 1)
    signed = refused_fetch(world)
    world.used(signed)
    world.log.append(signed)  # the same signed fetch, now as a use
    report = world.verify()
    assert wheres(report, ErrorCode.NONCE_REPLAYED) == ["log record 2"]

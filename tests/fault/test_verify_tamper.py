"""Tamper evidence: on a copy of a populated broker store, deleting, altering, inserting or
reordering any one log record, altering a stored grant or changing one byte of a blob each make
``verify`` fail and name what was touched.

One broker is populated once per module (five members, three datasets, requests, a denial,
grants, a revocation and a re-grant, fetches, receipts, ratings, two anchors and a few records
after the last anchor). Every case copies its database (SQLite backup API, so the WAL is
included) and blob folder, tampers the copy with raw SQL or file edits, and verifies the copy
against the same chain: verify only reads the chain.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from sqlmodel import col, select

from ledger.chain.client import LedgerChain
from ledger.client.member import MemberKeys, sign, sign_revoke
from ledger.merkle.proofs import leaf_hash
from ledger.merkle.tree import MemoryNodeStore, MerkleTree
from ledger.protocol.canonical import canonical
from ledger.services import access, flowlog
from ledger.services.anchoring import Anchorer
from ledger.services.context import Ledger
from ledger.services.verify import Problem, VerifyReport, verify
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database
from ledger.store.models import Dataset, Grant
from tests.support import kit

#: Records the module's walk appends; anchors cover the first 20 and the first 26.
RECORDS = 30
ANCHORS = (20, 26)


@dataclass
class Populated:
    """The module's broker after the walk, and what the tests need to know about it."""

    broker: kit.Broker
    grants: dict[str, Grant]  # label -> row as stored
    datasets: dict[str, Dataset]
    chain_reads: ChainReads

    @property
    def db_path(self) -> Path:
        return self.broker.root / "broker.db"

    @property
    def blobs_path(self) -> Path:
        return self.broker.root / "blobs"


def _deny(broker: kit.Broker, owner: MemberKeys, request_id: int) -> None:
    signed = sign(
        owner,
        "deny",
        {"owner": owner.address, "requestId": request_id, "reason": "purpose too broad"},
        broker.ledger.domains,
    )
    access.deny(broker.ledger, signed)


def _revoke(broker: kit.Broker, owner: MemberKeys, dataset_id: int, grantee: str) -> Grant:
    ledger = broker.ledger
    signed = sign_revoke(
        owner,
        dataset_id=dataset_id,
        grantee=grantee,
        chain_nonce=ledger.chain.nonce("AccessLedger", owner.address),
        domains=ledger.domains,
    )
    return access.revoke(ledger, signed)


def _fetch(broker: kit.Broker, who: MemberKeys, dataset_id: int, out: Path) -> None:
    kit.receipt(broker, who, kit.fetch_and_open(broker, who, dataset_id, out))


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Populated]:
    root = tmp_path_factory.mktemp("tamper")
    broker = kit.make_broker(root / "broker")
    work = root / "work"
    work.mkdir()
    office = kit.onboard(broker, "department", "District Planning Office")  # 0
    works = kit.onboard(broker, "department", "Public Works Department")  # 1
    coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")  # 2
    analytics = kit.onboard(broker, "enterprise", "Northgate Analytics")  # 3
    kit.onboard(broker, "regulator", "Data Protection Authority")  # 4
    base = kit.register(broker, office, kit.SAMPLE, workdir=work)  # 5
    extract = kit.register(  # 6
        broker,
        office,
        kit.small_csv(work / "harbour.csv"),
        workdir=work,
        title="Harbour ward extract",
        parents=(base.id,),
    )
    roads = kit.register(  # 7
        broker,
        works,
        kit.small_csv(work / "roads.csv", rows=120, tag="RW-"),
        workdir=work,
        title="Road works permits",
    )
    first = kit.approve(broker, office, kit.request(broker, coop, extract.id))  # 8, 9
    revoked = kit.approve(broker, office, kit.request(broker, analytics, base.id))  # 10, 11
    _deny(broker, office, int(kit.request(broker, analytics, extract.id).id or 0))  # 12, 13
    _fetch(broker, coop, extract.id, root / "out1.csv")  # 14, 15
    kit.rate(broker, coop, extract.id, 4)  # 16
    _fetch(broker, analytics, base.id, root / "out2.csv")  # 17, 18
    _revoke(broker, office, base.id, analytics.address)  # 19
    Anchorer(broker.ledger.db, broker.ledger.chain).run_once()  # anchors 20
    regrant = kit.approve(broker, office, kit.request(broker, analytics, base.id))  # 20, 21
    roads_grant = kit.approve(broker, works, kit.request(broker, coop, roads.id))  # 22, 23
    _fetch(broker, coop, roads.id, root / "out3.csv")  # 24, 25
    Anchorer(broker.ledger.db, broker.ledger.chain).run_once()  # anchors 26
    _fetch(broker, analytics, base.id, root / "out4.csv")  # 26, 27
    kit.rate(broker, analytics, base.id, 5)  # 28
    kit.fetch_and_open(broker, coop, extract.id, root / "out5.csv")  # 29
    with broker.ledger.db.session() as session:
        grants = {g.id: g for g in session.exec(select(Grant).order_by(col(Grant.id))) if g.id}
        rows = {d.id: d for d in session.exec(select(Dataset))}
    labelled = {
        "first": grants[first.id or 0],
        "revoked": grants[revoked.id or 0],
        "regranted": grants[regrant.id or 0],
        "other-owner": grants[roads_grant.id or 0],
    }
    assert labelled["revoked"].revoked
    assert labelled["regranted"].generation == 2
    yield Populated(
        broker=broker,
        grants=labelled,
        datasets={"base": rows[base.id], "extract": rows[extract.id], "roads": rows[roads.id]},
        chain_reads=ChainReads(broker.ledger.chain),
    )
    broker.close()


# -- a tamperable copy ------------------------------------------------------------------------


class ChainReads:
    """The module's chain with its answers remembered.

    Verify only reads the chain and nothing writes to it once the walk is done, so every copy
    gets the same answers; remembering them keeps a hundred verifications fast. The control
    test verifies through the chain itself too.
    """

    _REMEMBERED = frozenset({"member", "dataset", "grant_of", "credits_of", "events"})

    def __init__(self, chain: LedgerChain) -> None:
        self._chain = chain
        self._answers: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._chain, name)
        if name not in self._REMEMBERED:
            return attr

        def remembered(*args: Any, **kwargs: Any) -> Any:
            key = repr((name, args, sorted(kwargs.items())))
            if key not in self._answers:
                self._answers[key] = attr(*args, **kwargs)
            return self._answers[key]

        return remembered


class StoreCopy:
    """A copy of the broker's database and blobs, edited raw and verified against the chain."""

    def __init__(self, populated: Populated, where: Path) -> None:
        self.db_path = where / "broker.db"
        self.blobs_path = where / "blobs"
        source = sqlite3.connect(populated.db_path)
        target = sqlite3.connect(self.db_path)
        try:
            source.backup(target)  # a consistent snapshot, WAL content included
        finally:
            target.close()
            source.close()
        shutil.copytree(populated.blobs_path, self.blobs_path)
        self._chain = populated.broker.ledger.chain
        self._reads = populated.chain_reads

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one raw statement on the copy, committed at once."""
        connection = sqlite3.connect(self.db_path)
        try:
            with connection:
                rows = connection.execute(statement, params).fetchall()
        finally:
            connection.close()
        return rows

    def leaf(self, seq: int) -> dict[str, Any]:
        (raw,) = self.sql("SELECT leaf FROM log_records WHERE seq = ?", (seq,))[0]
        doc: dict[str, Any] = json.loads(raw)
        return doc

    def set_leaf(self, seq: int, doc: dict[str, Any]) -> bytes:
        leaf = canonical(doc)
        self.sql("UPDATE log_records SET leaf = ? WHERE seq = ?", (leaf, seq))
        return leaf

    def rewrite_tree(self) -> None:
        """What a thorough attacker does after editing leaves: rebuild every tree node."""
        leaves = [row[0] for row in self.sql("SELECT leaf FROM log_records ORDER BY seq")]
        store = MemoryNodeStore()
        MerkleTree(store).append_many(leaves)
        nodes = [(level, idx, store.get(level, idx)) for level, idx in _node_keys(len(leaves))]
        connection = sqlite3.connect(self.db_path)
        try:
            with connection:
                connection.execute("DELETE FROM tree_nodes")
                connection.executemany(
                    "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes
                )
        finally:
            connection.close()

    def blob(self, dataset: Dataset) -> Path:
        return FileBlobStore(self.blobs_path, cleanup=False).path(dataset.ciphertext_sha256)

    def verify(self, *, remembered: bool = True) -> VerifyReport:
        """Verify the copy against the module's chain (its remembered answers by default)."""
        chain = cast(LedgerChain, self._reads) if remembered else self._chain
        db = Database(f"sqlite:///{self.db_path}")
        try:
            return verify(Ledger(chain=chain, db=db, blobs=FileBlobStore(self.blobs_path)))
        finally:
            db.dispose()


def _node_keys(size: int) -> list[tuple[int, int]]:
    """Every perfect-subtree node a tree of ``size`` leaves stores."""
    keys, level = [], 0
    while (1 << level) <= size:
        keys += [(level, idx) for idx in range(size >> level)]
        level += 1
    return keys


@pytest.fixture
def store(populated: Populated, tmp_path: Path) -> StoreCopy:
    return StoreCopy(populated, tmp_path)


def _named(report: VerifyReport, where: str | Callable[[Problem], bool]) -> list[Problem]:
    """The problems reported at exactly ``where`` (or matching a predicate)."""
    match = where if callable(where) else lambda p: p.where == where
    return [p for p in report.problems if match(p)]


def assert_fails_naming(report: VerifyReport, where: str | Callable[[Problem], bool]) -> None:
    assert not report.ok, "verify passed a tampered store"
    assert _named(report, where), f"no problem names {where!r}: {report.problems}"


def _record(seq: int) -> str:
    return f"log record {seq}"


def _grant(row: Grant) -> Callable[[Problem], bool]:
    return lambda p: p.where.startswith(f"grant {row.id} ")


# -- the control ---------------------------------------------------------------------------


def test_the_walk_wrote_both_anchored_and_unanchored_records(populated: Populated) -> None:
    chain = populated.broker.ledger.chain
    anchored = [int(ev.args["treeSize"]) for ev in chain.events("FlowLog", "TreeHeadAnchored")]
    assert anchored == list(ANCHORS)
    with populated.broker.ledger.db.session() as session:
        assert flowlog.size(session) == RECORDS
        actions = {r.action for r in flowlog.records(session)}
    assert actions == {
        "onboard",
        "register",
        "request",
        "grant",
        "deny",
        "revoke",
        "fetch",
        "receipt",
        "rate",
    }


@pytest.mark.parametrize("remembered", [False, True], ids=["chain", "remembered-chain"])
def test_an_untouched_copy_verifies(store: StoreCopy, remembered: bool) -> None:
    report = store.verify(remembered=remembered)
    assert report.ok, report.problems
    assert report.checked["records"] == RECORDS
    assert report.checked["anchors"] == len(ANCHORS)
    assert report.checked["blobs"] == 3
    assert report.checked["grants"] == 4


# -- log records -----------------------------------------------------------------------------


@pytest.mark.parametrize("seq", range(RECORDS))
def test_deleting_any_record_is_named(store: StoreCopy, seq: int) -> None:
    store.sql("DELETE FROM log_records WHERE seq = ?", (seq,))
    assert_fails_naming(store.verify(), _record(seq))


def test_deleting_the_last_record_and_shrinking_the_log_is_named(store: StoreCopy) -> None:
    store.sql("DELETE FROM log_records WHERE seq = ?", (RECORDS - 1,))
    store.sql("UPDATE log_state SET size = ?", (RECORDS - 1,))
    assert_fails_naming(store.verify(), _record(RECORDS - 1))


@pytest.mark.parametrize("seq", range(RECORDS))
def test_altering_any_record_is_named(store: StoreCopy, seq: int) -> None:
    doc = store.leaf(seq)
    doc["signed"]["message"]["deadline"] += 1  # a signed field
    store.set_leaf(seq, doc)
    report = store.verify()
    assert_fails_naming(report, _record(seq))
    assert any("signature" in p.what for p in _named(report, _record(seq)))


@pytest.mark.parametrize("seq", [0, 7, 19, 20, 27, RECORDS - 1])
def test_altering_the_unsigned_part_of_a_record_is_named(store: StoreCopy, seq: int) -> None:
    doc = store.leaf(seq)
    doc["at"] = "2020-01-01T00:00:00.000000+00:00"
    doc["context"]["forged"] = True
    store.set_leaf(seq, doc)
    assert_fails_naming(store.verify(), _record(seq))


@pytest.mark.parametrize("offset", ["start", "middle", "end"])
def test_flipping_one_byte_of_a_record_is_named(store: StoreCopy, offset: str) -> None:
    seq = 11
    (raw,) = store.sql("SELECT leaf FROM log_records WHERE seq = ?", (seq,))[0]
    leaf = bytearray(raw)
    at = {"start": 0, "middle": len(leaf) // 2, "end": len(leaf) - 1}[offset]
    leaf[at] ^= 0x01
    store.sql("UPDATE log_records SET leaf = ? WHERE seq = ?", (bytes(leaf), seq))
    assert_fails_naming(store.verify(), _record(seq))


@pytest.mark.parametrize("seq", [3, 12, ANCHORS[0], 28])
def test_altering_a_signed_field_and_rewriting_the_tree_fails_on_the_signature(
    store: StoreCopy, seq: int
) -> None:
    doc = store.leaf(seq)
    doc["signed"]["message"]["deadline"] += 1
    store.set_leaf(seq, doc)
    store.rewrite_tree()
    report = store.verify()
    assert any("signature" in p.what for p in _named(report, _record(seq))), report.problems


@pytest.mark.parametrize("seq", [0, 5, 19, 24, 25])
def test_altering_an_anchored_record_and_rewriting_the_tree_fails_on_the_anchor(
    store: StoreCopy, seq: int
) -> None:
    doc = store.leaf(seq)
    doc["at"] = "2020-01-01T00:00:00.000000+00:00"  # not signed: only the anchor protects it
    store.set_leaf(seq, doc)
    store.rewrite_tree()
    report = store.verify()
    first_failing = next(size for size in ANCHORS if seq < size)
    failing = _named(report, f"anchored head {first_failing}")
    assert failing, report.problems
    previous = max([0, *(size for size in ANCHORS if size <= seq)])
    assert f"log records {previous}-{first_failing - 1}" in failing[0].what


@pytest.mark.parametrize("seq", [2, 11, ANCHORS[0], 27])
def test_altering_a_record_and_only_its_leaf_node_is_caught_by_the_tree(
    store: StoreCopy, seq: int
) -> None:
    doc = store.leaf(seq)
    doc["context"]["forged"] = True
    leaf = store.set_leaf(seq, doc)
    store.sql("UPDATE tree_nodes SET hash = ? WHERE level = 0 AND idx = ?", (leaf_hash(leaf), seq))
    report = store.verify()
    parent = f"tree node (1, {seq // 2})"
    assert_fails_naming(report, parent)
    assert f"log records {seq - seq % 2}-{seq - seq % 2 + 1}" in _named(report, parent)[0].what


@pytest.mark.parametrize("seq", [0, 9, ANCHORS[0] - 1, ANCHORS[-1], RECORDS - 1])
def test_inserting_a_forged_record_is_named(store: StoreCopy, seq: int) -> None:
    forged = store.leaf(seq)
    forged["signed"]["message"]["deadline"] += 3600  # a plausible edit, not what was signed
    # Make room: shift every later record one place up (highest first, seq is the key).
    for later in range(RECORDS - 1, seq - 1, -1):
        store.sql("UPDATE log_records SET seq = ? WHERE seq = ?", (later + 1, later))
    store.sql(
        "INSERT INTO log_records (seq, action, actor, dataset_id, leaf, created_at) "
        "SELECT ?, action, actor, dataset_id, ?, created_at FROM log_records WHERE seq = ?",
        (seq, canonical(forged), seq + 1),
    )
    store.sql("UPDATE log_state SET size = ?", (RECORDS + 1,))
    report = store.verify()
    assert_fails_naming(report, _record(seq))
    assert_fails_naming(report, _record(seq + 1))  # the displaced record says it was elsewhere


def _append(
    store: StoreCopy,
    source: int,
    *,
    with_node: bool,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Append a copy of record ``source`` (index columns too) as the log's next record."""
    doc = store.leaf(source)
    doc["seq"] = RECORDS
    if edit is not None:
        edit(doc)
    store.sql(
        "INSERT INTO log_records (seq, action, actor, dataset_id, leaf, created_at) "
        "SELECT ?, action, actor, dataset_id, ?, created_at FROM log_records WHERE seq = ?",
        (RECORDS, canonical(doc), source),
    )
    store.sql("UPDATE log_state SET size = ?", (RECORDS + 1,))
    if with_node:
        store.rewrite_tree()


def _break_signature(doc: dict[str, Any]) -> None:
    signature = bytearray.fromhex(doc["signed"]["signature"][2:])
    signature[5] ^= 0xFF  # still 65 well-formed bytes, but not the actor's signature of this
    doc["signed"]["signature"] = "0x" + signature.hex()
    doc["signed"]["message"]["nonce"] += 1


@pytest.mark.parametrize("with_node", [False, True], ids=["record-only", "with-tree-nodes"])
def test_appending_a_forged_record_with_a_wrong_signature_is_named(
    store: StoreCopy, with_node: bool
) -> None:
    _append(store, RECORDS - 1, with_node=with_node, edit=_break_signature)
    report = store.verify()
    assert_fails_naming(report, _record(RECORDS))
    assert any("signature" in p.what for p in _named(report, _record(RECORDS)))


@pytest.mark.parametrize("source", [15, 27, 29], ids=["anchored-receipt", "receipt", "fetch"])
@pytest.mark.parametrize("with_node", [False, True], ids=["record-only", "with-tree-nodes"])
def test_appending_a_replayed_signed_action_is_named(
    store: StoreCopy, source: int, with_node: bool
) -> None:
    _append(store, source, with_node=with_node)  # validly signed, but already in the log
    report = store.verify()
    assert_fails_naming(report, _record(RECORDS))
    assert any(f"log record {source}" in p.what for p in _named(report, _record(RECORDS)))


@pytest.mark.parametrize("seq", [0, 8, ANCHORS[0] - 1, 23, ANCHORS[-1], RECORDS - 2])
def test_swapping_two_adjacent_records_is_named(store: StoreCopy, seq: int) -> None:
    store.sql("UPDATE log_records SET seq = -1 WHERE seq = ?", (seq,))
    store.sql("UPDATE log_records SET seq = ? WHERE seq = ?", (seq, seq + 1))
    store.sql("UPDATE log_records SET seq = ? WHERE seq = -1", (seq + 1,))
    report = store.verify()
    assert_fails_naming(report, _record(seq))
    assert_fails_naming(report, _record(seq + 1))


# -- grants ---------------------------------------------------------------------------------

GRANT_EDITS: dict[str, str] = {
    "uses": "UPDATE grants SET uses = uses + 1 WHERE id = ?",
    "uses-down": "UPDATE grants SET uses = 0 WHERE id = ?",
    "expiry": "UPDATE grants SET expires_at = expires_at + 86400 WHERE id = ?",
    "revoked": "UPDATE grants SET revoked = NOT revoked WHERE id = ?",
    "max-uses": "UPDATE grants SET max_uses = max_uses + 10 WHERE id = ?",
}


@pytest.mark.parametrize("label", ["first", "revoked", "regranted", "other-owner"])
@pytest.mark.parametrize("edit", ["uses", "expiry", "revoked", "max-uses"])
def test_altering_a_stored_grant_is_named(
    populated: Populated, store: StoreCopy, label: str, edit: str
) -> None:
    row = populated.grants[label]
    store.sql(GRANT_EDITS[edit], (row.id,))
    assert_fails_naming(store.verify(), _grant(row))


@pytest.mark.parametrize("label", ["first", "revoked", "regranted", "other-owner"])
def test_hiding_a_grants_uses_is_named(populated: Populated, store: StoreCopy, label: str) -> None:
    row = populated.grants[label]
    assert row.uses > 0
    store.sql(GRANT_EDITS["uses-down"], (row.id,))
    assert_fails_naming(store.verify(), _grant(row))


# -- datasets and blobs ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["base", "extract", "roads"])
@pytest.mark.parametrize("offset", ["start", "middle", "end"])
def test_changing_one_byte_of_a_blob_is_named(
    populated: Populated, store: StoreCopy, name: str, offset: str
) -> None:
    dataset = populated.datasets[name]
    path = store.blob(dataset)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    at = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[offset]
    data[at] ^= 0x80
    path.write_bytes(bytes(data))
    report = store.verify()
    assert_fails_naming(report, f"dataset {dataset.id}")
    assert any("altered" in p.what for p in _named(report, f"dataset {dataset.id}"))


def test_a_missing_blob_is_named(populated: Populated, store: StoreCopy) -> None:
    dataset = populated.datasets["roads"]
    store.blob(dataset).unlink()
    assert_fails_naming(store.verify(), f"dataset {dataset.id}")


def test_pointing_a_dataset_at_another_blob_is_named(
    populated: Populated, store: StoreCopy
) -> None:
    extract, roads = populated.datasets["extract"], populated.datasets["roads"]
    store.sql(
        "UPDATE datasets SET ciphertext_sha256 = ?, ciphertext_size = ? WHERE id = ?",
        (roads.ciphertext_sha256, roads.ciphertext_size, extract.id),
    )
    assert_fails_naming(store.verify(), f"dataset {extract.id}")


# -- several things at once: every one is named, with what is wrong ---------------------------


def _whats(report: VerifyReport, where: str) -> list[str]:
    return [p.what for p in _named(report, where)]


def _append_copy(store: StoreCopy, source: int, seq: int, doc: dict[str, Any]) -> None:
    """Store ``doc`` (a copy of record ``source``) as record ``seq`` and grow the log to it."""
    doc["seq"] = seq
    store.sql(
        "INSERT INTO log_records (seq, action, actor, dataset_id, leaf, created_at) "
        "SELECT ?, action, actor, dataset_id, ?, created_at FROM log_records WHERE seq = ?",
        (seq, canonical(doc), source),
    )
    store.sql("UPDATE log_state SET size = ?", (seq + 1,))


def test_several_unreadable_or_forged_records_are_each_named(store: StoreCopy) -> None:
    """Verify reports every broken record, not the first of each kind (``continue``)."""
    for seq in (3, 12):
        store.sql("UPDATE log_records SET leaf = ? WHERE seq = ?", (b"{not json", seq))
    for seq in (7, 24):
        doc = store.leaf(seq)
        doc["signed"]["message"]["deadline"] += 1
        store.set_leaf(seq, doc)
    report = store.verify()
    for seq in (3, 12):
        assert any(w.startswith("unreadable: ") for w in _whats(report, _record(seq))), seq
    for seq in (7, 24):
        assert any(w.startswith("signature does not verify") for w in _whats(report, _record(seq)))


def test_several_replayed_actions_are_each_named(store: StoreCopy) -> None:
    _append_copy(store, 15, RECORDS, store.leaf(15))
    _append_copy(store, 27, RECORDS + 1, store.leaf(27))
    store.rewrite_tree()
    report = store.verify()
    assert _whats(report, _record(RECORDS)) == [
        "the same signed action as log record 15 (a replay)"
    ]
    assert _whats(report, _record(RECORDS + 1)) == [
        "the same signed action as log record 27 (a replay)"
    ]


def _members(store: StoreCopy) -> list[str]:
    return [row[0] for row in store.sql("SELECT address FROM members ORDER BY log_seq")]


def test_members_altered_in_the_index_are_each_named(store: StoreCopy) -> None:
    """Kind, status and encryption key are the chain's; the index may only copy them."""
    office, works, coop = _members(store)[:3]
    store.sql("UPDATE members SET kind = 'department' WHERE address = ?", (coop,))
    store.sql("UPDATE members SET status = 'suspended' WHERE address = ?", (works,))
    store.sql("UPDATE members SET encryption_key = ? WHERE address = ?", (b"\x07" * 32, office))
    report = store.verify()
    assert _whats(report, f"member {coop}") == [
        "index says department/active, chain says enterprise/active (or the key differs)"
    ]
    assert _whats(report, f"member {works}") == [
        "index says department/suspended, chain says department/active (or the key differs)"
    ]
    assert _whats(report, f"member {office}") == [
        "index says department/active, chain says department/active (or the key differs)"
    ]


def test_a_member_row_pointing_at_another_onboarding_is_named(store: StoreCopy) -> None:
    office, works = _members(store)[:2]
    (seq,) = store.sql("SELECT log_seq FROM members WHERE address = ?", (works,))[0]
    store.sql("UPDATE members SET log_seq = ? WHERE address = ?", (seq, office))
    report = store.verify()
    assert _whats(report, f"member {office}") == [f"log record {seq} onboards someone else"]


def test_datasets_differing_from_the_chain_are_each_named(
    populated: Populated, store: StoreCopy
) -> None:
    """The index-vs-chain dataset check: every field that differs is named."""
    base, extract, roads = (populated.datasets[n] for n in ("base", "extract", "roads"))
    store.sql("UPDATE datasets SET classification = 'public' WHERE id = ?", (extract.id,))
    store.sql("UPDATE datasets SET retired = 1, parents = '[99]' WHERE id = ?", (base.id,))
    store.sql("UPDATE datasets SET owner = ? WHERE id = ?", (base.owner, roads.id))
    report = store.verify()
    assert _whats(report, f"dataset {extract.id}") == [
        "classification in the index differs from the chain"
    ]
    assert _whats(report, f"dataset {base.id}") == [
        "parents in the index differs from the chain",
        "retired in the index differs from the chain",
    ]
    assert _whats(report, f"dataset {roads.id}") == ["owner in the index differs from the chain"]


def test_a_registration_whose_metadata_was_swapped_is_named(
    populated: Populated, store: StoreCopy
) -> None:
    """The metadata a record carries must be the one whose hash its owner signed."""
    roads = populated.datasets["roads"]
    doc = store.leaf(roads.log_seq)
    doc["context"]["metadata"]["title"] = "Something else"
    store.set_leaf(roads.log_seq, doc)
    report = store.verify()
    assert f"log record {roads.log_seq} does not hold the metadata its owner signed" in _whats(
        report, f"dataset {roads.id}"
    )


def _deliveries(store: StoreCopy) -> list[tuple[int, int, int]]:
    return [
        (row[0], row[1], row[2])
        for row in store.sql("SELECT id, log_seq, credit_amount FROM deliveries ORDER BY id")
    ]


def test_receipts_are_tied_back_to_their_log_records(store: StoreCopy) -> None:
    """A delivery row must carry its record's receipt id and point at a receipt record."""
    (first, _, _), (second, _, _) = _deliveries(store)[:2]
    store.sql("UPDATE deliveries SET receipt_id = ? WHERE id = ?", (b"\x09" * 32, first))
    store.sql("UPDATE deliveries SET log_seq = 14 WHERE id = ?", (second,))  # 14: a fetch
    report = store.verify()
    (_, first_seq, _) = _deliveries(store)[0]
    assert _whats(report, f"delivery receipt {first}") == [
        f"receipt id differs from its log record {first_seq}"
    ]
    assert _whats(report, f"delivery receipt {second}") == [
        "log record 14 is a fetch, not a receipt"
    ]


def test_credit_totals_are_checked_against_the_chain_balance(
    populated: Populated, store: StoreCopy
) -> None:
    credited = [(i, seq, amount) for i, seq, amount in _deliveries(store) if amount > 0]
    assert credited, "the walk credits receipts at anchoring"
    delivery, _, amount = credited[0]
    store.sql("UPDATE deliveries SET credit_amount = credit_amount + 5 WHERE id = ?", (delivery,))
    (dataset_id,) = store.sql("SELECT dataset_id FROM deliveries WHERE id = ?", (delivery,))[0]
    owner = next(d.owner for d in populated.datasets.values() if d.id == dataset_id)
    balance = populated.chain_reads.credits_of(owner)
    report = store.verify()
    assert _whats(report, f"credits of {owner}") == [
        f"index totals {balance + 5}, chain balance is {balance}"
    ]
    assert amount > 0


def _truncate(store: StoreCopy, size: int) -> None:
    """What a broker rewinding its log does: drop the records and tree nodes from ``size``."""
    store.sql("DELETE FROM log_records WHERE seq >= ?", (size,))
    store.sql("DELETE FROM tree_nodes WHERE ((idx + 1) << level) > ?", (size,))
    store.sql("UPDATE log_state SET size = ?", (size,))


def test_a_log_truncated_below_an_anchored_head_is_named(store: StoreCopy) -> None:
    _truncate(store, 24)
    report = store.verify()
    assert _whats(report, "anchored head 26") == ["chain anchors 26 records, the log holds 24"]
    assert _whats(report, "anchored head 20") == []


def test_a_log_truncated_to_an_anchored_head_still_matches_it(store: StoreCopy) -> None:
    """Cut exactly at an anchored size, that head still hashes right and is not named."""
    _truncate(store, ANCHORS[-1])
    report = store.verify()
    assert _whats(report, f"anchored head {ANCHORS[-1]}") == []
    assert report.checked["anchors"] == len(ANCHORS)


def test_a_past_grant_generation_the_chain_never_granted_is_named(
    populated: Populated, store: StoreCopy
) -> None:
    row = populated.grants["revoked"]  # generation 1; "regranted" (2) is the latest
    store.sql("UPDATE grants SET generation = 0 WHERE id = ?", (row.id,))
    report = store.verify()
    assert "the chain never granted this generation" in [
        p.what for p in report.problems if _grant(row)(p)
    ]


def test_several_damaged_tree_nodes_are_each_named(store: StoreCopy) -> None:
    """Every stored node is checked, past the leaves and past the first bad one."""
    store.sql("UPDATE tree_nodes SET hash = ? WHERE level = 2 AND idx = 3", (b"\x05" * 32,))
    store.sql("DELETE FROM tree_nodes WHERE level = 1 AND idx = 2")
    report = store.verify()
    assert _whats(report, "tree node (2, 3)") == [
        "does not hash its children: log records 12-15 or the tree were rewritten"
    ]
    assert _whats(report, "tree node (2, 1)") == ["a child is missing (log records 4-7)"]

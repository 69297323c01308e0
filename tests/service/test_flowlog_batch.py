"""Group commit on the flow log: ``flowlog.append_many`` and ``request_access_batch``.

- ``append_many`` writes exactly the records and tree nodes that one ``append`` per record
  writes (same leaves, same nodes as the pure tree), under one lock, in one transaction.
- The frontier the process remembers between appends is only ever that of a committed size:
  a rolled-back transaction, a rolled-back savepoint, or another replica appending in between
  never lead to a wrong node (every stored node is compared with a tree rebuilt from the
  stored leaves), and a remembered frontier spares the node reads.
- ``request_access_batch`` gives every item exactly ``request_access``'s checks: a batch with
  a bad signature, a replayed nonce, a nonce repeated inside the batch, an expired deadline,
  a stranger, a regulator, a missing or own dataset, a short purpose and a wrong action refuses
  exactly those items (with the error ``request_access`` raises for each), appends the rest in
  order, and the whole log verifies against the chain afterwards -- on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import event
from sqlmodel import Session, col, func, select

from ledger.client.member import MemberKeys, sign
from ledger.errors import LedgerError
from ledger.merkle.proofs import root
from ledger.merkle.tree import MemoryNodeStore, MerkleTree
from ledger.protocol.actions import Domains, SignedAction, new_nonce, sign_action
from ledger.services import flowlog, requests
from ledger.services.admission import Admission, Claim
from ledger.services.anchoring import Anchorer
from ledger.services.verify import verify
from ledger.store.db import Database
from ledger.store.driver import Driver
from ledger.store.errors import NodeConflict
from ledger.store.models import AccessRequest, LogRecord, RequestNonce, TreeNode, UsedNonce
from tests.support import kit

DOMAINS = Domains(
    chain_id=1337,
    flow_log="0x" + "11" * 20,
    member_registry="0x" + "44" * 20,
    data_registry="0x" + "22" * 20,
    access_ledger="0x" + "33" * 20,
    sharing_credits="0x" + "55" * 20,
)
SIGNER = Account.from_key(b"\x03" * 32)


def action(i: int) -> SignedAction:
    """A signed action to log (the log itself does not check signatures)."""
    return sign_action(
        SIGNER,
        "fetch",
        {"grantee": SIGNER.address, "datasetId": i, "nonce": new_nonce(), "deadline": 2**40},
        DOMAINS,
    )


def append_one(db: Database, i: int) -> int:
    with db.transaction() as session:
        return flowlog.append(session, action(i), dataset_id=i)


def assert_log_sound(db: Database) -> None:
    """Records 0..n-1, and every stored node equal to the tree rebuilt from the leaves.

    Sixteen more appends first: a wrong remembered frontier only shows in the nodes written
    when later leaves complete a subtree that includes it.
    """
    with db.session() as session:
        size = flowlog.size(session)
    for i in range(size, size + 16):
        append_one(db, i)
    with db.session() as session:
        records = flowlog.records(session)
        size = flowlog.size(session)
        assert [r.seq for r in records] == list(range(size))
        leaves = [r.leaf for r in records]
        rebuilt = MemoryNodeStore()
        MerkleTree(rebuilt).append_many(leaves)
        stored = {(n.level, n.idx): bytes(n.hash) for n in session.exec(select(TreeNode))}
        assert stored == rebuilt._nodes
        assert flowlog.head(session).root == root(leaves)


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


def roll_back(db: Database, work: Callable[[Session], object]) -> None:
    """Run ``work`` in a write transaction that then fails and rolls back."""
    try:
        with db.transaction() as session:
            work(session)
            raise Boom
    except Boom:
        return


class NodeReads:
    """Counts SELECTs on tree_nodes, through an engine or straight through its driver."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)
        rows = Driver.rows

        def counted(driver: Driver, sql: str, params: Sequence[Any] = ()) -> list[Any]:
            self._seen(None, None, sql)
            return rows(driver, sql, params)

        monkeypatch.setattr(Driver, "rows", counted)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "tree_nodes" in statement:
            self.count += 1


# -- append_many -------------------------------------------------------------------------------


def test_append_many_writes_what_single_appends_write(db: Database, tmp_path: Path) -> None:
    for i in range(3):
        assert append_one(db, i) == i
    with db.transaction() as session:
        seqs = flowlog.append_many(
            session, [flowlog.Item(action(i), dataset_id=i) for i in range(3, 40)]
        )
    assert seqs == list(range(3, 40))
    with db.transaction() as session:
        assert flowlog.append_many(session, []) == []
    assert append_one(db, 40) == 40
    with db.session() as session:
        decoded = [flowlog.decode(r) for r in flowlog.records(session)]
    assert [e.signed.message["datasetId"] for e in decoded] == list(range(41))
    assert [e.seq for e in decoded] == list(range(41))
    assert [r.dataset_id for r in decoded] == list(range(41))
    assert_log_sound(db)


def test_a_rolled_back_batch_leaves_nothing(db: Database) -> None:
    append_one(db, 0)
    roll_back(db, lambda s: flowlog.append_many(s, [flowlog.Item(action(i)) for i in range(1, 9)]))
    with db.session() as session:
        assert flowlog.size(session) == 1
        assert session.exec(select(func.count()).select_from(TreeNode)).one() == 1
    append_one(db, 1)
    assert_log_sound(db)


def test_a_different_stored_node_is_refused(db: Database) -> None:
    append_one(db, 0)
    with db.transaction() as session:  # a stray node where the next leaf goes
        session.add(TreeNode(level=0, idx=1, hash=b"\x00" * 32))
    with pytest.raises(NodeConflict), db.transaction() as session:
        flowlog.append_many(session, [flowlog.Item(action(1)), flowlog.Item(action(2))])
    with db.session() as session:
        assert flowlog.size(session) == 1


def test_append_needs_a_write_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError, match=r"Database\.transaction"), db.session() as session:
        flowlog.append(session, action(0))


# -- the remembered frontier ---------------------------------------------------------------------


def test_a_remembered_frontier_spares_the_node_reads(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(7):
        append_one(db, i)
    reads = NodeReads(db, monkeypatch)
    append_one(db, 7)
    append_one(db, 8)
    assert reads.count == 0
    flowlog.forget_frontiers()
    append_one(db, 9)
    assert reads.count == 1  # read back from the table, once
    append_one(db, 10)
    assert reads.count == 1
    assert_log_sound(db)


def test_another_replica_appending_in_between_is_noticed(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Database(db.url.render_as_string(hide_password=False))
    try:
        for i in range(5):
            append_one(db, i)
        for i in range(5, 8):
            append_one(other, i)
        reads = NodeReads(db, monkeypatch)
        append_one(db, 8)  # size 8 under the lock, remembered 5: read the frontier again
        assert reads.count == 1
        append_one(other, 9)
        append_one(db, 10)
    finally:
        other.dispose()
    assert_log_sound(db)


def test_a_rolled_back_append_is_never_remembered(db: Database) -> None:
    """The dangerous case: a rolled-back append, then another writer reaches the same size."""
    other = Database(db.url.render_as_string(hide_password=False))
    try:
        for i in range(3):
            append_one(db, i)
        roll_back(db, lambda s: flowlog.append(s, action(100)))  # size 4 with leaf "100"
        append_one(other, 3)  # size 4 with another leaf, committed elsewhere
        append_one(db, 4)  # must build on the committed leaf 3, not on "100"
    finally:
        other.dispose()
    assert_log_sound(db)


def test_a_rolled_back_savepoint_is_never_remembered(db: Database) -> None:
    other = Database(db.url.render_as_string(hide_password=False))
    try:
        for i in range(3):
            append_one(db, i)
        with db.transaction() as session:
            savepoint = session.begin_nested()
            flowlog.append(session, action(100))
            savepoint.rollback()
        append_one(other, 3)
        append_one(db, 4)

        # A released savepoint inside a transaction that then rolls back: nothing either.
        def in_savepoint(session: Session) -> None:
            with session.begin_nested():
                flowlog.append(session, action(101))

        roll_back(db, in_savepoint)
        append_one(other, 5)
        append_one(db, 6)
        # A released savepoint inside a committed transaction counts.
        with db.transaction() as session, session.begin_nested():
            flowlog.append(session, action(7))
        append_one(db, 8)
    finally:
        other.dispose()
    assert_log_sound(db)


def test_appends_twice_in_one_transaction(db: Database) -> None:
    append_one(db, 0)
    with db.transaction() as session:
        assert flowlog.append(session, action(1)) == 1
        assert flowlog.append_many(session, [flowlog.Item(action(2)), flowlog.Item(action(3))]) == [
            2,
            3,
        ]
        assert flowlog.append(session, action(4)) == 4
        assert flowlog.size(session) == 5
    append_one(db, 5)
    assert_log_sound(db)


# -- request_access_batch ------------------------------------------------------------------------


class Scene:
    """A broker with an owner, two requesters, a regulator, a stranger and one dataset."""

    def __init__(self, root: Path, db_url: str | None) -> None:
        self.broker = kit.make_broker(root, db_url=db_url)
        self.ledger = self.broker.ledger
        self.office = kit.onboard(self.broker, "department", "District Planning Office")
        self.coop = kit.onboard(self.broker, "enterprise", "Harbour Solar Cooperative")
        self.mill = kit.onboard(self.broker, "enterprise", "North Mill Analytics")
        self.regulator = kit.onboard(self.broker, "regulator", "Data Protection Authority")
        self.stranger = kit.new_keys()
        self.dataset = kit.register(self.broker, self.office, kit.SAMPLE, workdir=root).id

    def request(self, who: MemberKeys, **change: Any) -> SignedAction:
        message = {
            "requester": who.address,
            "datasetId": self.dataset,
            "purpose": "rooftop solar potential study for the district",
            "days": 30,
            "maxUses": 5,
            **change,
        }
        return sign(who, "request", message, self.ledger.domains)


@pytest.fixture
def scene(database_url: str, tmp_path: Path) -> Iterator[Scene]:
    url = None if database_url.startswith("sqlite") else database_url
    built = Scene(tmp_path / "broker", url)
    yield built
    built.broker.close()


def forged(signed: SignedAction) -> SignedAction:
    """The same signature over a changed message: it recovers someone else."""
    message = {**signed.message, "purpose": signed.message["purpose"] + " and more"}
    return SignedAction(signed.action, signed.actor, message, signed.signature)


def the_batch(s: Scene) -> tuple[list[SignedAction], dict[int, str]]:
    """Fourteen items, ten of them bad in ten different ways; index -> expected refusal."""
    earlier = s.request(s.coop)
    requests.request_access(s.ledger, earlier)
    repeated = s.request(s.mill)
    items = [
        s.request(s.coop),  # 0 good
        forged(s.request(s.coop)),  # 1 bad signature
        s.request(s.mill),  # 2 good
        earlier,  # 3 nonce already used (accepted before the batch)
        s.request(s.coop, deadline=int(time.time()) - 60),  # 4 expired
        repeated,  # 5 good
        repeated,  # 6 the same nonce again inside the batch
        s.request(s.stranger),  # 7 not a member
        s.request(s.regulator),  # 8 regulators write nothing
        s.request(s.coop, datasetId=999_999),  # 9 no such dataset
        s.request(s.office),  # 10 the owner's own dataset
        s.request(s.mill, purpose="too short"),  # 11 bad form
        sign(
            s.coop, "fetch", {"grantee": s.coop.address, "datasetId": s.dataset}, s.ledger.domains
        ),  # 12 not a request
        s.request(s.mill),  # 13 good
    ]
    refusals = {
        1: "invalid_signature",
        3: "nonce_replayed",
        4: "deadline_expired",
        6: "nonce_replayed",
        7: "not_a_member",
        8: "regulator_read_only",
        9: "dataset_not_found",
        10: "own_dataset",
        11: "invalid_field",
        12: "wrong_action",
    }
    return items, refusals


def check_outcome(
    s: Scene, items: list[SignedAction], refusals: dict[int, str], outcome: requests.BatchOutcome
) -> None:
    assert {r.index: r.code for r in outcome.refused} == refusals
    good = [i for i in range(len(items)) if i not in refusals]
    assert [a.index for a in outcome.accepted] == good
    seqs = [a.log_seq for a in outcome.accepted]
    assert seqs == list(range(seqs[0], seqs[0] + len(good)))
    with s.ledger.db.session() as session:
        assert flowlog.size(session) == seqs[-1] + 1
        for accepted in outcome.accepted:
            record = session.get(LogRecord, accepted.log_seq)
            assert record is not None
            assert flowlog.decode(record).signed == items[accepted.index]
            row = session.get(AccessRequest, accepted.request_id)
            assert row is not None
            assert row.log_seq == accepted.log_seq
            assert row.requester == items[accepted.index].actor
            assert row.status == "pending"
        # Refused items consumed no nonce: one per accepted request, plus the earlier one.
        requesters = [s.coop.address, s.mill.address]
        nonces = session.exec(
            select(func.count()).select_from(UsedNonce).where(col(UsedNonce.signer).in_(requesters))
        ).one()
        assert nonces == len(good) + 1
        rows = session.exec(select(func.count()).select_from(AccessRequest)).one()
        assert rows == len(good) + 1


def test_a_batch_refuses_exactly_the_bad_items_and_appends_the_rest(scene: Scene) -> None:
    items, refusals = the_batch(scene)
    outcome = requests.request_access_batch(scene.ledger, items)
    check_outcome(scene, items, refusals, outcome)
    # Each refused item, tried alone, is refused by request_access for the same reason.
    for index, code in refusals.items():
        with pytest.raises(LedgerError) as caught:
            requests.request_access(scene.ledger, items[index])
        assert caught.value.code == code
    # Anchored, the whole log verifies: signatures, tree, heads on chain, request rows.
    assert Anchorer(scene.ledger.db, scene.ledger.chain).run_once().anchored
    report = verify(scene.ledger)
    assert report.ok, report.problems
    assert report.checked["records"] >= len(items) - len(refusals)


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_checks_shared_with_an_executor_give_the_same_outcome(tmp_path: Path, pool: str) -> None:
    s = Scene(tmp_path / "broker", None)
    executor: Executor = ThreadPoolExecutor(2) if pool == "threads" else ProcessPoolExecutor(1)
    try:
        items, refusals = the_batch(s)
        outcome = requests.request_access_batch(s.ledger, items, executor=executor, workers=2)
        check_outcome(s, items, refusals, outcome)
        assert verify(s.ledger).ok
    finally:
        executor.shutdown()
        s.broker.close()


def test_batches_interleave_with_single_requests(scene: Scene) -> None:
    singles = [scene.request(scene.coop) for _ in range(3)]
    batches = [[scene.request(scene.mill) for _ in range(4)] for _ in range(3)]
    order = []
    for single, batch in zip(singles, batches, strict=True):
        order.append(requests.request_access(scene.ledger, single).log_seq)
        outcome = requests.request_access_batch(scene.ledger, batch)
        assert not outcome.refused
        order += [a.log_seq for a in outcome.accepted]
    assert order == list(range(order[0], order[0] + 15))
    assert Anchorer(scene.ledger.db, scene.ledger.chain).run_once().anchored
    assert verify(scene.ledger).ok


def test_an_empty_batch_and_an_all_bad_batch_append_nothing(scene: Scene) -> None:
    with scene.ledger.db.session() as session:
        before = flowlog.size(session)
    assert requests.request_access_batch(scene.ledger, []) == requests.BatchOutcome([], [])
    bad = requests.request_access_batch(scene.ledger, [forged(scene.request(scene.coop))])
    assert [r.code for r in bad.refused] == ["invalid_signature"]
    assert not bad.accepted
    with scene.ledger.db.session() as session:
        assert flowlog.size(session) == before


def test_an_oversized_batch_is_refused_whole(scene: Scene) -> None:
    too_many = [scene.request(scene.coop)] * (requests.MAX_BATCH + 1)
    with pytest.raises(LedgerError, match="at most"):
        requests.request_access_batch(scene.ledger, too_many)


def test_carried_items_use_their_request_nonces_in_the_batch_and_replays_are_refused_first(
    scene: Scene,
) -> None:
    """The HTTP route's path: each item comes with the claim of the request that carried it."""
    admission = Admission(scene.ledger)
    now = scene.ledger.now()
    claims = [
        Claim(scene.coop.address, "carrier-good-1", now),
        Claim(scene.mill.address, "carrier-forged", now),
        Claim(scene.stranger.address, "carrier-nobody", now),
    ]
    items = [
        scene.request(scene.coop),
        forged(scene.request(scene.mill)),
        scene.request(scene.stranger),
    ]
    first = requests.request_access_each(
        scene.ledger, items, requests.RequestNonces(admission, claims)
    )
    assert isinstance(first[0], AccessRequest)
    assert [getattr(a, "code", None) for a in first[1:]] == ["invalid_signature", "not_a_member"]
    with scene.ledger.db.session() as session:
        size = flowlog.size(session)
        recorded = set(session.exec(select(RequestNonce.signer, RequestNonce.nonce)).all())
    # Both members' nonces are used, the refused one's too; nobody's is not recorded.
    assert recorded >= {(c.signer, c.nonce) for c in claims[:2]}
    assert scene.stranger.address not in {signer for signer, _ in recorded}

    # The same carriers again, with fresh actions: replays first, whatever else is wrong.
    again = requests.request_access_each(
        scene.ledger,
        [
            scene.request(scene.coop),
            forged(scene.request(scene.mill)),
            scene.request(scene.stranger),
        ],
        requests.RequestNonces(admission, claims),
    )
    assert [getattr(a, "code", None) for a in again] == [
        "request_replayed",
        "request_replayed",
        "not_a_member",
    ]
    with scene.ledger.db.session() as session:
        assert flowlog.size(session) == size
    with pytest.raises(ValueError, match="one carrying request per item"):
        requests.request_access_each(
            scene.ledger, items[:1], requests.RequestNonces(admission, claims)
        )

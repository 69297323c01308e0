"""The records the console draws from, and who vouches for them.

Two sources answer the same questions (:class:`Records`):

- :class:`VerifiedLog` (regulators and the operator): the records ``drl verify`` checked on
  this machine, read from the local audit state (``ledger.audit.state``) with SQL. Names,
  kinds, owners, lineage and labels all come from signed records (Onboard, Register with the
  metadata document that hashes to its signed ``metadataHash``, Reassign), never from the broker.
- :class:`BrokerView` (departments and enterprises, who may not read the whole log): what the
  broker's trace and catalog routes show this member, marked unverified; the member's own
  signed actions are still checked one by one (``ledger.console.session``).

Bulk actions (fetches, receipts) are counted in SQL rather than parsed, and a consumer's
requests for one dataset are grouped (only the latest is read, for its purpose), so a flow graph
over a million records reads one request per edge and the few grants it draws. Records come
from the state as ``drl verify`` kept them, each checked (canonical form, signature) when it
was added, so reading one is a JSON parse, not a second verification.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Protocol

from ledger.errors import InvalidInput, StorageError
from ledger.protocol.codes import ErrorCode
from ledger.types import CLASSIFICATIONS

#: Actions drawn one by one on a flow edge; the rest of a flow is grouped (:data:`GROUPED`) or
#: counted (:data:`COUNTED`).
DRAWN: Final = ("grant", "approval", "revoke", "deny")
#: A consumer's requests for a dataset, one group per (dataset, actor): the latest is read (its
#: purpose and form label the edge), the others are listed by sequence number.
GROUPED: Final = "request"
#: Actions whose actor is the consumer and which can be many: counted per (dataset, actor).
#: Refused fetches are counted apart, as ``refused``.
COUNTED: Final = ("fetch", "receipt")
#: The indexes the console's queries use besides the state's own (``leaves_dataset``,
#: ``leaves_action``), added to the audit state if missing (idempotent).
INDEXES: Final = (
    # A time window's records, covering what a flow counts of them.
    "CREATE INDEX IF NOT EXISTS console_leaves_at ON leaves (at, action, dataset_id, actor, chain)",
    # Covers the flow tallies of a dataset (or a member's datasets): no leaf is read to count.
    "CREATE INDEX IF NOT EXISTS console_leaves_flows "
    "ON leaves (dataset_id, action, actor, chain, at)",
)
_COLUMNS: Final = "seq, at, action, actor, dataset_id, leaf, chain, tx_hash"
#: A fetch the broker logged as refused (context ``refused``) expects no chain event, so the
#: verifier keeps it with chain status ``none`` (``ledger.audit.verifier.refused``); every other
#: fetch is matched, pending or unmatched. Tallied apart as ``refused``, never as a use.
_TALLIED: Final = "CASE WHEN action = 'fetch' AND chain = 'none' THEN 'refused' ELSE action END"


@dataclass(frozen=True)
class Entry:
    """One record as the console shows it: the signed message, and how far it is vouched for."""

    seq: int
    at: str
    action: str
    actor: str  # lower-case address
    dataset_id: int | None
    message: dict[str, Any]
    context: dict[str, Any]
    chain: str  # matched, unmatched, pending, none; "unverified" when the broker says so
    tx_hash: str | None
    verified: bool

    def names(self, field_name: str) -> str | None:
        """A lower-case address the signed message holds in ``field_name``."""
        value = self.message.get(field_name)
        return value.lower() if isinstance(value, str) and value.startswith("0x") else None


@dataclass(frozen=True)
class Tally:
    """Many records of one action by one actor on one dataset, counted rather than read."""

    dataset_id: int
    actor: str
    action: str
    count: int
    first_at: str
    last_at: str
    last_seq: int
    #: For a :data:`GROUPED` action: every record's sequence number, and the latest record.
    seqs: tuple[int, ...] = ()
    latest: Entry | None = None


@dataclass(frozen=True)
class Organisation:
    """A member as its onboarding record names it."""

    address: str
    name: str
    kind: str
    status: str = "active"


@dataclass(frozen=True)
class Registration:
    """A dataset's certificate as its registration record gives it."""

    dataset_id: int
    owner: str
    classification: str
    parents: tuple[int, ...]
    previous: int | None
    title: str
    at: str
    seq: int
    themes: tuple[str, ...] = ()
    registrant: str = ""


@dataclass(frozen=True)
class Scope:
    """Which records: of a dataset, naming a member, in a time window, of some actions."""

    dataset: int | None = None
    member: str | None = None
    since: str | None = None
    until: str | None = None
    actions: tuple[str, ...] | None = None
    seqs: tuple[int, ...] | None = None
    #: Datasets the member owns (its records include others' fetches of them).
    owned: tuple[int, ...] = field(default=())

    def admits(self, entry: Entry) -> bool:
        """The same filter in Python (for sources that are not SQL)."""
        if self.dataset is not None and entry.dataset_id != self.dataset:
            return False
        if self.member is not None and not (
            entry.actor == self.member
            or self.member in _addresses(entry.message)
            or (entry.dataset_id is not None and entry.dataset_id in self.owned)
        ):
            return False
        if self.since is not None and entry.at < self.since:
            return False
        if self.until is not None and entry.at >= self.until:
            return False
        if self.actions is not None and entry.action not in self.actions:
            return False
        return self.seqs is None or entry.seq in self.seqs


def moment(text: str | None) -> str | None:
    """A date or date-time the user typed as the log writes them (UTC, microseconds)."""
    if text is None or not text.strip():
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a date or date-time (YYYY-MM-DD[THH:MM[:SS]])",
            code=ErrorCode.BAD_ARGUMENTS,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds")


class Records(Protocol):
    """What the console's pages ask of a source of records."""

    @property
    def verified(self) -> bool: ...

    def size(self) -> int:
        """Records the source holds (the kept checkpoint's size when verified)."""
        ...

    def organisations(self) -> dict[str, Organisation]: ...

    def registrations(self) -> dict[int, Registration]: ...

    def flow_material(self, scope: Scope) -> tuple[list[Entry], list[Tally]]:
        """The drawn records (:data:`DRAWN`) of ``scope`` and the counted ones (:data:`COUNTED`)."""
        ...

    def count_after(self, *, dataset_id: int, actor: str, action: str, after: int) -> int:
        """How many ``action`` records (as tallied: a refused fetch is ``refused``) ``actor``
        signed on ``dataset_id`` after record ``after``."""
        ...

    def page(self, scope: Scope, *, after: int, limit: int) -> tuple[list[Entry], int | None]:
        """Records of ``scope`` after ``after``, and where the next page starts (or None)."""
        ...

    def entry(self, seq: int) -> Entry | None: ...

    def counts(self) -> dict[str, int]:
        """Records per action."""
        ...


def _addresses(message: Mapping[str, Any]) -> set[str]:
    return {
        v.lower() for v in message.values() if isinstance(v, str) and len(v) == 42 and v[:2] == "0x"
    }


def _classification(code: Any) -> str:
    if isinstance(code, int) and 0 <= code < len(CLASSIFICATIONS):
        return CLASSIFICATIONS[code]
    return "unknown"


class VerifiedLog:
    """The audit state's verified records, read with SQL (one short connection per call)."""

    verified = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cached_at = -1
        self._orgs: dict[str, Organisation] = {}
        self._regs: dict[int, Registration] = {}

    def prepare(self) -> None:
        """Add the console's indexes to the state (kept for the next run; harmless if there)."""
        with self._connect(write=True) as db:
            for statement in INDEXES:
                db.execute(statement)

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        uri = f"file:{self.path}" + ("" if write else "?mode=ro")
        try:
            db = sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the audit state {self.path}: {exc}") from exc
        try:
            yield db
        finally:
            db.close()

    def size(self) -> int:
        with self._connect() as db:
            row = db.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM leaves").fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT action, COUNT(*) FROM leaves GROUP BY action").fetchall()
        return {str(a): int(n) for a, n in rows}

    def checkpoint_note(self) -> str | None:
        """The signed checkpoint the last verification kept (``AuditState.checkpoint_note``)."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
        return None if row is None else str(row[0])

    def anchored(self) -> tuple[int, int]:
        """(largest anchored size verified equal to the log, anchors that disagreed)."""
        with self._connect() as db:
            ok = db.execute("SELECT MAX(tree_size) FROM anchors WHERE status = 'ok'").fetchone()
            bad = db.execute("SELECT COUNT(*) FROM anchors WHERE status = 'mismatch'").fetchone()
        return int(ok[0] or 0), int(bad[0])

    # -- who and what, from signed records (cached until the state grows) --------------------

    def _refresh(self) -> None:
        size = self.size()
        with self._lock:
            if size == self._cached_at:
                return
            orgs: dict[str, Organisation] = {}
            regs: dict[int, Registration] = {}
            with self._connect() as db:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM leaves WHERE action IN "  # noqa: S608
                    "('onboard', 'suspend', 'reinstate', 'register', 'reassign') ORDER BY seq"
                ).fetchall()
            for row in rows:
                e = _entry(row)
                if e.action == "onboard" and (member := e.names("member")):
                    kind = {1: "department", 2: "enterprise", 3: "regulator"}.get(
                        int(e.message.get("kind", 0)), "unknown"
                    )
                    orgs[member] = Organisation(member, str(e.message.get("name", "")), kind)
                elif e.action in ("suspend", "reinstate") and (member := e.names("member")):
                    if member in orgs:
                        status = "suspended" if e.action == "suspend" else "active"
                        old = orgs[member]
                        orgs[member] = Organisation(old.address, old.name, old.kind, status)
                elif e.action == "register" and e.dataset_id is not None:
                    regs[e.dataset_id] = _registration(e)
                elif e.action == "reassign" and e.dataset_id in regs and e.chain == "matched":
                    old_reg = regs[e.dataset_id]
                    new_owner = e.names("to") or old_reg.owner
                    regs[e.dataset_id] = replace(old_reg, owner=new_owner)
            self._orgs, self._regs, self._cached_at = orgs, regs, size

    def organisations(self) -> dict[str, Organisation]:
        self._refresh()
        return dict(self._orgs)

    def registrations(self) -> dict[int, Registration]:
        self._refresh()
        return dict(self._regs)

    # -- scoped queries ---------------------------------------------------------------------

    @staticmethod
    def _where(
        scope: Scope, *, datasets: tuple[int, ...] = (), besides: tuple[int, ...] = ()
    ) -> tuple[list[str], list[Any]]:
        """The scope as SQL; ``datasets`` narrows to those datasets, ``besides`` leaves
        those out (the two halves of a member's flows, :meth:`flow_material`)."""
        where: list[str] = []
        params: list[Any] = []
        if scope.dataset is not None:
            where.append("dataset_id = ?")
            params.append(scope.dataset)
        if datasets:
            where.append(f"dataset_id IN ({', '.join('?' for _ in datasets)})")
            params.extend(datasets)
        if scope.member is not None:
            # A UNION of two indexed lookups (an OR of the two would scan the whole table).
            named = "SELECT seq FROM parties WHERE address = ?"
            params.append(scope.member.lower())
            if scope.owned:
                marks = ", ".join("?" for _ in scope.owned)
                named += f" UNION SELECT seq FROM leaves WHERE dataset_id IN ({marks})"  # noqa: S608
                params.extend(scope.owned)
            where.append(f"seq IN ({named})")
        if besides:
            marks = ", ".join("?" for _ in besides)
            where.append(f"(dataset_id IS NULL OR dataset_id NOT IN ({marks}))")
            params.extend(besides)
        if scope.since is not None:
            where.append("at >= ?")
            params.append(scope.since)
        if scope.until is not None:
            where.append("at < ?")
            params.append(scope.until)
        if scope.actions is not None:
            where.append(f"{_action(scope)} IN ({', '.join('?' for _ in scope.actions)})")
            params.extend(scope.actions)
        if scope.seqs is not None:
            where.append(f"seq IN ({', '.join('?' for _ in scope.seqs)})")
            params.extend(scope.seqs)
        return where, params

    def flow_material(self, scope: Scope) -> tuple[list[Entry], list[Tally]]:
        if scope.member is None or not scope.owned or scope.dataset is not None:
            return self._material(scope)
        # A member's flows in two halves, each on its best index: the datasets it owns (the
        # covering flows index), and the records naming it on others' datasets (parties).
        owned = self._material(replace(scope, member=None, owned=()), datasets=scope.owned)
        named = self._material(replace(scope, owned=()), besides=scope.owned)
        return sorted(owned[0] + named[0], key=lambda e: e.seq), owned[1] + named[1]

    def _material(
        self, scope: Scope, *, datasets: tuple[int, ...] = (), besides: tuple[int, ...] = ()
    ) -> tuple[list[Entry], list[Tally]]:
        where, params = self._where(scope, datasets=datasets, besides=besides)
        # Only fixed fragments and placeholders are joined: every value is a parameter.
        base = " AND ".join(where) if where else "1"
        drawn = ", ".join(f"'{a}'" for a in DRAWN)
        counted = ", ".join(f"'{a}'" for a in COUNTED)
        action = _action(scope, by_dataset=bool(datasets))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM leaves WHERE {base} "  # noqa: S608
                f"AND {action} IN ({drawn}) ORDER BY seq",
                params,
            ).fetchall()
            tallies = db.execute(
                f"SELECT dataset_id, lower(actor), {_TALLIED}, COUNT(*), MIN(at), MAX(at), "  # noqa: S608
                f"MAX(seq), group_concat(CASE WHEN action = '{GROUPED}' THEN seq END) "
                f"FROM leaves WHERE {base} AND {action} IN ({counted}, '{GROUPED}') "
                f"AND dataset_id IS NOT NULL GROUP BY dataset_id, lower(actor), {_TALLIED}",
                params,
            ).fetchall()
            latest = _entries(db, [int(t[6]) for t in tallies if t[2] == GROUPED])
        return [_entry(r) for r in rows], [
            Tally(
                int(d),
                str(a),
                str(act),
                int(n),
                str(first),
                str(last),
                int(seq),
                seqs=tuple(sorted(int(x) for x in str(seqs).split(","))) if seqs else (),
                latest=latest.get(int(seq)) if act == GROUPED else None,
            )
            for d, a, act, n, first, last, seq, seqs in tallies
        ]

    def count_after(self, *, dataset_id: int, actor: str, action: str, after: int) -> int:
        with self._connect() as db:
            row = db.execute(
                f"SELECT COUNT(*) FROM leaves WHERE dataset_id = ? AND seq > ? AND {_TALLIED} = ? "  # noqa: S608
                "AND lower(actor) = ?",
                (dataset_id, after, action, actor.lower()),
            ).fetchone()
        return int(row[0])

    def page(self, scope: Scope, *, after: int, limit: int) -> tuple[list[Entry], int | None]:
        where, params = self._where(scope)
        where.append("seq > ?")
        params.extend([after, limit + 1])
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM leaves WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY seq LIMIT ?",
                params,
            ).fetchall()
        entries = [_entry(r) for r in rows[:limit]]
        return entries, (entries[-1].seq if len(rows) > limit and entries else None)

    def entry(self, seq: int) -> Entry | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM leaves WHERE seq = ?", (seq,)).fetchone()  # noqa: S608
        return None if row is None else _entry(row)

    def leaf(self, seq: int) -> bytes | None:
        """The raw leaf kept for record ``seq`` (what its inclusion proof is about)."""
        with self._connect() as db:
            row = db.execute("SELECT leaf FROM leaves WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else bytes(row[0])


def _action(scope: Scope, *, by_dataset: bool = False) -> str:
    """The action column as a query filters on it, steering SQLite (which has no statistics
    here) to the narrowest index. By dataset, ``action`` is the second column of the flows
    index; with another narrow filter (a member, a time window, some records) the action index
    is kept out (``+action``), since that filter's own index finds fewer rows."""
    if by_dataset or scope.dataset is not None:
        return "action"
    narrow = (scope.member, scope.since, scope.until, scope.seqs)
    return "+action" if any(v is not None for v in narrow) else "action"


#: Sequence numbers per ``IN (...)`` list (well under SQLite's limit on parameters).
_CHUNK: Final = 500


def _entries(db: sqlite3.Connection, seqs: Sequence[int]) -> dict[int, Entry]:
    """The records with these sequence numbers, by sequence number."""
    found: dict[int, Entry] = {}
    for i in range(0, len(seqs), _CHUNK):
        part = seqs[i : i + _CHUNK]
        marks = ", ".join("?" for _ in part)
        for row in db.execute(f"SELECT {_COLUMNS} FROM leaves WHERE seq IN ({marks})", part):  # noqa: S608
            e = _entry(row)
            found[e.seq] = e
    return found


def _entry(row: Sequence[Any]) -> Entry:
    """A kept record as the console shows it. The state holds only records the verifier
    checked when it added them (``parse_leaf``: canonical JSON, the signature), so this reads
    the JSON and checks nothing twice."""
    seq, at, action, actor, dataset_id, leaf, chain, tx_hash = row
    try:
        doc = json.loads(bytes(leaf))
        message, context = doc["signed"]["message"], doc["context"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"record {seq} in the audit state is not a record: {exc}") from None
    return Entry(
        seq=int(seq),
        at=str(at),
        action=str(action),
        actor=str(actor).lower(),
        dataset_id=None if dataset_id is None else int(dataset_id),
        message=dict(message),
        context=dict(context),
        chain=str(chain),
        tx_hash=None if tx_hash is None else str(tx_hash),
        verified=True,
    )


def _registration(e: Entry) -> Registration:
    assert e.dataset_id is not None
    metadata = e.context.get("metadata")
    meta = metadata if isinstance(metadata, dict) else {}
    parents = e.message.get("parents")
    previous = e.message.get("previousVersion")
    themes = meta.get("themes")
    owner = e.names("owner") or e.actor
    return Registration(
        dataset_id=e.dataset_id,
        owner=owner,
        classification=_classification(e.message.get("classification")),
        parents=tuple(int(p) for p in parents) if isinstance(parents, list) else (),
        previous=previous if isinstance(previous, int) and previous else None,
        title=str(meta.get("title") or f"dataset {e.dataset_id}"),
        at=e.at,
        seq=e.seq,
        themes=tuple(str(t) for t in themes) if isinstance(themes, list) else (),
        registrant=owner,
    )

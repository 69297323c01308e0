"""Reading the index: the wire form of its rows, and what a caller may list or look at.

Every function here answers with the protocol's wire models (``ledger.protocol.wire``), which
the routes hand out as they are: no row crosses into the HTTP layer. The use cases that write
return rows; a route turns one into its wire model with the ``*_public`` functions below.
Who may see what is ``ledger.services.policy``: a member sees what it is a party to, overseers
see everything; the lists apply the same rule in SQL.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any, Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Table, bindparam, func
from sqlalchemy import Row as CoreRow
from sqlalchemy import select as core_select
from sqlmodel import Session, col, or_, select
from sqlmodel.sql.expression import SelectOfScalar

from ledger.errors import NotFound
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import (
    ApproveOut,
    DatasetPublic,
    DatasetsPublic,
    DeliveryPublic,
    GrantPublic,
    GrantsPublic,
    MemberPublic,
    MembersPublic,
    RatingPublic,
    RequestPublic,
    RequestsPublic,
    WrappedKeyPublic,
    hx,
)
from ledger.services.context import MAX_ROW_ID, Ledger, dataset
from ledger.services.policy import Standing
from ledger.store.models import AccessRequest, Dataset, Delivery, Grant, Member, Rating, WrappedKey

# -- rows to wire models ------------------------------------------------------------------------

_DATASETS: Table = Dataset.__table__  # type: ignore[attr-defined]  # SQLModel sets it on tables
_MEMBERS: Table = Member.__table__  # type: ignore[attr-defined]

Public = TypeVar("Public", bound=BaseModel)
T = TypeVar("T")


def _public(model: type[Public], row: object, **computed: Any) -> Public:
    """``model`` filled from the row's same-named columns (bytes as 0x-hex) and ``computed``."""
    values = {
        name: computed[name] if name in computed else getattr(row, name)
        for name in model.model_fields
    }
    return model(**{k: hx(v) if isinstance(v, bytes) else v for k, v in values.items()})


def member_public(m: Member | CoreRow[Any]) -> MemberPublic:
    return _public(MemberPublic, m)


def dataset_public(
    d: Dataset | CoreRow[Any] | SimpleNamespace, newer_version: int | None = None
) -> DatasetPublic:
    return _public(
        DatasetPublic,
        d,
        metadata=json.loads(d.metadata_json),
        parents=json.loads(d.parents),
        newer_version=newer_version,
    )


def newer_versions(reader: Session | Connection, ids: list[int]) -> dict[int, int]:
    """``id -> the id of the version registered after it`` for those of ``ids`` that have one."""
    if not ids:
        return {}
    query = (  # the latest of several, as the catalog's subquery (``_CATALOG``) takes it
        core_select(_DATASETS.c.previous_version, func.max(_DATASETS.c.id))
        .where(_DATASETS.c.previous_version.in_(ids))
        .group_by(_DATASETS.c.previous_version)
    )
    return {int(previous): int(later) for previous, later in reader.execute(query)}


def request_public(r: AccessRequest) -> RequestPublic:
    pending = json.loads(r.pending_grant_json) if r.pending_grant_json else None
    return _public(RequestPublic, r, pending_grant=pending)


def grant_public(g: Grant) -> GrantPublic:
    return _public(GrantPublic, g)


def approve_out(ledger: Ledger, request_id: int, outcome: Grant | AccessRequest) -> ApproveOut:
    """The answer to an approval or a co-signature: the request and, once granted, the grant."""
    if isinstance(outcome, AccessRequest):
        return ApproveOut(status="awaiting_approval", request=request_public(outcome))
    with ledger.db.session() as session:
        request = session.get(AccessRequest, request_id)
        assert request is not None
        return ApproveOut(
            status="granted", request=request_public(request), grant=grant_public(outcome)
        )


def delivery_public(d: Delivery) -> DeliveryPublic:
    return _public(DeliveryPublic, d)


def rating_public(r: Rating) -> RatingPublic:
    return _public(RatingPublic, r)


# -- members ------------------------------------------------------------------------------------


def page(rows: list[T], limit: int, offset: int) -> tuple[list[T], int | None]:
    """A page of ``rows`` (read with ``limit + 1``) and the next page's offset, if any."""
    if len(rows) > limit:
        return rows[:limit], offset + limit
    return rows, None


def members(ledger: Ledger, *, limit: int = 200, offset: int = 0) -> MembersPublic:
    """The member directory, oldest first."""
    query = core_select(_MEMBERS).order_by(_MEMBERS.c.created_at, _MEMBERS.c.address)
    with ledger.db.reading() as connection:
        found = list(connection.execute(query.offset(offset).limit(limit + 1)))
    rows, after = page(found, limit, offset)
    return MembersPublic(data=[member_public(m) for m in rows], count=len(rows), next=after)


def member(ledger: Ledger, address: str) -> MemberPublic:
    """One member by its checksummed address."""
    with ledger.db.session() as session:
        row = session.get(Member, address)
    if row is None:
        raise NotFound(f"no member {address}", code=ErrorCode.MEMBER_NOT_FOUND)
    return member_public(row)


# -- datasets -----------------------------------------------------------------------------------


#: Each dataset with the id of its next version (the dataset whose ``previous_version`` it is),
#: in one query: ``ix_datasets_previous_version`` answers the subquery.
_NEXT = _DATASETS.alias("later")
_CATALOG = core_select(
    _DATASETS,
    core_select(func.max(_NEXT.c.id))
    .where(_NEXT.c.previous_version == _DATASETS.c.id)
    .scalar_subquery()
    .label("newer_version"),
).order_by(_DATASETS.c.id)
# Built once, with the page as parameters: SQLAlchemy keys its compiled-SQL cache on a
# statement's structure, which it computes once per statement object, not once per request.
_PAGED = _CATALOG.limit(bindparam("limit")).offset(bindparam("offset"))
_PAGED_OWNED = (
    _CATALOG.where(_DATASETS.c.owner == bindparam("owner"))
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def _catalog_page(
    ledger: Ledger, owner: str | None, limit: int, offset: int
) -> tuple[list[CoreRow[Any]], int | None]:
    query, values = (_PAGED_OWNED, {"owner": owner}) if owner else (_PAGED, {})
    with ledger.db.reading() as connection:
        found = list(connection.execute(query, {**values, "limit": limit + 1, "offset": offset}))
    return page(found, limit, offset)


def datasets(
    ledger: Ledger, *, owner: str | None = None, limit: int = 100, offset: int = 0
) -> DatasetsPublic:
    """The catalog: registered datasets' certificates and metadata, by id (never contents)."""
    rows, after = _catalog_page(ledger, owner, limit, offset)
    return DatasetsPublic(
        data=[dataset_public(d, d.newer_version) for d in rows], count=len(rows), next=after
    )


#: The page of :func:`datasets_json`, straight through the driver (``ledger.store.driver``):
#: the same rows as ``_PAGED`` and ``_PAGED_OWNED`` (tests/service/test_catalog_page.py holds
#: the two pages to the same bytes), without SQLAlchemy's statement and result work.
_CATALOG_COLUMNS: Final = tuple(column.name for column in _DATASETS.columns)
_METADATA: Final = _CATALOG_COLUMNS.index("metadata_json")
_CATALOG_SQL: Final = (
    "SELECT "  # noqa: S608  (the model's column names; values are bound)
    + ", ".join(f"datasets.{name}" for name in _CATALOG_COLUMNS)
    + ", (SELECT max(later.id) FROM datasets AS later"
    " WHERE later.previous_version = datasets.id)"
    " FROM datasets{} ORDER BY datasets.id LIMIT ? OFFSET ?"
)


def datasets_json(
    ledger: Ledger, *, owner: str | None = None, limit: int = 100, offset: int = 0
) -> bytes:
    """:func:`datasets` as its wire JSON, each row rendered once per version of the row.

    The busiest read of the API lists mostly the same rows again and again; building each
    row's wire model and dumping it cost more than the query. The bytes are exactly what
    ``DatasetsPublic.model_dump_json()`` gives for the same page.
    """
    where, values = (" WHERE datasets.owner = ?", [owner]) if owner else ("", [])
    with ledger.db.driver() as driver:
        found = driver.rows(_CATALOG_SQL.format(where), [*values, limit + 1, offset])
        rows, after = page(found, limit, offset)

        def render(row: tuple[Any, ...]) -> bytes:
            typed = driver.typed(_DATASETS, _CATALOG_COLUMNS, row[:-1])
            return dataset_public(SimpleNamespace(**typed), row[-1]).model_dump_json().encode()

        # The key is every value but the metadata: that is written once, with the row, and
        # its hash is a column.
        data = b",".join(
            _RENDERED.json(row[:_METADATA] + row[_METADATA + 1 :], partial(render, row))
            for row in rows
        )
    tail = b"null" if after is None else str(after).encode()
    return b'{"data":[%b],"count":%d,"next":%b}' % (data, len(rows), tail)


class Renderings:
    """Rows' wire JSON by the row's values, least recently used out past ``max_bytes``.

    The key is every column but the metadata: that is written once, with the row, and its
    hash is a column, so a key names one rendering; an owner reassigned, a dataset retired or a
    newer version registered is a new key. Keyed by value, the cache cannot go stale, and
    replicas and several brokers in one process may share it.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[Any, ...], tuple[bytes, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._bytes

    @property
    def entries(self) -> int:
        return len(self._entries)

    def json(self, key: tuple[Any, ...], render: Callable[[], bytes]) -> bytes:
        """The rendering kept for ``key`` (a row's values), or ``render()``'s, then kept."""
        with self._lock:
            held = self._entries.get(key)
            if held is not None:
                self._entries.move_to_end(key)
                return held[0]
        rendered = render()
        # The key is held too: its strings (title, hashes, owner) count towards the bound.
        size = len(rendered) + sum(len(v) if isinstance(v, str | bytes) else 8 for v in key)
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (rendered, size)
                self._bytes += size
                while self._bytes > self._max_bytes and len(self._entries) > 1:
                    self._bytes -= self._entries.popitem(last=False)[1][1]
        return rendered


#: About the catalog's first few thousand datasets with typical metadata.
RENDERED_BYTES: Final = 32 * 1024 * 1024
_RENDERED = Renderings(RENDERED_BYTES)


def dataset_detail(ledger: Ledger, dataset_id: int) -> DatasetPublic:
    """One dataset's certificate, metadata and schema."""
    with ledger.db.session() as session:
        newer = newer_versions(session, [dataset_id])
        return dataset_public(dataset(session, dataset_id), newer.get(dataset_id))


def owner_key(ledger: Ledger, caller: Standing, dataset_id: int) -> WrappedKeyPublic:
    """The data key wrapped to the dataset's owner, for the owner only."""
    with ledger.db.session() as session:
        caller.require_owner(
            dataset(session, dataset_id).owner, "only the owner reads its own wrapped key"
        )
        key = session.exec(
            select(WrappedKey).where(
                WrappedKey.dataset_id == dataset_id, WrappedKey.generation == 0
            )
        ).one()
    return WrappedKeyPublic(
        dataset_id=dataset_id, recipient=key.recipient, generation=0, wrapped_key=hx(key.wrapped)
    )


# -- requests and grants ------------------------------------------------------------------------


Row = TypeVar("Row")


def _visible(
    session: Session,
    viewer: Standing,
    query: SelectOfScalar[Row],
    *,
    party: Any,
    dataset_id: Any,
) -> SelectOfScalar[Row]:
    """``query`` narrowed to what ``viewer`` sees: all for overseers, else the rows whose
    ``party`` it is or whose ``dataset_id`` it owns (``policy.Standing.sees`` in SQL)."""
    if viewer.oversees:
        return query
    owned = list(session.exec(select(Dataset.id).where(Dataset.owner == viewer.address)))
    return query.where(or_(party == viewer.address, dataset_id.in_(owned or [-1])))


def visible_page(
    ledger: Ledger,
    viewer: Standing,
    model: type[Row],
    *,
    party: str,
    dataset_id: int | None,
    status: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[Row], int | None]:
    """A page of ``model``'s rows (by id) that ``viewer`` sees, whose ``party`` column names the
    member it concerns, optionally for one dataset and one status; and the next page's offset."""
    table: Any = model
    with ledger.db.session() as session:
        query = _visible(
            session,
            viewer,
            select(model).order_by(col(table.id)),
            party=col(getattr(table, party)),
            dataset_id=col(table.dataset_id),
        )
        if dataset_id is not None:
            query = query.where(table.dataset_id == dataset_id)
        if status is not None:
            query = query.where(table.status == status)
        found = list(session.exec(query.offset(offset).limit(limit + 1)))
    return page(found, limit, offset)


def requests(
    ledger: Ledger,
    viewer: Standing,
    *,
    dataset_id: int | None = None,
    status: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> RequestsPublic:
    """The requests ``viewer`` may see: its own, those to its datasets, or all for overseers."""
    rows, after = visible_page(
        ledger,
        viewer,
        AccessRequest,
        party="requester",
        dataset_id=dataset_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return RequestsPublic(data=[request_public(r) for r in rows], count=len(rows), next=after)


def request(ledger: Ledger, viewer: Standing, request_id: int) -> RequestPublic:
    """One request, for its requester, the dataset's owner and overseers."""
    with ledger.db.session() as session:
        row = session.get(AccessRequest, request_id) if 0 <= request_id <= MAX_ROW_ID else None
        if row is None:
            raise NotFound(f"no access request {request_id}", code=ErrorCode.REQUEST_NOT_FOUND)
        owner = dataset(session, row.dataset_id).owner
    viewer.require_party(
        row.requester,
        owner,
        why="only the requester, the owner, the operator and regulators see a request",
    )
    return request_public(row)


def grants(
    ledger: Ledger,
    viewer: Standing,
    *,
    dataset_id: int | None = None,
    limit: int = 200,
    offset: int = 0,
) -> GrantsPublic:
    """The grants ``viewer`` may see: received, given on its datasets, or all for overseers."""
    rows, after = visible_page(
        ledger, viewer, Grant, party="grantee", dataset_id=dataset_id, limit=limit, offset=offset
    )
    return GrantsPublic(data=[grant_public(g) for g in rows], count=len(rows), next=after)

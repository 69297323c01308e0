"""Reading the index: the wire form of its rows, and what a caller may list or look at.

Every function here answers with the protocol's wire models (``ledger.protocol.wire``), which
the routes hand out as they are: no row crosses into the HTTP layer. The use cases that write
return rows; a route turns one into its wire model with the ``*_public`` functions below.
Who may see what is ``ledger.services.policy``: a member sees what it is a party to, overseers
see everything; the lists apply the same rule in SQL.
"""

from __future__ import annotations

import json

from sqlmodel import Session, col, or_, select

from ledger.errors import NotFound
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import (
    DatasetPublic,
    DatasetsPublic,
    DeliveryPublic,
    GrantPublic,
    GrantsPublic,
    Hex,
    MemberPublic,
    MembersPublic,
    RatingPublic,
    RequestPublic,
    RequestsPublic,
    WrappedKeyPublic,
)
from ledger.services.context import MAX_ROW_ID, Ledger, dataset
from ledger.services.policy import Standing
from ledger.store.models import AccessRequest, Dataset, Delivery, Grant, Member, Rating, WrappedKey


def hx(value: bytes) -> Hex:
    return "0x" + value.hex()


# -- rows to wire models ------------------------------------------------------------------------


def member_public(m: Member) -> MemberPublic:
    return MemberPublic(
        address=m.address,
        kind=m.kind,
        name=m.name,
        status=m.status,
        key_suite=m.key_suite,
        encryption_key=hx(m.encryption_key),
        onboarded_tx=m.onboarded_tx,
        log_seq=m.log_seq,
        created_at=m.created_at,
    )


def dataset_public(d: Dataset) -> DatasetPublic:
    return DatasetPublic(
        id=d.id,
        owner=d.owner,
        title=d.title,
        classification=d.classification,
        content_hash=hx(d.content_hash),
        metadata_hash=hx(d.metadata_hash),
        metadata=json.loads(d.metadata_json),
        ciphertext_sha256=hx(d.ciphertext_sha256),
        ciphertext_size=d.ciphertext_size,
        parents=json.loads(d.parents),
        previous_version=d.previous_version,
        registered_tx=d.registered_tx,
        retired=d.retired,
        log_seq=d.log_seq,
        created_at=d.created_at,
    )


def request_public(r: AccessRequest) -> RequestPublic:
    return RequestPublic(
        id=int(r.id or 0),
        dataset_id=r.dataset_id,
        requester=r.requester,
        purpose=r.purpose,
        days=r.days,
        max_uses=r.max_uses,
        status=r.status,
        reason=r.reason,
        log_seq=r.log_seq,
        created_at=r.created_at,
        decided_at=r.decided_at,
    )


def grant_public(g: Grant) -> GrantPublic:
    return GrantPublic(
        id=int(g.id or 0),
        dataset_id=g.dataset_id,
        grantee=g.grantee,
        generation=g.generation,
        request_id=g.request_id,
        purpose_hash=hx(g.purpose_hash),
        terms_hash=hx(g.terms_hash),
        expires_at=g.expires_at,
        max_uses=g.max_uses,
        uses=g.uses,
        revoked=g.revoked,
        granted_tx=g.granted_tx,
        log_seq=g.log_seq,
    )


def delivery_public(d: Delivery) -> DeliveryPublic:
    return DeliveryPublic(
        id=int(d.id or 0),
        receipt_id=hx(d.receipt_id),
        dataset_id=d.dataset_id,
        consumer=d.consumer,
        content_hash=hx(d.content_hash),
        grant_generation=d.grant_generation,
        log_seq=d.log_seq,
        credited=d.credited,
        credit_amount=d.credit_amount,
    )


def rating_public(r: Rating) -> RatingPublic:
    return RatingPublic(
        id=int(r.id or 0),
        dataset_id=r.dataset_id,
        rater=r.rater,
        score=r.score,
        comment=r.comment,
        log_seq=r.log_seq,
    )


# -- members ------------------------------------------------------------------------------------


def members(ledger: Ledger) -> MembersPublic:
    """The member directory, oldest first."""
    with ledger.db.session() as session:
        rows = list(session.exec(select(Member).order_by(col(Member.created_at))))
    return MembersPublic(data=[member_public(m) for m in rows], count=len(rows))


def member(ledger: Ledger, address: str) -> MemberPublic:
    """One member by its checksummed address."""
    with ledger.db.session() as session:
        row = session.get(Member, address)
    if row is None:
        raise NotFound(f"no member {address}", code=ErrorCode.MEMBER_NOT_FOUND)
    return member_public(row)


# -- datasets -----------------------------------------------------------------------------------


def datasets(
    ledger: Ledger, *, owner: str | None = None, limit: int = 100, offset: int = 0
) -> DatasetsPublic:
    """The catalog: registered datasets' certificates and metadata, by id (never contents)."""
    with ledger.db.session() as session:
        query = select(Dataset).order_by(col(Dataset.id))
        if owner:
            query = query.where(Dataset.owner == owner)
        rows = list(session.exec(query.offset(offset).limit(limit)))
    return DatasetsPublic(data=[dataset_public(d) for d in rows], count=len(rows))


def dataset_detail(ledger: Ledger, dataset_id: int) -> DatasetPublic:
    """One dataset's certificate, metadata and schema."""
    with ledger.db.session() as session:
        return dataset_public(dataset(session, dataset_id))


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


def _owned(session: Session, address: str) -> list[int]:
    return list(session.exec(select(Dataset.id).where(Dataset.owner == address)))


def requests(
    ledger: Ledger,
    viewer: Standing,
    *,
    dataset_id: int | None = None,
    status: str | None = None,
    limit: int = 200,
) -> RequestsPublic:
    """The requests ``viewer`` may see: its own, those to its datasets, or all for overseers."""
    with ledger.db.session() as session:
        query = select(AccessRequest).order_by(col(AccessRequest.id))
        if not viewer.oversees:
            owned = _owned(session, viewer.address)
            query = query.where(
                or_(
                    col(AccessRequest.requester) == viewer.address,
                    col(AccessRequest.dataset_id).in_(owned or [-1]),
                )
            )
        if dataset_id is not None:
            query = query.where(AccessRequest.dataset_id == dataset_id)
        if status is not None:
            query = query.where(AccessRequest.status == status)
        rows = list(session.exec(query.limit(limit)))
    return RequestsPublic(data=[request_public(r) for r in rows], count=len(rows))


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
    ledger: Ledger, viewer: Standing, *, dataset_id: int | None = None, limit: int = 200
) -> GrantsPublic:
    """The grants ``viewer`` may see: received, given on its datasets, or all for overseers."""
    with ledger.db.session() as session:
        query = select(Grant).order_by(col(Grant.id))
        if not viewer.oversees:
            owned = _owned(session, viewer.address)
            query = query.where(
                or_(col(Grant.grantee) == viewer.address, col(Grant.dataset_id).in_(owned or [-1]))
            )
        if dataset_id is not None:
            query = query.where(Grant.dataset_id == dataset_id)
        rows = list(session.exec(query.limit(limit)))
    return GrantsPublic(data=[grant_public(g) for g in rows], count=len(rows))

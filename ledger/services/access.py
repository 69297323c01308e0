"""Access requests and the owner's decisions: approve (grant), deny, revoke."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import Table, bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from ledger.errors import (
    Conflict,
    InvalidInput,
    LedgerError,
    NotFound,
    ReplayedNonce,
)
from ledger.protocol.actions import Domains, SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import purpose_hash, terms_document, terms_hash
from ledger.protocol.messages import GrantTerms
from ledger.services import flowlog, policy
from ledger.services.context import (
    MAX_ROW_ID,
    Ledger,
    check_signed,
    check_signed_at,
    consume_nonce,
    consume_nonces,
    dataset,
    nonce_key,
)
from ledger.store.models import AccessRequest, Dataset, Grant, WrappedKey, utcnow

MAX_DAYS = 3650
MAX_USES = 1_000_000


_REQUESTS: Table = AccessRequest.__table__  # type: ignore[attr-defined]  # SQLModel sets it
_DATASETS: Table = Dataset.__table__  # type: ignore[attr-defined]
# Statements built once: SQLAlchemy reuses their cache keys and compiled forms.
_TARGETS = core_select(_DATASETS.c.id, _DATASETS.c.owner, _DATASETS.c.retired).where(
    _DATASETS.c.id.in_(bindparam("ids", expanding=True))
)
_TARGET = core_select(_DATASETS.c.owner, _DATASETS.c.retired).where(
    _DATASETS.c.id == bindparam("id")
)
_INSERT_REQUESTS = _REQUESTS.insert().returning(
    _REQUESTS.c.id, _REQUESTS.c.log_seq, sort_by_parameter_order=True
)

#: Most signed requests one ``request_access_batch`` call takes.
MAX_BATCH = 10_000


@dataclass(frozen=True)
class _RequestForm:
    """A request whose signature, deadline and standard form have been checked."""

    signed: SignedAction
    requester: str
    dataset_id: int
    purpose: str
    days: int
    max_uses: int


def _request_form(domains: Domains, now: int, signed: SignedAction) -> _RequestForm:
    """Signature, deadline and the standard form of a request (purpose, duration, uses)."""
    requester = check_signed_at(domains, now, signed, "request")
    msg = signed.message
    purpose = str(msg["purpose"]).strip()
    days, uses = int(msg["days"]), int(msg["maxUses"])
    if not 10 <= len(purpose) <= 2000:
        raise InvalidInput("purpose must be 10 to 2000 characters")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1 to {MAX_DAYS}")
    if not 1 <= uses <= MAX_USES:
        raise InvalidInput(f"maxUses must be 1 to {MAX_USES}")
    return _RequestForm(signed, requester, int(msg["datasetId"]), purpose, days, uses)


def _target_refusal(form: _RequestForm, target: tuple[str, bool] | None) -> LedgerError | None:
    """Why the dataset ``(owner, retired)`` -- None if there is none -- cannot be requested."""
    if target is None:
        return NotFound(f"no dataset {form.dataset_id}", code=ErrorCode.DATASET_NOT_FOUND)
    owner, retired = target
    if retired:
        return Conflict(f"dataset {form.dataset_id} is retired", code=ErrorCode.DATASET_RETIRED)
    if owner == form.requester:
        return InvalidInput("a member cannot request its own dataset", code=ErrorCode.OWN_DATASET)
    return None


def _targets(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, bool]]:
    """``id -> (owner, retired)`` of the datasets among ``ids`` (one query per 500 ids)."""
    unique = [i for i in dict.fromkeys(ids) if 0 <= i <= MAX_ROW_ID]
    found: dict[int, tuple[str, bool]] = {}
    for start in range(0, len(unique), 500):
        rows = session.connection().execute(_TARGETS, {"ids": unique[start : start + 500]})
        for dataset_id, owner, retired in rows:
            found[int(dataset_id)] = (str(owner), bool(retired))
    return found


def _refusal_in(session: Session, form: _RequestForm, *, operator: str) -> LedgerError | None:
    """The member and dataset checks of one request, in ``request_access``'s order."""
    refusal: LedgerError | None = policy.standing(
        session, form.requester, operator=operator
    ).writer_refusal()
    if refusal is None:
        target = None
        if 0 <= form.dataset_id <= MAX_ROW_ID:
            found = session.connection().execute(_TARGET, {"id": form.dataset_id}).first()
            target = None if found is None else (str(found[0]), bool(found[1]))
        refusal = _target_refusal(form, target)
    return refusal


def _insert_requests(
    session: Session, forms: Sequence[_RequestForm], seqs: Sequence[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Insert the request rows (one bulk insert); returns the rows and their ids, in order."""
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "dataset_id": form.dataset_id,
            "requester": form.requester,
            "purpose": form.purpose,
            "days": form.days,
            "max_uses": form.max_uses,
            "status": "pending",
            "reason": None,
            "log_seq": seq,
            "decided_log_seq": None,
            "created_at": now,
            "decided_at": None,
        }
        for form, seq in zip(forms, seqs, strict=True)
    ]
    if not rows:
        return [], []
    result = session.connection().execute(_INSERT_REQUESTS, rows)
    ids = {int(seq): int(row_id) for row_id, seq in result}
    return rows, [ids[row["log_seq"]] for row in rows]


def request_access(ledger: Ledger, signed: SignedAction) -> AccessRequest:
    """Record a signed request (standard form: purpose, duration, uses)."""
    form = _request_form(ledger.domains, ledger.now(), signed)
    with ledger.db.transaction() as session:
        refusal = _refusal_in(session, form, operator=ledger.operator)
        if refusal is not None:
            raise refusal
        consume_nonce(session, signed)
        seq = flowlog.append(session, signed, dataset_id=form.dataset_id)
        (row,), (row_id,) = _insert_requests(session, [form], [seq])
    return AccessRequest(id=row_id, **row)


@dataclass(frozen=True)
class Accepted:
    """One item of a batch that was recorded: its request id and flow-log sequence number."""

    index: int
    request_id: int
    log_seq: int


@dataclass(frozen=True)
class Refused:
    """One item of a batch that was not accepted, and why (the error ``request_access`` raises)."""

    index: int
    code: str
    message: str


@dataclass(frozen=True)
class BatchOutcome:
    """What ``request_access_batch`` did: accepted and refused items, each in input order."""

    accepted: list[Accepted]
    refused: list[Refused]


@dataclass(frozen=True)
class CheckedBatch:
    """A batch after the checks that need no database (signature, deadline, form)."""

    signed: Sequence[SignedAction]
    checked: list[_RequestForm | tuple[str, str]]  # a form, or (code, message) of a refusal


def _form_or_refusal(
    domains: Domains, now: int, signed: SignedAction
) -> _RequestForm | tuple[str, str]:
    try:
        return _request_form(domains, now, signed)
    except LedgerError as exc:
        return exc.code, exc.message


def _check_slice(
    domains: Domains, now: int, part: Sequence[SignedAction]
) -> list[_RequestForm | tuple[str, str]]:
    """Signature and form checks of a slice of a batch (picklable: runs in a worker process)."""
    return [_form_or_refusal(domains, now, signed) for signed in part]


def check_request_batch(
    ledger: Ledger,
    signed: Sequence[SignedAction],
    *,
    executor: Executor | None = None,
    workers: int = 1,
) -> CheckedBatch:
    """The database-free checks of a batch of signed requests: signature, deadline, form.

    With ``executor`` (a process pool: signature recovery holds the GIL) the batch is cut in
    ``workers + 1`` slices; ``workers`` of them go to the executor and the calling thread
    checks the last one meanwhile.
    """
    if len(signed) > MAX_BATCH:
        raise InvalidInput(f"at most {MAX_BATCH} signed requests per batch")
    domains, now = ledger.domains, ledger.now()
    if executor is None or workers < 1 or len(signed) < 2 * (workers + 1):
        return CheckedBatch(signed, _check_slice(domains, now, signed))
    size = -(-len(signed) // (workers + 1))
    parts = [signed[i : i + size] for i in range(0, len(signed), size)]
    futures = [executor.submit(_check_slice, domains, now, part) for part in parts[:-1]]
    last = _check_slice(domains, now, parts[-1])
    checked = [item for future in futures for item in future.result()]
    return CheckedBatch(signed, checked + last)


def _record_request_batch(ledger: Ledger, batch: CheckedBatch) -> BatchOutcome:
    """Record a batch checked by ``check_request_batch`` in ONE database transaction.

    It trusts ``batch`` for the signature and form checks: only ``request_access_batch``
    calls it, with what ``check_request_batch`` returned a moment before.
    """
    refused: dict[int, Refused] = {}
    forms: dict[int, _RequestForm] = {}
    for index, item in enumerate(batch.checked):
        if isinstance(item, _RequestForm):
            forms[index] = item
        else:
            refused[index] = Refused(index, *item)
    accepted: list[Accepted] = []
    with ledger.db.transaction() as session:
        standing = policy.standings(
            session, [f.requester for f in forms.values()], operator=ledger.operator
        )
        targets = _targets(session, [f.dataset_id for f in forms.values()])
        keys: dict[int, tuple[str, str]] = {}
        seen: set[tuple[str, str]] = set()
        for index, form in list(forms.items()):
            refusal = standing[form.requester].writer_refusal() or _target_refusal(
                form, targets.get(form.dataset_id)
            )
            key = nonce_key(form.signed)
            if refusal is None and key is not None and key in seen:
                refusal = ReplayedNonce(f"nonce {key[1]} already used by {key[0]}")
            if refusal is not None:
                refused[index] = Refused(index, refusal.code, refusal.message)
                del forms[index]
            elif key is not None:
                seen.add(key)
                keys[index] = key
        used = consume_nonces(session, list(keys.values()))
        for index, key in keys.items():
            if key in used:
                error = ReplayedNonce(f"nonce {key[1]} already used by {key[0]}")
                refused[index] = Refused(index, error.code, error.message)
                del forms[index]
        order = sorted(forms)
        ordered = [forms[i] for i in order]
        seqs = flowlog.append_many(
            session, [flowlog.Item(f.signed, dataset_id=f.dataset_id) for f in ordered]
        )
        _, ids = _insert_requests(session, ordered, seqs)
        accepted = [
            Accepted(index, row_id, seq)
            for index, row_id, seq in zip(order, ids, seqs, strict=True)
        ]
    return BatchOutcome(accepted, [refused[i] for i in sorted(refused)])


def request_access_batch(
    ledger: Ledger,
    signed: Sequence[SignedAction],
    *,
    executor: Executor | None = None,
    workers: int = 1,
) -> BatchOutcome:
    """Record many signed requests in ONE database transaction (group commit).

    Every item gets exactly ``request_access``'s checks -- signature, deadline and form, then
    member standing, dataset, nonce -- and an item that fails one is refused on its own
    (``BatchOutcome.refused``: its index, the error code and message) without affecting the
    others. The accepted ones are appended to the flow log in input order under one log lock
    with bulk inserts, their nonces recorded and their request rows written, all committed
    together (``BatchOutcome.accepted``: index, request id, log sequence number). A nonce
    used twice within the batch is accepted the first time only.

    ``executor`` (a process pool) shares the signature checks with the calling thread, see
    ``check_request_batch``; the database work always runs in the calling thread.
    """
    checked = check_request_batch(ledger, signed, executor=executor, workers=workers)
    return _record_request_batch(ledger, checked)


def _pending(session: Session, request_id: int) -> AccessRequest:
    request = session.get(AccessRequest, request_id) if 0 <= request_id <= MAX_ROW_ID else None
    if request is None:
        raise NotFound(f"no access request {request_id}", code=ErrorCode.REQUEST_NOT_FOUND)
    if request.status != "pending":
        raise Conflict(
            f"request {request_id} is already {request.status}", code=ErrorCode.REQUEST_DECIDED
        )
    return request


def approve(
    ledger: Ledger,
    request_id: int,
    signed: SignedAction,
    *,
    wrapped_key: bytes,
    admin_approval: bytes = b"",
) -> Grant:
    """Relay the owner-signed grant for a pending request and store the wrapped key."""
    owner = check_signed(ledger, signed, "grant")
    msg = signed.message
    if not 0 < len(wrapped_key) <= 4096:
        raise InvalidInput("wrapped_key must be 1 to 4096 bytes")
    with ledger.db.session() as session:
        request = _pending(session, request_id)
        target = dataset(session, request.dataset_id)
        policy.require_owner(owner, target.owner, "only the dataset's owner approves its requests")
        policy.standing(session, owner, operator=ledger.operator).require_member(label="owner")
        policy.standing(session, request.requester, operator=ledger.operator).require_member(
            label="requester"
        )
        terms = GrantTerms(
            dataset_id=int(msg["datasetId"]),
            grantee=to_checksum_address(str(msg["grantee"])),
            purpose_hash=bytes.fromhex(str(msg["purposeHash"])[2:]),
            expires_at=int(msg["expiresAt"]),
            max_uses=int(msg["maxUses"]),
            terms_hash=bytes.fromhex(str(msg["termsHash"])[2:]),
        )
        _check_terms(ledger, request, terms, wrapped_key)
    nonce = int(msg["nonce"])
    if nonce != ledger.chain.nonce("AccessLedger", owner):
        raise ReplayedNonce(f"grant nonce {nonce} is not the owner's current nonce")
    with ledger.db.transaction() as session:
        request = _pending(session, request_id)
        tx = ledger.chain.grant_for(
            terms,
            nonce=nonce,
            deadline=int(msg["deadline"]),
            signature=signed.signature,
            admin_approval=admin_approval,
        )
        generation = int(tx.event("AccessGranted").args["generation"])
        seq = flowlog.append(
            session,
            signed,
            dataset_id=terms.dataset_id,
            context={
                "tx": tx.tx_hash,
                "request_id": request_id,
                "generation": generation,
                "terms": terms_document(request_id, wrapped_key),
            },
        )
        grant = Grant(
            dataset_id=terms.dataset_id,
            grantee=terms.grantee,
            generation=generation,
            request_id=request_id,
            purpose_hash=terms.purpose_hash,
            terms_hash=terms.terms_hash,
            expires_at=terms.expires_at,
            max_uses=terms.max_uses,
            granted_tx=tx.tx_hash,
            log_seq=seq,
        )
        session.add(grant)
        session.add(
            WrappedKey(
                dataset_id=terms.dataset_id,
                recipient=terms.grantee,
                generation=generation,
                wrapped=wrapped_key,
            )
        )
        request.status = "approved"
        request.decided_log_seq = seq
        request.decided_at = dt.datetime.now(dt.UTC)
        session.add(request)
        session.flush()
        session.refresh(grant)
        session.expunge(grant)
    return grant


def _check_terms(
    ledger: Ledger, request: AccessRequest, terms: GrantTerms, wrapped_key: bytes
) -> None:
    """The signed grant must be what was requested, and commit to the wrapped key handed over."""
    problems = []
    if terms.dataset_id != request.dataset_id:
        problems.append("datasetId differs from the request")
    if terms.grantee != request.requester:
        problems.append("grantee is not the requester")
    if terms.max_uses != request.max_uses:
        problems.append("maxUses differs from the request")
    if terms.purpose_hash != purpose_hash(request.purpose):
        problems.append("purposeHash is not the request's purpose")
    if terms.terms_hash != terms_hash(int(request.id or 0), wrapped_key):
        problems.append("termsHash does not commit to this request and wrapped key")
    latest = ledger.now() + request.days * 86400 + 3600
    if not ledger.now() < terms.expires_at <= latest:
        problems.append("expiresAt is outside the requested duration")
    if problems:
        raise InvalidInput(
            "grant does not match the request: " + "; ".join(problems),
            code=ErrorCode.GRANT_MISMATCH,
        )


def deny(ledger: Ledger, signed: SignedAction) -> AccessRequest:
    """Record the owner's signed refusal of a pending request."""
    owner = check_signed(ledger, signed, "deny")
    request_id = int(signed.message["requestId"])
    with ledger.db.transaction() as session:
        request = _pending(session, request_id)
        policy.require_owner(
            owner,
            dataset(session, request.dataset_id).owner,
            "only the dataset's owner denies its requests",
        )
        policy.standing(session, owner, operator=ledger.operator).require_member(label="owner")
        consume_nonce(session, signed)
        seq = flowlog.append(session, signed, dataset_id=request.dataset_id)
        request.status = "denied"
        request.reason = str(signed.message["reason"])[:2000]
        request.decided_log_seq = seq
        request.decided_at = dt.datetime.now(dt.UTC)
        session.add(request)
        session.flush()
        session.refresh(request)
        session.expunge(request)
    return request


def current_grant(session: Session, dataset_id: int, grantee: str) -> Grant | None:
    return session.exec(
        select(Grant)
        .where(Grant.dataset_id == dataset_id, Grant.grantee == grantee)
        .order_by(col(Grant.generation).desc())
    ).first()


def revoke(ledger: Ledger, signed: SignedAction) -> Grant:
    """Relay the owner-signed revocation of a grant."""
    owner = check_signed(ledger, signed, "revoke")
    msg = signed.message
    dataset_id, grantee = int(msg["datasetId"]), str(msg["grantee"])
    with ledger.db.session() as session:
        policy.require_owner(
            owner, dataset(session, dataset_id).owner, "only the dataset's owner revokes its grants"
        )
        grant = current_grant(session, dataset_id, grantee)
        if grant is None:
            raise NotFound(
                f"no grant of dataset {dataset_id} to {grantee}", code=ErrorCode.GRANT_NOT_FOUND
            )
        if grant.revoked:
            raise Conflict("grant already revoked", code=ErrorCode.GRANT_REVOKED)
    nonce = int(msg["nonce"])
    if nonce != ledger.chain.nonce("AccessLedger", owner):
        raise ReplayedNonce(f"revoke nonce {nonce} is not the owner's current nonce")
    with ledger.db.transaction() as session:
        grant = current_grant(session, dataset_id, grantee)
        assert grant is not None
        tx = ledger.chain.revoke_for(
            dataset_id,
            grantee,
            nonce=nonce,
            deadline=int(msg["deadline"]),
            signature=signed.signature,
        )
        flowlog.append(
            session,
            signed,
            dataset_id=dataset_id,
            context={"tx": tx.tx_hash, "generation": grant.generation},
        )
        grant.revoked = True
        session.add(grant)
        session.flush()
        session.refresh(grant)
        session.expunge(grant)
    return grant

"""Access requests: the signed request in its standard form, one at a time or in bulk.

One path of checks for both: :func:`request_access` and :func:`request_access_batch` run the
same ``_request_form`` (signature, deadline, the protocol's limits), the same member policy and
the same ``_target_refusal``; the batch only shares the work (one standing query, one log lock
and one bulk insert for many requests, group commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import Table
from sqlmodel import Session

from ledger.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LedgerError,
    NotFound,
    ReplayedNonce,
)
from ledger.protocol.actions import Domains, SignedAction
from ledger.protocol.canonical import CanonicalText, canonical_text
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import RequestForm
from ledger.services import flowlog, policy
from ledger.services.admission import REPLAYED, REPLAYED_MESSAGE, Admission, Claim
from ledger.services.context import (
    MAX_ROW_ID,
    Ledger,
    check_signed_at,
    consume_nonce,
    consume_nonces,
    nonce_key,
)
from ledger.store.driver import Driver
from ledger.store.models import AccessRequest, utcnow

_REQUESTS: Table = AccessRequest.__table__  # type: ignore[attr-defined]  # SQLModel sets it
# Read and written by every access request: sent straight to the driver (ledger.store.driver).
_TARGETS = (
    "SELECT datasets.id, datasets.owner, datasets.retired, members.status FROM datasets"
    " LEFT OUTER JOIN members ON members.address = datasets.owner WHERE datasets.id IN ({})"
)
_REQUEST_COLUMNS = (
    "dataset_id",
    "requester",
    "purpose",
    "days",
    "max_uses",
    "purpose_category",
    "legal_basis",
    "retention_days",
    "processing_location",
    "status",
    "reason",
    "log_seq",
    "decided_log_seq",
    "created_at",
    "decided_at",
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
    form: RequestForm
    #: The signed action's canonical text for its log leaf, written here rather than in the
    #: batch's transaction (which holds the database's turn to write).
    signed_text: CanonicalText


def _request_form(domains: Domains, now: int, signed: SignedAction) -> _RequestForm:
    """Signature, deadline and the standard form of a request (the protocol's limits)."""
    requester = check_signed_at(domains, now, signed, "request")
    msg = signed.message
    purpose = str(msg["purpose"]).strip()
    return _RequestForm(
        signed,
        requester,
        int(msg["datasetId"]),
        purpose,
        int(msg["days"]),
        int(msg["maxUses"]),
        RequestForm.of(msg),  # checked with the limits (check_request_form)
        canonical_text(signed.to_json()),
    )


def owner_suspended(dataset_id: int, owner: str) -> Forbidden:
    """A suspended owner's datasets are frozen: no request, approval or fetch until the
    operator reinstates the owner (its grants stay on chain and resume then)."""
    return Forbidden(
        f"the owner {owner} of dataset {dataset_id} is suspended: its datasets are frozen",
        code=ErrorCode.OWNER_SUSPENDED,
    )


def _target_refusal(
    form: _RequestForm, target: tuple[str, bool, bool] | None
) -> LedgerError | None:
    """Why the dataset ``(owner, retired, owner active)`` -- None if there is none -- cannot be
    requested."""
    if target is None:
        return NotFound(f"no dataset {form.dataset_id}", code=ErrorCode.DATASET_NOT_FOUND)
    owner, retired, owner_active = target
    if retired:
        return Conflict(f"dataset {form.dataset_id} is retired", code=ErrorCode.DATASET_RETIRED)
    if not owner_active:
        return owner_suspended(form.dataset_id, owner)
    if owner == form.requester:
        return InvalidInput("a member cannot request its own dataset", code=ErrorCode.OWN_DATASET)
    return None


def _targets(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, bool, bool]]:
    """``id -> (owner, retired, owner active)`` of the datasets among ``ids`` (one query per
    500 ids)."""
    unique = [i for i in dict.fromkeys(ids) if 0 <= i <= MAX_ROW_ID]
    return {
        int(dataset_id): (str(owner), bool(retired), status == "active")
        for dataset_id, owner, retired, status in Driver.of(session).rows_in(_TARGETS, unique)
    }


def _refusal_in(session: Session, form: _RequestForm, *, operator: str) -> LedgerError | None:
    """The member and dataset checks of one request, in ``request_access``'s order."""
    refusal: LedgerError | None = policy.standing(
        session, form.requester, operator=operator
    ).writer_refusal()
    if refusal is None:
        target = _targets(session, [form.dataset_id]).get(form.dataset_id)
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
            "purpose_category": form.form.purpose_category,
            "legal_basis": form.form.legal_basis,
            "retention_days": form.form.retention_days,
            "processing_location": form.form.processing_location,
            "status": "pending",
            "reason": None,
            "log_seq": seq,
            "decided_log_seq": None,
            "created_at": now,
            "decided_at": None,
        }
        for form, seq in zip(forms, seqs, strict=True)
    ]
    values = [tuple(row[name] for name in _REQUEST_COLUMNS) for row in rows]
    inserted = Driver.of(session).insert(
        _REQUESTS, _REQUEST_COLUMNS, values, returning=("id", "log_seq")
    )  # rows come back in no set order: each is matched by its log_seq
    ids = {int(seq): int(row_id) for row_id, seq in inserted}
    return rows, [ids[row["log_seq"]] for row in rows]


def request_access(ledger: Ledger, signed: SignedAction) -> AccessRequest:
    """Record a signed request (standard form: purpose and its category, legal basis,
    retention, processing location, duration, uses)."""
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


#: One signed request after the checks that need no database: its form, or the (code,
#: message) of its refusal.
Checked: TypeAlias = _RequestForm | tuple[str, str]


@dataclass(frozen=True)
class CheckedBatch:
    """A batch after the checks that need no database (signature, deadline, form)."""

    signed: Sequence[SignedAction]
    checked: list[Checked]


def _form_or_refusal(domains: Domains, now: int, signed: SignedAction) -> Checked:
    try:
        return _request_form(domains, now, signed)
    except LedgerError as exc:
        return exc.code, exc.message


def _check_slice(domains: Domains, now: int, part: Sequence[SignedAction]) -> list[Checked]:
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


@dataclass(frozen=True)
class RequestNonces:
    """The claims of the signed HTTP requests that carried a batch's items, one per item.

    Their nonces are used in the batch's own transaction (``Admission.admit_in``): a write then
    costs one transaction, and its request nonce commits with it.
    """

    admission: Admission
    claims: Sequence[Claim]


def _record_request_batch(
    ledger: Ledger, batch: CheckedBatch, nonces: RequestNonces | None = None
) -> tuple[BatchOutcome, list[dict[str, Any]]]:
    """Record a batch checked by ``check_request_batch`` in ONE database transaction; also
    returns the request rows written, in the order of ``BatchOutcome.accepted``.

    It trusts ``batch`` for the signature and form checks: only ``request_access_batch`` and
    ``request_access_each`` call it, with what ``check_request_batch`` returned a moment before.
    An item whose carrying request was replayed is refused before any other check (as the
    request would have been), whatever else is wrong with it.
    """
    if nonces is not None and len(nonces.claims) != len(batch.signed):
        raise ValueError("one carrying request per item")
    refused: dict[int, Refused] = {}
    forms: dict[int, _RequestForm] = {}
    for index, item in enumerate(batch.checked):
        if isinstance(item, _RequestForm):
            forms[index] = item
        else:
            refused[index] = Refused(index, *item)
    with ledger.db.transaction() as session:
        known: dict[str, policy.Standing] = {}
        if nonces is not None:
            admitted = nonces.admission.admit_in(session, nonces.claims)
            for index, admitted_as in enumerate(admitted):
                if admitted_as is REPLAYED:
                    refused[index] = Refused(index, ErrorCode.REQUEST_REPLAYED, REPLAYED_MESSAGE)
                    forms.pop(index, None)
                else:
                    known[admitted_as.address] = admitted_as
        requesters = [f.requester for f in forms.values() if f.requester not in known]
        standing = {**policy.standings(session, requesters, operator=ledger.operator), **known}
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
            session,
            [flowlog.Item(f.signed, f.dataset_id, signed_text=f.signed_text) for f in ordered],
        )
        rows, ids = _insert_requests(session, ordered, seqs)
    accepted = [
        Accepted(index, row_id, seq) for index, row_id, seq in zip(order, ids, seqs, strict=True)
    ]
    return BatchOutcome(accepted, [refused[i] for i in sorted(refused)]), rows


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
    return _record_request_batch(ledger, checked)[0]


def request_access_each(
    ledger: Ledger, signed: Sequence[SignedAction], nonces: RequestNonces | None = None
) -> list[AccessRequest | LedgerError]:
    """``request_access`` for each of ``signed``, all recorded in one transaction.

    The broker's HTTP route sends concurrent requests through here (one durable commit for
    many), with the request ``nonces`` the same transaction uses; each item gets its own row,
    or the error ``request_access`` (or a replayed request) would have raised.
    """
    recorded = record_each(ledger, check_request_batch(ledger, signed), nonces)
    return [r.row() if isinstance(r, Inserted) else r for r in recorded]


@dataclass(frozen=True, slots=True)
class Inserted:
    """An accepted request as its batch inserted it: the row's id and column values.

    The model is built by :meth:`row`, by whoever reads the answer: the broker's batch thread
    hands these out while it holds the turn to write, and building each model there cost a
    tenth of the batch.
    """

    id: int
    values: dict[str, Any]

    def row(self) -> AccessRequest:
        """The request's row, not validated again and attached to no session: read it, never
        add or merge it into a session (SQLAlchemy does not know it)."""
        return AccessRequest.model_construct(id=self.id, **self.values)


#: What recording one access request answers: the row inserted, or why it was refused.
Recorded: TypeAlias = Inserted | LedgerError


def record_each(
    ledger: Ledger, batch: CheckedBatch, nonces: RequestNonces | None = None
) -> list[Recorded]:
    """:func:`request_access_each` for a batch whose items were checked one by one as they
    arrived (``check_request_batch`` of one item each): its transaction only records."""
    outcome, rows = _record_request_batch(ledger, batch, nonces)
    answers: list[Recorded] = [LedgerError("unanswered")] * len(batch.signed)
    for refusal in outcome.refused:
        answers[refusal.index] = LedgerError(refusal.message, code=refusal.code)
    for accepted, row in zip(outcome.accepted, rows, strict=True):
        answers[accepted.index] = Inserted(accepted.request_id, row)
    return answers

"""Who may do what: a caller's standing, and every authorization rule written once.

A caller's *standing* is its role and whether it is active:

- the operator: the broker's own key. It runs the broker, is no member and is always active;
- a member: a department, an enterprise or a regulator, active or suspended;
- nobody: a key no one onboarded (``role`` is ``None``).

The routes learn the caller's standing from its request signature (``api.auth``); the use cases
look up the signer of an action (:func:`standing`). Both then ask the same questions, so each
refusal has one wording, status and code (tests/support/authz_matrix.py lists them):

``require_member``
    onboarded and active (the operator counts); else ``not_a_member`` or ``member_suspended``.
``require(*roles)``
    ... and in one of ``roles``; else ``wrong_role``.
``require_writer``
    ... and owns or consumes data: a department or an enterprise. Regulators read everything
    and write nothing (``regulator_read_only``); the operator holds no data (``wrong_role``).
``require_fetcher``
    as ``require_writer``, but a suspended department or enterprise passes: the fetch service
    refuses it and logs the attempt.
``oversees``
    the operator and regulators see every dataset, request, grant and trace (never contents).
``require_party``
    a member sees what it is a party to (its datasets, the requests and grants it made or
    received or that concern its datasets, its own trace); overseers see everything; anyone
    else is refused with ``not_visible``.
``require_owner``
    only a dataset's owner decides about it (``not_owner``).
``own``
    a writer's signed action must be signed by the caller itself (``not_actor``).
``require_operator``
    onboarding and suspension are signed by the operator's key (``operator_only``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Self, cast

from sqlalchemy import Table, bindparam, select
from sqlmodel import Session

from ledger.errors import Forbidden
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import SignedActionIn
from ledger.services.context import Ledger
from ledger.store.driver import Driver
from ledger.store.models import Member

Role = Literal["operator", "department", "enterprise", "regulator"]

#: Roles that see everything (metadata, never contents).
OVERSEERS: Final[frozenset[Role]] = frozenset({"operator", "regulator"})
#: Who owns and consumes data (signs writes), when active.
WRITERS: Final[frozenset[Role]] = frozenset({"department", "enterprise"})

_MEMBERS: Table = Member.__table__  # type: ignore[attr-defined]  # SQLModel sets it on tables
# Statements built once: SQLAlchemy reuses their cache keys and compiled forms.
_ONE = select(_MEMBERS.c.kind, _MEMBERS.c.status).where(_MEMBERS.c.address == bindparam("address"))
_MANY = "SELECT address, kind, status FROM members WHERE address IN ({})"  # run by the driver


def require_operator(actor: str, operator: str, why: str) -> None:
    """Only the broker's operator (``operator``) may sign this; ``why`` is the refusal's message."""
    if actor != operator:
        raise Forbidden(why, code=ErrorCode.OPERATOR_ONLY)


def require_owner(actor: str, owner: str, why: str) -> None:
    """Only ``owner`` may do this; ``why`` is the refusal's message."""
    if actor != owner:
        raise Forbidden(why, code=ErrorCode.NOT_OWNER)


@dataclass(frozen=True)
class Standing:
    """Who a caller is: its address, its role (``None``: nobody) and whether it is active."""

    address: str
    role: Role | None = None
    active: bool = False

    @classmethod
    def of_member(cls, address: str, kind: str | None, status: str | None) -> Standing:
        """The standing of a member row's ``kind`` and ``status`` (``None``: no row)."""
        if kind is None:
            return cls(address)
        return cls(address, cast(Role, kind), status == "active")

    @classmethod
    def operator(cls, address: str) -> Standing:
        return cls(address, "operator", True)

    @property
    def oversees(self) -> bool:
        """The operator and active regulators read everything (except contents)."""
        return self.active and self.role in OVERSEERS

    # -- refusals (None: allowed); the require_* methods raise them --------------------------

    def member_refusal(self, *, label: str = "member") -> Forbidden | None:
        """Why this caller is no active member (the operator counts as one); ``label`` names it."""
        if self.role is None:
            return Forbidden(
                f"{self.address} is not an onboarded member", code=ErrorCode.NOT_A_MEMBER
            )
        if not self.active:
            return Forbidden(
                f"{label} {self.address} is suspended", code=ErrorCode.MEMBER_SUSPENDED
            )
        return None

    def writer_refusal(self, *, label: str = "member") -> Forbidden | None:
        """Why this caller may not own or consume data (sign writes)."""
        refusal = self.member_refusal(label=label)
        if refusal is not None:
            return refusal
        if self.role == "regulator":
            return Forbidden(
                "regulators read everything and write nothing", code=ErrorCode.REGULATOR_READ_ONLY
            )
        if self.role == "operator":
            return Forbidden(
                "the operator runs the broker; it owns and consumes no data",
                code=ErrorCode.WRONG_ROLE,
            )
        return None

    def require_member(self, *, label: str = "member") -> Self:
        _raise(self.member_refusal(label=label))
        return self

    def require(self, *roles: Role) -> Self:
        self.require_member()
        if self.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}", code=ErrorCode.WRONG_ROLE)
        return self

    def require_fetcher(self) -> Self:
        """As :meth:`require_writer`, except that a suspended department or enterprise goes on:
        its signed fetch reaches the service, which logs the attempt as refused (so the log and
        the early warnings show fetches tried during a suspension)."""
        if not (self.role in WRITERS and not self.active):
            self.require_writer()
        return self

    def require_writer(self, *, label: str = "member") -> Self:
        """Departments and enterprises: regulators and the operator are refused.

        Routes call it before any signed action is even parsed, so a refused role learns
        nothing about its body.
        """
        _raise(self.writer_refusal(label=label))
        return self

    # -- objects -------------------------------------------------------------------------------

    def sees(self, *parties: str) -> bool:
        """Whether this caller may see an object whose parties are ``parties``."""
        return self.oversees or self.address in parties

    def require_party(self, *parties: str, why: str) -> Self:
        """Refuse (``not_visible``, message ``why``) unless :meth:`sees` the object."""
        if not self.sees(*parties):
            raise Forbidden(why, code=ErrorCode.NOT_VISIBLE)
        return self

    def require_owner(self, owner: str, why: str) -> Self:
        require_owner(self.address, owner, why)
        return self

    def own(self, signed: SignedActionIn, *, code: str = ErrorCode.NOT_ACTOR) -> SignedAction:
        """Parse a writer's signed action, which must be signed by the caller itself."""
        self.require_writer()
        action = signed.parse()
        if action.actor != self.address:
            raise Forbidden("the signed action must be signed by the caller", code=code)
        return action


def _raise(refusal: Forbidden | None) -> None:
    if refusal is not None:
        raise refusal


# -- looking standing up ---------------------------------------------------------------------


def standing(session: Session, address: str, *, operator: str) -> Standing:
    """The standing of ``address``; ``operator`` is the broker's own address."""
    if address == operator:
        return Standing.operator(address)
    found = session.connection().execute(_ONE, {"address": address}).first()
    if found is None:
        return Standing(address)
    return Standing.of_member(address, str(found[0]), str(found[1]))


def standings(
    reader: Session | Driver, addresses: Sequence[str], *, operator: str
) -> dict[str, Standing]:
    """The standing of each of ``addresses`` (one query per 500 of them), read in ``reader``."""
    found = {address: Standing(address) for address in addresses}
    members = [address for address in found if address != operator]
    # Read for every request: straight through the driver (ledger.store.driver).
    driver = reader if isinstance(reader, Driver) else Driver.of(reader)
    for address, kind, status in driver.rows_in(_MANY, members):
        found[str(address)] = Standing.of_member(str(address), str(kind), str(status))
    if operator in found:
        found[operator] = Standing.operator(operator)
    return found


def standing_of(ledger: Ledger, address: str) -> Standing:
    """The standing of ``address`` at the broker (one read)."""
    with ledger.db.session() as session:
        return standing(session, address, operator=ledger.operator)

"""Who may call what: the broker's authorization matrix, every route times every role.

This table is the policy as written down. ``tests/http/test_http_authz.py`` holds the running broker
to it (every route the app serves must have a row, and every cell is probed over HTTP), and
``scripts/authz_table.py`` renders it as ``docs/authorization.md`` for the README.

A cell is either allowed (``✓``: the probe succeeds) or refused with a status and the error
``code`` of the body. Refusals happen before any effect: a refused write leaves no row, no log
record, no blob and no transaction behind. Where a route acts on one object, the probes aim at
the owner's dataset, the grantee's own request, the owner's address (see ``PROBE_TARGETS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal[
    "operator",
    "broker",
    "owner",
    "department",
    "grantee",
    "enterprise",
    "regulator",
    "unknown",
    "suspended",
    "unsigned",
]

ROLES: Final[tuple[Role, ...]] = (
    "operator",
    "broker",
    "owner",
    "department",
    "grantee",
    "enterprise",
    "regulator",
    "unknown",
    "suspended",
    "unsigned",
)

ROLE_TITLES: Final[dict[Role, str]] = {
    "operator": "operator",
    "broker": "broker key",
    "owner": "owner department",
    "department": "other department",
    "grantee": "enterprise with grant",
    "enterprise": "enterprise without grant",
    "regulator": "regulator",
    "unknown": "unknown key",
    "suspended": "suspended member",
    "unsigned": "no signature",
}

ROLE_MEANINGS: Final[dict[Role, str]] = {
    "operator": (
        "the data bureau's ADMIN key (`drl admin`, `--as operator`): signs onboarding, "
        "suspension, reinstatement, co-signatures and reassignments; it may live off the broker "
        "host; owns no data"
    ),
    "broker": (
        "the broker's own BROKER key (it relays, anchors and signs checkpoints): it has no "
        "standing at the API, so it cannot act as the operator or as a member"
    ),
    "owner": "the department that registered the dataset the probe aims at",
    "department": "another department, with no grant on that dataset",
    "grantee": "an enterprise holding a usable grant on that dataset",
    "enterprise": "an enterprise with no grant on that dataset",
    "regulator": "a REGULATOR member: reads everything, writes nothing, never reads contents",
    "unknown": "a valid request signature by a key nobody onboarded",
    "suspended": "a member the operator suspended (it held a grant before)",
    "unsigned": "no X-DRL-* signature headers at all",
}

Route = tuple[str, str]


@dataclass(frozen=True)
class Cell:
    """What one role gets from one route: allowed with a status, or refused with a code."""

    allowed: bool
    status: int
    code: str | None = None

    def render(self) -> str:
        return "✓" if self.allowed else f"✗ {self.status} `{self.code}`"


def ok(status: int = 200) -> Cell:
    return Cell(allowed=True, status=status)


def no(status: int, code: str) -> Cell:
    return Cell(allowed=False, status=status, code=code)


_OUTSIDERS: Final[dict[Role, Cell]] = {
    "broker": no(403, "not_a_member"),
    "unknown": no(403, "not_a_member"),
    "suspended": no(403, "member_suspended"),
    "unsigned": no(401, "unauthenticated"),
}
_PRODUCERS: Final[tuple[Role, ...]] = ("owner", "department", "grantee", "enterprise")


def _public() -> dict[Role, Cell]:
    return {role: ok() for role in ROLES}


def _members_read() -> dict[Role, Cell]:
    """Any active member, the operator and regulators."""
    return {role: ok() for role in ROLES} | _OUTSIDERS


def _overseers(**members: Cell) -> dict[Role, Cell]:
    """The operator and regulators; members as given, else ``wrong_role``."""
    cells: dict[Role, Cell] = {"operator": ok(), "regulator": ok()}
    for role in _PRODUCERS:
        cells[role] = members.get(role, no(403, "wrong_role"))
    return cells | _OUTSIDERS


def _operator_only(status: int = 200) -> dict[Role, Cell]:
    cells: dict[Role, Cell] = {role: no(403, "wrong_role") for role in ROLES}
    return cells | {"operator": ok(status)} | _OUTSIDERS


def _producers(default: Cell, **members: Cell) -> dict[Role, Cell]:
    """Writes by departments and enterprises only (never the operator or a regulator)."""
    cells: dict[Role, Cell] = {
        "operator": no(403, "wrong_role"),
        "regulator": no(403, "regulator_read_only"),
    }
    for role in _PRODUCERS:
        cells[role] = members.get(role, default)
    return cells | _OUTSIDERS


_NOT_OWNER = no(403, "not_owner")
_NOT_VISIBLE = no(403, "not_visible")

MATRIX: Final[dict[Route, dict[Role, Cell]]] = {
    ("GET", "/v1/health"): _public(),
    ("GET", "/v1/config"): _public(),
    ("POST", "/v1/members"): _operator_only(201),
    ("GET", "/v1/members"): _members_read(),
    ("GET", "/v1/members/{address}"): _members_read(),
    ("POST", "/v1/members/{address}/suspend"): _operator_only(),
    ("POST", "/v1/members/{address}/reinstate"): _operator_only(),
    ("POST", "/v1/members/{address}/key"): _producers(ok()),
    ("GET", "/v1/members/{address}/nonces"): _members_read(),
    ("GET", "/v1/members/{address}/credits"): _members_read(),
    ("GET", "/v1/datasets"): _members_read(),
    ("GET", "/v1/datasets/{dataset_id}"): _members_read(),
    ("GET", "/v1/catalog.jsonld"): _members_read(),
    ("POST", "/v1/datasets/uploads"): _producers(ok(201)),
    ("PUT", "/v1/datasets/uploads/{upload_id}"): _producers(_NOT_OWNER, owner=ok(201)),
    ("GET", "/v1/datasets/{dataset_id}/owner-key"): _producers(_NOT_OWNER, owner=ok()),
    ("POST", "/v1/datasets/{dataset_id}/reassign"): _operator_only(),
    ("POST", "/v1/datasets/{dataset_id}/fetch"): _producers(
        no(403, "no_grant"), owner=no(422, "own_dataset"), grantee=ok()
    ),
    ("POST", "/v1/requests"): _producers(ok(201), owner=no(422, "own_dataset")),
    ("GET", "/v1/requests"): _members_read(),
    ("GET", "/v1/requests/{request_id}"): _overseers(
        owner=ok(), grantee=ok(), department=_NOT_VISIBLE, enterprise=_NOT_VISIBLE
    ),
    ("POST", "/v1/requests/{request_id}/approve"): _producers(_NOT_OWNER, owner=ok(201)),
    ("POST", "/v1/requests/{request_id}/cosign"): _operator_only(201),
    ("POST", "/v1/requests/{request_id}/deny"): _producers(_NOT_OWNER, owner=ok()),
    ("GET", "/v1/grants"): _members_read(),
    ("POST", "/v1/grants/revoke"): _producers(_NOT_OWNER, owner=ok()),
    ("POST", "/v1/grants/{grant_id}/carry"): _producers(_NOT_OWNER, owner=ok(201)),
    ("POST", "/v1/receipts"): _producers(no(403, "no_grant"), grantee=ok(201)),
    ("POST", "/v1/ratings"): _producers(no(403, "not_a_recipient"), grantee=ok(201)),
    ("POST", "/v1/issues"): _producers(no(403, "not_a_recipient"), grantee=ok(201)),
    ("GET", "/v1/issues"): _members_read(),
    ("POST", "/v1/issues/{issue_id}/answer"): _producers(_NOT_OWNER, owner=ok()),
    ("GET", "/v1/datasets/{dataset_id}/quality"): _members_read(),
    ("GET", "/v1/trace/datasets/{dataset_id}"): _overseers(
        owner=ok(), **dict.fromkeys(("department", "grantee", "enterprise"), _NOT_VISIBLE)
    ),
    ("GET", "/v1/trace/members/{address}"): _overseers(
        owner=ok(), **dict.fromkeys(("department", "grantee", "enterprise"), _NOT_VISIBLE)
    ),
    ("GET", "/v1/verify"): _overseers(),
    ("GET", "/v1/log/head"): _members_read(),
    ("GET", "/v1/log/checkpoint"): _members_read(),
    ("GET", "/v1/log/records"): _overseers(),
    ("GET", "/v1/log/evidence/members/{address}"): _members_read(),
    ("GET", "/v1/log/evidence/datasets/{dataset_id}"): _members_read(),
    ("GET", "/v1/log/records/mine"): {role: no(404, "not_found") for role in ROLES}
    | {"owner": ok()}
    | _OUTSIDERS,
    ("GET", "/v1/log/records/{seq}"): _overseers(
        owner=ok(), **dict.fromkeys(("department", "grantee", "enterprise"), _NOT_VISIBLE)
    ),
    ("GET", "/v1/log/proofs/inclusion"): _members_read(),
    ("GET", "/v1/log/proofs/consistency"): _members_read(),
    ("POST", "/v1/log/anchor"): _operator_only(),
    ("POST", "/v1/chain/rpc"): _members_read(),
}

#: What the probes of a route aim at, where it acts on one object.
PROBE_TARGETS: Final[dict[Route, str]] = {
    ("POST", "/v1/members/{address}/suspend"): "another member",
    ("POST", "/v1/members/{address}/reinstate"): "a suspended member",
    ("POST", "/v1/members/{address}/key"): "one's own key",
    ("PUT", "/v1/datasets/uploads/{upload_id}"): "the owner's pending upload",
    ("GET", "/v1/datasets/{dataset_id}/owner-key"): "the owner's dataset",
    ("POST", "/v1/datasets/{dataset_id}/reassign"): "a disputed dataset, to another department",
    ("POST", "/v1/datasets/{dataset_id}/fetch"): "the owner's dataset",
    ("POST", "/v1/requests"): "access to the owner's dataset, for oneself",
    ("GET", "/v1/requests/{request_id}"): "the grantee's request",
    ("POST", "/v1/requests/{request_id}/approve"): "a pending request to the owner",
    ("POST", "/v1/requests/{request_id}/cosign"): (
        "a department's grant of SENSITIVE data to an enterprise, awaiting approval"
    ),
    ("POST", "/v1/requests/{request_id}/deny"): "a pending request to the owner",
    ("POST", "/v1/grants/revoke"): "a grant on the owner's dataset",
    ("POST", "/v1/grants/{grant_id}/carry"): (
        "the grantee's live grant, over to the next version of the owner's dataset"
    ),
    ("POST", "/v1/receipts"): "a delivery of the owner's dataset",
    ("POST", "/v1/ratings"): "the owner's dataset",
    ("POST", "/v1/issues"): "an issue about the owner's dataset",
    ("POST", "/v1/issues/{issue_id}/answer"): "the grantee's open issue about the owner's dataset",
    ("GET", "/v1/datasets/{dataset_id}/quality"): "the owner's dataset",
    ("GET", "/v1/trace/datasets/{dataset_id}"): "the owner's dataset",
    ("GET", "/v1/trace/members/{address}"): "the owner",
    ("GET", "/v1/log/evidence/members/{address}"): "the grantee's Onboard and RotateKey records",
    ("GET", "/v1/log/evidence/datasets/{dataset_id}"): "the owner's Register record",
    ("GET", "/v1/log/records/mine"): (
        "the owner's registration, by its signature: the caller's own records only"
    ),
    ("GET", "/v1/log/records/{seq}"): "the owner's registration",
    ("POST", "/v1/chain/rpc"): "`eth_blockNumber`",
}


def table() -> str:
    """The matrix as a Markdown table followed by the roles' meanings (page and README)."""
    head = ["Route", *(ROLE_TITLES[r] for r in ROLES)]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    for (method, path), cells in MATRIX.items():
        route = f"`{method} {path}`"
        target = PROBE_TARGETS.get((method, path))
        if target:
            route += f" ({target})"
        lines.append("| " + " | ".join([route, *(cells[r].render() for r in ROLES)]) + " |")
    lines += ["", "Roles:", ""]
    lines += [f"- **{ROLE_TITLES[r]}**: {ROLE_MEANINGS[r]}." for r in ROLES]
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """The matrix as the Markdown page ``docs/authorization.md``."""
    intro = [
        "# Authorization matrix",
        "",
        "<!-- Generated by scripts/authz_table.py from tests/support/authz_matrix.py;"
        " do not edit. -->",
        "",
        "Every route of the broker API times every role, as `tests/http/test_http_authz.py` "
        "checks it against a running broker. ✓ means allowed; ✗ gives the status and the error "
        "`code` of the refusal. A refused write changes nothing: no row, no log record, no blob, "
        "no transaction.",
        "",
    ]
    return "\n".join(intro) + "\n" + table()


#: The README's copy of :func:`table` sits between these two lines.
README_BEGIN: Final = "<!-- authz-table: generated by scripts/authz_table.py; do not edit -->"
README_END: Final = "<!-- /authz-table -->"


def in_readme(readme: str) -> str:
    """``readme`` with the text between the markers replaced by :func:`table`."""
    start = readme.index(README_BEGIN) + len(README_BEGIN)
    end = readme.index(README_END, start)
    return readme[:start] + "\n\n" + table() + "\n" + readme[end:]

"""The console's graphs from records: each flow's status, lineage reaching from SENSITIVE data.

The builders are pure (records in, cytoscape elements out); here they read records through the
console's own in-memory source for a member's broker-reported view (``BrokerView``'s filtering
and tallying), fed with entries instead of the broker's answers.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.state import AuditState, LeafRow
from ledger.console.graphs import flow_graph, lineage_graph
from ledger.console.present import named
from ledger.console.records import Entry, Organisation, Registration, Scope, VerifiedLog, moment
from ledger.console.reported import BrokerView
from ledger.console.security import Gate
from ledger.errors import InvalidInput

OWNER = "0x" + "aa" * 20
CONSUMER = "0x" + "bb" * 20
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


class Recorded(BrokerView):
    """A BrokerView over entries given here instead of fetched from a broker."""

    def __init__(self, entries: list[Entry], regs: dict[int, Registration]) -> None:
        super().__init__(client=None, address=OWNER)  # type: ignore[arg-type]
        self._entries = entries
        self._regs = regs
        self._orgs = {
            OWNER: Organisation(OWNER, "Planning Office", "department"),
            CONSUMER: Organisation(CONSUMER, "Solar Coop", "enterprise"),
        }

    def refresh(self, *, force: bool = False) -> None:
        pass


def entry(seq: int, action: str, actor: str, **message: Any) -> Entry:
    refused = message.pop("refused", None)
    return Entry(
        seq=seq,
        at=f"2025-05-01T00:00:{seq:02d}.000000+00:00",
        action=action,
        actor=actor,
        dataset_id=1,
        message={"datasetId": 1, **message},
        context={"refused": refused} if refused else {},
        chain="unverified",
        tx_hash=None,
        verified=False,
    )


def reg(dataset_id: int, classification: str = "internal", **links: Any) -> Registration:
    return Registration(
        dataset_id=dataset_id,
        owner=OWNER,
        classification=classification,
        parents=tuple(links.get("parents", ())),
        previous=links.get("previous"),
        title=f"set {dataset_id}",
        at="2025-01-01T00:00:00.000000+00:00",
        seq=dataset_id,
    )


def grant(seq: int, *, expires: dt.datetime = NOW + dt.timedelta(days=9), uses: int = 2) -> Entry:
    return entry(
        seq, "grant", OWNER, grantee=CONSUMER, expiresAt=int(expires.timestamp()), maxUses=uses
    )


def only_edge(entries: list[Entry]) -> dict[str, Any]:
    drawn = flow_graph(Recorded(entries, {1: reg(1)}), Scope(), now=NOW)
    assert sorted(n["data"]["id"] for n in drawn["nodes"]) == sorted([OWNER, CONSUMER])
    [edge] = drawn["edges"]
    assert (edge["data"]["source"], edge["data"]["target"]) == (OWNER, CONSUMER)
    return edge


def test_a_request_without_a_grant_is_only_requested() -> None:
    edge = only_edge([entry(1, "request", CONSUMER, purpose="study")])
    assert edge["classes"] == "requested"
    assert edge["data"]["purpose"] == "study"


def test_a_granted_flow_is_active_until_its_uses_are_spent() -> None:
    active = only_edge([entry(1, "request", CONSUMER), grant(2), entry(3, "fetch", CONSUMER)])
    assert active["classes"] == "active"
    assert active["data"]["uses_text"] == "1/2"
    spent = [
        entry(1, "request", CONSUMER),
        grant(2),
        *(entry(s, "fetch", CONSUMER) for s in (3, 4)),
    ]
    assert only_edge(spent)["classes"] == "exhausted"


def test_an_expired_grant_and_a_revoked_one_are_told_apart() -> None:
    expired = only_edge([grant(1, expires=NOW - dt.timedelta(seconds=1))])
    assert expired["classes"] == "expired"
    revoked = only_edge([grant(1), entry(2, "revoke", OWNER, grantee=CONSUMER)])
    assert revoked["classes"] == "revoked"
    assert revoked["data"]["records"] == [1, 2]


def test_a_new_grant_counts_uses_again_and_refused_fetches_are_no_uses() -> None:
    edge = only_edge(
        [
            grant(1),
            entry(2, "fetch", CONSUMER),
            entry(3, "fetch", CONSUMER),
            entry(4, "revoke", OWNER, grantee=CONSUMER),
            entry(5, "fetch", CONSUMER, refused="access_ledger_grant_revoked"),
            grant(6),
            entry(7, "fetch", CONSUMER),
        ]
    )
    assert edge["classes"] == "active attempted"
    assert edge["data"]["uses_text"] == "1/2"  # since the second grant
    assert edge["data"]["fetches"] == 3
    assert edge["data"]["refused"] == 1


def test_a_consumers_repeated_requests_are_one_edge_named_by_the_latest() -> None:
    edge = only_edge(
        [
            entry(1, "request", CONSUMER, purpose="first study", purposeCategory="research"),
            entry(2, "request", CONSUMER, purpose="second study", purposeCategory="statistics"),
            grant(3),
            entry(4, "request", CONSUMER, purpose="renewal", purposeCategory="planning"),
        ]
    )
    assert (edge["data"]["purpose"], edge["data"]["category"]) == ("renewal", "planning")
    assert edge["data"]["requested_at"] == entry(1, "request", CONSUMER).at
    assert edge["data"]["records"] == [1, 2, 3, 4]
    assert edge["classes"] == "active"


FLOWS = [
    entry(1, "request", CONSUMER, purpose="old purpose", purposeCategory="research"),
    entry(2, "request", CONSUMER, purpose="new purpose", purposeCategory="planning"),
    grant(3),
    entry(4, "fetch", CONSUMER),
    entry(5, "receipt", CONSUMER),
    entry(6, "revoke", OWNER, grantee=CONSUMER),
    entry(7, "fetch", CONSUMER, refused="access_ledger_grant_revoked"),
    grant(8, uses=1),
    entry(9, "fetch", CONSUMER),
    entry(10, "request", OWNER, purpose="own copy"),
]


def kept(path: Path, entries: list[Entry]) -> VerifiedLog:
    """An audit state holding ``entries`` as verified records, with the dataset's registration."""
    register = Entry(
        seq=0,
        at="2025-04-01T00:00:00.000000+00:00",
        action="register",
        actor=OWNER,
        dataset_id=1,
        message={"datasetId": 1, "owner": OWNER, "classification": 1, "parents": []},
        context={"metadata": {"title": "set 1"}},
        chain="matched",
        tx_hash=None,
        verified=True,
    )
    rows = []
    for e in [register, *entries]:
        leaf = {"v": 1, "seq": e.seq, "at": e.at, "signed": {"message": e.message}}
        rows.append(
            LeafRow(
                seq=e.seq,
                leaf_hash=bytes(32),
                action=e.action,
                actor=e.actor,
                dataset_id=e.dataset_id,
                dataset_from="signed",
                at=e.at,
                leaf=json.dumps({**leaf, "context": e.context}).encode(),
                chain="none" if e.context.get("refused") else "matched",
                parties=(e.actor, *([e.message["grantee"]] if "grantee" in e.message else [])),
            )
        )
    with AuditState.open(path) as state, state.transaction():
        state.add_leaves(rows)
    log = VerifiedLog(path)
    log.prepare()
    return log


@pytest.mark.parametrize(
    "scope", [Scope(), Scope(dataset=1), Scope(member=CONSUMER), Scope(member=OWNER, owned=(1,))]
)
def test_the_verified_state_draws_what_the_in_memory_view_draws(
    tmp_path: Path, scope: Scope
) -> None:
    """The SQL path (grouped requests, counted fetches) against the plain one, field by field."""
    shown = (
        *("source", "target", "purpose", "category", "status", "uses_text", "fetches"),
        *("refused", "receipts", "requested_at", "granted_at", "revoked_at", "records"),
    )
    sql = flow_graph(kept(tmp_path / "audit.sqlite", FLOWS), scope, now=NOW)["edges"]
    plain = flow_graph(Recorded(FLOWS, {1: reg(1)}), scope, now=NOW)["edges"]
    assert [{k: e["data"][k] for k in shown} for e in sql] == [
        {k: e["data"][k] for k in shown} for e in plain
    ]
    assert len(sql) == (1 if scope.member == CONSUMER else 2)
    mine = next(e for e in sql if e["data"]["target"] == CONSUMER)
    assert mine["data"]["purpose"] == "new purpose"
    assert mine["data"]["records"] == [1, 2, 3, 6, 8]
    assert (mine["data"]["uses_text"], mine["classes"]) == ("1/1", "exhausted attempted")


def test_a_time_window_keeps_only_its_records() -> None:
    records = Recorded([grant(1), entry(30, "fetch", CONSUMER)], {1: reg(1)})
    early = flow_graph(records, Scope(until=moment("2025-05-01T00:00:10")), now=NOW)
    assert early["edges"][0]["data"]["fetches"] == 0
    late = flow_graph(records, Scope(since=moment("2025-05-01T00:00:10")), now=NOW)
    assert late["edges"][0]["classes"] == "active"  # granted before the window, used in it


def test_lineage_marks_what_descends_from_sensitive_data() -> None:
    regs = {
        1: reg(1, "sensitive"),
        2: reg(2, "sensitive", parents=[1]),
        3: reg(3, "sensitive", previous=2),
        4: reg(4, "public"),
    }
    drawn = lineage_graph(regs, {}, dataset=2)
    assert [n["data"]["id"] for n in drawn["nodes"]] == ["d1", "d2", "d3"]  # not #4
    assert [(e["data"]["source"], e["data"]["target"], e["classes"]) for e in drawn["edges"]] == [
        ("d1", "d2", "derived"),
        ("d2", "d3", "version"),
    ]
    tainted = {n["data"]["id"]: "from-sensitive" in n["classes"] for n in drawn["nodes"]}
    assert tainted == {"d1": False, "d2": True, "d3": True}
    assert lineage_graph(regs, {}, dataset=99)["nodes"] == []


def test_times_are_read_as_utc_and_bad_ones_refused() -> None:
    assert moment("2025-01-02") == "2025-01-02T00:00:00.000000+00:00"
    assert moment("2025-01-02T01:00:00+01:00") == "2025-01-02T00:00:00.000000+00:00"
    assert moment("") is None
    with pytest.raises(InvalidInput):
        moment("yesterday")


def test_warnings_name_members_instead_of_addresses() -> None:
    orgs = {OWNER: Organisation(OWNER, "Planning Office", "department")}
    text = f"grant 1→{OWNER.upper().replace('0X', '0x')} by {CONSUMER}"
    assert named(text, orgs) == f"grant 1→Planning Office by {CONSUMER}"


def test_the_gate_knows_its_own_host_origin_and_token() -> None:
    gate = Gate(port=4321, token="t0ken")
    assert gate.host_ok("127.0.0.1:4321")
    assert gate.host_ok("localhost:4321")
    assert not gate.host_ok("127.0.0.1:4322")
    assert not gate.host_ok("evil.example:4321")
    assert not gate.host_ok(None)
    assert gate.origin_ok(None, "GET")
    assert not gate.origin_ok(None, "POST")
    assert gate.origin_ok("http://localhost:4321", "POST")
    assert not gate.origin_ok("http://127.0.0.1:4321.evil.example", "GET")
    assert gate.token_ok("t0ken")
    assert not gate.token_ok("t0ke")
    assert not gate.token_ok(None)

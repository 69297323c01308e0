"""Dataset and member traces answered from the member's own audit state (ledger.audit.trace)."""

from __future__ import annotations

import pytest

from ledger.audit.trace import dataset_trace, member_trace
from ledger.errors import NotFound
from ledger.protocol.codes import ErrorCode
from tests.unit.test_audit_verifier import ALICE, BOB, World


@pytest.fixture
def traced() -> World:
    world = World()
    world.register(ALICE, 1)  # 0
    world.register(ALICE, 2, parents=(1,))  # 1
    world.request(BOB, 1)  # 2
    world.deny(ALICE, request_id=1, dataset_id=1)  # 3
    fetch = world.fetch(BOB, 1)  # 4
    world.receipt(fetch)  # 5 (not credited yet)
    world.rate(BOB, 1)  # 6
    world.request(BOB, 2)  # 7
    report = world.verify()
    assert report.ok, report.problems
    return world


def test_dataset_trace(traced: World) -> None:
    trace = dataset_trace(traced.state, 1)
    assert trace.dataset_id == 1
    assert trace.registration is not None
    assert trace.registration.seq == 0
    assert trace.owner == ALICE.address
    assert trace.content_hash == "0x" + "01" * 32
    assert (trace.classification, trace.parents, trace.previous_version) == (1, (), None)
    assert trace.derived == (2,)
    assert [(e.seq, e.action) for e in trace.flows] == [
        (0, "register"),
        (2, "request"),
        (3, "deny"),
        (4, "fetch"),
        (5, "receipt"),
        (6, "rate"),
    ]
    by_action = {e.action: e for e in trace.flows}
    register, fetch = by_action["register"], by_action["fetch"]
    assert (register.dataset_from, register.chain) == ("chain", "matched")
    assert register.tx_hash == traced.chain.logs[0].tx_hash
    assert fetch.chain == "matched"
    assert fetch.tx_hash == traced.chain.logs[2].tx_hash
    assert fetch.block_number == traced.chain.logs[2].block_number
    assert fetch.detail["grantee"] == BOB.address
    assert fetch.actor == BOB.address
    assert by_action["receipt"].chain == "pending"
    assert (by_action["request"].chain, by_action["request"].dataset_from) == ("none", "signed")
    assert by_action["deny"].dataset_from == "context"  # the broker's word: Deny names a request
    assert trace.verified_size == 8
    assert trace.checkpoint == traced.state.checkpoint_note


def test_lineage_of_a_derived_dataset(traced: World) -> None:
    trace = dataset_trace(traced.state, 2)
    assert trace.parents == (1,)
    assert trace.derived == ()
    assert [e.action for e in trace.flows] == ["register", "request"]


def test_member_trace(traced: World) -> None:
    bob = member_trace(traced.state, BOB.address.lower())
    assert [(e.seq, e.action) for e in bob.entries] == [
        (2, "request"),
        (4, "fetch"),
        (5, "receipt"),
        (6, "rate"),
        (7, "request"),
    ]
    assert bob.registered == ()
    alice = member_trace(traced.state, ALICE.address)
    assert [e.action for e in alice.entries] == ["register", "register", "deny"]
    assert alice.registered == (1, 2)
    assert alice.verified_size == 8


def test_only_verified_records_are_traced(traced: World) -> None:
    traced.rate(BOB, 1)
    assert len(dataset_trace(traced.state, 1).flows) == 6
    assert traced.verify().ok
    assert len(dataset_trace(traced.state, 1).flows) == 7


def test_unknown_dataset() -> None:
    with pytest.raises(NotFound) as caught:
        dataset_trace(World().state, 1)
    assert caught.value.code == ErrorCode.DATASET_NOT_FOUND
    empty = member_trace(World().state, BOB.address)
    assert empty.entries == ()
    assert empty.verified_size == 0
    assert empty.checkpoint is None


def test_a_derivative_verified_later_joins_the_lineage(traced: World) -> None:
    assert dataset_trace(traced.state, 1).derived == (2,)  # computed once for this checkpoint
    traced.register(ALICE, 3, parents=(1,))
    assert dataset_trace(traced.state, 1).derived == (2,)  # not verified yet
    assert traced.verify().ok
    assert dataset_trace(traced.state, 1).derived == (2, 3)
    assert dataset_trace(traced.state, 2).derived == ()

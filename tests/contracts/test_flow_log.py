"""FlowLog: anchored tree heads that only grow."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.client import BROKER_ROLE
from ledger.errors import ContractRevert


def _refusal(action):
    """The ContractRevert ``action`` raised, or None if it went through."""
    try:
        action()
    except ContractRevert as exc:
        return exc
    return None


def _next_size(env, step=1):
    return env.chain.latest_head().tree_size + step


def test_empty_log_has_no_head_and_refuses_size_zero(env, reverts, unique_hash):
    fresh, fresh_broker = env.redeploy()
    head = fresh.latest_head()
    assert (head.tree_size, head.root_hash, head.anchored_at, head.head_count) == (
        0,
        b"\x00" * 32,
        0,
        0,
    )
    assert fresh.root_at(0) is None
    with reverts("FlowLogTreeNotGrowing", latestSize=0, proposedSize=0):
        fresh_broker.anchor(0, unique_hash())


def test_broker_anchors_a_tree_head(env, unique_hash):
    before = env.chain.latest_head()
    size, root = before.tree_size + 7, unique_hash()

    result = env.broker_chain.anchor(size, root)

    block = env.net.w3.eth.get_block(result.block_number)
    assert result.event("TreeHeadAnchored").args == {
        "treeSize": size,
        "rootHash": root,
        "headIndex": before.head_count,
        "anchoredAt": block["timestamp"],
    }
    head = env.chain.latest_head()
    assert (head.tree_size, head.root_hash, head.anchored_at, head.head_count) == (
        size,
        root,
        block["timestamp"],
        before.head_count + 1,
    )
    assert env.chain.root_at(size) == root


def test_earlier_roots_stay_readable_after_the_log_grows(env, unique_hash):
    first_size, first_root = _next_size(env), unique_hash()
    env.broker_chain.anchor(first_size, first_root)
    second_size, second_root = first_size + 3, unique_hash()
    env.broker_chain.anchor(second_size, second_root)

    assert env.chain.root_at(first_size) == first_root
    assert env.chain.root_at(second_size) == second_root
    assert env.chain.root_at(first_size + 1) is None
    assert env.chain.latest_head().root_hash == second_root
    anchored = env.chain.events("FlowLog", "TreeHeadAnchored", filters={"treeSize": first_size})
    assert [ev.args["rootHash"] for ev in anchored] == [first_root]


def test_only_the_broker_anchors(env, reverts, unique_hash):
    size = _next_size(env)
    for caller in (env.admin, env.dept_a, env.regulator):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=BROKER_ROLE
        ):
            env.as_(caller).anchor(size, unique_hash())
    assert env.chain.root_at(size) is None


def test_anchoring_the_same_size_again_is_refused(env, reverts, unique_hash):
    size, root = _next_size(env), unique_hash()
    env.broker_chain.anchor(size, root)
    with reverts("FlowLogTreeNotGrowing", latestSize=size, proposedSize=size):
        env.broker_chain.anchor(size, unique_hash())
    assert env.chain.root_at(size) == root


def test_anchoring_a_smaller_tree_is_refused(env, reverts, unique_hash):
    size = _next_size(env, 10)
    env.broker_chain.anchor(size, unique_hash())
    with reverts("FlowLogTreeNotGrowing", latestSize=size, proposedSize=size - 4):
        env.broker_chain.anchor(size - 4, unique_hash())
    assert env.chain.latest_head().tree_size == size


def test_anchoring_a_zero_root_is_refused(env, reverts):
    before = env.chain.latest_head()
    with reverts("FlowLogZeroRoot"):
        env.broker_chain.anchor(before.tree_size + 1, b"\x00" * 32)
    assert env.chain.latest_head() == before


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(proposals=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=6))
def test_exactly_the_sizes_beyond_every_accepted_one_are_accepted(env, unique_hash, proposals):
    base = env.chain.latest_head().tree_size
    largest = base
    accepted_sizes = []
    for offset in proposals:
        size = base + offset
        refused = _refusal(lambda size=size: env.broker_chain.anchor(size, unique_hash()))
        if refused is None:
            assert size > largest
            largest = size
            accepted_sizes.append(size)
        else:
            assert size <= largest
            assert refused.error == "FlowLogTreeNotGrowing"
            assert refused.error_args == {"latestSize": largest, "proposedSize": size}
    assert env.chain.latest_head().tree_size == largest
    expected = []
    for offset in proposals:
        if base + offset > max([base, *expected]):
            expected.append(base + offset)
    assert accepted_sizes == expected

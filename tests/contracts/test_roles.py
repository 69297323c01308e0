"""Roles: the operator holds ADMIN everywhere, the broker holds BROKER where it acts."""

from __future__ import annotations

import pytest

from ledger.chain.abi import CONTRACT_NAMES
from ledger.chain.client import ADMIN_ROLE, BROKER_ROLE

ACCESS_CONTROL_ID = bytes.fromhex("7965db0b")
BROKER_CONTRACTS = ("AccessLedger", "FlowLog", "SharingCredits")


def test_deployment_gives_the_operator_admin_and_the_broker_its_role(env):
    granted = [
        ev.args
        for _, step in env.steps
        for ev in step.events
        if ev.name == "RoleGranted" and ev.args["role"] == BROKER_ROLE
    ]
    assert len(granted) == len(BROKER_CONTRACTS)
    assert {g["account"] for g in granted} == {env.broker.address}
    assert {g["sender"] for g in granted} == {env.operator.address}
    for contract in CONTRACT_NAMES:
        assert env.chain.has_role(contract, ADMIN_ROLE, env.operator.address)
        assert not env.chain.has_role(contract, ADMIN_ROLE, env.broker.address)
        assert env.chain.supports_interface(contract, ACCESS_CONTROL_ID)
    for contract in BROKER_CONTRACTS:
        assert env.chain.has_role(contract, BROKER_ROLE, env.broker.address)
        assert not env.chain.has_role(contract, BROKER_ROLE, env.operator.address)
        assert env.view(contract, "getRoleAdmin", BROKER_ROLE) == ADMIN_ROLE
    env.chain.verify_deployment()


@pytest.mark.parametrize("contract", BROKER_CONTRACTS)
def test_admin_grants_and_revokes_the_broker_role(env, contract):
    relayer = env.net.new_account()

    granted = env.chain.grant_role(contract, BROKER_ROLE, relayer.address)
    assert granted.event("RoleGranted").args == {
        "role": BROKER_ROLE,
        "account": relayer.address,
        "sender": env.operator.address,
    }
    assert env.chain.has_role(contract, BROKER_ROLE, relayer.address)

    revoked = env.send(env.operator, contract, "revokeRole", BROKER_ROLE, relayer.address)
    assert revoked.event("RoleRevoked").args == {
        "role": BROKER_ROLE,
        "account": relayer.address,
        "sender": env.operator.address,
    }
    assert not env.chain.has_role(contract, BROKER_ROLE, relayer.address)


def test_a_broker_renounces_its_own_role_only(env, reverts):
    relayer = env.net.new_account()
    env.chain.grant_role("FlowLog", BROKER_ROLE, relayer.address)
    with reverts("AccessControlBadConfirmation"):
        env.send(relayer, "FlowLog", "renounceRole", BROKER_ROLE, env.broker.address)
    assert env.chain.has_role("FlowLog", BROKER_ROLE, env.broker.address)

    result = env.send(relayer, "FlowLog", "renounceRole", BROKER_ROLE, relayer.address)

    assert result.event("RoleRevoked").args["sender"] == relayer.address
    assert not env.chain.has_role("FlowLog", BROKER_ROLE, relayer.address)


def test_only_admin_grants_roles(env, reverts):
    for caller in (env.broker, env.dept_a):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=ADMIN_ROLE
        ):
            env.as_(caller).grant_role("FlowLog", BROKER_ROLE, caller.address)
    assert not env.chain.has_role("FlowLog", BROKER_ROLE, env.dept_a.address)

"""Roles: ADMIN everywhere for the operator key, BROKER where the broker acts; never one key."""

from __future__ import annotations

import pytest

from ledger.chain.abi import CONTRACT_NAMES, artifact
from ledger.chain.client import ADMIN_ROLE, BROKER_ROLE, LedgerChain
from ledger.chain.models import CreditRules
from ledger.errors import ConfigurationError

ACCESS_CONTROL_ID = bytes.fromhex("7965db0b")
BROKER_CONTRACTS = ("AccessLedger", "FlowLog", "SharingCredits")


def test_deployment_gives_admin_and_broker_their_roles_in_the_constructors(env):
    granted = [
        (step, ev.args)
        for step, result in env.steps
        for ev in result.events
        if ev.name == "RoleGranted"
    ]
    assert [step for step, _ in env.steps] == [f"deploy {name}" for name in CONTRACT_NAMES]
    broker_grants = [args for _, args in granted if args["role"] == BROKER_ROLE]
    admin_grants = [args for _, args in granted if args["role"] == ADMIN_ROLE]
    assert len(broker_grants) == len(BROKER_CONTRACTS)
    assert {g["account"] for g in broker_grants} == {env.broker.address}
    assert len(admin_grants) == len(CONTRACT_NAMES)
    assert {g["account"] for g in admin_grants} == {env.admin.address}
    # Deployed by the broker key, which paid; the ADMIN key sent nothing.
    assert {g["sender"] for _, g in granted} == {env.broker.address}
    for _, result in env.steps:
        assert env.net.w3.eth.get_transaction(result.tx_hash)["from"] == env.broker.address
    deployment = env.chain.deployment
    assert (deployment.admin, deployment.broker) == (env.admin.address, env.broker.address)
    for contract in CONTRACT_NAMES:
        assert env.chain.has_role(contract, ADMIN_ROLE, env.admin.address)
        assert not env.chain.has_role(contract, ADMIN_ROLE, env.broker.address)
        assert not env.chain.has_role(contract, BROKER_ROLE, env.admin.address)
        assert env.chain.supports_interface(contract, ACCESS_CONTROL_ID)
    for contract in BROKER_CONTRACTS:
        assert env.chain.has_role(contract, BROKER_ROLE, env.broker.address)
        assert env.view(contract, "getRoleAdmin", BROKER_ROLE) == ADMIN_ROLE
    env.chain.verify_deployment()


def test_deploy_refuses_one_key_for_admin_and_broker(env):
    broker = env.net.new_account()
    with pytest.raises(ConfigurationError, match="different keys"):
        LedgerChain.deploy(env.net.backend, broker, admin=broker.address)


@pytest.mark.parametrize("contract", BROKER_CONTRACTS)
def test_contracts_refuse_one_key_for_admin_and_broker(env, reverts, contract):
    """Even deployed by hand, a BROKER contract will not give both roles to one account."""
    deployer = env.net.new_account()
    art = artifact(contract)
    factory = env.net.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    args = {
        "AccessLedger": (
            deployer.address,
            deployer.address,
            env.chain.deployment.member_registry,
            env.chain.deployment.data_registry,
        ),
        "FlowLog": (deployer.address, deployer.address),
        "SharingCredits": (
            deployer.address,
            deployer.address,
            env.chain.deployment.access_ledger,
            env.chain.deployment.data_registry,
            CreditRules().as_tuple(),
        ),
    }[contract]
    with reverts("SeparatedRolesAdminIsBroker", account=deployer.address):
        env.chain.tx.deploy(factory.constructor(*args), deployer)


@pytest.mark.parametrize("contract", BROKER_CONTRACTS)
def test_admin_cannot_take_the_broker_role_nor_give_admin_to_the_broker(env, reverts, contract):
    with reverts("SeparatedRolesAdminIsBroker", account=env.admin.address):
        env.chain.grant_role(contract, BROKER_ROLE, env.admin.address)
    with reverts("SeparatedRolesAdminIsBroker", account=env.broker.address):
        env.chain.grant_role(contract, ADMIN_ROLE, env.broker.address)
    assert not env.chain.has_role(contract, BROKER_ROLE, env.admin.address)
    assert not env.chain.has_role(contract, ADMIN_ROLE, env.broker.address)


def test_a_read_only_client_reads_but_cannot_send(env):
    reader = LedgerChain(env.net.backend, env.chain.deployment)
    assert reader.read_only_mode
    assert reader.has_role("FlowLog", BROKER_ROLE, env.broker.address)
    assert reader.latest_block() >= env.steps[-1][1].block_number
    assert reader.events("MemberRegistry", "MemberOnboarded")
    reader.verify_deployment()
    with pytest.raises(ConfigurationError, match="read-only"):
        reader.anchor(10**9, b"\x01" * 32)
    with pytest.raises(ConfigurationError, match="read-only"):
        _ = reader.account
    assert env.chain.read_only().read_only_mode


@pytest.mark.parametrize("contract", BROKER_CONTRACTS)
def test_admin_grants_and_revokes_the_broker_role(env, contract):
    relayer = env.net.new_account()

    granted = env.chain.grant_role(contract, BROKER_ROLE, relayer.address)
    assert granted.event("RoleGranted").args == {
        "role": BROKER_ROLE,
        "account": relayer.address,
        "sender": env.admin.address,
    }
    assert env.chain.has_role(contract, BROKER_ROLE, relayer.address)

    revoked = env.send(env.admin, contract, "revokeRole", BROKER_ROLE, relayer.address)
    assert revoked.event("RoleRevoked").args == {
        "role": BROKER_ROLE,
        "account": relayer.address,
        "sender": env.admin.address,
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

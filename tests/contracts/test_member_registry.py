"""MemberRegistry: onboarding, suspension, reinstatement and key rotation."""

from __future__ import annotations

import pytest
from eth_account import Account

from ledger.chain.client import ADMIN_ROLE

ZERO_ADDRESS = "0x" + "00" * 20
KIND_CODES = {"department": 1, "enterprise": 2, "regulator": 3}


@pytest.mark.parametrize("kind", ["department", "enterprise", "regulator"])
def test_operator_onboards_a_member_with_kind_name_and_encryption_key(env, unique_hash, kind):
    member = Account.create()
    name_hash, key = unique_hash(), unique_hash()

    result = env.chain.onboard(
        member.address, kind=kind, name_hash=name_hash, key_suite=1, encryption_key=key
    )

    assert result.event("MemberOnboarded").args == {
        "member": member.address,
        "kind": KIND_CODES[kind],
        "nameHash": name_hash,
        "keySuite": 1,
        "encryptionKey": key,
    }
    info = env.chain.member(member.address)
    assert (info.kind, info.status, info.active) == (kind, "active", True)
    assert (info.name_hash, info.key_suite, info.encryption_key) == (name_hash, 1, key)
    block = env.net.w3.eth.get_block(result.block_number)
    assert info.onboarded_at == block["timestamp"]
    assert env.view("MemberRegistry", "standing", member.address) == (KIND_CODES[kind], True)


def test_unknown_address_has_no_membership(env):
    stranger = Account.create().address
    info = env.chain.member(stranger)
    assert (info.kind, info.status, info.active, info.encryption_key) == (None, "none", False, b"")
    assert env.view("MemberRegistry", "standing", stranger) == (0, False)


def test_onboarding_by_a_non_admin_is_refused(env, reverts, unique_hash):
    for caller in (env.dept_a, env.broker):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=ADMIN_ROLE
        ):
            env.as_(caller).onboard(
                Account.create().address,
                kind="enterprise",
                name_hash=unique_hash(),
                key_suite=1,
                encryption_key=unique_hash(),
            )


def test_onboarding_the_zero_address_is_refused(env, reverts, unique_hash):
    with reverts("MemberRegistryZeroAddress"):
        env.chain.onboard(
            ZERO_ADDRESS,
            kind="department",
            name_hash=unique_hash(),
            key_suite=1,
            encryption_key=unique_hash(),
        )


def test_onboarding_with_kind_none_is_refused(env, reverts, unique_hash):
    with reverts("MemberRegistryInvalidKind", kind=0):
        env.send(
            env.operator,
            "MemberRegistry",
            "onboard",
            Account.create().address,
            0,
            unique_hash(),
            1,
            unique_hash(),
        )


def test_onboarding_an_existing_member_twice_is_refused(env, reverts, unique_hash):
    with reverts("MemberRegistryAlreadyOnboarded", member=env.dept_a.address):
        env.chain.onboard(
            env.dept_a.address,
            kind="enterprise",
            name_hash=unique_hash(),
            key_suite=1,
            encryption_key=unique_hash(),
        )


@pytest.mark.parametrize(
    ("suite", "key_length"), [(0, 32), (1, 0), (1, 4097)], ids=["suite0", "empty", "oversized"]
)
def test_onboarding_with_a_malformed_encryption_key_is_refused(
    env, reverts, unique_hash, suite, key_length
):
    with reverts("MemberRegistryInvalidKey", keySuite=suite, keyLength=key_length):
        env.chain.onboard(
            Account.create().address,
            kind="department",
            name_hash=unique_hash(),
            key_suite=suite,
            encryption_key=b"\x07" * key_length,
        )


def test_largest_allowed_encryption_key_is_accepted(env, unique_hash):
    member = Account.create()
    key = b"\x05" * 4096
    env.chain.onboard(
        member.address, kind="enterprise", name_hash=unique_hash(), key_suite=2, encryption_key=key
    )
    assert env.chain.member(member.address).encryption_key == key


def test_admin_suspends_and_reinstates_a_member(env):
    member = env.new_member("enterprise")

    suspended = env.chain.suspend(member.address)
    assert suspended.event("MemberSuspended").args == {
        "member": member.address,
        "by": env.operator.address,
    }
    assert env.chain.member(member.address).status == "suspended"
    assert env.view("MemberRegistry", "standing", member.address) == (2, False)

    reinstated = env.chain.reinstate(member.address)
    assert reinstated.event("MemberReinstated").args == {
        "member": member.address,
        "by": env.operator.address,
    }
    assert env.chain.member(member.address).active
    assert env.view("MemberRegistry", "standing", member.address) == (2, True)


def test_suspending_a_suspended_member_is_refused(env, reverts):
    member = env.new_member()
    env.chain.suspend(member.address)
    with reverts("MemberRegistryAlreadySuspended", member=member.address):
        env.chain.suspend(member.address)


def test_reinstating_an_active_member_is_refused(env, reverts):
    with reverts("MemberRegistryNotSuspended", member=env.dept_b.address):
        env.chain.reinstate(env.dept_b.address)


def test_suspending_or_reinstating_an_unknown_member_is_refused(env, reverts):
    stranger = Account.create().address
    with reverts("MemberRegistryUnknownMember", member=stranger):
        env.chain.suspend(stranger)
    with reverts("MemberRegistryUnknownMember", member=stranger):
        env.chain.reinstate(stranger)


def test_suspending_or_reinstating_by_a_non_admin_is_refused(env, reverts):
    member = env.new_member()
    with reverts("AccessControlUnauthorizedAccount", account=env.dept_a.address):
        env.as_(env.dept_a).suspend(member.address)
    env.chain.suspend(member.address)
    with reverts("AccessControlUnauthorizedAccount", account=member.address):
        env.as_(member).reinstate(member.address)
    assert env.chain.member(member.address).status == "suspended"


def test_member_rotates_its_own_encryption_key(env, unique_hash):
    member = env.new_member()
    key = unique_hash()

    result = env.as_(member).rotate_key(member.address, key_suite=2, encryption_key=key)

    assert result.event("EncryptionKeyRotated").args == {
        "member": member.address,
        "keySuite": 2,
        "encryptionKey": key,
    }
    info = env.chain.member(member.address)
    assert (info.key_suite, info.encryption_key, info.status) == (2, key, "active")


def test_admin_rotates_a_members_encryption_key(env, unique_hash):
    member = env.new_member("enterprise")
    key = unique_hash()

    result = env.chain.rotate_key(member.address, key_suite=1, encryption_key=key)

    assert result.event("EncryptionKeyRotated").args["member"] == member.address
    assert env.chain.member(member.address).encryption_key == key


def test_another_member_cannot_rotate_a_key(env, reverts, unique_hash):
    before = env.chain.member(env.dept_b.address).encryption_key
    for caller in (env.dept_a, env.broker):
        with reverts(
            "MemberRegistryUnauthorizedKeyRotation",
            caller=caller.address,
            member=env.dept_b.address,
        ):
            env.as_(caller).rotate_key(
                env.dept_b.address, key_suite=1, encryption_key=unique_hash()
            )
    assert env.chain.member(env.dept_b.address).encryption_key == before


def test_rotating_the_key_of_an_unknown_member_is_refused(env, reverts, unique_hash):
    stranger = Account.create().address
    with reverts("MemberRegistryUnknownMember", member=stranger):
        env.chain.rotate_key(stranger, key_suite=1, encryption_key=unique_hash())


def test_rotating_to_a_malformed_key_is_refused(env, reverts):
    member = env.new_member()
    with reverts("MemberRegistryInvalidKey", keySuite=0, keyLength=32):
        env.as_(member).rotate_key(member.address, key_suite=0, encryption_key=b"\x01" * 32)
    with reverts("MemberRegistryInvalidKey", keySuite=1, keyLength=0):
        env.as_(member).rotate_key(member.address, key_suite=1, encryption_key=b"")


def test_member_events_are_queryable_by_member(env):
    member = env.new_member("enterprise")
    env.chain.suspend(member.address)
    onboarded = env.chain.events(
        "MemberRegistry", "MemberOnboarded", filters={"member": member.address}
    )
    suspended = env.chain.events(
        "MemberRegistry", "MemberSuspended", filters={"member": member.address}
    )
    assert [ev.args["kind"] for ev in onboarded] == [2]
    assert [ev.args["by"] for ev in suspended] == [env.operator.address]
    assert onboarded[0].block_number < suspended[0].block_number

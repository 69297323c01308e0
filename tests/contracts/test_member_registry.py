"""MemberRegistry: onboarding, suspension, reinstatement and key rotation."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account
from eth_utils import keccak

from ledger.chain.client import ADMIN_ROLE
from ledger.protocol import eip712
from ledger.protocol.actions import to_json_value
from tests.support.chain import encryption_key

ZERO_ADDRESS = "0x" + "00" * 20
KIND_CODES = {"department": 1, "enterprise": 2, "regulator": 3}


def _random_nonce():
    return secrets.randbits(256)


def _rotate_message(member, suite, key, nonce, deadline):
    return {
        "member": member,
        "keySuite": suite,
        "encryptionKey": key,
        "nonce": nonce,
        "deadline": deadline,
    }


def _onboard_message(member, kind, name, suite, key, nonce, deadline):
    return {
        "member": member,
        "kind": kind,
        "name": name,
        "keySuite": suite,
        "encryptionKey": key,
        "nonce": nonce,
        "deadline": deadline,
    }


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
            env.admin,
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
        "by": env.admin.address,
    }
    assert env.chain.member(member.address).status == "suspended"
    assert env.view("MemberRegistry", "standing", member.address) == (2, False)

    reinstated = env.chain.reinstate(member.address)
    assert reinstated.event("MemberReinstated").args == {
        "member": member.address,
        "by": env.admin.address,
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

    result = env.as_(member).rotate_key(key_suite=2, encryption_key=key)

    assert result.event("EncryptionKeyRotated").args == {
        "member": member.address,
        "keySuite": 2,
        "encryptionKey": key,
        "by": member.address,
    }
    info = env.chain.member(member.address)
    assert (info.key_suite, info.encryption_key, info.status) == (2, key, "active")


def test_admin_cannot_rotate_a_members_key_it_rotates_only_its_own(env, reverts, unique_hash):
    """The issue's key substitution: the operator key must not replace a member's key."""
    member = env.new_member("enterprise", funded=False)
    before = env.chain.member(member.address).encryption_key
    # rotateKey takes no member argument: ADMIN (not a member) can only name itself.
    with reverts("MemberRegistryUnknownMember", member=env.admin.address):
        env.chain.rotate_key(key_suite=1, encryption_key=unique_hash())
    # ... and the relayed form needs the member's own signature: ADMIN's is refused.
    nonce, deadline, key = _random_nonce(), env.deadline(), unique_hash()
    message = _rotate_message(member.address, 1, key, nonce, deadline)
    forged = env.sign_action(env.admin, "rotate_key", message)
    with reverts("MemberRegistryInvalidSigner", signer=env.admin.address, member=member.address):
        env.broker_chain.rotate_key_for(
            member.address,
            key_suite=1,
            encryption_key=key,
            nonce=nonce,
            deadline=deadline,
            signature=forged,
        )
    assert env.chain.member(member.address).encryption_key == before


def test_rotate_key_for_relays_the_members_signature_and_records_the_relayer(
    env, reverts, unique_hash
):
    member = env.new_member(funded=False)
    nonce, deadline, key = _random_nonce(), env.deadline(), unique_hash()
    signature = env.sign_action(
        member, "rotate_key", _rotate_message(member.address, 2, key, nonce, deadline)
    )

    result = env.broker_chain.rotate_key_for(
        member.address,
        key_suite=2,
        encryption_key=key,
        nonce=nonce,
        deadline=deadline,
        signature=signature,
    )

    assert result.event("EncryptionKeyRotated").args == {
        "member": member.address,
        "keySuite": 2,
        "encryptionKey": key,
        "by": env.broker.address,
    }
    assert env.chain.member(member.address).encryption_key == key
    with reverts("MemberRegistrySignatureReplayed"):
        env.broker_chain.rotate_key_for(
            member.address,
            key_suite=2,
            encryption_key=key,
            nonce=nonce,
            deadline=deadline,
            signature=signature,
        )


def test_rotate_key_for_refuses_an_expired_or_altered_signature(env, reverts, unique_hash):
    member = env.new_member(funded=False)
    nonce, key = _random_nonce(), unique_hash()
    expired = env.now() - 1
    signature = env.sign_action(
        member, "rotate_key", _rotate_message(member.address, 1, key, nonce, expired)
    )
    with reverts("MemberRegistryExpiredSignature", deadline=expired):
        env.broker_chain.rotate_key_for(
            member.address,
            key_suite=1,
            encryption_key=key,
            nonce=nonce,
            deadline=expired,
            signature=signature,
        )
    deadline = env.deadline()
    signature = env.sign_action(
        member, "rotate_key", _rotate_message(member.address, 1, key, nonce, deadline)
    )
    with reverts("MemberRegistryInvalidSigner", member=member.address):
        env.broker_chain.rotate_key_for(
            member.address,
            key_suite=1,
            encryption_key=unique_hash(),  # not the key the member signed
            nonce=nonce,
            deadline=deadline,
            signature=signature,
        )


def test_another_member_or_the_broker_cannot_rotate_a_key(env, reverts, unique_hash):
    before = env.chain.member(env.dept_b.address).encryption_key
    nonce, deadline, key = _random_nonce(), env.deadline(), unique_hash()
    for caller in (env.dept_a, env.broker):
        signature = env.sign_action(
            caller, "rotate_key", _rotate_message(env.dept_b.address, 1, key, nonce, deadline)
        )
        with reverts(
            "MemberRegistryInvalidSigner", signer=caller.address, member=env.dept_b.address
        ):
            env.as_(caller).rotate_key_for(
                env.dept_b.address,
                key_suite=1,
                encryption_key=key,
                nonce=nonce,
                deadline=deadline,
                signature=signature,
            )
    assert env.chain.member(env.dept_b.address).encryption_key == before


def test_rotating_the_key_of_an_unknown_member_is_refused(env, reverts, unique_hash):
    stranger = env.net.new_account()
    with reverts("MemberRegistryUnknownMember", member=stranger.address):
        env.as_(stranger).rotate_key(key_suite=1, encryption_key=unique_hash())


def test_rotating_to_a_malformed_key_is_refused(env, reverts):
    member = env.new_member()
    with reverts("MemberRegistryInvalidKey", keySuite=0, keyLength=32):
        env.as_(member).rotate_key(key_suite=0, encryption_key=b"\x01" * 32)
    with reverts("MemberRegistryInvalidKey", keySuite=1, keyLength=0):
        env.as_(member).rotate_key(key_suite=1, encryption_key=b"")


# -- ADMIN actions relayed with the ADMIN's signature ---------------------------------------


def test_onboard_for_relays_an_admin_signature_and_stores_the_name_hash(env, reverts):
    member, key = Account.create(), encryption_key()
    nonce, deadline = _random_nonce(), env.deadline()
    message = _onboard_message(member.address, 2, "Acme Analytics", 1, key, nonce, deadline)
    signature = env.sign_action(env.admin, "onboard", message)

    result = env.broker_chain.onboard_for(
        member.address,
        kind="enterprise",
        name="Acme Analytics",
        key_suite=1,
        encryption_key=key,
        nonce=nonce,
        deadline=deadline,
        signature=signature,
    )

    assert result.event("MemberOnboarded").args == {
        "member": member.address,
        "kind": 2,
        "nameHash": keccak(text="Acme Analytics"),
        "keySuite": 1,
        "encryptionKey": key,
    }
    info = env.chain.member(member.address)
    assert (info.kind, info.active, info.encryption_key) == ("enterprise", True, key)
    digest = eip712.eip712_digest(
        "Onboard",
        {k: to_json_value(v) for k, v in message.items()},
        env.chain.deployment.domains.separator("onboard"),
    )
    assert env.chain.is_digest_used("MemberRegistry", digest)
    with reverts("MemberRegistrySignatureReplayed", digest=digest):
        env.broker_chain.onboard_for(
            member.address,
            kind="enterprise",
            name="Acme Analytics",
            key_suite=1,
            encryption_key=key,
            nonce=nonce,
            deadline=deadline,
            signature=signature,
        )


@pytest.mark.parametrize("signer_name", ["broker", "dept_a"])
def test_onboard_for_signed_by_a_non_admin_is_refused(env, reverts, signer_name):
    signer = getattr(env, signer_name)
    member, key = Account.create(), encryption_key()
    nonce, deadline = _random_nonce(), env.deadline()
    message = _onboard_message(member.address, 1, "Impostor", 1, key, nonce, deadline)
    signature = env.sign_action(signer, "onboard", message)
    with reverts("MemberRegistryUnauthorizedSigner", signer=signer.address):
        env.broker_chain.onboard_for(
            member.address,
            kind="department",
            name="Impostor",
            key_suite=1,
            encryption_key=key,
            nonce=nonce,
            deadline=deadline,
            signature=signature,
        )
    assert not env.chain.member(member.address).active


def test_onboard_for_refuses_an_expired_signature_or_another_name(env, reverts):
    member, key = Account.create(), encryption_key()
    nonce, expired = _random_nonce(), env.now() - 1
    message = _onboard_message(member.address, 1, "Water Board", 1, key, nonce, expired)
    with reverts("MemberRegistryExpiredSignature", deadline=expired):
        env.broker_chain.onboard_for(
            member.address,
            kind="department",
            name="Water Board",
            key_suite=1,
            encryption_key=key,
            nonce=nonce,
            deadline=expired,
            signature=env.sign_action(env.admin, "onboard", message),
        )
    deadline = env.deadline()
    message = _onboard_message(member.address, 1, "Water Board", 1, key, nonce, deadline)
    with reverts("MemberRegistryUnauthorizedSigner"):
        env.broker_chain.onboard_for(
            member.address,
            kind="department",
            name="Water Board (changed)",
            key_suite=1,
            encryption_key=key,
            nonce=nonce,
            deadline=deadline,
            signature=env.sign_action(env.admin, "onboard", message),
        )


@pytest.mark.parametrize("action", ["suspend", "reinstate"])
def test_suspend_and_reinstate_for_relay_admin_signatures_once(env, reverts, action):
    member = env.new_member(funded=False)
    if action == "reinstate":
        env.chain.suspend(member.address)
    relay = getattr(env.broker_chain, f"{action}_for")
    nonce, deadline = _random_nonce(), env.deadline()
    message = {"member": member.address, "nonce": nonce, "deadline": deadline}
    signature = env.sign_action(env.admin, action, message)

    result = relay(member.address, nonce=nonce, deadline=deadline, signature=signature)

    event = "MemberSuspended" if action == "suspend" else "MemberReinstated"
    assert result.event(event).args == {"member": member.address, "by": env.admin.address}
    assert env.chain.member(member.address).active is (action == "reinstate")
    with reverts("MemberRegistrySignatureReplayed"):
        relay(member.address, nonce=nonce, deadline=deadline, signature=signature)


@pytest.mark.parametrize("action", ["suspend", "reinstate"])
def test_suspend_and_reinstate_for_signed_by_the_broker_are_refused(env, reverts, action):
    member = env.new_member(funded=False)
    if action == "reinstate":
        env.chain.suspend(member.address)
    nonce, deadline = _random_nonce(), env.deadline()
    message = {"member": member.address, "nonce": nonce, "deadline": deadline}
    signature = env.sign_action(env.broker, action, message)
    with reverts("MemberRegistryUnauthorizedSigner", signer=env.broker.address):
        getattr(env.broker_chain, f"{action}_for")(
            member.address, nonce=nonce, deadline=deadline, signature=signature
        )
    assert env.chain.member(member.address).active is (action == "suspend")


def test_suspend_for_refuses_an_expired_signature(env, reverts):
    member = env.new_member(funded=False)
    nonce, expired = _random_nonce(), env.now() - 1
    message = {"member": member.address, "nonce": nonce, "deadline": expired}
    with reverts("MemberRegistryExpiredSignature", deadline=expired):
        env.broker_chain.suspend_for(
            member.address,
            nonce=nonce,
            deadline=expired,
            signature=env.sign_action(env.admin, "suspend", message),
        )


def test_broker_cannot_onboard_suspend_or_reinstate_directly(env, reverts, unique_hash):
    member = env.new_member(funded=False)
    with reverts("AccessControlUnauthorizedAccount", account=env.broker.address):
        env.broker_chain.suspend(member.address)
    with reverts("AccessControlUnauthorizedAccount", account=env.broker.address):
        env.broker_chain.reinstate(member.address)
    with reverts("AccessControlUnauthorizedAccount", account=env.broker.address):
        env.broker_chain.onboard(
            Account.create().address,
            kind="department",
            name_hash=unique_hash(),
            key_suite=1,
            encryption_key=unique_hash(),
        )


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
    assert [ev.args["by"] for ev in suspended] == [env.admin.address]
    assert onboarded[0].block_number < suspended[0].block_number

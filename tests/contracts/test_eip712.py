"""EIP-712: messages signed in Python with eth-account verify on chain, and recover in Python."""

from __future__ import annotations

import copy

import pytest

from ledger.chain.client import encode_approval
from ledger.protocol import eip712
from ledger.protocol.messages import typed_approval, typed_grant, typed_register, typed_revoke

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_every_verifying_contract_announces_the_domain_python_signs_for(env):
    for contract in ("MemberRegistry", "DataRegistry", "AccessLedger", "SharingCredits"):
        address = env.chain.deployment.address_of(contract)
        fields, name, version, chain_id, verifying, salt, extensions = env.view(
            contract, "eip712Domain"
        )
        assert fields == b"\x0f"  # name, version, chainId, verifyingContract
        assert {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": verifying,
        } == eip712.contract_domain(env.chain.deployment.chain_id, address).as_json()
        assert env.chain.deployment.domains.as_json()[contract]["verifyingContract"] == address
        assert (salt, extensions) == (b"\x00" * 32, ())
    assert env.chain.deployment.chain_id == env.net.w3.eth.chain_id


def test_register_signed_in_python_verifies_on_chain_and_recovers_in_python(env):
    parents = (env.register(env.dept_a, "public"), env.register(env.dept_b, "internal"))
    registration = env.registration("sensitive", parents=parents)
    nonce, deadline = env.chain.nonce("DataRegistry", env.dept_a.address), env.deadline()
    message = typed_register(
        env.chain.deployment.domains,
        env.dept_a.address,
        registration,
        nonce=nonce,
        deadline=deadline,
    )

    signature = eip712.sign_typed(env.dept_a, message)

    assert len(signature) == 65
    assert eip712.recover_typed(message, signature) == env.dept_a.address
    dataset_id, _ = env.broker_chain.register_for(
        env.dept_a.address, registration, nonce=nonce, deadline=deadline, signature=signature
    )
    assert env.chain.dataset(dataset_id).parents == parents
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_grant_and_admin_approval_signed_in_python_verify_on_chain(env):
    dataset_id = env.register(env.dept_b, "sensitive")
    terms = env.terms(dataset_id, env.enterprise)
    nonce, deadline = env.chain.nonce("AccessLedger", env.dept_b.address), env.deadline()
    grant = typed_grant(env.chain.deployment.domains, terms, nonce=nonce, deadline=deadline)
    approval_nonce, approval_deadline = 2**200 + 1, env.deadline()
    approval = typed_approval(
        env.chain.deployment.domains,
        terms,
        generation=1,
        nonce=approval_nonce,
        deadline=approval_deadline,
    )

    owner_signature = eip712.sign_typed(env.dept_b, grant)
    admin_signature = eip712.sign_typed(env.admin, approval)

    assert eip712.recover_typed(grant, owner_signature) == env.dept_b.address
    assert eip712.recover_typed(approval, admin_signature) == env.admin.address
    result = env.broker_chain.grant_for(
        terms,
        nonce=nonce,
        deadline=deadline,
        signature=owner_signature,
        admin_approval=encode_approval(1, approval_nonce, approval_deadline, admin_signature),
    )
    assert result.event("AccessGranted").args["grantor"] == env.dept_b.address


def test_revoke_signed_in_python_verifies_on_chain(env):
    dataset_id = env.register(env.dept_a)
    env.as_(env.dept_a).grant(env.terms(dataset_id, env.dept_b))
    nonce, deadline = env.chain.nonce("AccessLedger", env.dept_a.address), env.deadline()
    message = typed_revoke(
        env.chain.deployment.domains, dataset_id, env.dept_b.address, nonce=nonce, deadline=deadline
    )

    signature = eip712.sign_typed(env.dept_a, message)

    assert eip712.recover_typed(message, signature) == env.dept_a.address
    result = env.broker_chain.revoke_for(
        dataset_id, env.dept_b.address, nonce=nonce, deadline=deadline, signature=signature
    )
    assert result.event("AccessRevoked").args["by"] == env.dept_a.address


def test_a_changed_message_recovers_to_another_address(env):
    registration = env.registration()
    message = typed_register(
        env.chain.deployment.domains,
        env.dept_a.address,
        registration,
        nonce=0,
        deadline=env.deadline(),
    )
    signature = eip712.sign_typed(env.dept_a, message)
    changed = copy.deepcopy(message)
    changed["message"]["classification"] = 2
    assert eip712.recover_typed(changed, signature) != env.dept_a.address


@pytest.mark.parametrize("domain_field", ["chainId", "verifyingContract", "name", "version"])
def test_a_signature_for_another_domain_is_refused_on_chain(env, reverts, domain_field):
    registration = env.registration()
    nonce, deadline = env.chain.nonce("DataRegistry", env.dept_a.address), env.deadline()
    message = typed_register(
        env.chain.deployment.domains,
        env.dept_a.address,
        registration,
        nonce=nonce,
        deadline=deadline,
    )
    message["domain"][domain_field] = {
        "chainId": message["domain"]["chainId"] + 1,
        "verifyingContract": env.chain.deployment.access_ledger,
        "name": "SomeOtherLedger",
        "version": "2",
    }[domain_field]
    signature = eip712.sign_typed(env.dept_a, message)
    assert eip712.recover_typed(message, signature) == env.dept_a.address

    with reverts("DataRegistryInvalidSigner", owner=env.dept_a.address) as info:
        env.broker_chain.register_for(
            env.dept_a.address, registration, nonce=nonce, deadline=deadline, signature=signature
        )
    assert info.value.error_args["signer"] != env.dept_a.address


def test_a_malleable_high_s_signature_is_refused_on_chain(env, reverts):
    terms = env.terms(env.register(env.dept_a), env.dept_b)
    nonce, deadline = env.chain.nonce("AccessLedger", env.dept_a.address), env.deadline()
    signature = eip712.sign_typed(
        env.dept_a, typed_grant(env.chain.deployment.domains, terms, nonce=nonce, deadline=deadline)
    )
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    high_s = SECP256K1_N - s
    flipped = r + high_s.to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    with reverts("ECDSAInvalidSignatureS", s=high_s.to_bytes(32, "big")):
        env.broker_chain.grant_for(terms, nonce=nonce, deadline=deadline, signature=flipped)
    env.broker_chain.grant_for(terms, nonce=nonce, deadline=deadline, signature=signature)
    assert env.chain.grant_of(terms.dataset_id, env.dept_b.address).exists

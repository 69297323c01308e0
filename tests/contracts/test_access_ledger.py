"""AccessLedger: grants, their uses, expiry and revocation."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.client import BROKER_ROLE
from ledger.errors import ContractRevert
from ledger.protocol import eip712
from ledger.protocol.actions import to_json_value
from ledger.protocol.messages import approval_message, typed_grant, typed_revoke

UINT40_MAX = 2**40 - 1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _granted_args(terms, grantor, generation=1):
    return {
        "datasetId": terms.dataset_id,
        "grantee": terms.grantee,
        "grantor": grantor,
        "generation": generation,
        "purposeHash": terms.purpose_hash,
        "termsHash": terms.terms_hash,
        "expiresAt": terms.expires_at,
        "maxUses": terms.max_uses,
    }


def _relay_grant(env, owner, terms, *, signer=None, nonce=None, deadline=None, approval=b""):
    nonce = env.chain.nonce("AccessLedger", owner.address) if nonce is None else nonce
    deadline = env.deadline() if deadline is None else deadline
    signature = env.sign(
        signer or owner,
        typed_grant(env.chain.deployment.domains, terms, nonce=nonce, deadline=deadline),
    )
    return env.broker_chain.grant_for(
        terms, nonce=nonce, deadline=deadline, signature=signature, admin_approval=approval
    )


def _relay_revoke(env, owner, dataset_id, grantee, *, signer=None, nonce=None, deadline=None):
    nonce = env.chain.nonce("AccessLedger", owner.address) if nonce is None else nonce
    deadline = env.deadline() if deadline is None else deadline
    message = typed_revoke(
        env.chain.deployment.domains, dataset_id, grantee, nonce=nonce, deadline=deadline
    )
    signature = env.sign(signer or owner, message)
    return env.broker_chain.revoke_for(
        dataset_id, grantee, nonce=nonce, deadline=deadline, signature=signature
    )


def _refusal(action):
    """The ContractRevert ``action`` raised, or None if it went through."""
    try:
        action()
    except ContractRevert as exc:
        return exc
    return None


def _granted(env, owner, grantee, **terms_options):
    """A fresh INTERNAL dataset of ``owner`` granted directly to ``grantee``; returns the terms."""
    dataset_id = env.register(owner, "internal")
    terms = env.terms(dataset_id, grantee, **terms_options)
    env.as_(owner).grant(terms)
    return terms


# -- granting ------------------------------------------------------------------------------


def test_owner_grants_access_directly(env):
    dataset_id = env.register(env.dept_a)
    terms = env.terms(dataset_id, env.enterprise, max_uses=5)

    result = env.as_(env.dept_a).grant(terms)

    assert result.event("AccessGranted").args == _granted_args(terms, env.dept_a.address)
    grant = env.chain.grant_of(dataset_id, env.enterprise.address)
    block = env.net.w3.eth.get_block(result.block_number)
    assert grant.exists
    assert (grant.granted_at, grant.expires_at) == (block["timestamp"], terms.expires_at)
    assert (grant.max_uses, grant.uses, grant.uses_left) == (5, 0, 5)
    assert (grant.generation, grant.revoked) == (1, False)
    assert env.chain.is_usable(dataset_id, env.enterprise.address)


def test_relayed_grant_carries_the_owners_signature(env):
    dataset_id = env.register(env.dept_a)
    terms = env.terms(dataset_id, env.dept_b)
    nonce = env.chain.nonce("AccessLedger", env.dept_a.address)

    result = _relay_grant(env, env.dept_a, terms)

    assert result.event("AccessGranted").args == _granted_args(terms, env.dept_a.address)
    assert env.net.w3.eth.get_transaction(result.tx_hash)["from"] == env.broker.address
    assert env.chain.nonce("AccessLedger", env.dept_a.address) == nonce + 1
    assert env.chain.is_usable(dataset_id, env.dept_b.address)


def test_relayed_grant_past_its_deadline_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a), env.dept_b)
    deadline = env.now() - 1
    with reverts("AccessLedgerExpiredSignature", deadline=deadline):
        _relay_grant(env, env.dept_a, terms, deadline=deadline)


def test_relayed_grant_with_reused_nonce_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    nonce = env.chain.nonce("AccessLedger", env.dept_a.address)
    _relay_grant(env, env.dept_a, env.terms(dataset_id, env.dept_b), nonce=nonce)
    with reverts("InvalidAccountNonce", account=env.dept_a.address, currentNonce=nonce + 1):
        _relay_grant(env, env.dept_a, env.terms(dataset_id, env.enterprise), nonce=nonce)


def test_relayed_grant_signed_by_someone_other_than_the_owner_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a), env.enterprise)
    # The grantee signing its own grant is the attack this check stops.
    with reverts(
        "AccessLedgerInvalidSigner", signer=env.enterprise.address, expected=env.dept_a.address
    ):
        _relay_grant(env, env.dept_a, terms, signer=env.enterprise)
    assert not env.chain.grant_of(terms.dataset_id, env.enterprise.address).exists


def test_relayed_grant_with_altered_terms_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a), env.dept_b, max_uses=1)
    nonce = env.chain.nonce("AccessLedger", env.dept_a.address)
    deadline = env.deadline()
    signature = env.sign(
        env.dept_a, typed_grant(env.chain.deployment.domains, terms, nonce=nonce, deadline=deadline)
    )
    with reverts("AccessLedgerInvalidSigner", expected=env.dept_a.address) as info:
        env.broker_chain.grant_for(
            replace(terms, max_uses=1000), nonce=nonce, deadline=deadline, signature=signature
        )
    assert info.value.error_args["signer"] != env.dept_a.address


def test_grant_by_a_non_owner_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    for caller in (env.dept_b, env.admin):
        with reverts("AccessLedgerNotDatasetOwner", datasetId=dataset_id, caller=caller.address):
            env.as_(caller).grant(env.terms(dataset_id, env.enterprise))


def test_grant_of_an_unknown_dataset_is_refused(env, reverts):
    missing = env.chain.dataset_count() + 100
    with reverts("DataRegistryUnknownDataset", datasetId=missing):
        env.as_(env.dept_a).grant(env.terms(missing, env.enterprise))


def test_grant_by_a_suspended_owner_is_refused(env, reverts):
    owner = env.new_member()
    dataset_id = env.register(owner)
    env.chain.suspend(owner.address)
    with reverts("AccessLedgerInactiveMember", account=owner.address):
        env.as_(owner).grant(env.terms(dataset_id, env.enterprise))
    with reverts("AccessLedgerInactiveMember", account=owner.address):
        _relay_grant(env, owner, env.terms(dataset_id, env.enterprise))


def test_grant_to_an_inactive_or_unknown_grantee_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    suspended = env.new_member("enterprise")
    env.chain.suspend(suspended.address)
    stranger = Account.create().address
    for grantee in (suspended.address, stranger):
        with reverts("AccessLedgerInactiveMember", account=grantee):
            env.as_(env.dept_a).grant(env.terms(dataset_id, grantee))


def test_regulators_cannot_be_granted_contents(env, reverts):
    dataset_id = env.register(env.dept_a)
    with reverts("AccessLedgerInvalidGrantee", grantee=env.regulator.address):
        env.as_(env.dept_a).grant(env.terms(dataset_id, env.regulator))


def test_owner_cannot_grant_to_itself(env, reverts):
    dataset_id = env.register(env.dept_a)
    with reverts("AccessLedgerInvalidGrantee", grantee=env.dept_a.address):
        env.as_(env.dept_a).grant(env.terms(dataset_id, env.dept_a))


@pytest.mark.parametrize(
    "change",
    [
        {"expires_at": 0},
        {"expires_at": "now"},
        {"expires_at": UINT40_MAX + 1},
        {"max_uses": 0},
    ],
    ids=["expired", "expires-now", "beyond-uint40", "no-uses"],
)
def test_grant_with_unusable_terms_is_refused(env, reverts, change):
    dataset_id = env.register(env.dept_a)
    terms = env.terms(dataset_id, env.dept_b)
    if change.get("expires_at") == "now":
        change = {"expires_at": env.now()}
    with reverts("AccessLedgerInvalidTerms"):
        env.as_(env.dept_a).grant(replace(terms, **change))


def test_grant_expiring_at_the_uint40_limit_is_accepted(env):
    terms = replace(env.terms(env.register(env.dept_a), env.dept_b), expires_at=UINT40_MAX)
    env.as_(env.dept_a).grant(terms)
    assert env.chain.grant_of(terms.dataset_id, env.dept_b.address).expires_at == UINT40_MAX


def test_grant_of_a_retired_dataset_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    env.as_(env.dept_a).retire(dataset_id)
    with reverts("AccessLedgerDatasetRetired", datasetId=dataset_id):
        env.as_(env.dept_a).grant(env.terms(dataset_id, env.dept_b))


# -- SENSITIVE datasets ----------------------------------------------------------------------


def test_sensitive_grant_to_an_enterprise_needs_an_admin_cosignature(env, reverts):
    dataset_id = env.register(env.dept_a, "sensitive")
    terms = env.terms(dataset_id, env.enterprise)
    with reverts(
        "AccessLedgerAdminApprovalRequired", datasetId=dataset_id, grantee=env.enterprise.address
    ):
        env.as_(env.dept_a).grant(terms)

    approval = env.approval(terms)
    result = env.as_(env.dept_a).grant(terms, admin_approval=approval)

    assert result.event("AccessGranted").args == _granted_args(terms, env.dept_a.address)
    assert env.chain.is_usable(dataset_id, env.enterprise.address)


def test_sensitive_grant_with_a_non_admin_cosignature_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise)
    for cosigner in (env.dept_a, env.broker, env.enterprise):
        approval = env.approval(terms, signer=cosigner)
        with reverts("AccessLedgerInvalidAdminApproval", signer=cosigner.address):
            env.as_(env.dept_a).grant(terms, admin_approval=approval)
    assert not env.chain.grant_of(terms.dataset_id, env.enterprise.address).exists


def test_admin_cosignature_covers_only_the_terms_it_signed(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise, max_uses=1)
    approval = env.approval(terms)
    with reverts("AccessLedgerInvalidAdminApproval") as info:
        env.as_(env.dept_a).grant(replace(terms, max_uses=50), admin_approval=approval)
    assert info.value.error_args["signer"] != env.admin.address


def test_relayed_sensitive_grant_with_admin_cosignature_is_accepted(env):
    terms = env.terms(env.register(env.dept_b, "sensitive"), env.enterprise)
    approval = env.approval(terms)
    result = _relay_grant(env, env.dept_b, terms, approval=approval)
    assert result.event("AccessGranted").args == _granted_args(terms, env.dept_b.address)


def test_regrant_with_the_same_admin_approval_is_refused(env, reverts):
    """The issue's replay: an owner re-granting with the approval of an exhausted grant."""
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise, max_uses=1)
    approval = env.approval(terms)
    env.as_(env.dept_a).grant(terms, admin_approval=approval)
    env.use(terms.dataset_id, env.enterprise)
    assert not env.chain.is_usable(terms.dataset_id, env.enterprise.address)

    with reverts("AccessLedgerApprovalGenerationMismatch", expected=2, signed=1):
        env.as_(env.dept_a).grant(terms, admin_approval=approval)
    with reverts("AccessLedgerApprovalGenerationMismatch", expected=2, signed=1):
        _relay_grant(env, env.dept_a, terms, approval=approval)

    grant = env.chain.grant_of(terms.dataset_id, env.enterprise.address)
    assert (grant.generation, grant.uses, grant.max_uses) == (1, 1, 1)


def test_admin_approval_for_a_wrong_generation_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise)
    for generation in (0, 2):
        with reverts("AccessLedgerApprovalGenerationMismatch", expected=1, signed=generation):
            env.as_(env.dept_a).grant(
                terms, admin_approval=env.approval(terms, generation=generation)
            )
    # A signature over generation 2 repacked as generation 1 recovers to someone else.
    packed = env.approval(terms, generation=2)
    relabelled = (1).to_bytes(32, "big") + packed[32:]
    with reverts("AccessLedgerInvalidAdminApproval") as info:
        env.as_(env.dept_a).grant(terms, admin_approval=relabelled)
    assert info.value.error_args["signer"] != env.admin.address
    assert not env.chain.grant_of(terms.dataset_id, env.enterprise.address).exists


def test_expired_or_malformed_admin_approval_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise)
    expired = env.now() - 1
    with reverts("AccessLedgerExpiredSignature", deadline=expired):
        env.as_(env.dept_a).grant(terms, admin_approval=env.approval(terms, deadline=expired))
    approval = env.approval(terms)
    for malformed in (approval[:-1], approval + b"\x00", approval[96:]):
        with reverts("AccessLedgerMalformedAdminApproval", length=len(malformed)):
            env.as_(env.dept_a).grant(terms, admin_approval=malformed)
    assert not env.chain.grant_of(terms.dataset_id, env.enterprise.address).exists


def test_admin_approval_is_consumed_and_each_regrant_needs_a_new_one(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise, max_uses=1)
    nonce, deadline = 7, env.deadline()
    first = env.approval(terms, nonce=nonce, deadline=deadline)
    digest = eip712.eip712_digest(
        "GrantApproval",
        {
            k: to_json_value(v)
            for k, v in approval_message(
                terms, generation=1, nonce=nonce, deadline=deadline
            ).items()
        },
        env.chain.deployment.domains.separator("approval"),
    )
    assert not env.chain.is_digest_used("AccessLedger", digest)
    env.as_(env.dept_a).grant(terms, admin_approval=first)
    assert env.chain.is_digest_used("AccessLedger", digest)

    second = env.approval(terms, nonce=nonce, deadline=deadline)  # generation 2 now
    result = env.as_(env.dept_a).grant(terms, admin_approval=second)
    assert result.event("AccessGranted").args["generation"] == 2


def test_sensitive_grant_to_a_department_needs_no_cosignature(env):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.dept_b)
    result = env.as_(env.dept_a).grant(terms)
    assert result.event("AccessGranted").args["grantee"] == env.dept_b.address
    assert env.chain.is_usable(terms.dataset_id, env.dept_b.address)


def test_derived_dataset_of_a_sensitive_parent_inherits_the_cosignature_rule(env, reverts):
    parent = env.register(env.dept_a, "sensitive")
    derived = env.register(env.dept_b, "sensitive", parents=(parent,))
    with reverts("AccessLedgerAdminApprovalRequired", datasetId=derived):
        env.as_(env.dept_b).grant(env.terms(derived, env.enterprise))


# -- recording uses --------------------------------------------------------------------------


def test_broker_records_a_use_carrying_the_grantees_fetch_signature(env):
    terms = _granted(env, env.dept_a, env.enterprise, max_uses=3)
    nonce, deadline, signature = env.fetch_signature(env.enterprise, terms.dataset_id)
    args = (terms.dataset_id, env.enterprise.address, nonce, deadline, signature)
    assert env.simulate(env.broker, "AccessLedger", "recordUse", *args) == 2
    assert env.chain.fetch_recorded(env.enterprise.address, nonce) == 0

    result = env.broker_chain.record_use(
        terms.dataset_id,
        env.enterprise.address,
        nonce=nonce,
        deadline=deadline,
        signature=signature,
    )

    assert result.event("AccessUsed").args == {
        "datasetId": terms.dataset_id,
        "grantee": env.enterprise.address,
        "uses": 1,
        "nonce": nonce,
    }
    grant = env.chain.grant_of(terms.dataset_id, env.enterprise.address)
    assert (grant.uses, grant.uses_left) == (1, 2)
    assert env.chain.fetch_recorded(env.enterprise.address, nonce) == terms.dataset_id
    assert env.chain.fetch_recorded(env.dept_b.address, nonce) == 0


def test_use_without_the_grantees_signature_is_refused(env, reverts):
    """The issue's made-up use: the broker's key alone cannot record one."""
    terms = _granted(env, env.dept_a, env.enterprise)
    for signer in (env.broker, env.admin, env.dept_a):
        nonce, deadline, forged = env.fetch_signature(
            env.enterprise, terms.dataset_id, signer=signer
        )
        with reverts(
            "AccessLedgerInvalidSigner", signer=signer.address, expected=env.enterprise.address
        ):
            env.broker_chain.record_use(
                terms.dataset_id,
                env.enterprise.address,
                nonce=nonce,
                deadline=deadline,
                signature=forged,
            )
    with reverts("ECDSAInvalidSignatureLength", length=0):
        env.broker_chain.record_use(
            terms.dataset_id,
            env.enterprise.address,
            nonce=1,
            deadline=env.deadline(),
            signature=b"",
        )
    assert env.chain.grant_of(terms.dataset_id, env.enterprise.address).uses == 0


def test_use_with_a_fetch_signed_for_another_dataset_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    other = _granted(env, env.dept_a, env.enterprise)
    nonce, deadline, signature = env.fetch_signature(env.enterprise, other.dataset_id)
    with reverts("AccessLedgerInvalidSigner", expected=env.enterprise.address):
        env.broker_chain.record_use(
            terms.dataset_id,
            env.enterprise.address,
            nonce=nonce,
            deadline=deadline,
            signature=signature,
        )


def test_a_replayed_fetch_signature_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise, max_uses=5)
    nonce, deadline, signature = env.fetch_signature(env.enterprise, terms.dataset_id)
    use = {"nonce": nonce, "deadline": deadline, "signature": signature}
    env.broker_chain.record_use(terms.dataset_id, env.enterprise.address, **use)
    with reverts("AccessLedgerFetchAlreadyRecorded", grantee=env.enterprise.address, nonce=nonce):
        env.broker_chain.record_use(terms.dataset_id, env.enterprise.address, **use)
    # The same nonce, freshly signed for another dataset, is still the same fetch.
    other = _granted(env, env.dept_b, env.enterprise)
    _, _, again = env.fetch_signature(
        env.enterprise, other.dataset_id, nonce=nonce, deadline=deadline
    )
    with reverts("AccessLedgerFetchAlreadyRecorded", nonce=nonce):
        env.broker_chain.record_use(
            other.dataset_id,
            env.enterprise.address,
            nonce=nonce,
            deadline=deadline,
            signature=again,
        )
    assert env.chain.grant_of(terms.dataset_id, env.enterprise.address).uses == 1


def test_an_expired_fetch_signature_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    expired = env.now() - 1
    nonce, _, signature = env.fetch_signature(env.enterprise, terms.dataset_id, deadline=expired)
    with reverts("AccessLedgerExpiredSignature", deadline=expired):
        env.broker_chain.record_use(
            terms.dataset_id,
            env.enterprise.address,
            nonce=nonce,
            deadline=expired,
            signature=signature,
        )


def test_a_high_s_fetch_signature_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    nonce, deadline, signature = env.fetch_signature(env.enterprise, terms.dataset_id)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    flipped = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with reverts("ECDSAInvalidSignatureS"):
        env.broker_chain.record_use(
            terms.dataset_id,
            env.enterprise.address,
            nonce=nonce,
            deadline=deadline,
            signature=flipped,
        )


def test_only_the_broker_records_uses(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    nonce, deadline, signature = env.fetch_signature(env.enterprise, terms.dataset_id)
    for caller in (env.admin, env.dept_a, env.enterprise):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=BROKER_ROLE
        ):
            env.as_(caller).record_use(
                terms.dataset_id,
                env.enterprise.address,
                nonce=nonce,
                deadline=deadline,
                signature=signature,
            )
    assert env.chain.grant_of(terms.dataset_id, env.enterprise.address).uses == 0


def test_use_without_a_grant_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    with reverts("AccessLedgerNoGrant", datasetId=dataset_id, grantee=env.dept_b.address):
        env.use(dataset_id, env.dept_b)
    assert not env.chain.is_usable(dataset_id, env.dept_b.address)


def test_use_beyond_max_uses_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.dept_b, max_uses=2)
    for _ in range(2):
        env.use(terms.dataset_id, env.dept_b)
    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)
    with reverts(
        "AccessLedgerUsesExhausted",
        datasetId=terms.dataset_id,
        grantee=env.dept_b.address,
        maxUses=2,
    ):
        env.use(terms.dataset_id, env.dept_b)
    assert env.chain.grant_of(terms.dataset_id, env.dept_b.address).uses == 2


def test_use_after_expiry_is_refused(env, reverts, time_travel):
    terms = _granted(env, env.dept_a, env.dept_b, expires_in=600)
    env.use(terms.dataset_id, env.dept_b)

    time_travel(601)

    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)
    with reverts(
        "AccessLedgerGrantExpired",
        datasetId=terms.dataset_id,
        grantee=env.dept_b.address,
        expiresAt=terms.expires_at,
    ):
        env.use(terms.dataset_id, env.dept_b)


def test_use_after_revoke_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.dept_b)
    env.as_(env.dept_a).revoke(terms.dataset_id, env.dept_b.address)
    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)
    with reverts(
        "AccessLedgerGrantRevoked", datasetId=terms.dataset_id, grantee=env.dept_b.address
    ):
        env.use(terms.dataset_id, env.dept_b)


def test_use_by_a_suspended_grantee_is_refused_until_reinstated(env, reverts):
    grantee = env.new_member("enterprise")
    terms = _granted(env, env.dept_a, grantee)
    env.chain.suspend(grantee.address)
    assert not env.chain.is_usable(terms.dataset_id, grantee.address)
    with reverts("AccessLedgerInactiveMember", account=grantee.address):
        env.use(terms.dataset_id, grantee)

    env.chain.reinstate(grantee.address)
    assert env.chain.is_usable(terms.dataset_id, grantee.address)
    env.use(terms.dataset_id, grantee)
    assert env.chain.grant_of(terms.dataset_id, grantee.address).uses == 1


# -- revocation ------------------------------------------------------------------------------


def test_owner_revokes_a_grant(env):
    terms = _granted(env, env.dept_a, env.enterprise)
    result = env.as_(env.dept_a).revoke(terms.dataset_id, env.enterprise.address)
    assert result.event("AccessRevoked").args == {
        "datasetId": terms.dataset_id,
        "grantee": env.enterprise.address,
        "by": env.dept_a.address,
    }
    grant = env.chain.grant_of(terms.dataset_id, env.enterprise.address)
    assert grant.revoked
    assert grant.exists


def test_admin_revokes_any_grant(env):
    terms = _granted(env, env.dept_a, env.enterprise)
    result = env.chain.revoke(terms.dataset_id, env.enterprise.address)
    assert result.event("AccessRevoked").args["by"] == env.admin.address
    assert env.chain.grant_of(terms.dataset_id, env.enterprise.address).revoked


def test_relayed_revoke_carries_the_owners_signature(env):
    terms = _granted(env, env.dept_a, env.dept_b)
    nonce = env.chain.nonce("AccessLedger", env.dept_a.address)

    result = _relay_revoke(env, env.dept_a, terms.dataset_id, env.dept_b.address)

    assert result.event("AccessRevoked").args == {
        "datasetId": terms.dataset_id,
        "grantee": env.dept_b.address,
        "by": env.dept_a.address,
    }
    assert env.net.w3.eth.get_transaction(result.tx_hash)["from"] == env.broker.address
    assert env.chain.nonce("AccessLedger", env.dept_a.address) == nonce + 1
    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)


def test_revoke_by_another_member_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    for caller in (env.enterprise, env.dept_b, env.broker):
        with reverts(
            "AccessLedgerNotDatasetOwner", datasetId=terms.dataset_id, caller=caller.address
        ):
            env.as_(caller).revoke(terms.dataset_id, env.enterprise.address)
    assert env.chain.is_usable(terms.dataset_id, env.enterprise.address)


def test_relayed_revoke_signed_by_the_grantee_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    with reverts(
        "AccessLedgerInvalidSigner", signer=env.enterprise.address, expected=env.dept_a.address
    ):
        _relay_revoke(
            env, env.dept_a, terms.dataset_id, env.enterprise.address, signer=env.enterprise
        )
    assert not env.chain.grant_of(terms.dataset_id, env.enterprise.address).revoked


def test_relayed_revoke_past_its_deadline_or_with_reused_nonce_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    grantee = env.enterprise.address
    deadline = env.now() - 1
    with reverts("AccessLedgerExpiredSignature", deadline=deadline):
        _relay_revoke(env, env.dept_a, terms.dataset_id, grantee, deadline=deadline)
    nonce = env.chain.nonce("AccessLedger", env.dept_a.address)
    _relay_grant(env, env.dept_a, env.terms(terms.dataset_id, env.dept_b), nonce=nonce)
    with reverts("InvalidAccountNonce", currentNonce=nonce + 1):
        _relay_revoke(env, env.dept_a, terms.dataset_id, grantee, nonce=nonce)
    assert not env.chain.grant_of(terms.dataset_id, grantee).revoked


def test_revoking_a_missing_or_revoked_grant_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    with reverts("AccessLedgerNoGrant", datasetId=terms.dataset_id, grantee=env.dept_b.address):
        env.as_(env.dept_a).revoke(terms.dataset_id, env.dept_b.address)
    env.as_(env.dept_a).revoke(terms.dataset_id, env.enterprise.address)
    with reverts(
        "AccessLedgerGrantRevoked", datasetId=terms.dataset_id, grantee=env.enterprise.address
    ):
        env.as_(env.dept_a).revoke(terms.dataset_id, env.enterprise.address)


def test_regrant_bumps_the_generation_and_resets_uses(env):
    terms = _granted(env, env.dept_a, env.dept_b, max_uses=2)
    for _ in range(2):
        env.use(terms.dataset_id, env.dept_b)
    env.as_(env.dept_a).revoke(terms.dataset_id, env.dept_b.address)

    renewed = env.terms(terms.dataset_id, env.dept_b, max_uses=4)
    result = env.as_(env.dept_a).grant(renewed)

    assert result.event("AccessGranted").args == _granted_args(
        renewed, env.dept_a.address, generation=2
    )
    grant = env.chain.grant_of(terms.dataset_id, env.dept_b.address)
    assert (grant.generation, grant.uses, grant.max_uses, grant.revoked) == (2, 0, 4, False)
    assert env.chain.is_usable(terms.dataset_id, env.dept_b.address)

    third = env.as_(env.dept_a).grant(env.terms(terms.dataset_id, env.dept_b))  # no revoke needed
    assert third.event("AccessGranted").args["generation"] == 3


def test_new_owner_after_transfer_controls_the_grants(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    env.chain.approve_transfer(terms.dataset_id, env.dept_b.address)
    env.as_(env.dept_a).transfer_dataset(terms.dataset_id, env.dept_b.address)
    with reverts("AccessLedgerNotDatasetOwner", caller=env.dept_a.address):
        env.as_(env.dept_a).revoke(terms.dataset_id, env.enterprise.address)
    result = env.as_(env.dept_b).revoke(terms.dataset_id, env.enterprise.address)
    assert result.event("AccessRevoked").args["by"] == env.dept_b.address


# -- isUsable agrees with recordUse -------------------------------------------------------------

EXPIRES_IN = 1000
_STEPS = st.lists(
    st.sampled_from(["use", "use", "revoke", "wait", "expire"]), min_size=1, max_size=5
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(max_uses=st.integers(min_value=1, max_value=3), steps=_STEPS)
def test_is_usable_matches_record_uses_verdict(env, time_travel, max_uses, steps):
    terms = _granted(env, env.dept_a, env.dept_b, max_uses=max_uses, expires_in=EXPIRES_IN)
    grantee = env.dept_b.address
    model = {"uses": 0, "revoked": False, "expired": False}
    for step in [*steps, "use"]:
        if step == "revoke":
            if model["revoked"]:
                continue
            env.as_(env.dept_a).revoke(terms.dataset_id, grantee)
            model["revoked"] = True
        elif step == "wait":
            time_travel(1)  # far from the expiry, which stays in the future
        elif step == "expire":
            time_travel(EXPIRES_IN + 1)
            model["expired"] = True
        else:
            expected = not model["revoked"] and not model["expired"]
            expected = expected and model["uses"] < max_uses
            usable = env.chain.is_usable(terms.dataset_id, grantee)
            refused = _refusal(lambda: env.use(terms.dataset_id, env.dept_b))
            accepted = refused is None
            assert usable == accepted == expected, (step, model, refused)
            if refused is not None:
                assert refused.error in {
                    "AccessLedgerGrantRevoked",
                    "AccessLedgerGrantExpired",
                    "AccessLedgerUsesExhausted",
                }, refused
            model["uses"] += accepted
    assert env.chain.grant_of(terms.dataset_id, grantee).uses == model["uses"]

"""AccessLedger: grants, their uses, expiry and revocation."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.client import BROKER_ROLE
from ledger.errors import ContractRevert
from ledger.protocol.messages import typed_approval, typed_grant, typed_revoke

UINT40_MAX = 2**40 - 1


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
    for caller in (env.dept_b, env.operator):
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

    approval = env.sign(env.operator, typed_approval(env.chain.deployment.domains, terms))
    result = env.as_(env.dept_a).grant(terms, admin_approval=approval)

    assert result.event("AccessGranted").args == _granted_args(terms, env.dept_a.address)
    assert env.chain.is_usable(dataset_id, env.enterprise.address)


def test_sensitive_grant_with_a_non_admin_cosignature_is_refused(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise)
    for cosigner in (env.dept_a, env.broker, env.enterprise):
        approval = env.sign(cosigner, typed_approval(env.chain.deployment.domains, terms))
        with reverts("AccessLedgerInvalidAdminApproval", signer=cosigner.address):
            env.as_(env.dept_a).grant(terms, admin_approval=approval)
    assert not env.chain.grant_of(terms.dataset_id, env.enterprise.address).exists


def test_admin_cosignature_covers_only_the_terms_it_signed(env, reverts):
    terms = env.terms(env.register(env.dept_a, "sensitive"), env.enterprise, max_uses=1)
    approval = env.sign(env.operator, typed_approval(env.chain.deployment.domains, terms))
    with reverts("AccessLedgerInvalidAdminApproval") as info:
        env.as_(env.dept_a).grant(replace(terms, max_uses=50), admin_approval=approval)
    assert info.value.error_args["signer"] != env.operator.address


def test_relayed_sensitive_grant_with_admin_cosignature_is_accepted(env):
    terms = env.terms(env.register(env.dept_b, "sensitive"), env.enterprise)
    approval = env.sign(env.operator, typed_approval(env.chain.deployment.domains, terms))
    result = _relay_grant(env, env.dept_b, terms, approval=approval)
    assert result.event("AccessGranted").args == _granted_args(terms, env.dept_b.address)


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


def test_broker_records_a_use_and_the_uses_left_shrink(env):
    terms = _granted(env, env.dept_a, env.enterprise, max_uses=3)
    args = (terms.dataset_id, env.enterprise.address)
    assert env.simulate(env.broker, "AccessLedger", "recordUse", *args) == 2

    result = env.broker_chain.record_use(*args)

    assert result.event("AccessUsed").args == {
        "datasetId": terms.dataset_id,
        "grantee": env.enterprise.address,
        "uses": 1,
    }
    grant = env.chain.grant_of(*args)
    assert (grant.uses, grant.uses_left) == (1, 2)
    assert env.simulate(env.broker, "AccessLedger", "recordUse", *args) == 1


def test_only_the_broker_records_uses(env, reverts):
    terms = _granted(env, env.dept_a, env.enterprise)
    for caller in (env.operator, env.dept_a, env.enterprise):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=BROKER_ROLE
        ):
            env.as_(caller).record_use(terms.dataset_id, env.enterprise.address)
    assert env.chain.grant_of(terms.dataset_id, env.enterprise.address).uses == 0


def test_use_without_a_grant_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    with reverts("AccessLedgerNoGrant", datasetId=dataset_id, grantee=env.dept_b.address):
        env.broker_chain.record_use(dataset_id, env.dept_b.address)
    assert not env.chain.is_usable(dataset_id, env.dept_b.address)


def test_use_beyond_max_uses_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.dept_b, max_uses=2)
    for _ in range(2):
        env.broker_chain.record_use(terms.dataset_id, env.dept_b.address)
    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)
    with reverts(
        "AccessLedgerUsesExhausted",
        datasetId=terms.dataset_id,
        grantee=env.dept_b.address,
        maxUses=2,
    ):
        env.broker_chain.record_use(terms.dataset_id, env.dept_b.address)
    assert env.chain.grant_of(terms.dataset_id, env.dept_b.address).uses == 2


def test_use_after_expiry_is_refused(env, reverts, time_travel):
    terms = _granted(env, env.dept_a, env.dept_b, expires_in=600)
    env.broker_chain.record_use(terms.dataset_id, env.dept_b.address)

    time_travel(601)

    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)
    with reverts(
        "AccessLedgerGrantExpired",
        datasetId=terms.dataset_id,
        grantee=env.dept_b.address,
        expiresAt=terms.expires_at,
    ):
        env.broker_chain.record_use(terms.dataset_id, env.dept_b.address)


def test_use_after_revoke_is_refused(env, reverts):
    terms = _granted(env, env.dept_a, env.dept_b)
    env.as_(env.dept_a).revoke(terms.dataset_id, env.dept_b.address)
    assert not env.chain.is_usable(terms.dataset_id, env.dept_b.address)
    with reverts(
        "AccessLedgerGrantRevoked", datasetId=terms.dataset_id, grantee=env.dept_b.address
    ):
        env.broker_chain.record_use(terms.dataset_id, env.dept_b.address)


def test_use_by_a_suspended_grantee_is_refused_until_reinstated(env, reverts):
    grantee = env.new_member("enterprise")
    terms = _granted(env, env.dept_a, grantee)
    env.chain.suspend(grantee.address)
    assert not env.chain.is_usable(terms.dataset_id, grantee.address)
    with reverts("AccessLedgerInactiveMember", account=grantee.address):
        env.broker_chain.record_use(terms.dataset_id, grantee.address)

    env.chain.reinstate(grantee.address)
    assert env.chain.is_usable(terms.dataset_id, grantee.address)
    env.broker_chain.record_use(terms.dataset_id, grantee.address)
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
    assert result.event("AccessRevoked").args["by"] == env.operator.address
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
        env.broker_chain.record_use(terms.dataset_id, env.dept_b.address)
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
            refused = _refusal(lambda: env.broker_chain.record_use(terms.dataset_id, grantee))
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

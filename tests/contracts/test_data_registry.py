"""DataRegistry: datasets as ERC-721 data-rights certificates."""

from __future__ import annotations

import secrets

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.client import ADMIN_ROLE
from ledger.protocol import eip712
from ledger.protocol.actions import to_json_value
from ledger.protocol.messages import Registration, typed_register
from ledger.types import CLASSIFICATIONS, classification_code

ZERO_ADDRESS = "0x" + "00" * 20
ERC165_ID = bytes.fromhex("01ffc9a7")
ERC721_ID = bytes.fromhex("80ac58cd")
ERC721_METADATA_ID = bytes.fromhex("5b5e139f")
ACCESS_CONTROL_ID = bytes.fromhex("7965db0b")
INVALID_ID = bytes.fromhex("ffffffff")


def _registered_args(dataset_id, owner, registration):
    return {
        "datasetId": dataset_id,
        "owner": owner,
        "contentHash": registration.content_hash,
        "metadataHash": registration.metadata_hash,
        "classification": classification_code(registration.classification),
        "parents": tuple(registration.parents),
        "previousVersion": registration.previous_version,
    }


def _relay(env, owner, registration, *, signer=None, nonce=None, deadline=None):
    """Sign ``registration`` as ``signer`` (default: the owner) and relay it as the broker."""
    nonce = env.chain.nonce("DataRegistry", owner.address) if nonce is None else nonce
    deadline = env.deadline() if deadline is None else deadline
    message = typed_register(
        env.chain.deployment.domains, owner.address, registration, nonce=nonce, deadline=deadline
    )
    signature = env.sign(signer or owner, message)
    return env.broker_chain.register_for(
        owner.address, registration, nonce=nonce, deadline=deadline, signature=signature
    )


# -- registration ------------------------------------------------------------------------


def test_member_registers_a_dataset_directly(env):
    count = env.chain.dataset_count()
    balance = env.view("DataRegistry", "balanceOf", env.dept_a.address)
    registration = env.registration("internal")

    dataset_id, result = env.as_(env.dept_a).register(registration)

    assert dataset_id == count + 1
    assert env.chain.dataset_count() == count + 1
    assert result.event("DatasetRegistered").args == _registered_args(
        dataset_id, env.dept_a.address, registration
    )
    assert result.event("Transfer").args == {
        "from": ZERO_ADDRESS,
        "to": env.dept_a.address,
        "tokenId": dataset_id,
    }
    info = env.chain.dataset(dataset_id)
    assert info.owner == env.dept_a.address
    assert (info.content_hash, info.metadata_hash) == (
        registration.content_hash,
        registration.metadata_hash,
    )
    assert (info.classification, info.parents, info.previous_version, info.retired) == (
        "internal",
        (),
        0,
        False,
    )
    assert info.registered_at == env.net.w3.eth.get_block(result.block_number)["timestamp"]
    assert env.chain.dataset_id_of(registration.content_hash) == dataset_id
    assert env.view("DataRegistry", "balanceOf", env.dept_a.address) == balance + 1
    assert env.view("DataRegistry", "accessInfo", dataset_id) == (env.dept_a.address, 1, False)


def test_enterprise_may_register_its_own_data(env):
    dataset_id = env.register(env.enterprise, "public")
    assert env.chain.owner_of(dataset_id) == env.enterprise.address


def test_relayed_registration_is_owned_by_the_signer_not_the_relayer(env):
    registration = env.registration("sensitive")
    nonce = env.chain.nonce("DataRegistry", env.dept_b.address)

    dataset_id, result = _relay(env, env.dept_b, registration)

    assert result.event("DatasetRegistered").args == _registered_args(
        dataset_id, env.dept_b.address, registration
    )
    assert env.chain.owner_of(dataset_id) == env.dept_b.address
    assert env.net.w3.eth.get_transaction(result.tx_hash)["from"] == env.broker.address
    assert env.chain.nonce("DataRegistry", env.dept_b.address) == nonce + 1


def test_unknown_content_hash_maps_to_no_dataset(env, unique_hash):
    assert env.chain.dataset_id_of(unique_hash()) == 0


def test_registering_a_content_hash_twice_is_refused(env, reverts):
    registration = env.registration()
    dataset_id, _ = env.as_(env.dept_a).register(registration)
    count = env.chain.dataset_count()

    for registrant in (env.dept_a, env.dept_b):  # the first registrant holds the right
        again = Registration(registration.content_hash, env.new_hash(), "sensitive")
        with reverts(
            "DataRegistryAlreadyRegistered",
            contentHash=registration.content_hash,
            datasetId=dataset_id,
        ):
            env.as_(registrant).register(again)
    assert env.chain.dataset_count() == count
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_relayed_registration_of_a_registered_content_hash_is_refused(env, reverts):
    registration = env.registration()
    dataset_id, _ = env.as_(env.dept_a).register(registration)
    with reverts("DataRegistryAlreadyRegistered", datasetId=dataset_id):
        _relay(env, env.dept_b, registration)


def test_registering_a_zero_content_hash_is_refused(env, reverts):
    with reverts("DataRegistryZeroContentHash"):
        env.as_(env.dept_a).register(Registration(b"\x00" * 32, env.new_hash(), "public"))


def test_regulator_cannot_register(env, reverts):
    with reverts("DataRegistryUnauthorizedKind", account=env.regulator.address):
        env.as_(env.regulator).register(env.registration())
    with reverts("DataRegistryUnauthorizedKind", account=env.regulator.address):
        _relay(env, env.regulator, env.registration())


def test_suspended_member_cannot_register(env, reverts):
    member = env.new_member()
    env.chain.suspend(member.address)
    with reverts("DataRegistryInactiveMember", account=member.address):
        env.as_(member).register(env.registration())
    with reverts("DataRegistryInactiveMember", account=member.address):
        _relay(env, member, env.registration())


def test_non_member_cannot_register(env, reverts):
    stranger = env.net.new_account()
    with reverts("DataRegistryInactiveMember", account=stranger.address):
        env.as_(stranger).register(env.registration())


def test_derived_dataset_records_its_parents(env):
    first = env.register(env.dept_a, "public")
    second = env.register(env.dept_b, "internal")
    registration = env.registration("internal", parents=(first, second))

    dataset_id, result = env.as_(env.dept_a).register(registration)

    assert result.event("DatasetRegistered").args["parents"] == (first, second)
    assert env.view("DataRegistry", "parentsOf", dataset_id) == (first, second)
    assert env.chain.dataset(dataset_id).parents == (first, second)


def test_parents_must_exist(env, reverts):
    known = env.register(env.dept_a)
    missing = env.chain.dataset_count() + 100
    with reverts("DataRegistryUnknownDataset", datasetId=missing):
        env.as_(env.dept_a).register(env.registration(parents=(known, missing)))


def test_more_than_32_parents_are_refused(env, reverts):
    parent = env.register(env.dept_a, "public")
    with reverts("DataRegistryTooManyParents", count=33):
        env.as_(env.dept_a).register(env.registration("public", parents=(parent,) * 33))
    dataset_id, _ = env.as_(env.dept_a).register(env.registration("public", parents=(parent,) * 32))
    assert len(env.chain.dataset(dataset_id).parents) == 32


def test_derived_dataset_below_its_parents_classification_is_refused(env, reverts):
    public = env.register(env.dept_a, "public")
    sensitive = env.register(env.dept_b, "sensitive")
    with reverts(
        "DataRegistryClassificationBelowParent",
        parentId=sensitive,
        required=classification_code("sensitive"),
    ):
        env.as_(env.dept_a).register(env.registration("internal", parents=(public, sensitive)))


@pytest.fixture(scope="module")
def parent_by_class(env):
    """One parent dataset of each classification, registered once per module."""
    return {c: env.register(env.dept_a, c) for c in CLASSIFICATIONS}


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    parents=st.lists(st.sampled_from(CLASSIFICATIONS), min_size=1, max_size=3),
    child=st.sampled_from(CLASSIFICATIONS),
)
def test_derived_classification_is_at_least_the_highest_parent_classification(
    env, reverts, parent_by_class, parents, child
):
    parent_ids = tuple(parent_by_class[c] for c in parents)
    registration = env.registration(child, parents=parent_ids)
    too_high = [c for c in parents if classification_code(c) > classification_code(child)]
    if too_high:
        with reverts(
            "DataRegistryClassificationBelowParent",
            parentId=parent_by_class[too_high[0]],
            required=classification_code(too_high[0]),
        ):
            env.as_(env.dept_b).register(registration)
        assert env.chain.dataset_id_of(registration.content_hash) == 0
    else:
        dataset_id, _ = env.as_(env.dept_b).register(registration)
        info = env.chain.dataset(dataset_id)
        assert info.parents == parent_ids
        assert info.classification == child


def test_new_version_of_an_owned_dataset_is_linked(env):
    previous = env.register(env.dept_a)
    dataset_id = env.register(env.dept_a, previous_version=previous)
    assert env.chain.dataset(dataset_id).previous_version == previous


def test_previous_version_must_be_owned_by_the_registrant(env, reverts):
    others = env.register(env.dept_b)
    with reverts("DataRegistryPreviousVersionNotOwned", datasetId=others, owner=env.dept_a.address):
        env.as_(env.dept_a).register(env.registration(previous_version=others))
    missing = env.chain.dataset_count() + 100
    with reverts("DataRegistryPreviousVersionNotOwned", datasetId=missing):
        env.as_(env.dept_a).register(env.registration(previous_version=missing))
    with reverts("DataRegistryPreviousVersionNotOwned", owner=env.dept_a.address):
        _relay(env, env.dept_a, env.registration(previous_version=others))


# -- relayed registration: signatures, nonces, deadlines -----------------------------------


def test_relayed_registration_past_its_deadline_is_refused(env, reverts):
    deadline = env.now() - 1
    nonce = env.chain.nonce("DataRegistry", env.dept_a.address)
    with reverts("DataRegistryExpiredSignature", deadline=deadline):
        _relay(env, env.dept_a, env.registration(), deadline=deadline)
    assert env.chain.nonce("DataRegistry", env.dept_a.address) == nonce


def test_relayed_registration_with_reused_nonce_is_refused(env, reverts):
    nonce = env.chain.nonce("DataRegistry", env.dept_a.address)
    _relay(env, env.dept_a, env.registration(), nonce=nonce)
    with reverts("InvalidAccountNonce", account=env.dept_a.address, currentNonce=nonce + 1):
        _relay(env, env.dept_a, env.registration(), nonce=nonce)


def test_relayed_registration_with_a_future_nonce_is_refused(env, reverts):
    nonce = env.chain.nonce("DataRegistry", env.dept_a.address)
    with reverts("InvalidAccountNonce", currentNonce=nonce):
        _relay(env, env.dept_a, env.registration(), nonce=nonce + 1)


def test_relayed_registration_signed_by_someone_else_is_refused(env, reverts):
    registration = env.registration()
    with reverts("DataRegistryInvalidSigner", signer=env.dept_b.address, owner=env.dept_a.address):
        _relay(env, env.dept_a, registration, signer=env.dept_b)
    assert env.chain.dataset_id_of(registration.content_hash) == 0


def test_relayed_registration_with_altered_terms_is_refused(env, reverts):
    signed = env.registration("sensitive")
    nonce = env.chain.nonce("DataRegistry", env.dept_a.address)
    deadline = env.deadline()
    signature = env.sign(
        env.dept_a,
        typed_register(
            env.chain.deployment.domains, env.dept_a.address, signed, nonce=nonce, deadline=deadline
        ),
    )
    downgraded = Registration(signed.content_hash, signed.metadata_hash, "public")
    with reverts("DataRegistryInvalidSigner", owner=env.dept_a.address) as info:
        env.broker_chain.register_for(
            env.dept_a.address, downgraded, nonce=nonce, deadline=deadline, signature=signature
        )
    assert info.value.error_args["signer"] != env.dept_a.address


def test_relayed_registration_with_a_malformed_signature_is_refused(env, reverts):
    nonce = env.chain.nonce("DataRegistry", env.dept_a.address)
    with reverts("ECDSAInvalidSignatureLength", length=64):
        env.broker_chain.register_for(
            env.dept_a.address,
            env.registration(),
            nonce=nonce,
            deadline=env.deadline(),
            signature=b"\x01" * 64,
        )


# -- retirement ----------------------------------------------------------------------------


def test_owner_retires_a_dataset_and_the_record_stays(env):
    dataset_id = env.register(env.dept_a)
    before = env.chain.dataset(dataset_id)

    result = env.as_(env.dept_a).retire(dataset_id)

    assert result.event("DatasetRetired").args == {
        "datasetId": dataset_id,
        "by": env.dept_a.address,
    }
    after = env.chain.dataset(dataset_id)
    assert after.retired
    assert (after.content_hash, after.owner, after.registered_at) == (
        before.content_hash,
        before.owner,
        before.registered_at,
    )
    assert env.view("DataRegistry", "accessInfo", dataset_id) == (env.dept_a.address, 1, True)
    assert env.chain.dataset_id_of(before.content_hash) == dataset_id


def test_admin_retires_any_dataset(env):
    dataset_id = env.register(env.dept_b)
    result = env.chain.retire(dataset_id)
    assert result.event("DatasetRetired").args["by"] == env.admin.address
    assert env.chain.dataset(dataset_id).retired


def test_another_member_cannot_retire_a_dataset(env, reverts):
    dataset_id = env.register(env.dept_a)
    for caller in (env.dept_b, env.broker):
        with reverts("DataRegistryNotOwner", datasetId=dataset_id, caller=caller.address):
            env.as_(caller).retire(dataset_id)
    assert not env.chain.dataset(dataset_id).retired


def test_retiring_twice_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    env.as_(env.dept_a).retire(dataset_id)
    with reverts("DataRegistryRetired", datasetId=dataset_id):
        env.as_(env.dept_a).retire(dataset_id)


def test_views_and_retirement_of_an_unknown_dataset_are_refused(env, reverts):
    missing = env.chain.dataset_count() + 100
    for call in (
        lambda: env.chain.retire(missing),
        lambda: env.chain.dataset(missing),
        lambda: env.view("DataRegistry", "parentsOf", missing),
        lambda: env.view("DataRegistry", "accessInfo", missing),
    ):
        with reverts("DataRegistryUnknownDataset", datasetId=missing):
            call()


# -- transfers -----------------------------------------------------------------------------


def test_transfer_without_admin_approval_is_refused(env, reverts):
    dataset_id = env.register(env.dept_a)
    with reverts("DataRegistryTransferNotApproved", datasetId=dataset_id, to=env.dept_b.address):
        env.as_(env.dept_a).transfer_dataset(dataset_id, env.dept_b.address)
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_admin_approved_transfer_moves_the_certificate_once(env, reverts):
    dataset_id = env.register(env.dept_a)

    approved = env.chain.approve_transfer(dataset_id, env.dept_b.address)
    assert approved.event("TransferApproved").args == {
        "datasetId": dataset_id,
        "to": env.dept_b.address,
        "by": env.admin.address,
    }
    moved = env.as_(env.dept_a).transfer_dataset(dataset_id, env.dept_b.address)

    assert moved.event("Transfer").args == {
        "from": env.dept_a.address,
        "to": env.dept_b.address,
        "tokenId": dataset_id,
    }
    assert env.chain.owner_of(dataset_id) == env.dept_b.address
    assert env.view("DataRegistry", "accessInfo", dataset_id)[0] == env.dept_b.address
    with reverts("DataRegistryTransferNotApproved", to=env.dept_a.address):
        env.as_(env.dept_b).transfer_dataset(dataset_id, env.dept_a.address)


def test_approval_names_one_recipient(env, reverts):
    dataset_id = env.register(env.dept_a)
    env.chain.approve_transfer(dataset_id, env.dept_b.address)
    with reverts("DataRegistryTransferNotApproved", to=env.enterprise.address):
        env.as_(env.dept_a).transfer_dataset(dataset_id, env.enterprise.address)
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_transfer_goes_only_to_an_active_producer(env, reverts):
    dataset_id = env.register(env.dept_a)
    env.chain.approve_transfer(dataset_id, env.regulator.address)
    with reverts("DataRegistryUnauthorizedKind", account=env.regulator.address):
        env.as_(env.dept_a).transfer_dataset(dataset_id, env.regulator.address)

    suspended = env.new_member("enterprise")
    env.chain.suspend(suspended.address)
    env.chain.approve_transfer(dataset_id, suspended.address)
    with reverts("DataRegistryInactiveMember", account=suspended.address):
        env.as_(env.dept_a).transfer_dataset(dataset_id, suspended.address)

    stranger = Account.create().address
    env.chain.approve_transfer(dataset_id, stranger)
    with reverts("DataRegistryInactiveMember", account=stranger):
        env.as_(env.dept_a).transfer_dataset(dataset_id, stranger)
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_only_admin_approves_transfers_of_known_datasets(env, reverts):
    dataset_id = env.register(env.dept_a)
    with reverts(
        "AccessControlUnauthorizedAccount", account=env.dept_a.address, neededRole=ADMIN_ROLE
    ):
        env.as_(env.dept_a).approve_transfer(dataset_id, env.dept_b.address)
    missing = env.chain.dataset_count() + 100
    with reverts("DataRegistryUnknownDataset", datasetId=missing):
        env.chain.approve_transfer(missing, env.dept_b.address)


# -- reassignment (the dispute path) ----------------------------------------------------------


def _reassign_message(dataset_id, to, reason_hash, nonce, deadline):
    return {
        "datasetId": dataset_id,
        "to": to,
        "reasonHash": reason_hash,
        "nonce": nonce,
        "deadline": deadline,
    }


def test_admin_reassigns_a_disputed_certificate_directly(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    reason = unique_hash()

    result = env.chain.reassign(dataset_id, env.enterprise.address, reason)

    assert result.event("DatasetReassigned").args == {
        "datasetId": dataset_id,
        "from": env.dept_a.address,
        "to": env.enterprise.address,
        "reasonHash": reason,
        "by": env.admin.address,
    }
    assert result.event("Transfer").args == {
        "from": env.dept_a.address,
        "to": env.enterprise.address,
        "tokenId": dataset_id,
    }
    assert env.chain.owner_of(dataset_id) == env.enterprise.address
    assert env.view("DataRegistry", "ownerAndContent", dataset_id) == (
        env.enterprise.address,
        env.chain.dataset(dataset_id).content_hash,
    )


def test_reassign_for_relays_an_admin_signature_once(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    reason, nonce, deadline = unique_hash(), secrets.randbits(256), env.deadline()
    message = _reassign_message(dataset_id, env.dept_b.address, reason, nonce, deadline)
    signature = env.sign_action(env.admin, "reassign", message)
    relay = {"nonce": nonce, "deadline": deadline, "signature": signature}

    result = env.broker_chain.reassign_for(dataset_id, env.dept_b.address, reason, **relay)

    assert result.event("DatasetReassigned").args == {
        "datasetId": dataset_id,
        "from": env.dept_a.address,
        "to": env.dept_b.address,
        "reasonHash": reason,
        "by": env.admin.address,
    }
    assert env.chain.owner_of(dataset_id) == env.dept_b.address
    digest = eip712.eip712_digest(
        "Reassign",
        {k: to_json_value(v) for k, v in message.items()},
        env.chain.deployment.domains.separator("reassign"),
    )
    assert env.chain.is_digest_used("DataRegistry", digest)
    with reverts("DataRegistrySignatureReplayed", digest=digest):
        env.broker_chain.reassign_for(dataset_id, env.dept_b.address, reason, **relay)


@pytest.mark.parametrize("signer_name", ["broker", "dept_b"])
def test_reassign_for_signed_by_a_non_admin_is_refused(env, reverts, unique_hash, signer_name):
    signer = getattr(env, signer_name)
    dataset_id = env.register(env.dept_a)
    reason, nonce, deadline = unique_hash(), secrets.randbits(256), env.deadline()
    message = _reassign_message(dataset_id, env.dept_b.address, reason, nonce, deadline)
    with reverts("DataRegistryUnauthorizedSigner", signer=signer.address):
        env.broker_chain.reassign_for(
            dataset_id,
            env.dept_b.address,
            reason,
            nonce=nonce,
            deadline=deadline,
            signature=env.sign_action(signer, "reassign", message),
        )
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_reassign_for_refuses_an_expired_signature(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    reason, nonce, expired = unique_hash(), secrets.randbits(256), env.now() - 1
    message = _reassign_message(dataset_id, env.dept_b.address, reason, nonce, expired)
    with reverts("DataRegistryExpiredSignature", deadline=expired):
        env.broker_chain.reassign_for(
            dataset_id,
            env.dept_b.address,
            reason,
            nonce=nonce,
            deadline=expired,
            signature=env.sign_action(env.admin, "reassign", message),
        )


def test_reassignment_goes_only_to_an_active_producer_and_only_by_admin(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    with reverts("DataRegistryUnauthorizedKind", account=env.regulator.address):
        env.chain.reassign(dataset_id, env.regulator.address, unique_hash())
    stranger = Account.create().address
    with reverts("DataRegistryInactiveMember", account=stranger):
        env.chain.reassign(dataset_id, stranger, unique_hash())
    for caller in (env.broker, env.dept_b):
        with reverts("AccessControlUnauthorizedAccount", account=caller.address):
            env.as_(caller).reassign(dataset_id, caller.address, unique_hash())
    with reverts("AccessControlUnauthorizedAccount", account=env.broker.address):
        env.broker_chain.approve_transfer(dataset_id, env.broker.address)
    missing = env.chain.dataset_count() + 100
    with reverts("DataRegistryUnknownDataset", datasetId=missing):
        env.chain.reassign(missing, env.dept_b.address, unique_hash())
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


def test_erc721_approved_operator_transfers_only_to_the_admin_approved_recipient(env, reverts):
    dataset_id = env.register(env.dept_a)
    approval = env.send(env.dept_a, "DataRegistry", "approve", env.broker.address, dataset_id)
    assert approval.event("Approval").args == {
        "owner": env.dept_a.address,
        "approved": env.broker.address,
        "tokenId": dataset_id,
    }
    assert env.view("DataRegistry", "getApproved", dataset_id) == env.broker.address
    args = (env.dept_a.address, env.dept_b.address, dataset_id)
    with reverts("DataRegistryTransferNotApproved", to=env.dept_b.address):
        env.send(env.broker, "DataRegistry", "safeTransferFrom", *args)

    env.chain.approve_transfer(dataset_id, env.dept_b.address)
    moved = env.send(env.broker, "DataRegistry", "safeTransferFrom", *args)

    assert moved.event("Transfer").args["to"] == env.dept_b.address
    assert env.chain.owner_of(dataset_id) == env.dept_b.address
    assert env.view("DataRegistry", "getApproved", dataset_id) == ZERO_ADDRESS


def test_safe_transfer_with_data_to_an_approved_recipient(env):
    dataset_id = env.register(env.dept_b)
    env.chain.approve_transfer(dataset_id, env.enterprise.address)
    moved = env.send(
        env.dept_b,
        "DataRegistry",
        "safeTransferFrom",
        env.dept_b.address,
        env.enterprise.address,
        dataset_id,
        b"custody change",
    )
    assert moved.event("Transfer").args["from"] == env.dept_b.address
    assert env.chain.owner_of(dataset_id) == env.enterprise.address


def test_operator_for_all_is_recorded(env):
    result = env.send(env.dept_b, "DataRegistry", "setApprovalForAll", env.enterprise.address, True)
    assert result.event("ApprovalForAll").args == {
        "owner": env.dept_b.address,
        "operator": env.enterprise.address,
        "approved": True,
    }
    assert env.view("DataRegistry", "isApprovedForAll", env.dept_b.address, env.enterprise.address)


def test_a_stranger_cannot_move_a_certificate_even_with_admin_approval(env, reverts):
    dataset_id = env.register(env.dept_a)
    env.chain.approve_transfer(dataset_id, env.dept_b.address)
    with reverts("ERC721InsufficientApproval", operator=env.dept_b.address, tokenId=dataset_id):
        env.send(
            env.dept_b,
            "DataRegistry",
            "transferFrom",
            env.dept_a.address,
            env.dept_b.address,
            dataset_id,
        )
    assert env.chain.owner_of(dataset_id) == env.dept_a.address


# -- ERC-165 and metadata --------------------------------------------------------------------


def test_registry_reports_erc721_and_access_control_through_erc165(env):
    for interface in (ERC165_ID, ERC721_ID, ERC721_METADATA_ID, ACCESS_CONTROL_ID):
        assert env.chain.supports_interface("DataRegistry", interface), interface.hex()
    assert not env.chain.supports_interface("DataRegistry", INVALID_ID)
    assert not env.chain.supports_interface("FlowLog", ERC721_ID)


def test_certificate_collection_has_a_name_and_symbol(env):
    dataset_id = env.register(env.dept_a)
    assert env.view("DataRegistry", "name") == "Data Rights Certificate"
    assert env.view("DataRegistry", "symbol") == "DRC"
    assert env.view("DataRegistry", "tokenURI", dataset_id) == ""


def test_registration_events_are_queryable_by_owner(env):
    dataset_id = env.register(env.enterprise, "internal")
    events = env.chain.events(
        "DataRegistry", "DatasetRegistered", filters={"owner": env.enterprise.address}
    )
    assert dataset_id in [ev.args["datasetId"] for ev in events]
    assert {ev.args["owner"] for ev in events} == {env.enterprise.address}

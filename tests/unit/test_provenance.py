"""A dataset's trace as W3C PROV (ledger.client.provenance): lineage, flows and who did what,
read back through the ``prov`` package."""

from __future__ import annotations

from typing import Any

import prov
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from prov.model import (
    PROV,
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvAttribution,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)

from ledger.client.provenance import VOCABULARY, dataset_document, summary
from ledger.errors import NotFound
from ledger.protocol.actions import sign_action
from ledger.protocol.codes import ErrorCode
from tests.unit.test_audit_verifier import ALICE, BOB, DEADLINE, DOMAINS, World

OPERATOR = Account.from_key(b"\x09" * 32)
KINDS = {"department": 1, "enterprise": 2, "regulator": 3}


def onboard(world: World, member: LocalAccount, kind: str, name: str) -> None:
    message = {
        "member": member.address,
        "kind": KINDS[kind],
        "name": name,
        "keySuite": 1,
        "encryptionKey": "0x" + "22" * 32,
        "nonce": 2**70 + KINDS[kind],
        "deadline": DEADLINE,
    }
    signed = sign_action(OPERATOR, "onboard", message, DOMAINS)
    tx = world.chain.emit(
        "MemberRegistry",
        "MemberOnboarded",
        member=member.address,
        kind=KINDS[kind],
        nameHash=keccak(name.encode()),
        keySuite=1,
        encryptionKey=b"\x22" * 32,
    )
    world.log.append(signed, {"tx": tx.tx_hash})


def new_version(world: World, who: LocalAccount, dataset_id: int, previous: int) -> None:
    """``World.register`` with a previous version (World's own registers have none)."""
    message = {
        "owner": who.address,
        "contentHash": bytes([dataset_id]) * 32,
        "metadataHash": b"\x33" * 32,
        "classification": 2,
        "parents": [],
        "previousVersion": previous,
        "nonce": dataset_id,
        "deadline": DEADLINE,
    }
    signed = sign_action(who, "register", message, DOMAINS)
    tx = world.chain.emit(
        "DataRegistry",
        "DatasetRegistered",
        datasetId=dataset_id,
        owner=who.address,
        contentHash=message["contentHash"],
        metadataHash=message["metadataHash"],
        classification=2,
        parents=(),
        previousVersion=previous,
    )
    world.log.append(signed, {"tx": tx.tx_hash, "dataset_id": dataset_id})


@pytest.fixture
def world() -> World:
    world = World()
    onboard(world, ALICE, "department", "District Statistics Office")  # 0
    onboard(world, BOB, "enterprise", "Harbour Analytics")  # 1
    world.register(ALICE, 1)  # 2
    world.register(ALICE, 2, parents=(1,))  # 3: derived from 1
    new_version(world, ALICE, 3, previous=1)  # 4: the next version of 1
    world.request(BOB, 1)  # 5
    world.deny(ALICE, request_id=1, dataset_id=1)  # 6
    fetch = world.fetch(BOB, 1)  # 7
    world.receipt(fetch)  # 8
    world.request(BOB, 2)  # 9: about dataset 2 only
    report = world.verify()
    assert report.ok, report.problems
    return world


def read_back(doc: ProvDocument) -> ProvDocument:
    text = doc.serialize(format="json")
    assert isinstance(text, str)
    again = prov.read(text, format="json")
    assert again is not None
    return again


def local(identifier: Any) -> str:
    """``dataset:1`` for an identifier in the ``dataset`` namespace."""
    return f"{identifier.namespace.prefix}:{identifier.localpart}"


def attrs(record: Any) -> dict[str, Any]:
    return {str(k): v for k, v in record.attributes}


def test_the_document_round_trips_through_prov_json(world: World) -> None:
    doc = dataset_document(world.state, 1)
    again = read_back(doc)
    assert again == doc
    assert again.get_registered_namespaces()
    assert {ns.prefix: ns.uri for ns in again.namespaces}["drl"] == VOCABULARY


def test_exactly_the_expected_entities_agents_and_activities(world: World) -> None:
    doc = read_back(dataset_document(world.state, 1))
    records = doc.get_records()
    entities = {local(r.identifier) for r in records if isinstance(r, ProvEntity)}
    agents = {local(r.identifier) for r in records if isinstance(r, ProvAgent)}
    activities = {local(r.identifier) for r in records if isinstance(r, ProvActivity)}
    size = world.log.tree.size
    # the dataset, its derivative, its next version, and the checkpoint verified against
    assert entities == {"dataset:1", "dataset:2", "dataset:3", f"checkpoint:{size}"}
    assert agents == {f"member:{ALICE.address}", f"member:{BOB.address}"}
    # its own records (register, request, deny, fetch, receipt) and its relatives' registrations
    assert activities == {f"record:{seq}" for seq in (2, 3, 4, 5, 6, 7, 8)}
    assert summary(doc).entities == 4
    assert summary(doc).agents == 2
    assert summary(doc).activities == 7


def test_relations(world: World) -> None:
    doc = read_back(dataset_document(world.state, 1))

    def pairs(kind: type, first: str, second: str) -> set[tuple[str, str]]:
        out = set()
        for r in doc.get_records(kind):
            a = dict(r.attributes)
            out.add((local(a[PROV[first]]), local(a[PROV[second]])))
        return out

    alice, bob = f"member:{ALICE.address}", f"member:{BOB.address}"
    assert pairs(ProvAssociation, "activity", "agent") == {
        ("record:2", alice),
        ("record:3", alice),
        ("record:4", alice),
        ("record:5", bob),
        ("record:6", alice),
        ("record:7", bob),
        ("record:8", bob),
    }
    assert pairs(ProvGeneration, "entity", "activity") == {
        ("dataset:1", "record:2"),
        ("dataset:2", "record:3"),
        ("dataset:3", "record:4"),
    }
    assert pairs(ProvUsage, "activity", "entity") == {("record:7", "dataset:1")}
    assert pairs(ProvAttribution, "entity", "agent") == {
        ("dataset:1", alice),
        ("dataset:2", alice),
        ("dataset:3", alice),
    }
    derivations = {
        (
            local(dict(r.attributes)[PROV["generatedEntity"]]),
            local(dict(r.attributes)[PROV["usedEntity"]]),
        ): (PROV["Revision"] in r.get_asserted_types())
        for r in doc.get_records(ProvDerivation)
    }
    assert derivations == {("dataset:2", "dataset:1"): False, ("dataset:3", "dataset:1"): True}


def test_every_activity_leads_back_to_its_signed_record(world: World) -> None:
    doc = read_back(dataset_document(world.state, 1))
    by_id = {local(r.identifier): attrs(r) for r in doc.get_records(ProvActivity)}
    fetch = by_id["record:7"]
    assert fetch["drl:seq"] == 7
    assert fetch["drl:action"] == "fetch"
    assert local(fetch["prov:type"]) == "drl:Fetch"
    assert fetch["drl:signer"] == BOB.address
    assert fetch["drl:chainStatus"] == "matched"
    used = next(e for e in world.chain.logs if e.name == "AccessUsed")
    assert fetch["drl:txHash"] == used.tx_hash
    assert fetch["drl:blockNumber"] == used.block_number
    assert local(fetch["drl:grantee"]) == f"member:{BOB.address}"
    assert "drl:nonce" not in fetch
    assert "drl:deadline" not in fetch
    assert fetch["prov:startTime"] == fetch["prov:endTime"]
    request = by_id["record:5"]
    assert (request["drl:chainStatus"], "drl:txHash" in request) == ("none", False)
    assert request["drl:purpose"] == "quarterly statistics"
    assert by_id["record:6"]["drl:datasetFrom"] == "context"  # a deny names a request
    assert by_id["record:8"]["drl:chainStatus"] == "pending"  # the receipt is not credited yet
    checkpoint = next(attrs(r) for r in doc.get_records(ProvEntity) if "drl:note" in attrs(r))
    assert checkpoint["drl:note"] == world.state.checkpoint_note
    assert checkpoint["drl:treeSize"] == world.log.tree.size


def test_entities_carry_the_registered_certificate(world: World) -> None:
    doc = read_back(dataset_document(world.state, 1))
    by_id = {local(r.identifier): attrs(r) for r in doc.get_records(ProvEntity)}
    assert by_id["dataset:1"]["drl:contentHash"] == "0x" + "01" * 32
    assert by_id["dataset:1"]["drl:metadataHash"] == "0x" + "11" * 32
    assert by_id["dataset:1"]["drl:classification"] == "internal"
    assert by_id["dataset:3"]["drl:classification"] == "sensitive"
    assert local(by_id["dataset:1"]["prov:type"]) == "drl:Dataset"


def test_agents_have_their_kind_from_the_onboarding_record(world: World) -> None:
    doc = read_back(dataset_document(world.state, 1))
    by_id = {local(r.identifier): attrs(r) for r in doc.get_records(ProvAgent)}
    alice = by_id[f"member:{ALICE.address}"]
    assert alice["drl:kind"] == "department"
    assert alice["prov:label"] == "District Statistics Office"
    assert local(alice["prov:type"]) == "prov:Organization"
    assert by_id[f"member:{BOB.address}"]["drl:kind"] == "enterprise"


def test_a_derived_dataset_points_at_its_parent(world: World) -> None:
    doc = read_back(dataset_document(world.state, 2))
    entities = {local(r.identifier) for r in doc.get_records(ProvEntity)}
    assert entities == {"dataset:1", "dataset:2", f"checkpoint:{world.log.tree.size}"}
    activities = {local(r.identifier) for r in doc.get_records(ProvActivity)}
    assert activities == {"record:2", "record:3", "record:9"}
    [derivation] = doc.get_records(ProvDerivation)
    pair = dict(derivation.attributes)
    assert (local(pair[PROV["generatedEntity"]]), local(pair[PROV["usedEntity"]])) == (
        "dataset:2",
        "dataset:1",
    )


def test_an_unknown_dataset_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        dataset_document(world.state, 99)
    assert caught.value.code == ErrorCode.DATASET_NOT_FOUND

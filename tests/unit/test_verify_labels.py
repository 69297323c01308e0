"""Member-side verify checks every registration's labels against the labelling rules.

A broker that let a registration through with labels that break a rule (personal data made
PUBLIC, a sensitive theme below SENSITIVE) is caught on the member's machine from the signed
record alone; a metadata document that is not the one the owner signed is named as such.
"""

from __future__ import annotations

from typing import Any

from ledger.protocol.actions import sign_action
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import metadata_hash
from tests.unit.test_audit_verifier import ALICE, DEADLINE, DOMAINS, World, wheres


def _register(
    world: World, metadata: dict[str, Any], classification: int, signed_hash: bytes
) -> None:
    message = {
        "owner": ALICE.address,
        "contentHash": b"\x07" * 32,
        "metadataHash": signed_hash,
        "classification": classification,
        "parents": [],
        "previousVersion": 0,
        "nonce": 7,
        "deadline": DEADLINE,
    }
    signed = sign_action(ALICE, "register", message, DOMAINS)
    tx = world.chain.emit(
        "DataRegistry",
        "DatasetRegistered",
        datasetId=7,
        owner=ALICE.address,
        contentHash=message["contentHash"],
        metadataHash=signed_hash,
        classification=classification,
        parents=(),
        previousVersion=0,
    )
    world.log.append(signed, {"tx": tx.tx_hash, "dataset_id": 7, "metadata": metadata})


def test_labels_within_the_rules_verify_clean() -> None:
    world = World()
    metadata = {"v": 1, "title": "t", "themes": ["HEAL"], "personal_data": True}
    _register(world, metadata, 2, metadata_hash(metadata))
    assert world.verify().ok


def test_personal_data_registered_public_is_reported() -> None:
    world = World()
    metadata = {"v": 1, "title": "t", "personal_data": True}
    _register(world, metadata, 0, metadata_hash(metadata))
    report = world.verify()
    assert wheres(report, ErrorCode.LABEL_RULE_BROKEN) == ["log record 0"]


def test_a_sensitive_theme_below_sensitive_is_reported() -> None:
    world = World()
    metadata = {"v": 1, "title": "t", "themes": ["JUST"]}
    _register(world, metadata, 1, metadata_hash(metadata))
    assert wheres(world.verify(), ErrorCode.LABEL_RULE_BROKEN) == ["log record 0"]


def test_a_metadata_document_the_owner_did_not_sign_is_reported() -> None:
    world = World()
    _register(world, {"v": 1, "title": "t"}, 1, b"\x11" * 32)
    assert wheres(world.verify(), ErrorCode.METADATA_MISMATCH) == ["log record 0"]

"""tests/vectors/protocol.json recomputed from the implementation, and docs/protocol.md kept whole.

Every vector is derived again here from its inputs with ``ledger.protocol`` and
``ledger.crypto`` (and, for EIP-712, also with ``eth_account`` as an independent reference).
The generator's and the table script's ``--check`` modes are run too, so neither the vectors
nor the document's generated parts can drift from the code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_hash.auto import keccak

from ledger.client.member import MemberKeys, prepare_upload
from ledger.crypto import hpke, stream
from ledger.crypto.format import HEADER_SIZE, Header
from ledger.errors import IntegrityError, InvalidInput, InvalidSignature
from ledger.keys import load_account, load_secret
from ledger.merkle.proofs import leaf_hash
from ledger.protocol import http as auth
from ledger.protocol.actions import ACTION_NAMES, ACTIONS, Domains, SignedAction
from ledger.protocol.canonical import canonical
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import (
    RequestForm,
    key_context,
    metadata_hash,
    purpose_hash,
    terms_document,
    terms_hash,
)
from ledger.protocol.eip712 import (
    CONTRACT_TYPES,
    SECP256K1_N,
    encode_type,
    hash_struct,
    recover_address,
    struct_fields,
    type_hash,
)
from ledger.protocol.labels import LABEL_MEMBERS
from ledger.protocol.limits import check_limits, check_timing
from ledger.protocol.messages import GrantTerms, typed_approval

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "tests" / "vectors" / "protocol.json"
DOC = ROOT / "docs" / "protocol.md"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

ACTION_VECTORS = {a["name"]: a for a in V["actions"]}


def unhex(value: str) -> bytes:
    assert value.startswith("0x"), value
    return bytes.fromhex(value[2:])


def rule_bytes(length: int) -> bytes:
    assert V["content_hash"]["rule"] == "byte i = i mod 251"
    return bytes(i % 251 for i in range(length))


def domains() -> Domains:
    d = V["deployment"]
    return Domains(
        chain_id=d["chain_id"],
        flow_log=d["flow_log"],
        member_registry=d["member_registry"],
        data_registry=d["data_registry"],
        access_ledger=d["access_ledger"],
        sharing_credits=d["sharing_credits"],
    )


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_drl_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- keys and deployment -----------------------------------------------------------------------


def test_signing_keys_give_their_addresses() -> None:
    for label, key in V["keys"]["signing"].items():
        expected = hashlib.sha256(f"drl-vectors/{label}".encode()).digest()
        assert unhex(key["private_key"]) == expected
        assert Account.from_key(expected).address == key["address"]


def test_encryption_keys_give_their_public_keys() -> None:
    for key in V["keys"]["encryption"].values():
        private = hpke.load_private_key(key["suite"], unhex(key["private_key"]))
        assert private.suite.name == key["suite_name"]
        assert private.public_key().to_bytes() == unhex(key["public_key"])


def test_deployment_addresses_are_the_deployers_create_addresses() -> None:
    import rlp

    d = V["deployment"]
    signing = V["keys"]["signing"]
    assert d["admin"] == signing["operator"]["address"]
    assert d["broker"] == d["deployer"] == signing["broker"]["address"]
    assert d["admin"] != d["broker"]  # ADMIN and BROKER are two keys
    deployer = bytes.fromhex(d["deployer"][2:])
    names = ("member_registry", "data_registry", "access_ledger", "flow_log", "sharing_credits")
    for nonce, name in enumerate(names):
        raw = bytes(keccak(rlp.encode([deployer, nonce])))[12:]
        assert d[name].lower() == "0x" + raw.hex()


def test_config_example_serves_the_protocol() -> None:
    config = V["config"]
    d = V["deployment"]
    assert config["protocol"] == auth.SCHEME
    assert config["chain_id"] == d["chain_id"]
    assert config["admin"] == config["operator"] == d["admin"]
    assert config["broker"] == d["broker"]
    for name in (
        "member_registry",
        "data_registry",
        "access_ledger",
        "flow_log",
        "sharing_credits",
    ):
        assert config[name] == d[name]
    assert config["domains"] == domains().as_json()
    assert set(config["actions"]) == set(ACTION_NAMES)
    for name, spec in ACTIONS.items():
        served = config["actions"][name]
        assert served["primary_type"] == spec.primary
        assert served["domain"] == spec.domain
        assert served["signer_field"] == spec.signer_field
        assert served["fields"] == struct_fields(spec.primary)
    assert int(config["limits"]["min_broker_nonce"]) == 2**64


# -- EIP-712 -----------------------------------------------------------------------------------


def test_type_strings_and_hashes() -> None:
    for primary, t in V["eip712"]["types"].items():
        assert t["fields"] == struct_fields(primary)
        assert t["encode_type"] == encode_type(primary)
        assert unhex(t["type_hash"]) == type_hash(primary)
        assert unhex(t["type_hash"]) == bytes(keccak(t["encode_type"].encode()))


def test_every_type_has_a_vector_entry() -> None:
    primaries = {"EIP712Domain", *(spec.primary for spec in ACTIONS.values())}
    assert set(V["eip712"]["types"]) == primaries


def test_contract_type_strings_are_the_contracts_typehashes() -> None:
    """What a member signs for a contract is what the contract hashes (its *_TYPEHASH)."""
    for spec in ACTIONS.values():
        if not spec.on_chain:
            continue
        source = (ROOT / "contracts" / f"{spec.domain}.sol").read_text(encoding="utf-8")
        # adjacent string literals concatenate in Solidity, as they do here
        literals = "".join(re.findall(r'"([^"]*)"', source))
        assert spec.primary in CONTRACT_TYPES
        assert V["eip712"]["types"][spec.primary]["encode_type"] in literals, spec.name


def test_domain_separators() -> None:
    ds = domains()
    assert set(V["eip712"]["domains"]) == {spec.domain for spec in ACTIONS.values()}
    assert set(V["eip712"]["domains"]) == set(ds.as_json())
    for name, d in V["eip712"]["domains"].items():
        assert ds.as_json()[name] == d["domain"]
        for action, spec in ACTIONS.items():
            if spec.domain == name:
                assert ds.separator(action) == unhex(d["separator"])
        expected = "DataRightsLedger Broker" if name == "broker" else "DataRightsLedger"
        assert d["domain"]["name"] == expected
        contract = d["domain"]["verifyingContract"]
        field = "flow_log" if name == "broker" else re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
        assert contract == V["deployment"][field]


def test_every_action_has_a_vector() -> None:
    assert {a["action"] for a in V["actions"]} == set(ACTION_NAMES)
    assert [a["name"] for a in V["actions"] if a["primary_type"] == "GrantApproval"] == ["approval"]


@pytest.mark.parametrize("name", [a["name"] for a in V["actions"]])
def test_nonce_rule(name: str) -> None:
    """register, grant and revoke: the contract's sequential nonce; the rest: random >= 2**64."""
    v = ACTION_VECTORS[name]
    spec = ACTIONS[v["action"]]
    nonce = v["message"]["nonce"]
    if spec.sequential_nonce:
        assert v["nonce_kind"] == "sequential"
        assert v["action"] in {"register", "grant", "revoke"}
        assert 0 <= nonce < 2**64
    else:
        assert v["nonce_kind"] == "random"
        assert 2**64 <= nonce < 2**256
    assert v["message"]["deadline"] == V["deadline"]


@pytest.mark.parametrize("name", [a["name"] for a in V["actions"]])
def test_signed_action(name: str) -> None:
    v = ACTION_VECTORS[name]
    ds = domains()
    signed = SignedAction.from_json(v["signed"])
    assert signed.action == v["action"]
    assert signed.primary == v["primary_type"]
    assert ACTIONS[signed.action].domain == v["domain"]
    assert v["eip712_domain"] == V["eip712"]["domains"][v["domain"]]["domain"]
    assert ds.for_action(signed.action).as_json() == v["eip712_domain"]
    assert signed.message == v["message"]
    assert hash_struct(signed.primary, signed.message) == unhex(v["struct_hash"])
    assert signed.digest(ds) == unhex(v["digest"])
    # eth_account, an independent EIP-712 implementation, hashes and recovers alike.
    encoded = encode_typed_data(full_message=signed.typed(ds))
    reference = bytes(keccak(b"\x19" + encoded.version + encoded.header + encoded.body))
    assert reference == unhex(v["digest"])
    assert Account.recover_message(encoded, signature=unhex(v["signature"])) == v["signer_address"]
    assert signed.signature == unhex(v["signature"])
    assert signed.signer(ds) == v["signer_address"]
    signed.verify(ds)
    # The fixed key signs deterministically (RFC 6979): the same bytes every time.
    account = Account.from_key(unhex(V["keys"]["signing"][v["signer"]]["private_key"]))
    assert bytes(account.unsafe_sign_hash(unhex(v["digest"])).signature) == signed.signature
    # The signature is in the one form the contracts accept: v 27 or 28, s <= n/2.
    assert signed.signature[64] in (27, 28)
    assert 0 < int.from_bytes(signed.signature[32:64], "big") <= SECP256K1_N // 2
    assert canonical(v["signed"]).decode() == v["signed_canonical"]
    check_timing(signed, V["now"])
    check_limits(signed)


def test_operator_actions_are_signed_by_admin_and_member_actions_by_the_member() -> None:
    admin = V["deployment"]["admin"]
    for v in V["actions"]:
        spec = ACTIONS[v["action"]]
        if v["action"] in {"onboard", "suspend", "reinstate", "reassign", "approval"}:
            assert not spec.signer_field  # the contract requires the signer to hold ADMIN
            assert v["signer_address"] == admin
        else:
            assert v["signer_address"] != admin
            assert v["signer_address"] != V["deployment"]["broker"]
    rotate = ACTION_VECTORS["rotate_key"]
    assert rotate["message"]["member"] == rotate["signer_address"]  # only the member itself
    assert ACTIONS["rotate_key"].signer_field == "member"


def test_grant_approval_co_signature() -> None:
    v = ACTION_VECTORS["approval"]
    m = v["message"]
    terms = GrantTerms(
        dataset_id=m["datasetId"],
        grantee=m["grantee"],
        purpose_hash=unhex(m["purposeHash"]),
        expires_at=m["expiresAt"],
        max_uses=m["maxUses"],
        terms_hash=unhex(m["termsHash"]),
    )
    typed = typed_approval(
        domains(), terms, generation=m["generation"], nonce=m["nonce"], deadline=m["deadline"]
    )
    assert typed["domain"] == V["eip712"]["domains"]["AccessLedger"]["domain"]
    encoded = encode_typed_data(full_message=typed)
    digest = bytes(keccak(b"\x19" + encoded.version + encoded.header + encoded.body))
    assert digest == unhex(v["digest"])
    assert hash_struct("GrantApproval", m) == unhex(v["struct_hash"])
    signer = Account.recover_message(encoded, signature=unhex(v["signature"]))
    assert signer == v["signer_address"] == V["deployment"]["admin"]
    # It co-signs the very terms of the grant, for the generation that grant creates (the first).
    grant = ACTION_VECTORS["grant"]["message"]
    six = ("datasetId", "grantee", "purposeHash", "expiresAt", "maxUses", "termsHash")
    assert {k: grant[k] for k in six} == {k: m[k] for k in six}
    assert m["generation"] == 1 == ACTION_VECTORS["receipt"]["message"]["grantGeneration"]
    assert m["nonce"] >= 2**64  # single use: AccessLedger consumes the digest
    assert set(m) == {*six, "generation", "nonce", "deadline"}


# -- refused signature encodings ------------------------------------------------------------------


@pytest.mark.parametrize("case", V["refused_signatures"], ids=lambda c: c["name"])
def test_refused_signature(case: dict[str, Any]) -> None:
    """Encodings a lax ecrecover accepts, refused like OpenZeppelin's ECDSA.recover does."""
    of = ACTION_VECTORS[case["of"].removeprefix("actions[name=").removesuffix("]")]
    assert case["digest"] == of["digest"]
    good, bad = unhex(of["signature"]), unhex(case["signature"])
    assert bad[:32] == good[:32]  # the same r
    # a lax recovery still names an address (for high s and the v that matches, the signer) ...
    lax = Account._recover_hash(unhex(case["digest"]), signature=bad)
    assert lax == case["lax_signer"]
    if case["name"] == "high_s":
        assert int.from_bytes(bad[32:64], "big") == SECP256K1_N - int.from_bytes(good[32:64], "big")
        assert int.from_bytes(bad[32:64], "big") > SECP256K1_N // 2
        assert bad[64] == 55 - good[64]
        assert lax == of["signer_address"]
    else:
        assert bad[:64] == good[:64]
        assert bad[64] == int(case["name"][-1])
        assert (lax == of["signer_address"]) == (bad[64] == good[64] - 27)
    # ... but the protocol refuses it, before and inside a signed action
    with pytest.raises(InvalidSignature) as caught:
        recover_address(unhex(case["digest"]), bad)
    assert caught.value.code == case["refused_with"] == ErrorCode.INVALID_SIGNATURE
    forged = SignedAction.from_json({**of["signed"], "signature": case["signature"]})
    with pytest.raises(InvalidSignature):
        forged.verify(domains())


def test_refused_signatures_cover_high_s_and_v_0_1() -> None:
    assert {c["name"] for c in V["refused_signatures"]} == {"high_s", "v_0", "v_1"}


# -- request signing ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(V["requests"])))
def test_request_signature(index: int) -> None:
    v = V["requests"][index]
    if "body_text" in v:
        assert auth.body_sha256(v["body_text"].encode()) == v["body_sha256"]
    else:
        upload = next(d for d in V["datasets"] if d["name"] == "upload")
        assert upload["ciphertext_sha256"] == "0x" + v["body_sha256"]
    assert auth.request_target(v["path"], v["query"]) == v["target"]
    assert ("?" in v["target"]) == bool(v["query"])
    message = auth.request_message(
        method=v["method"],
        target=v["target"],
        body_sha256=v["body_sha256"],
        timestamp=v["timestamp"],
        nonce=v["nonce"],
        chain_id=v["chain_id"],
        deployment=v["deployment"],
    )
    assert message == unhex(v["message_hex"]) == v["message_text"].encode()
    assert message.split(b"\n")[0] == b"DRL-HTTP-2"
    assert message.split(b"\n")[-1] == v["deployment"].encode()
    assert v["deployment"] == V["deployment"]["flow_log"].lower()
    prefix = f"\x19Ethereum Signed Message:\n{len(message)}".encode()
    assert bytes(keccak(prefix + message)) == unhex(v["eip191_hash"])
    assert auth.recover_request(message, v["signature"]) == v["address"]
    assert Account.recover_message(encode_defunct(primitive=message), signature=v["signature"])
    assert auth.NONCE_PATTERN.match(v["nonce"])
    assert auth.BODY_SHA256_PATTERN.match(v["body_sha256"])
    account = Account.from_key(unhex(V["keys"]["signing"][v["signer"]]["private_key"]))
    headers = auth.sign_request(
        account,
        method=v["method"],
        target=v["target"],
        body_sha256=v["body_sha256"],
        chain_id=v["chain_id"],
        deployment=v["deployment"],
        timestamp=v["timestamp"],
        nonce=v["nonce"],
    )
    assert headers == v["headers"]
    assert tuple(headers) == auth.REQUEST_HEADERS


# -- canonical JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["canonical_json"]["cases"], ids=lambda c: c["name"])
def test_canonical_json(case: dict[str, Any]) -> None:
    data = canonical(json.loads(case["input"]))
    assert data == unhex(case["hex"]) == case["canonical"].encode("utf-8")
    assert canonical(json.loads(data)) == data


@pytest.mark.parametrize("case", V["canonical_json"]["refused"], ids=lambda c: c["name"])
def test_canonical_json_refusals(case: dict[str, Any]) -> None:
    value: Any = float("nan") if case["name"] == "nan" else json.loads(case["input"])
    with pytest.raises(InvalidInput) as caught:
        canonical(value)
    assert caught.value.code == case["code"] == ErrorCode.BAD_JSON


# -- documents and hashes ----------------------------------------------------------------------


def test_metadata_hash() -> None:
    doc = V["documents"]["metadata"]
    assert canonical(doc["document"]).decode() == doc["canonical"]
    assert metadata_hash(doc["document"]) == unhex(doc["metadata_hash"])
    assert hashlib.sha256(doc["canonical"].encode()).digest() == unhex(doc["metadata_hash"])
    assert ACTION_VECTORS["register"]["message"]["metadataHash"] == doc["metadata_hash"]
    upload = next(d for d in V["datasets"] if d["name"] == "upload")
    assert doc["document"]["ciphertext_sha256"] == upload["ciphertext_sha256"]
    assert doc["document"]["ciphertext_size"] == upload["ciphertext_size"]
    owner_env = next(h for h in V["hpke"] if h["name"] == "owner_x25519")
    assert (
        doc["document"]["owner_key_sha256"]
        == "0x" + hashlib.sha256(unhex(owner_env["envelope"])).hexdigest()
    )


def test_metadata_document_has_what_prepare_upload_writes(tmp_path: Path) -> None:
    """The vector's document names exactly the fields the member SDK puts in one."""
    keys = V["keys"]
    member = MemberKeys(
        account=Account.from_key(unhex(keys["signing"]["owner"]["private_key"])),
        hpke=hpke.load_private_key(1, unhex(keys["encryption"]["owner"]["private_key"])),
    )
    upload = next(d for d in V["datasets"] if d["name"] == "upload")
    source = tmp_path / "permits.csv"
    source.write_bytes(upload["plaintext_text"].encode())
    doc = V["documents"]["metadata"]["document"]
    prepared = prepare_upload(
        member,
        source,
        workdir=tmp_path,
        title=doc["title"],
        domains=domains(),
        chain_nonce=0,
        description=doc["description"],
        schema=doc["schema"],
        quality=doc["quality"],
        labels={k: doc[k] for k in LABEL_MEMBERS if k in doc},
    )
    assert set(prepared.metadata) == set(doc)
    assert prepared.metadata["v"] == doc["v"]
    assert prepared.metadata["plaintext_size"] == doc["plaintext_size"]
    assert prepared.metadata["media_type"] == doc["media_type"]
    assert prepared.metadata["ciphertext_size"] == doc["ciphertext_size"]
    assert prepared.content_hash == unhex(upload["content_hash"])
    register = ACTION_VECTORS["register"]["message"]
    assert set(prepared.signed.message) == set(register)
    assert prepared.signed.message["contentHash"] == register["contentHash"]
    assert prepared.signed.message["metadataHash"] == "0x" + metadata_hash(prepared.metadata).hex()


def test_purpose_terms_reason_and_key_context() -> None:
    docs = V["documents"]
    purpose = docs["purpose"]
    assert purpose_hash(purpose["purpose_text"]) == unhex(purpose["purpose_hash"])
    assert ACTION_VECTORS["request"]["message"]["purpose"] == purpose["purpose_text"]
    assert ACTION_VECTORS["grant"]["message"]["purposeHash"] == purpose["purpose_hash"]

    terms = docs["terms"]
    wrapped = unhex(terms["wrapped_key"])
    form = RequestForm.of_request(terms["document"])
    assert terms_document(terms["request_id"], wrapped, form) == terms["document"]
    assert canonical(terms["document"]).decode() == terms["canonical"]
    assert terms_hash(terms["request_id"], wrapped, form) == unhex(terms["terms_hash"])
    assert ACTION_VECTORS["grant"]["message"]["termsHash"] == terms["terms_hash"]

    reason = docs["reassign_reason"]
    assert hashlib.sha256(reason["reason_text"].encode()).digest() == unhex(reason["reason_hash"])
    assert ACTION_VECTORS["reassign"]["message"]["reasonHash"] == reason["reason_hash"]

    for ctx in docs["key_context"]:
        expected = key_context(unhex(ctx["content_hash"]), ctx["recipient"])
        assert expected == unhex(ctx["key_context"])
        assert len(expected) == len(b"drl/dek/v1|") + 32 + 20


def test_receipt_id_is_the_receipts_eip712_digest() -> None:
    """The receipt id is the DeliveryReceipt's EIP-712 digest (SharingCredits domain): one id
    per signed message, whatever encoding of the signature travels."""
    rid = V["documents"]["receipt_id"]
    assert rid["of"] == "actions[name=receipt]"
    receipt = ACTION_VECTORS["receipt"]
    assert rid["domain"] == receipt["domain"] == "SharingCredits"
    signed = SignedAction.from_json(receipt["signed"])
    assert signed.digest(domains()) == unhex(rid["receipt_id"]) == unhex(receipt["digest"])
    encoded = encode_typed_data(full_message=signed.typed(domains()))
    reference = bytes(keccak(b"\x19" + encoded.version + encoded.header + encoded.body))
    assert reference == unhex(rid["receipt_id"])
    # It acknowledges one fetch: fetchNonce is the nonce of the Fetch it answers.
    fetch = ACTION_VECTORS["fetch"]["message"]
    assert receipt["message"]["fetchNonce"] == fetch["nonce"]
    assert receipt["message"]["datasetId"] == fetch["datasetId"]
    assert receipt["message"]["consumer"] == fetch["grantee"]


# -- content hash, dataset format --------------------------------------------------------------


@pytest.mark.parametrize("case", V["content_hash"]["cases"], ids=lambda c: c["name"])
def test_content_hash(case: dict[str, Any]) -> None:
    data = rule_bytes(case["length"])
    size = V["content_hash"]["chunk_size"]
    leaves = [leaf_hash(data[i : i + size]) for i in range(0, len(data), size)]
    assert [f"0x{h.hex()}" for h in leaves] == case["leaf_hashes"]
    assert stream.content_hash(io.BytesIO(data)) == unhex(case["content_hash"])
    if not data:
        assert unhex(case["content_hash"]) == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("case", V["datasets"], ids=lambda c: c["name"])
def test_encrypted_dataset(case: dict[str, Any]) -> None:
    if "plaintext_text" in case:
        plaintext = case["plaintext_text"].encode()
    else:
        plaintext = rule_bytes(case["plaintext_size"])
    dek, prefix = unhex(case["dek"]), unhex(case["nonce_prefix"])
    out = io.BytesIO()
    result = stream.encrypt(
        io.BytesIO(plaintext), out, dek, chunk_size=case["chunk_size"], nonce_prefix=prefix
    )
    ciphertext = unhex(case["ciphertext"])
    assert out.getvalue() == ciphertext
    assert len(ciphertext) == case["ciphertext_size"] == result.ciphertext_size
    assert hashlib.sha256(ciphertext).digest() == unhex(case["ciphertext_sha256"])
    assert result.ciphertext_sha256 == unhex(case["ciphertext_sha256"])

    header = Header.parse(ciphertext[:HEADER_SIZE])
    assert ciphertext[:HEADER_SIZE] == unhex(case["header"])
    assert header.chunk_size == case["chunk_size"]
    assert header.nonce_prefix == prefix
    # Every chunk opens on its own with the nonce and associated data the vector names.
    offset, opened = HEADER_SIZE, b""
    for chunk in case["chunks"]:
        assert (
            unhex(chunk["nonce"])
            == header.nonce(chunk["index"])
            == prefix + chunk["index"].to_bytes(4, "big")
        )
        aad = unhex(case["header"]) + chunk["index"].to_bytes(4, "big") + bytes([chunk["last"]])
        assert unhex(chunk["aad"]) == aad == header.aad(chunk["index"], last=chunk["last"])
        sealed = unhex(chunk["sealed"])
        assert ciphertext[offset : offset + len(sealed)] == sealed
        piece = AESGCM(dek).decrypt(unhex(chunk["nonce"]), sealed, aad)
        assert len(piece) == chunk["plaintext_size"]
        opened, offset = opened + piece, offset + len(sealed)
    assert offset == len(ciphertext)
    assert opened == plaintext
    assert case["chunks"][-1]["last"]
    assert not any(c["last"] for c in case["chunks"][:-1])

    plain = io.BytesIO()
    decrypted = stream.decrypt(io.BytesIO(ciphertext), plain, dek)
    assert plain.getvalue() == plaintext
    assert stream.content_hash(io.BytesIO(plaintext)) == unhex(case["content_hash"])
    # The content hash is over 1 MiB pieces whatever the file's chunk size: decrypt agrees.
    assert decrypted.content_hash == unhex(case["content_hash"]) == result.content_hash


def test_one_plaintext_has_one_content_hash_whatever_the_chunk_size() -> None:
    by_name = {d["name"]: d for d in V["datasets"]}
    one, other = by_name["upload"], by_name["upload_small_chunks"]
    assert one["plaintext_text"] == other["plaintext_text"]
    assert one["chunk_size"] != other["chunk_size"]
    assert len(other["chunks"]) > 1
    assert one["ciphertext_sha256"] != other["ciphertext_sha256"]
    assert one["content_hash"] == other["content_hash"]


def test_a_cut_dataset_does_not_open() -> None:
    case = next(d for d in V["datasets"] if d["name"] == "three_chunks")
    ciphertext = unhex(case["ciphertext"])
    last = len(unhex(case["chunks"][-1]["sealed"]))
    with pytest.raises(IntegrityError):
        stream.decrypt(io.BytesIO(ciphertext[:-last]), io.BytesIO(), unhex(case["dek"]))


# -- HPKE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", V["hpke"], ids=lambda c: c["name"])
def test_hpke_unwrap(case: dict[str, Any]) -> None:
    private = unhex(case["recipient_private_key"])
    key = hpke.load_private_key(case["suite"], private)
    assert key.public_key().to_bytes() == unhex(case["recipient_public_key"])
    context = key_context(unhex(case["content_hash"]), case["recipient"])
    assert context == unhex(case["key_context"])
    envelope = unhex(case["envelope"])
    assert envelope[0] == hpke.ENVELOPE_VERSION
    assert envelope[1] == case["suite"]
    assert unhex(case["hpke_info"]) == b"drl/dek-wrap/v1" + envelope[:2] + context
    assert envelope[2:].startswith(unhex(case["enc"]))
    assert len(envelope) == 2 + len(unhex(case["enc"])) + 32 + 16
    assert hpke.unwrap_key(envelope, private, info=context) == unhex(case["dek"])
    with pytest.raises(IntegrityError):
        hpke.unwrap_key(envelope, private, info=context[:-1] + b"\x00")
    # and what the library wraps itself opens with the same key and context
    fresh = hpke.wrap_key(
        unhex(case["dek"]), key.public_key().to_bytes(), suite=case["suite"], info=context
    )
    assert len(fresh) == len(envelope)
    assert hpke.unwrap_key(fresh, private, info=context) == unhex(case["dek"])


def test_hpke_key_schedule_steps() -> None:
    """The intermediate values open the envelope with plain AES-256-GCM (RFC 9180 seq 0)."""
    for case in V["hpke"]:
        envelope = unhex(case["envelope"])
        ct = envelope[2 + len(unhex(case["enc"])) :]
        dek = AESGCM(unhex(case["aead_key"])).decrypt(unhex(case["base_nonce"]), ct, b"")
        assert dek == unhex(case["dek"])


def test_fetch_response_headers() -> None:
    headers = V["fetch_response"]["headers"]
    assert tuple(headers) == auth.FETCH_HEADERS
    requester = next(h for h in V["hpke"] if h["name"] == "requester_x25519")
    assert headers[auth.H_WRAPPED_KEY] == requester["envelope"]
    receipt = ACTION_VECTORS["receipt"]["message"]
    assert int(headers[auth.H_GENERATION]) == receipt["grantGeneration"]
    assert headers[auth.H_CONTENT_HASH] == receipt["contentHash"]


# -- key files ---------------------------------------------------------------------------------


def test_key_files_open(tmp_path: Path) -> None:
    files = V["key_files"]
    signing = tmp_path / files["signing_key"]["file_name"]
    signing.write_text(json.dumps(files["signing_key"]["file"]))
    account = load_account(signing, files["passphrase"])
    assert account.address == files["signing_key"]["address"]
    assert bytes(account.key) == unhex(files["signing_key"]["private_key"])
    assert Account.decrypt(files["signing_key"]["file"], files["passphrase"]) == unhex(
        files["signing_key"]["private_key"]
    )

    secret = tmp_path / files["hpke_key"]["file_name"]
    secret.write_text(json.dumps(files["hpke_key"]["file"]))
    raw = load_secret(secret, files["passphrase"], label=files["hpke_key"]["file"]["label"])
    assert raw == unhex(files["hpke_key"]["private_key"])
    assert hpke.load_private_key(files["hpke_key"]["suite"], raw)


# -- nothing drifts ----------------------------------------------------------------------------


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_vectors_file_is_what_the_generator_writes() -> None:
    done = run_script("make_vectors", "--check")
    assert done.returncode == 0, done.stderr


def test_vectors_check_notices_a_changed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_script("make_vectors")
    stale = tmp_path / "protocol.json"
    stale.write_text(VECTORS_PATH.read_text(encoding="utf-8").replace("DRL-HTTP-2", "DRL-HTTP-9"))
    monkeypatch.setattr(module, "OUT", stale)
    assert module.main(["make_vectors.py", "--check"]) == 1
    assert module.render() == VECTORS_PATH.read_text(encoding="utf-8")  # the same bytes again


def test_protocol_doc_tables_are_current() -> None:
    done = run_script("protocol_tables", "--check")
    assert done.returncode == 0, done.stderr


def test_protocol_doc_http_examples_are_what_the_broker_exchanges() -> None:
    """docs/protocol.md §11's captured exchanges have the shape a fresh broker answers with."""
    done = run_script("capture_examples", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_protocol_tables_check_notices_a_stale_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_script("protocol_tables")
    stale = tmp_path / "protocol.md"
    text = DOC.read_text(encoding="utf-8")
    row = f"| `{ErrorCode.NO_GRANT.value}` |"
    assert row in text
    stale.write_text(text.replace(row, "| `no_grant_at_all` |", 1), encoding="utf-8")
    monkeypatch.setattr(module, "DOC", stale)
    assert module.main(["protocol_tables.py", "--check"]) == 1
    assert module.main(["protocol_tables.py"]) == 0
    assert stale.read_text(encoding="utf-8") == text


def test_doc_mentions_every_action_header_and_error_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in ACTION_NAMES:
        assert f"`{name}`" in text, name
    for spec in ACTIONS.values():
        assert spec.primary in text, spec.primary
    headers = {
        value
        for value in vars(auth).values()
        if isinstance(value, str) and value.startswith("X-DRL-")
    }
    assert set(auth.REQUEST_HEADERS) | set(auth.FETCH_HEADERS) <= headers
    for header in headers:
        assert header in text, header
    for code in ErrorCode:
        assert f"`{code.value}`" in text, code.value
    # every section the vectors file has is explained
    for section in V:
        assert re.search(rf"`{re.escape(section)}`", text), section

"""Write tests/vectors/protocol.json: the protocol's test vectors, from fixed keys and inputs.

    .venv/bin/python scripts/make_vectors.py           # regenerate the file
    .venv/bin/python scripts/make_vectors.py --check   # exit 1 if the file is out of date

Everything is derived from fixed labels (a secp256k1 or HPKE key is ``SHA-256("drl-vectors/"
+ label)``), fixed nonces and a fixed clock, so two runs write identical bytes. The values come
from the implementation (``ledger.protocol``, ``ledger.crypto``, ``ledger.keys``); where the
implementation draws randomness it offers no way to fix (the HPKE ephemeral key, the ML-KEM
encapsulation randomness, key-file salts) this script builds the bytes itself from the RFCs
(RFC 9180, X-Wing, FIPS 203, Web3 Secret Storage) and ``tests/unit/test_protocol_vectors.py``
checks that the implementation opens them. docs/protocol.md explains every field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rlp  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402
from eth_hash.auto import keccak  # noqa: E402
from eth_utils.address import to_checksum_address  # noqa: E402

from ledger.chain.models import Deployment  # noqa: E402
from ledger.crypto import hpke, stream  # noqa: E402
from ledger.crypto.format import DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, Header  # noqa: E402
from ledger.errors import LedgerError  # noqa: E402
from ledger.merkle.proofs import leaf_hash, node_hash, root_from_leaf_hashes  # noqa: E402
from ledger.protocol import http as auth  # noqa: E402
from ledger.protocol.actions import (  # noqa: E402
    ACTIONS,
    Domains,
    sign_action,
)
from ledger.protocol.canonical import canonical  # noqa: E402
from ledger.protocol.documents import (  # noqa: E402
    METADATA_VERSION,
    RequestForm,
    key_context,
    metadata_hash,
    purpose_hash,
    terms_document,
    terms_hash,
)
from ledger.protocol.eip712 import (  # noqa: E402
    SECP256K1_N,
    encode_type,
    hash_struct,
    recover_address,
    struct_fields,
    type_hash,
)
from ledger.protocol.messages import GrantTerms, typed_approval  # noqa: E402
from ledger.quality import validate_file  # noqa: E402
from ledger.services import system  # noqa: E402
from ledger.types import kind_code  # noqa: E402

OUT = ROOT / "tests" / "vectors" / "protocol.json"

#: The vectors' clock: 2026-01-01T00:00:00Z. Deadlines are 15 minutes later.
NOW = 1_767_225_600
DEADLINE = NOW + 15 * 60
CHAIN_ID = 1337
RULE = "byte i = i mod 251"
PASSPHRASE = "correct horse battery staple"  # noqa: S105 (a published example)
#: The scrypt cost of the example key files (real files: n = 2**18 and 2**17, see docs).
KEY_FILE_SCRYPT_N = 2**14


def secret(label: str) -> bytes:
    """A fixed 32-byte secret: SHA-256 of ``drl-vectors/<label>``."""
    return hashlib.sha256(f"drl-vectors/{label}".encode()).digest()


def nonce256(label: str) -> int:
    """A fixed broker-action nonce (a 256-bit integer far above 2**64)."""
    value = int.from_bytes(secret(f"nonce/{label}"), "big")
    assert value >= 2**64
    return value


def hx(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def rule_bytes(length: int) -> bytes:
    """``byte i = i mod 251`` for ``i`` in ``0 .. length-1``."""
    block = bytes(range(251))
    return (block * (length // 251 + 1))[:length]


# -- independent reference code: ML-KEM-768 encapsulation, X-Wing, HPKE base mode -------------
# The library draws the HPKE ephemeral key and the ML-KEM randomness itself; to make envelopes
# that are the same on every run this script seals them from the specifications, and the test
# checks that ledger.crypto.hpke.unwrap_key opens them.

_Q = 3329


def _bitrev7(i: int) -> int:
    return int(f"{i:07b}"[::-1], 2)


_ZETAS = [pow(17, _bitrev7(i), _Q) for i in range(128)]
_GAMMAS = [pow(17, 2 * _bitrev7(i) + 1, _Q) for i in range(128)]


def _ntt(f: list[int]) -> list[int]:
    f, i, length = list(f), 1, 128
    while length >= 2:
        for start in range(0, 256, 2 * length):
            zeta = _ZETAS[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % _Q
                f[j + length] = (f[j] - t) % _Q
                f[j] = (f[j] + t) % _Q
        length //= 2
    return f


def _ntt_inv(f: list[int]) -> list[int]:
    f, i, length = list(f), 127, 2
    while length <= 128:
        for start in range(0, 256, 2 * length):
            zeta = _ZETAS[i]
            i -= 1
            for j in range(start, start + length):
                t = f[j]
                f[j] = (t + f[j + length]) % _Q
                f[j + length] = zeta * (f[j + length] - t) % _Q
        length *= 2
    return [x * 3303 % _Q for x in f]


def _mul(f: list[int], g: list[int]) -> list[int]:
    h = [0] * 256
    for i in range(128):
        a0, a1, b0, b1 = f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]
        h[2 * i] = (a0 * b0 + a1 * b1 * _GAMMAS[i]) % _Q
        h[2 * i + 1] = (a0 * b1 + a1 * b0) % _Q
    return h


def _add(*polys: list[int]) -> list[int]:
    return [sum(c) % _Q for c in zip(*polys, strict=True)]


def _bits(data: bytes) -> list[int]:
    return [(byte >> k) & 1 for byte in data for k in range(8)]


def _sample_ntt(seed: bytes) -> list[int]:
    xof = hashlib.shake_128(seed).digest(1536)
    out: list[int] = []
    pos = 0
    while len(out) < 256:
        d1 = xof[pos] + 256 * (xof[pos + 1] % 16)
        d2 = xof[pos + 1] // 16 + 16 * xof[pos + 2]
        if d1 < _Q:
            out.append(d1)
        if d2 < _Q and len(out) < 256:
            out.append(d2)
        pos += 3
    return out


def _cbd(data: bytes, eta: int = 2) -> list[int]:
    b = _bits(data)
    return [
        (
            sum(b[2 * i * eta : 2 * i * eta + eta])
            - sum(b[2 * i * eta + eta : 2 * i * eta + 2 * eta])
        )
        % _Q
        for i in range(256)
    ]


def _prf(s: bytes, n: int, eta: int = 2) -> bytes:
    return hashlib.shake_256(s + bytes([n])).digest(64 * eta)


def _encode(d: int, f: list[int]) -> bytes:
    bits = [(x >> k) & 1 for x in f for k in range(d)]
    return bytes(sum(bits[8 * i + k] << k for k in range(8)) for i in range(len(bits) // 8))


def _decode(d: int, data: bytes) -> list[int]:
    b = _bits(data)
    return [sum(b[i * d + k] << k for k in range(d)) for i in range(256)]


def _compress(d: int, f: list[int]) -> list[int]:
    return [((2 * (x << d) + _Q) // (2 * _Q)) % (1 << d) for x in f]


def _decompress(d: int, f: list[int]) -> list[int]:
    return [(2 * y * _Q + (1 << d)) >> (d + 1) for y in f]


def mlkem768_encaps(ek: bytes, m: bytes) -> tuple[bytes, bytes]:
    """FIPS 203 ``ML-KEM.Encaps_internal(ek, m)`` for ML-KEM-768: (shared key, ciphertext)."""
    k = 3
    g = hashlib.sha3_512(m + hashlib.sha3_256(ek).digest()).digest()
    shared, r = g[:32], g[32:]
    t_hat = [_decode(12, ek[384 * i : 384 * (i + 1)]) for i in range(k)]
    rho = ek[384 * k :]
    a_hat = [[_sample_ntt(rho + bytes([j, i])) for j in range(k)] for i in range(k)]
    y = [_cbd(_prf(r, n)) for n in range(k)]
    e1 = [_cbd(_prf(r, k + n)) for n in range(k)]
    e2 = _cbd(_prf(r, 2 * k))
    y_hat = [_ntt(p) for p in y]
    u = [
        _add(_ntt_inv(_add(*(_mul(a_hat[j][i], y_hat[j]) for j in range(k)))), e1[i])
        for i in range(k)
    ]
    mu = _decompress(1, _decode(1, m))
    v = _add(_ntt_inv(_add(*(_mul(t_hat[i], y_hat[i]) for i in range(k)))), e2, mu)
    c1 = b"".join(_encode(10, _compress(10, p)) for p in u)
    return shared, c1 + _encode(4, _compress(4, v))


def x25519_public(private: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def x25519_dh(private: bytes, public: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    return key.exchange(x25519.X25519PublicKey.from_public_bytes(public))


XWING_LABEL = b"\\.//^\\"


def xwing_encaps(pk: bytes, m: bytes, ek_x: bytes) -> tuple[bytes, bytes]:
    """X-Wing ``Encaps`` with fixed randomness: (shared secret, enc = ct_M || ct_X)."""
    pk_m, pk_x = pk[:1184], pk[1184:]
    ct_x = x25519_public(ek_x)
    ss_m, ct_m = mlkem768_encaps(pk_m, m)
    ss = hashlib.sha3_256(ss_m + x25519_dh(ek_x, pk_x) + ct_x + pk_x + XWING_LABEL).digest()
    return ss, ct_m + ct_x


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, b"HPKE-v1" + suite + label + ikm, hashlib.sha256).digest()


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + labeled + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


KEM_IDS = {1: 0x0020, 2: 0x647A}  # DHKEM(X25519, HKDF-SHA256); MLKEM768-X25519 (X-Wing)
KDF_ID, AEAD_ID = 0x0001, 0x0002  # HKDF-SHA256, AES-256-GCM


def dhkem_x25519_encaps(pk_r: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 DHKEM(X25519) ``Encap`` with a fixed ephemeral key: (shared secret, enc)."""
    suite = b"KEM" + KEM_IDS[1].to_bytes(2, "big")
    enc = x25519_public(sk_e)
    prk = _labeled_extract(suite, b"", b"eae_prk", x25519_dh(sk_e, pk_r))
    return _labeled_expand(suite, prk, b"shared_secret", enc + pk_r, 32), enc


def key_schedule(suite_id: int, shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 ``KeySchedule`` in mode_base: (AEAD key, base nonce)."""
    suite = b"HPKE" + b"".join(n.to_bytes(2, "big") for n in (KEM_IDS[suite_id], KDF_ID, AEAD_ID))
    context = (
        b"\x00"
        + _labeled_extract(suite, b"", b"psk_id_hash", b"")
        + _labeled_extract(suite, b"", b"info_hash", info)
    )
    secret_ = _labeled_extract(suite, shared_secret, b"secret", b"")
    return (
        _labeled_expand(suite, secret_, b"key", context, 32),
        _labeled_expand(suite, secret_, b"base_nonce", context, 12),
    )


def wrap_deterministic(
    dek: bytes, suite_id: int, public: bytes, context: bytes, label: str
) -> dict[str, Any]:
    """An envelope as ``hpke.wrap_key`` makes it, with fixed randomness; every step shown."""
    header = bytes((hpke.ENVELOPE_VERSION, suite_id))
    info = b"drl/dek-wrap/v1" + header + context
    randomness: dict[str, str] = {}
    if suite_id == 1:
        sk_e = secret(f"{label}/ephemeral-x25519")
        shared, enc = dhkem_x25519_encaps(public, sk_e)
        randomness["ephemeral_private_key"] = hx(sk_e)
    else:
        m, ek_x = secret(f"{label}/mlkem-m"), secret(f"{label}/ephemeral-x25519")
        shared, enc = xwing_encaps(public, m, ek_x)
        randomness["mlkem_m"] = hx(m)
        randomness["ephemeral_x25519_private_key"] = hx(ek_x)
    key, base_nonce = key_schedule(suite_id, shared, info)
    envelope = header + enc + AESGCM(key).encrypt(base_nonce, dek, b"")
    return {
        **randomness,
        "enc": hx(enc),
        "shared_secret": hx(shared),
        "aead_key": hx(key),
        "base_nonce": hx(base_nonce),
        "envelope": hx(envelope),
    }


# -- the fixed world: keys and deployment -----------------------------------------------------


def account(label: str) -> Any:
    return Account.from_key(secret(label))


#: ADMIN (the operator, off the broker host), BROKER (the broker's hot key), two departments and
#: an enterprise. ADMIN and BROKER are different keys.
OPERATOR, BROKER = account("operator"), account("broker")
OWNER, REQUESTER, CLAIMANT = account("owner"), account("requester"), account("claimant")
SIGNERS = {
    "operator": OPERATOR,
    "broker": BROKER,
    "owner": OWNER,
    "requester": REQUESTER,
    "claimant": CLAIMANT,
}
SIGNER_ROLES = {
    "operator": "operator (ADMIN): signs onboard, suspend, reinstate, reassign and GrantApproval",
    "broker": "broker (BROKER): deploys the contracts, relays signed actions, anchors the log",
    "owner": "department that owns dataset 1",
    "requester": "enterprise that requests, fetches, acknowledges, rates and rotates its key",
    "claimant": "department to which the operator reassigns a dataset after a dispute",
}


def create_address(sender: str, nonce: int) -> str:
    """The address a contract created by ``sender``'s transaction number ``nonce`` gets."""
    raw = bytes(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce])))[12:]
    return str(to_checksum_address(raw))


#: The contracts in the order ``LedgerChain.deploy`` creates them (the broker key sends them).
CONTRACT_FIELDS = (
    "member_registry",
    "data_registry",
    "access_ledger",
    "flow_log",
    "sharing_credits",
)
ADDRESSES = {name: create_address(BROKER.address, n) for n, name in enumerate(CONTRACT_FIELDS)}


def _deployment() -> Deployment:
    """The deployment record, with ``admin`` and ``broker`` where the record has them."""
    known = {f.name for f in dataclasses.fields(Deployment)}
    extra = {"admin": OPERATOR.address, "broker": BROKER.address}
    values: dict[str, Any] = {**ADDRESSES, **{k: v for k, v in extra.items() if k in known}}
    return Deployment(chain_id=CHAIN_ID, block_number=1, **values)


#: As ``LedgerChain.deploy`` makes it on a fresh chain: the broker key's first five transactions.
DEPLOYMENT = _deployment()
DOMAINS: Domains = DEPLOYMENT.domains


def hpke_private(label: str, suite: int) -> hpke.PrivateKey:
    name = hpke.get_suite(suite).name
    return hpke.load_private_key(suite, secret(f"{label}/{name}"))


OWNER_HPKE = hpke_private("owner", 1)
REQUESTER_HPKE = hpke_private("requester", 1)
REQUESTER_PQ = hpke_private("requester", 2)


# -- the sample dataset and its documents -----------------------------------------------------

SAMPLE_CSV = (
    b"permit_id,district,issued_on,units\n"
    b"BP-2025-00001,North,2025-01-07,12\n"
    b"BP-2025-00002,Harbour,2025-01-09,3\n"
    b"BP-2025-00003,Old Town,2025-01-15,1\n"
)
SAMPLE_SCHEMA = {
    "fields": [
        {"name": "permit_id", "type": "string", "constraints": {"required": True}},
        {"name": "district", "type": "string"},
        {"name": "issued_on", "type": "date"},
        {"name": "units", "type": "integer"},
    ],
    "primaryKey": "permit_id",
}
TITLE = "District building permits 2025 (sample)"
PURPOSE = "Quarterly construction-activity statistics for the regional housing report"
#: The standard request form of the sample request (and of the grant's terms).
FORM = RequestForm(
    purpose_category="official-statistics",
    legal_basis="public-task",
    retention_days=90,
    processing_location="DE",
)
DAYS, USES = 30, 3
DATASET_ID, REQUEST_ID, DENIED_REQUEST_ID, GENERATION = 1, 1, 2, 1


def encrypt_vector(
    name: str, plaintext: bytes, chunk_size: int, *, plaintext_rule: str | None = None
) -> dict[str, Any]:
    """One dataset encrypted by ``ledger.crypto.stream.encrypt`` with a fixed key and prefix."""
    dek, prefix = secret(f"{name}/dek"), secret(f"{name}/nonce-prefix")[:8]
    out = io.BytesIO()
    result = stream.encrypt(
        io.BytesIO(plaintext), out, dek, chunk_size=chunk_size, nonce_prefix=prefix
    )
    ciphertext = out.getvalue()
    header = Header(chunk_size=chunk_size, nonce_prefix=prefix)
    header_bytes = header.pack()
    chunks = []
    offset, index = len(header_bytes), 0
    sizes = [len(plaintext[i : i + chunk_size]) for i in range(0, len(plaintext), chunk_size)]
    for size in sizes or [0]:
        last = index == len(sizes or [0]) - 1
        sealed = ciphertext[offset : offset + size + 16]
        chunks.append(
            {
                "index": index,
                "last": last,
                "plaintext_size": size,
                "nonce": hx(header.nonce(index)),
                "aad": hx(header.aad(index, last=last)),
                "sealed": hx(sealed),
            }
        )
        offset, index = offset + len(sealed), index + 1
    assert offset == len(ciphertext)
    vector: dict[str, Any] = {"name": name}
    if plaintext_rule:
        vector["plaintext_rule"] = plaintext_rule
        vector["plaintext_size"] = len(plaintext)
    else:
        vector["plaintext_text"] = plaintext.decode("utf-8")
    vector.update(
        {
            "dek": hx(dek),
            "chunk_size": chunk_size,
            "nonce_prefix": hx(prefix),
            "header": hx(header_bytes),
            "chunks": chunks,
            "ciphertext": hx(ciphertext),
            "ciphertext_size": len(ciphertext),
            "ciphertext_sha256": hx(result.ciphertext_sha256),
            "content_hash": hx(content_hash_1mib(plaintext)),
        }
    )
    # The content hash is over fixed 1 MiB pieces of the plaintext, whatever the chunk size.
    assert result.content_hash == content_hash_1mib(plaintext)
    return vector


def content_hash_1mib(plaintext: bytes) -> bytes:
    return stream.content_hash(io.BytesIO(plaintext))


#: The labelling members of the sample's metadata document (ledger/protocol/labels.py).
SAMPLE_LABELS: dict[str, Any] = {
    "themes": ["GOVE", "REGI"],
    "personal_data": False,
    "keywords": ["building permits", "housing"],
    "update_frequency": "MONTHLY",
    "spatial": "District 4",
    "temporal": {"start": "2025-01-01", "end": "2025-12-31"},
}


def quality_summary() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "permits.csv"
        path.write_bytes(SAMPLE_CSV)
        return validate_file(path, SAMPLE_SCHEMA).summary()


# -- the sections -----------------------------------------------------------------------------


def keys_section() -> dict[str, Any]:
    def eth(label: str, role: str) -> dict[str, Any]:
        acct = SIGNERS[label]
        return {
            "role": role,
            "derivation": f'SHA-256("drl-vectors/{label}")',
            "private_key": hx(acct.key),
            "address": acct.address,
        }

    def enc(label: str, key: hpke.PrivateKey) -> dict[str, Any]:
        return {
            "suite": key.suite.id,
            "suite_name": key.suite.name,
            "derivation": f'SHA-256("drl-vectors/{label}/{key.suite.name}")',
            "private_key": hx(key.to_bytes()),
            "public_key": hx(key.public_key().to_bytes()),
        }

    return {
        "signing": {label: eth(label, role) for label, role in SIGNER_ROLES.items()},
        "encryption": {
            "owner": enc("owner", OWNER_HPKE),
            "requester": enc("requester", REQUESTER_HPKE),
            "requester_pq": enc("requester", REQUESTER_PQ),
        },
    }


def domain_separators() -> dict[str, str]:
    """Every domain's separator by domain name (one action of each domain asks)."""
    first: dict[str, str] = {}
    for name, spec in ACTIONS.items():
        first.setdefault(spec.domain, name)
    return {where: hx(DOMAINS.separator(action)) for where, action in first.items()}


def eip712_section() -> dict[str, Any]:
    separators = domain_separators()
    domains = {
        name: {"domain": domain, "separator": separators[name]}
        for name, domain in DOMAINS.as_json().items()
    }
    types = {}
    for primary in ("EIP712Domain", *(spec.primary for spec in ACTIONS.values())):
        types[primary] = {
            "fields": struct_fields(primary),
            "encode_type": encode_type(primary),
            "type_hash": hx(type_hash(primary)),
        }
    return {"domains": domains, "types": types}


REASSIGN_REASON = (
    "Dispute 2026-01: the claimant showed its 2025-12-20 export of this file; the certificate "
    "moves to the claimant."
)


def action_messages(
    content_hash: bytes, metadata_digest: bytes, requester_wrapped: bytes
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(vector name, action, signer, message) of every action, in the exchange's order.

    ``register``, ``grant`` and ``revoke`` carry the signer's sequential contract nonce; every
    other action a fixed 256-bit nonce (``nonce256``) standing in for a random one.
    """
    terms = {
        "datasetId": DATASET_ID,
        "grantee": REQUESTER.address,
        "purposeHash": purpose_hash(PURPOSE),
        "expiresAt": NOW + DAYS * 86400,
        "maxUses": USES,
        "termsHash": terms_hash(REQUEST_ID, requester_wrapped, FORM),
    }
    fetch_nonce = nonce256("fetch")
    return [
        (
            "onboard",
            "onboard",
            "operator",
            {
                "member": REQUESTER.address,
                "kind": kind_code("enterprise"),
                "name": "Acme Analytics Ltd",
                "keySuite": 1,
                "encryptionKey": REQUESTER_HPKE.public_key().to_bytes(),
                "nonce": nonce256("onboard"),
                "deadline": DEADLINE,
            },
        ),
        (
            "register",
            "register",
            "owner",
            {
                "owner": OWNER.address,
                "contentHash": content_hash,
                "metadataHash": metadata_digest,
                "classification": 1,
                "parents": [],
                "previousVersion": 0,
                "nonce": 0,
                "deadline": DEADLINE,
            },
        ),
        (
            "register_derived",
            "register",
            "owner",
            {
                "owner": OWNER.address,
                "contentHash": hashlib.sha256(b"drl-vectors/derived").digest(),
                "metadataHash": hashlib.sha256(b"drl-vectors/derived/metadata").digest(),
                "classification": 2,
                "parents": [1, 2],
                "previousVersion": 1,
                "nonce": 1,
                "deadline": DEADLINE,
            },
        ),
        (
            "request",
            "request",
            "requester",
            {
                "requester": REQUESTER.address,
                "datasetId": DATASET_ID,
                "purpose": PURPOSE,
                **FORM.message(),
                "days": DAYS,
                "maxUses": USES,
                "nonce": nonce256("request"),
                "deadline": DEADLINE,
            },
        ),
        (
            "approval",
            "approval",
            "operator",
            {
                **terms,
                "generation": GENERATION,
                "nonce": nonce256("approval"),
                "deadline": DEADLINE,
            },
        ),
        ("grant", "grant", "owner", {**terms, "nonce": 0, "deadline": DEADLINE}),
        (
            "deny",
            "deny",
            "owner",
            {
                "owner": OWNER.address,
                "requestId": DENIED_REQUEST_ID,
                "reason": "Purpose not covered by our data-sharing policy",
                "nonce": nonce256("deny"),
                "deadline": DEADLINE,
            },
        ),
        (
            "fetch",
            "fetch",
            "requester",
            {
                "grantee": REQUESTER.address,
                "datasetId": DATASET_ID,
                "nonce": fetch_nonce,
                "deadline": DEADLINE,
            },
        ),
        (
            "receipt",
            "receipt",
            "requester",
            {
                "consumer": REQUESTER.address,
                "datasetId": DATASET_ID,
                "contentHash": content_hash,
                "grantGeneration": GENERATION,
                "fetchNonce": fetch_nonce,
                "nonce": nonce256("receipt"),
                "deadline": DEADLINE,
            },
        ),
        (
            "rate",
            "rate",
            "requester",
            {
                "rater": REQUESTER.address,
                "datasetId": DATASET_ID,
                "score": 4,
                "comment": "Complete and well documented; «units» always filled.",
                "nonce": nonce256("rate"),
                "deadline": DEADLINE,
            },
        ),
        (
            "issue",
            "issue",
            "requester",
            {
                "reporter": REQUESTER.address,
                "datasetId": DATASET_ID,
                "fields": "units",
                "rows": "2-3",
                "problem": "«units» counts buildings, not dwellings, in rows 2 and 3.",
                "nonce": nonce256("issue"),
                "deadline": DEADLINE,
            },
        ),
        (
            "answer",
            "answer",
            "owner",
            {
                "owner": OWNER.address,
                "issueId": 1,
                "verdict": "fixed",
                "fixedIn": DATASET_ID + 1,
                "reason": "Recounted as dwellings in the next version.",
                "nonce": nonce256("answer"),
                "deadline": DEADLINE,
            },
        ),
        (
            "rotate_key",
            "rotate_key",
            "requester",
            {
                "member": REQUESTER.address,
                "keySuite": REQUESTER_PQ.suite.id,
                "encryptionKey": REQUESTER_PQ.public_key().to_bytes(),
                "nonce": nonce256("rotate_key"),
                "deadline": DEADLINE,
            },
        ),
        (
            "revoke",
            "revoke",
            "owner",
            {
                "datasetId": DATASET_ID,
                "grantee": REQUESTER.address,
                "nonce": 1,
                "deadline": DEADLINE,
            },
        ),
        (
            "reassign",
            "reassign",
            "operator",
            {
                "datasetId": DATASET_ID,
                "to": CLAIMANT.address,
                "reasonHash": hashlib.sha256(REASSIGN_REASON.encode()).digest(),
                "nonce": nonce256("reassign"),
                "deadline": DEADLINE,
            },
        ),
        (
            "suspend",
            "suspend",
            "operator",
            {"member": REQUESTER.address, "nonce": nonce256("suspend"), "deadline": DEADLINE},
        ),
        (
            "reinstate",
            "reinstate",
            "operator",
            {"member": REQUESTER.address, "nonce": nonce256("reinstate"), "deadline": DEADLINE},
        ),
    ]


def actions_section(messages: list[tuple[str, str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for name, action, signer, message in messages:
        acct = SIGNERS[signer]
        signed = sign_action(acct, action, message, DOMAINS)  # type: ignore[arg-type]
        spec = ACTIONS[action]
        digest = signed.digest(DOMAINS)
        assert signed.signer(DOMAINS) == acct.address
        assert int.from_bytes(signed.signature[32:64], "big") <= SECP256K1_N // 2
        out.append(
            {
                "name": name,
                "action": action,
                "primary_type": spec.primary,
                "domain": spec.domain,
                "eip712_domain": DOMAINS.for_action(action).as_json(),
                "nonce_kind": "sequential" if spec.sequential_nonce else "random",
                "signer": signer,
                "signer_address": acct.address,
                "message": signed.message,
                "struct_hash": hx(hash_struct(spec.primary, signed.message)),
                "digest": hx(digest),
                "signature": hx(signed.signature),
                "signed": signed.to_json(),
                "signed_canonical": canonical(signed.to_json()).decode(),
            }
        )
    return out


def refused_signatures_section(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Re-encodings of the receipt's signature that a lax recovery (bare ecrecover, eth_account,
    ethers) still maps to an address, and that the protocol refuses as OpenZeppelin's
    ``ECDSA.recover`` in the contracts does: ``s`` above n/2, ``v`` other than 27 or 28."""
    receipt = next(a for a in actions if a["name"] == "receipt")
    digest = bytes.fromhex(receipt["digest"][2:])
    signature = bytes.fromhex(receipt["signature"][2:])
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    cases = [
        (
            "high_s",
            r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,)),
            "s > n/2: (r, n - s) with the other v, the mirror image of the valid signature",
        ),
        ("v_0", signature[:64] + b"\x00", "v = 0: a recovery id without the offset 27"),
        ("v_1", signature[:64] + b"\x01", "v = 1: a recovery id without the offset 27"),
    ]
    out = []
    for name, bad, why in cases:
        try:
            recover_address(digest, bad)
        except LedgerError as exc:
            code = exc.code
        else:
            raise AssertionError(f"{name} was not refused")
        out.append(
            {
                "name": name,
                "of": "actions[name=receipt]",
                "digest": hx(digest),
                "signature": hx(bad),
                "why": why,
                "lax_signer": Account._recover_hash(digest, signature=bad),
                "refused_with": code,
            }
        )
    return out


def requests_section(actions: list[dict[str, Any]], upload: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {a["name"]: a for a in actions}
    cases = [
        ("get_without_query", "owner", "GET", f"/v1/members/{OWNER.address}/nonces", "", b""),
        (
            "get_with_query",
            "requester",
            "GET",
            "/v1/datasets",
            f"owner={OWNER.address}&limit=10",
            b"",
        ),
        (
            "post_with_body",
            "requester",
            "POST",
            "/v1/requests",
            "",
            json.dumps({"signed": by_name["request"]["signed"]}).encode(),
        ),
        (
            "put_upload",
            "owner",
            "PUT",
            "/v1/datasets/uploads/5f0c8a1e2b7d4c3f9a6e1d2c3b4a5f60",
            "",
            None,
        ),
    ]
    out = []
    for name, signer, method, path, query, body in cases:
        acct = SIGNERS[signer]
        target = auth.request_target(path, query)
        digest = upload["ciphertext_sha256"][2:] if body is None else auth.body_sha256(body)
        nonce = secret(f"request-nonce/{name}").hex()[:32]
        timestamp = NOW + len(out)
        headers = auth.sign_request(
            acct,
            method=method,
            target=target,
            body_sha256=digest,
            chain_id=CHAIN_ID,
            deployment=DEPLOYMENT.flow_log,
            timestamp=timestamp,
            nonce=nonce,
        )
        message = auth.request_message(
            method=method,
            target=target,
            body_sha256=digest,
            timestamp=timestamp,
            nonce=nonce,
            chain_id=CHAIN_ID,
            deployment=DEPLOYMENT.flow_log,
        )
        vector: dict[str, Any] = {
            "name": name,
            "signer": signer,
            "address": acct.address,
            "method": method,
            "path": path,
            "query": query,
            "target": target,
        }
        if body is None:
            vector["body"] = "the ciphertext of datasets[name=upload] (streamed)"
        else:
            vector["body_text"] = body.decode()
        prefix = f"\x19Ethereum Signed Message:\n{len(message)}".encode()
        vector.update(
            {
                "body_sha256": digest,
                "timestamp": timestamp,
                "nonce": nonce,
                "chain_id": CHAIN_ID,
                "deployment": DEPLOYMENT.flow_log.lower(),
                "message_text": message.decode(),
                "message_hex": hx(message),
                "eip191_hash": hx(keccak(prefix + message)),
                "signature": headers[auth.H_SIGNATURE],
                "headers": headers,
            }
        )
        assert bytes(encode_defunct(primitive=message).body) == message
        out.append(vector)
    return out


CANONICAL_CASES: list[tuple[str, str]] = [
    ("literals", '[null, true, false, "", [], {}]'),
    ("nested_whitespace", '{ "b" : [ 1 , { "d" : 2 , "c" : 3 } ] , "a" : { } }'),
    (
        "key_order_utf16",
        '{"\\u20ac": "euro", "\\r": "cr", "\\ufb33": "dalet", "1": "one", '
        '"\\ud83d\\ude00": "emoji", "\\u0080": "ctl", "\\u00f6": "o-umlaut", "A": "A", "a": "a"}',
    ),
    (
        "escapes",
        '["\\u0000\\u0001\\u001f", "\\b\\f\\n\\r\\t", "quote \\" backslash \\\\ slash /", '
        '"\\u007f \\u2028 \\u2029 \\u00e9 \\u20ac \\ud83d\\ude00"]',
    ),
    (
        "big_integer",
        '{"nonce": 115792089237316195423570985008687907853269984665640564039457584007913129639935}',
    ),
    ("integer_beyond_2_53", "[9007199254740993, -9007199254740993, 18446744073709551616]"),
    (
        "signed_action_shape",
        '{"signature": "0xab", "message": {"purpose": "Ward counts \u00e9\u20ac\u2028",'
        ' "nonce": 1157920892373161954235709850086879078532699846656405640394575840'
        "07913129639935,"
        ' "days": 30, "retired": false, "note": null},'
        ' "actor": "0xAbC", "action": "RequestAccess"}',
    ),
    (
        "numbers",
        "[0, -0, 1, -1, 1.0, 1e2, 1E21, 1e21, 1e20, 123456789012345680000, 1e-7, 0.000001,"
        " 0.1, -0.0, 1.5e300, 5e-324, 1.7976931348623157e308, 0.30000000000000004,"
        " 100.25, -1.5e-10, 3.14159]",
    ),
]
CANONICAL_REFUSED: list[tuple[str, str, str]] = [
    ("lone_high_surrogate", '["\\ud800"]', "a string holds a lone UTF-16 surrogate"),
    ("lone_low_surrogate", '{"\\udc00": 1}', "a name holds a lone UTF-16 surrogate"),
]


def canonical_section() -> dict[str, Any]:
    cases = []
    for name, text in CANONICAL_CASES:
        data = canonical(json.loads(text))
        cases.append({"name": name, "input": text, "canonical": data.decode(), "hex": hx(data)})
    refused = []
    for name, text, why in CANONICAL_REFUSED:
        try:
            canonical(json.loads(text))
        except LedgerError as exc:
            refused.append({"name": name, "input": text, "why": why, "code": exc.code})
        else:
            raise AssertionError(f"{name} was not refused")
    refused.append(
        {
            "name": "nan",
            "input": "NaN (not JSON; reachable from a language whose numbers hold it)",
            "why": "NaN and infinities are not JSON numbers",
            "code": "bad_json",
        }
    )
    return {"cases": cases, "refused": refused}


def content_hash_section() -> dict[str, Any]:
    cases = []
    for name, length in (
        ("empty", 0),
        ("one_chunk", 1000),
        ("two_chunks", DEFAULT_CHUNK_SIZE + 1),
        ("exact_multiple", 2 * DEFAULT_CHUNK_SIZE),
        ("three_chunks", 2 * DEFAULT_CHUNK_SIZE + 5),
    ):
        data = rule_bytes(length)
        leaves = [
            leaf_hash(data[i : i + DEFAULT_CHUNK_SIZE])
            for i in range(0, len(data), DEFAULT_CHUNK_SIZE)
        ]
        root = content_hash_1mib(data)
        assert root == root_from_leaf_hashes(leaves)
        case: dict[str, Any] = {
            "name": name,
            "length": length,
            "leaf_hashes": [hx(h) for h in leaves],
            "content_hash": hx(root),
        }
        if len(leaves) == 3:
            case["note"] = "root = node(node(leaf0, leaf1), leaf2)"
            assert root == node_hash(node_hash(leaves[0], leaves[1]), leaves[2])
        cases.append(case)
    return {"rule": RULE, "chunk_size": DEFAULT_CHUNK_SIZE, "cases": cases}


def key_files_section() -> dict[str, Any]:
    # Web3 Secret Storage v3, as eth-account writes it (ledger/keys.py save_account).
    salt, iv = secret("keystore/salt")[:16], secret("keystore/iv")[:16]
    derived = Scrypt(salt=salt, length=32, n=KEY_FILE_SCRYPT_N, r=8, p=1).derive(
        PASSPHRASE.encode()
    )
    encryptor = Cipher(algorithms.AES(derived[:16]), modes.CTR(iv)).encryptor()
    ciphertext = encryptor.update(bytes(OWNER.key)) + encryptor.finalize()
    keystore = {
        "address": OWNER.address[2:].lower(),
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": iv.hex()},
            "ciphertext": ciphertext.hex(),
            "kdf": "scrypt",
            "kdfparams": {"dklen": 32, "n": KEY_FILE_SCRYPT_N, "r": 8, "p": 1, "salt": salt.hex()},
            "mac": bytes(keccak(derived[16:32] + ciphertext)).hex(),
        },
        "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
        "version": 3,
    }
    # hpke.key.json (ledger/keys.py save_secret): scrypt, then AES-256-GCM with the label as AAD.
    h_salt, h_nonce = secret("hpke-key/salt")[:16], secret("hpke-key/nonce")[:12]
    h_key = Scrypt(salt=h_salt, length=32, n=KEY_FILE_SCRYPT_N, r=8, p=1).derive(
        PASSPHRASE.encode()
    )
    sealed = AESGCM(h_key).encrypt(h_nonce, OWNER_HPKE.to_bytes(), b"hpke")
    hpke_file = {
        "version": 1,
        "label": "hpke",
        "kdf": {"name": "scrypt", "n": KEY_FILE_SCRYPT_N, "r": 8, "p": 1, "salt": h_salt.hex()},
        "cipher": {"name": "aes-256-gcm", "nonce": h_nonce.hex(), "sealed": sealed.hex()},
    }
    return {
        "passphrase": PASSPHRASE,
        "signing_key": {
            "file_name": "signing.key.json",
            "file": keystore,
            "derived_key": hx(derived),
            "private_key": hx(OWNER.key),
            "address": OWNER.address,
        },
        "hpke_key": {
            "file_name": "hpke.key.json",
            "file": hpke_file,
            "derived_key": hx(h_key),
            "suite": OWNER_HPKE.suite.id,
            "private_key": hx(OWNER_HPKE.to_bytes()),
        },
    }


def config_example() -> dict[str, Any]:
    """GET /v1/config of the vectors' deployment, as ledger.services.system builds it."""
    fields = {f.name: getattr(DEPLOYMENT, f.name) for f in dataclasses.fields(Deployment)}
    # The record seen with ``admin`` and ``broker`` whether or not Deployment holds them.
    deployment = SimpleNamespace(
        **{"admin": OPERATOR.address, "broker": BROKER.address, **fields},
        domains=DOMAINS,
        address_of=DEPLOYMENT.address_of,
    )
    ledger = SimpleNamespace(
        chain=SimpleNamespace(deployment=deployment, account=BROKER),
        operator=OPERATOR.address,
        admin=OPERATOR.address,
        broker=BROKER.address,
        max_upload_bytes=8 * 1024**3,
    )
    config = system.config(ledger)  # type: ignore[arg-type]
    result: dict[str, Any] = config.model_dump(mode="json")
    return result


def build() -> dict[str, Any]:
    upload = encrypt_vector("upload", SAMPLE_CSV, DEFAULT_CHUNK_SIZE)
    content_hash = bytes.fromhex(upload["content_hash"][2:])
    dek = bytes.fromhex(upload["dek"][2:])

    owner_context = key_context(content_hash, OWNER.address)
    requester_context = key_context(content_hash, REQUESTER.address)
    owner_env = wrap_deterministic(
        dek, 1, OWNER_HPKE.public_key().to_bytes(), owner_context, "wrap/owner"
    )
    requester_env = wrap_deterministic(
        dek, 1, REQUESTER_HPKE.public_key().to_bytes(), requester_context, "wrap/requester"
    )
    pq_env = wrap_deterministic(
        dek, 2, REQUESTER_PQ.public_key().to_bytes(), requester_context, "wrap/requester-pq"
    )
    owner_wrapped = bytes.fromhex(owner_env["envelope"][2:])
    requester_wrapped = bytes.fromhex(requester_env["envelope"][2:])

    metadata = {
        "v": METADATA_VERSION,
        "title": TITLE,
        "description": "Three permits, for the protocol's test vectors.",
        "media_type": "text/csv",
        "schema": SAMPLE_SCHEMA,
        "quality": quality_summary(),
        "plaintext_size": len(SAMPLE_CSV),
        "ciphertext_sha256": upload["ciphertext_sha256"],
        "ciphertext_size": upload["ciphertext_size"],
        "chunk_size": upload["chunk_size"],
        "owner_key_sha256": hx(hashlib.sha256(owner_wrapped).digest()),
        **SAMPLE_LABELS,
    }
    metadata_digest = metadata_hash(metadata)

    messages = action_messages(content_hash, metadata_digest, requester_wrapped)
    actions = actions_section(messages)
    receipt = next(a for a in actions if a["name"] == "receipt")
    approval = next(a for a in actions if a["name"] == "approval")
    approval_typed = typed_approval(
        DOMAINS,
        GrantTerms(
            dataset_id=DATASET_ID,
            grantee=REQUESTER.address,
            purpose_hash=purpose_hash(PURPOSE),
            expires_at=NOW + DAYS * 86400,
            max_uses=USES,
            terms_hash=terms_hash(REQUEST_ID, requester_wrapped, FORM),
        ),
        generation=GENERATION,
        nonce=approval["message"]["nonce"],
        deadline=DEADLINE,
    )
    assert approval_typed["domain"] == approval["eip712_domain"]
    assert {
        k: hx(v) if isinstance(v, bytes) else v for k, v in approval_typed["message"].items()
    } == approval["message"]

    def hpke_vector(
        name: str, recipient: str, key: hpke.PrivateKey, context: bytes, env: dict[str, Any]
    ) -> dict[str, Any]:
        header = bytes((hpke.ENVELOPE_VERSION, key.suite.id))
        return {
            "name": name,
            "suite": key.suite.id,
            "suite_name": key.suite.name,
            "recipient": recipient,
            "recipient_private_key": hx(key.to_bytes()),
            "recipient_public_key": hx(key.public_key().to_bytes()),
            "content_hash": hx(content_hash),
            "key_context": hx(context),
            "hpke_info": hx(b"drl/dek-wrap/v1" + header + context),
            **env,
            "dek": hx(dek),
        }

    datasets = [
        upload,
        encrypt_vector("upload_small_chunks", SAMPLE_CSV, MIN_CHUNK_SIZE),
        encrypt_vector("three_chunks", rule_bytes(150), MIN_CHUNK_SIZE, plaintext_rule=RULE),
        encrypt_vector("exact_multiple", rule_bytes(128), MIN_CHUNK_SIZE, plaintext_rule=RULE),
        encrypt_vector("empty", b"", MIN_CHUNK_SIZE, plaintext_rule=RULE),
    ]
    fetch_headers = {
        auth.H_WRAPPED_KEY: requester_env["envelope"],
        auth.H_GENERATION: str(GENERATION),
        auth.H_CONTENT_HASH: hx(content_hash),
        auth.H_CIPHERTEXT_SHA256: upload["ciphertext_sha256"],
        auth.H_USES_LEFT: str(USES - 1),
        auth.H_LOG_SEQ: "4",
        auth.H_METADATA: json.dumps({"title": TITLE}),
    }
    return {
        "about": (
            "Test vectors of the Data Rights Ledger protocol (docs/protocol.md). Byte strings "
            "are 0x-hex unless a field ends in _text; integers are JSON integers, and some "
            "(256-bit nonces) exceed 2**53: parse them exactly."
        ),
        "generator": "scripts/make_vectors.py",
        "now": NOW,
        "deadline": DEADLINE,
        "keys": keys_section(),
        "deployment": {
            "note": (
                "As LedgerChain.deploy makes it on a fresh chain: the CREATE addresses of the "
                "deployer's (the broker key's) transactions 0 to 4. ADMIN is the operator key, "
                "BROKER the broker key: two different keys."
            ),
            "chain_id": CHAIN_ID,
            "admin": OPERATOR.address,
            "broker": BROKER.address,
            "deployer": BROKER.address,
            **ADDRESSES,
        },
        "config": config_example(),
        "eip712": eip712_section(),
        "actions": actions,
        "refused_signatures": refused_signatures_section(actions),
        "requests": requests_section(actions, upload),
        "canonical_json": canonical_section(),
        "documents": {
            "metadata": {
                "document": metadata,
                "canonical": canonical(metadata).decode(),
                "metadata_hash": hx(metadata_digest),
            },
            "purpose": {"purpose_text": PURPOSE, "purpose_hash": hx(purpose_hash(PURPOSE))},
            "terms": {
                "request_id": REQUEST_ID,
                "wrapped_key": hx(requester_wrapped),
                "document": terms_document(REQUEST_ID, requester_wrapped, FORM),
                "canonical": canonical(
                    terms_document(REQUEST_ID, requester_wrapped, FORM)
                ).decode(),
                "terms_hash": hx(terms_hash(REQUEST_ID, requester_wrapped, FORM)),
            },
            "receipt_id": {
                "of": "actions[name=receipt]",
                "domain": receipt["domain"],
                "receipt_id": receipt["digest"],
            },
            "reassign_reason": {
                "reason_text": REASSIGN_REASON,
                "reason_hash": hx(hashlib.sha256(REASSIGN_REASON.encode()).digest()),
            },
            "key_context": [
                {
                    "content_hash": hx(content_hash),
                    "recipient": address,
                    "key_context": hx(key_context(content_hash, address)),
                }
                for address in (OWNER.address, REQUESTER.address)
            ],
        },
        "content_hash": content_hash_section(),
        "datasets": datasets,
        "hpke": [
            hpke_vector("owner_x25519", OWNER.address, OWNER_HPKE, owner_context, owner_env),
            hpke_vector(
                "requester_x25519",
                REQUESTER.address,
                REQUESTER_HPKE,
                requester_context,
                requester_env,
            ),
            hpke_vector(
                "requester_mlkem768_x25519",
                REQUESTER.address,
                REQUESTER_PQ,
                requester_context,
                pq_env,
            ),
        ],
        "fetch_response": {
            "status": 200,
            "headers": fetch_headers,
            "body": "the ciphertext of datasets[name=upload]",
        },
        "key_files": key_files_section(),
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            shown = OUT.relative_to(ROOT) if OUT.is_relative_to(ROOT) else OUT
            sys.stderr.write(f"{shown} is out of date: run {argv[0]}\n")
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

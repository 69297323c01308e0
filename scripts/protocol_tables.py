"""Write the generated parts of docs/protocol.md from the code and the test vectors.

    .venv/bin/python scripts/protocol_tables.py           # rewrite the generated parts
    .venv/bin/python scripts/protocol_tables.py --check   # exit 1 if any part is out of date

Each part sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in the document and is
rendered from its source of truth: the error codes from ``ledger.protocol.codes.ERRORS`` and
the contracts' ABIs, the actions and types from ``ledger.protocol``, the limits from
``ledger.protocol.limits``, and every example from ``tests/vectors/protocol.json`` (written by
``scripts/make_vectors.py``). The prose around them is written by hand.
``tests/unit/test_protocol_vectors.py`` runs ``--check``, so the document cannot drift.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.errors import ContractRevert  # noqa: E402
from ledger.protocol import http as auth  # noqa: E402
from ledger.protocol import limits  # noqa: E402
from ledger.protocol.actions import ACTIONS  # noqa: E402
from ledger.protocol.codes import CONTRACT_ERROR_STATUS, ERRORS  # noqa: E402
from ledger.protocol.documents import MAX_METADATA_BYTES  # noqa: E402
from ledger.protocol.eip712 import encode_type  # noqa: E402

DOC = ROOT / "docs" / "protocol.md"
VECTORS = ROOT / "tests" / "vectors" / "protocol.json"
ARTIFACTS = ROOT / "ledger" / "chain" / "artifacts"
CONTRACTS = ("MemberRegistry", "DataRegistry", "AccessLedger", "FlowLog", "SharingCredits")
#: The custom errors ``AccessLedger.recordUse`` reverts with. ``ledger.services.exchange.fetch``
#: answers them as a refusal (403, the contract's code kept), not as a chain conflict (409).
RECORD_USE_ERRORS = (
    "AccessLedgerNoGrant",
    "AccessLedgerGrantRevoked",
    "AccessLedgerGrantExpired",
    "AccessLedgerUsesExhausted",
    "AccessLedgerInactiveMember",
)
SIGNERS = {
    "onboard": "operator (ADMIN)",
    "suspend": "operator (ADMIN)",
    "reinstate": "operator (ADMIN)",
    "rotate_key": "the member itself",
    "register": "owner",
    "reassign": "operator (ADMIN)",
    "request": "requester",
    "grant": "owner",
    "approval": "operator (ADMIN), co-signing a grant",
    "deny": "owner",
    "revoke": "owner",
    "fetch": "grantee",
    "receipt": "consumer (grantee)",
    "rate": "rater (a member that sent a receipt)",
    "issue": "reporter (a member that sent a receipt)",
    "answer": "owner of the issue's dataset",
}
#: How the verifying contract makes a random nonce single use.
CONSUMED = {
    "fetch": "`(grantee, nonce)` consumed by `recordUse`",
    "receipt": "the receipt's digest (its id) and its fetch credited once",
}
#: The ``/v1/config`` member that holds each domain's verifying contract.
DOMAIN_CONTRACT_FIELD = {
    "broker": "flow_log",
    "MemberRegistry": "member_registry",
    "DataRegistry": "data_registry",
    "AccessLedger": "access_ledger",
    "SharingCredits": "sharing_credits",
}


def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


def pretty(value: Any, indent: int = 0, width: int = 96) -> str:
    """JSON indented by two spaces, with every value that fits on one line kept on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {pretty(v, indent + 2, width)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + pretty(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def fenced(language: str, text: str) -> str:
    return f"```{language}\n{text.rstrip()}\n```"


# -- parts rendered from the code ----------------------------------------------------------------


def error_codes() -> str:
    rows = ["| code | status | meaning |", "|---|---|---|"]
    for code, (status, meaning) in ERRORS.items():
        shown = str(status) if status is not None else "— (member tools only)"
        rows.append(f"| `{code.value}` | {shown} | {meaning} |")
    contract_rows = ["| code | contract | status |", "|---|---|---|"]
    for contract in CONTRACTS:
        abi = json.loads((ARTIFACTS / f"{contract}.json").read_text(encoding="utf-8"))["abi"]
        for error in sorted(e["name"] for e in abi if e["type"] == "error"):
            if not error.startswith(contract):
                continue  # OpenZeppelin's own errors: listed below the table
            status = str(CONTRACT_ERROR_STATUS)
            if error in RECORD_USE_ERRORS:
                status = f"403 on a fetch, {CONTRACT_ERROR_STATUS} elsewhere"
            contract_rows.append(f"| `{ContractRevert(error).code}` | {contract} | {status} |")
    return "\n".join(
        [
            *rows,
            "",
            "Custom errors of the contracts (`<contract>_<error>` in snake case):",
            "",
            *contract_rows,
        ]
    )


def actions_table() -> str:
    rows = [
        "| action | EIP-712 primary type | domain | signed by | signer named in | nonce |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in ACTIONS.items():
        domain = "broker" if spec.domain == "broker" else f"contract ({spec.domain})"
        if spec.sequential_nonce:
            nonce = f"sequential: the signer's `nonces(address)` in {spec.domain}"
        elif spec.on_chain:
            consumed = CONSUMED.get(name, "the digest consumed")
            nonce = f"random 256-bit, ≥ 2**64; {consumed} on chain"
        else:
            nonce = "random 256-bit, ≥ 2**64; single use, recorded by the broker"
        if spec.signer_field:
            named = f"`{spec.signer_field}`"
        elif SIGNERS[name].startswith("operator"):
            named = "— (the signer must hold ADMIN)"
        else:
            named = "— (the signer must own `datasetId`)"
        rows.append(
            f"| `{name}` | `{spec.primary}` | {domain} | {SIGNERS[name]} | {named} | {nonce} |"
        )
    return "\n".join(rows)


def domains_table() -> str:
    rows = [
        "| domain | `name` | `version` | `verifyingContract` (`/v1/config`) | used by |",
        "|---|---|---|---|---|",
    ]
    domains = vectors()["eip712"]["domains"]
    for where, field in DOMAIN_CONTRACT_FIELD.items():
        d = domains[where]["domain"]
        used = ", ".join(f"`{n}`" for n, spec in ACTIONS.items() if spec.domain == where)
        rows.append(f"| {where} | `{d['name']}` | `{d['version']}` | `{field}` | {used} |")
    return "\n".join(rows)


def type_strings() -> str:
    primaries = ["EIP712Domain", *(spec.primary for spec in ACTIONS.values())]
    return fenced("text", "\n".join(encode_type(p) for p in primaries))


def limits_table() -> str:
    rows = [
        ("request timestamp skew", f"± {auth.MAX_SKEW_SECONDS} s", "401 `unauthenticated`"),
        (
            "request nonce (`X-DRL-Nonce`)",
            f"`{auth.NONCE_PATTERN.pattern}`, single use per signer",
            "401 `unauthenticated`, 401 `request_replayed`",
        ),
        (
            "action deadline",
            "≥ the broker's clock (unix seconds)",
            "400 `deadline_expired`",
        ),
        (
            "action deadline ahead",
            f"≤ now + {limits.MAX_DEADLINE_AHEAD} s + {limits.DEADLINE_TOLERANCE} s",
            "400 `deadline_too_far`",
        ),
        (
            "random nonce (every action but `register`, `grant`, `revoke`)",
            f"{limits.MIN_BROKER_NONCE} (2**64) ≤ nonce < 2**256",
            "400 `weak_nonce` (below), 400 `malformed_action` (2**256 and up)",
        ),
        (
            "`purpose` (request)",
            f"{limits.PURPOSE_CHARS[0]}–{limits.PURPOSE_CHARS[1]} code points after strip",
            "422 `invalid_field`",
        ),
        ("`days` (request)", "{}–{}".format(*limits.REQUEST_DAYS), "422 `invalid_field`"),
        ("`maxUses` (request)", "{:,}–{:,}".format(*limits.REQUEST_USES), "422 `invalid_field`"),
        ("`reason` (deny)", f"≤ {limits.MAX_REASON_CHARS} code points", "422 `invalid_field`"),
        ("`comment` (rate)", f"≤ {limits.MAX_COMMENT_CHARS} code points", "422 `invalid_field`"),
        ("`score` (rate)", "{}–{}".format(*limits.SCORES), "422 `invalid_field`"),
        (
            "`name` (onboard)",
            f"1–{limits.MAX_NAME_CHARS} code points, no leading or trailing whitespace",
            "422 `invalid_field` (length), 422 `invalid_input` (whitespace)",
        ),
        ("`parents` (register)", f"≤ {limits.MAX_PARENTS}", "422 `invalid_field`"),
        (
            "metadata document",
            f"≤ {MAX_METADATA_BYTES:,} bytes of canonical JSON",
            "422 `invalid_input`",
        ),
        ("wrapped key (upload, approve)", "1–4,096 bytes", "422 `invalid_request`"),
        ("`message` members", "≤ 16", "422 `invalid_request`"),
    ]
    lines = ["| what | limit | refused with |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


# -- parts rendered from the vectors -------------------------------------------------------------


def config_example() -> str:
    return fenced("json", pretty(vectors()["config"]))


def request_examples() -> str:
    parts = []
    for r in vectors()["requests"]:
        lines = [f"{k}: {v}" for k, v in r["headers"].items()]
        title = {
            "get_without_query": "GET without a query",
            "get_with_query": "GET with a query",
            "post_with_body": "POST with a JSON body",
            "put_upload": "PUT of an upload (body hash = the signed ciphertext digest)",
        }[r["name"]]
        message = r["message_text"].replace("\n", "⏎\n")
        parts.append(
            f"**{title}** — `{r['method']} {r['target']}`, signed by the {r['signer']} "
            f"(`requests[name={r['name']}]`). The message ({len(r['message_text'].encode())} "
            "bytes; ⏎ marks each LF byte, there is none after the deployment):\n\n"
            + fenced("text", message)
            + "\n\nand the headers sent:\n\n"
            + fenced("http", "\n".join(lines))
            + (
                "\n\nwith this body (the exact bytes hashed):\n\n" + fenced("json", r["body_text"])
                if r.get("body_text")
                else ""
            )
        )
    return "\n\n".join(parts)


def action_example() -> str:
    v = vectors()
    request = next(a for a in v["actions"] if a["name"] == "request")
    signed = pretty(request["signed"])
    return "\n\n".join(
        [
            "The requester's signed `request` (`actions[name=request]`), as it travels:",
            fenced("json", signed),
            "\n".join(
                [
                    f"- type hash: `{v['eip712']['types']['RequestAccess']['type_hash']}`",
                    f"- broker domain separator: `{v['eip712']['domains']['broker']['separator']}`",
                    f"- hashStruct(message): `{request['struct_hash']}`",
                    f"- digest = keccak256(0x1901 ‖ separator ‖ hashStruct): `{request['digest']}`",
                    "- canonical JSON (what the flow log stores inside its record):",
                ]
            ),
            fenced("json", request["signed_canonical"]),
        ]
    )


def documents_example() -> str:
    d = vectors()["documents"]
    meta = d["metadata"]
    terms = d["terms"]
    return "\n\n".join(
        [
            "The metadata document of the sample dataset (`documents.metadata`):",
            fenced("json", pretty(meta["document"])),
            "its canonical JSON, whose SHA-256 is the `metadataHash`:",
            fenced("json", meta["canonical"]),
            f"`metadataHash` = `{meta['metadata_hash']}`.",
            "The terms document of request 1 and the key wrapped to the requester "
            "(`documents.terms`), canonical:",
            fenced("json", terms["canonical"]),
            f"`termsHash` = `{terms['terms_hash']}`; `purposeHash` of "
            f"“{d['purpose']['purpose_text']}” = `{d['purpose']['purpose_hash']}`; "
            f"receipt id of `{d['receipt_id']['of']}` (its EIP-712 digest in the "
            f"{d['receipt_id']['domain']} domain) = `{d['receipt_id']['receipt_id']}`; "
            f"`reasonHash` of the reassignment's reason (`documents.reassign_reason`) = "
            f"`{d['reassign_reason']['reason_hash']}`.",
        ]
    )


def refused_signatures() -> str:
    v = vectors()
    rows = [
        "| vector | signature (r ‖ s ‖ v) | what it is | a lax ecrecover gives |",
        "|---|---|---|---|",
    ]
    for c in v["refused_signatures"]:
        sig = c["signature"]
        shown = f"`{sig[:10]}…{sig[66:74]}…{sig[-2:]}`"
        rows.append(f"| `{c['name']}` | {shown} | {c['why']} | `{c['lax_signer']}` |")
    receipt = next(a for a in v["actions"] if a["name"] == "receipt")
    return "\n\n".join(
        [
            f"The receipt's valid signature (`actions[name=receipt]`) is `{receipt['signature']}` "
            f"by `{receipt['signer_address']}`. Each of these re-encodings "
            "(`refused_signatures`) is refused with 400 `invalid_signature`:",
            "\n".join(rows),
        ]
    )


def content_hash_table() -> str:
    ch = vectors()["content_hash"]
    rows = ["| input (byte i = i mod 251) | leaves | content hash |", "|---|---|---|"]
    for case in ch["cases"]:
        rows.append(
            f"| {case['name']}: {case['length']:,} bytes | {len(case['leaf_hashes'])} "
            f"| `{case['content_hash']}` |"
        )
    return "\n".join(rows)


def dataset_example() -> str:
    v = vectors()
    upload = next(d for d in v["datasets"] if d["name"] == "upload")
    three = next(d for d in v["datasets"] if d["name"] == "three_chunks")
    header = upload["header"][2:]
    lines = [
        f'magic       {header[0:8]}            "DRLE"',
        f"version     {header[8:10]}                  1",
        f"chunk_size  {header[10:18]}            {upload['chunk_size']:,} (big-endian u32)",
        f"prefix      {header[18:34]}    nonce prefix",
    ]
    chunk_rows = [
        "| i | last | plaintext bytes | nonce | associated data |",
        "|---|---|---|---|---|",
    ]
    for c in three["chunks"]:
        chunk_rows.append(
            f"| {c['index']} | {int(c['last'])} | {c['plaintext_size']} | `{c['nonce']}` "
            f"| `{c['aad']}` |"
        )
    return "\n\n".join(
        [
            f"The sample CSV ({len(upload['plaintext_text'].encode())} bytes) encrypted with "
            f"`dek` = `{upload['dek']}` (`datasets[name=upload]`) is one chunk of "
            f"{upload['ciphertext_size']} bytes = 17 + {upload['chunks'][0]['plaintext_size']} "
            "+ 16. Its header:",
            fenced("text", "\n".join(lines)),
            f"chunk 0 nonce `{upload['chunks'][0]['nonce']}`, associated data "
            f"`{upload['chunks'][0]['aad']}`; ciphertext SHA-256 "
            f"`{upload['ciphertext_sha256']}`; content hash `{upload['content_hash']}`.",
            f"`datasets[name=three_chunks]`: 150 bytes (byte i = i mod 251) with the smallest "
            f"chunk size, {three['chunk_size']} bytes, header `{three['header']}`:",
            "\n".join(chunk_rows),
        ]
    )


def hpke_example() -> str:
    h = next(x for x in vectors()["hpke"] if x["name"] == "requester_x25519")
    envelope = h["envelope"][2:]
    enc_len = len(h["enc"]) // 2 - 1
    lines = [
        f"version   {envelope[0:2]}",
        f"suite     {envelope[2:4]}",
        f"enc       {envelope[4 : 4 + 2 * enc_len]}",
        f"ct        {envelope[4 + 2 * enc_len :]}",
    ]
    return "\n\n".join(
        [
            f"The data key wrapped to the requester (`hpke[name=requester_x25519]`, "
            f"{len(envelope) // 2} bytes):",
            fenced("text", "\n".join(lines)),
            "\n".join(
                [
                    f"- key context `{h['key_context']}`",
                    f"- HPKE info `{h['hpke_info']}`",
                    f"- shared secret `{h['shared_secret']}`, key `{h['aead_key']}`, "
                    f"base nonce `{h['base_nonce']}`",
                    f"- data key `{h['dek']}`",
                ]
            ),
        ]
    )


PARTS: dict[str, Callable[[], str]] = {
    "error-codes": error_codes,
    "actions": actions_table,
    "domains": domains_table,
    "types": type_strings,
    "refused-signatures": refused_signatures,
    "limits": limits_table,
    "config-example": config_example,
    "request-examples": request_examples,
    "action-example": action_example,
    "documents-example": documents_example,
    "content-hash-example": content_hash_table,
    "dataset-example": dataset_example,
    "hpke-example": hpke_example,
}


def render(text: str) -> str:
    """``text`` with every generated part rewritten (ValueError if a marker is missing)."""
    for name, make in PARTS.items():
        pattern = re.compile(
            rf"(<!-- {re.escape(name)}:start -->\n)(?:.*?\n)?(<!-- {re.escape(name)}:end -->)",
            re.DOTALL,
        )
        if not pattern.search(text):
            raise ValueError(f"{DOC.name} lacks the markers of the part {name!r}")
        body = make() + "\n"
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text, count=1)
    return text


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    text = render(current)
    if "--check" in argv:
        if current != text:
            shown = DOC.relative_to(ROOT) if DOC.is_relative_to(ROOT) else DOC
            sys.stderr.write(f"{shown} is out of date: run {argv[0]}\n")
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

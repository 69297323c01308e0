"""Raw HTTP against a running broker, for the bad-input and authorization tests.

- :class:`Wire` sends requests over exact bytes, signed with ``protocol.http.sign_request`` by any
  key (or deliberately unsigned, mis-signed, stale or replayed), so a test controls every byte
  and header the broker sees.
- Signed actions are built by hand from the SDK's pieces (``ledger.client.member.sign``,
  ``ledger.protocol.actions.sign_action``), so they can be valid for a role that must still be
  refused, or carry terms the SDK would never produce (a grant expiring in seconds).
- :func:`snapshot` captures everything a refused request must not have written: the chain head
  (block number, through the operator's view), the flow log and its anchored head, the row
  count and a digest of the rows of every table of the broker's database (opened read-only;
  it runs in WAL mode), and the set of ciphertext blobs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_utils.address import to_checksum_address

from ledger.client.member import MemberKeys, prepare_grant
from ledger.crypto import generate_keypair
from ledger.protocol import http as auth
from ledger.protocol import messages as typed_data
from ledger.protocol.actions import Domains, SignedAction, sign_action
from ledger.protocol.documents import RequestForm, purpose_hash, terms_hash
from ledger.protocol.messages import GrantTerms

DEADLINE_SECONDS = 15 * 60


def stranger() -> MemberKeys:
    """A fresh key pair that no one onboarded."""
    return MemberKeys(account=Account.create(), hpke=generate_keypair()[0])


class Wire:
    """An HTTP client of one broker that signs exactly what it sends (or not, on purpose)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        config = self.http.get("/v1/config").json()
        self.config: dict[str, Any] = dict(config)
        self.chain_id = int(config["chain_id"])
        self.domains = Domains(
            chain_id=self.chain_id,
            flow_log=config["flow_log"],
            member_registry=config["member_registry"],
            data_registry=config["data_registry"],
            access_ledger=config["access_ledger"],
            sharing_credits=config["sharing_credits"],
        )

    def close(self) -> None:
        self.http.close()

    def headers(
        self,
        keys: MemberKeys,
        method: str,
        target: str,
        body_sha256: str,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        return auth.sign_request(
            keys.account,
            method=method,
            target=target,
            body_sha256=body_sha256,
            chain_id=self.chain_id,
            deployment=self.config["flow_log"],
            timestamp=timestamp,
            nonce=nonce,
        )

    def send(
        self,
        keys: MemberKeys | None,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        json_body: Any = None,
        content_type: str | None = None,
        body_sha256: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send ``body`` (or ``json_body``) to ``target`` (path and query), signed by ``keys``.

        ``keys=None`` sends no signature headers at all; ``body_sha256`` overrides the hash the
        signature covers; ``headers`` are applied last (to replace or corrupt signed ones).
        """
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        sent: dict[str, str] = {}
        if keys is not None:
            digest = body_sha256 or hashlib.sha256(body).hexdigest()
            sent.update(self.headers(keys, method, target, digest))
        if content_type:
            sent["content-type"] = content_type
        sent.update(headers or {})
        return self.http.request(method, target, content=body, headers=sent)

    def get(self, keys: MemberKeys | None, target: str) -> Any:
        """A signed GET that must succeed; returns its JSON."""
        response = self.send(keys, "GET", target)
        assert response.status_code == 200, f"GET {target}: {response.status_code} {response.text}"
        return response.json()


def deadline(seconds: int = DEADLINE_SECONDS) -> int:
    return int(time.time()) + seconds


def signed(
    keys: MemberKeys,
    action: Any,
    message: dict[str, Any],
    domains: Domains,
    *,
    nonce: int | None = None,
    expires: int | None = None,
) -> dict[str, Any]:
    """A broker action signed by ``keys``, in its JSON form (``{"signed": ...}`` body)."""
    full = {
        "nonce": secrets.randbits(256) if nonce is None else nonce,
        "deadline": deadline() if expires is None else expires,
        **message,
    }
    return {"signed": sign_action(keys.account, action, full, domains).to_json()}


def grant_body(
    keys: MemberKeys,
    domains: Domains,
    *,
    request: dict[str, Any],
    chain_nonce: int,
    wrapped_key: bytes | None = None,
    expires_at: int | None = None,
) -> dict[str, Any]:
    """An approve body signed by ``keys`` whose terms match ``request`` exactly.

    A member that is not the owner cannot re-wrap the data key, so ``wrapped_key`` defaults to
    random bytes: the terms still commit to it, so only the signer's standing is wrong.
    """
    wrapped = wrapped_key or secrets.token_bytes(80)
    terms = GrantTerms(
        dataset_id=int(request["dataset_id"]),
        grantee=to_checksum_address(str(request["requester"])),
        purpose_hash=purpose_hash(str(request["purpose"])),
        expires_at=expires_at or int(time.time()) + int(request["days"]) * 86400,
        max_uses=int(request["max_uses"]),
        terms_hash=terms_hash(int(request["id"]), wrapped, RequestForm.of_request(request)),
    )
    message = typed_data.grant_message(terms, nonce=chain_nonce, deadline=deadline())
    action = sign_action(keys.account, "grant", message, domains)
    return {"signed": action.to_json(), "wrapped_key": "0x" + wrapped.hex()}


def owner_grant_body(
    wire: Wire, owner: MemberKeys, request_id: int, *, lifetime: int | None = None
) -> dict[str, Any]:
    """The owner's real approve body (data key re-wrapped to the requester).

    ``lifetime`` signs a grant that expires that many seconds from now instead of after the
    requested days: the owner chooses ``expiresAt`` freely within the requested duration.
    """
    request = wire.get(owner, f"/v1/requests/{request_id}")
    dataset = wire.get(owner, f"/v1/datasets/{request['dataset_id']}")
    requester = wire.get(owner, f"/v1/members/{request['requester']}")
    own = wire.get(owner, f"/v1/datasets/{request['dataset_id']}/owner-key")
    nonces = wire.get(owner, f"/v1/members/{owner.address}/nonces")
    days = int(request["days"])
    now = None if lifetime is None else int(time.time()) + lifetime - days * 86400
    action, wrapped = prepare_grant(
        owner,
        request_id=request_id,
        dataset_id=int(request["dataset_id"]),
        content_hash=bytes.fromhex(str(dataset["content_hash"])[2:]),
        requester=str(request["requester"]),
        requester_suite=int(requester["key_suite"]),
        requester_key=bytes.fromhex(str(requester["encryption_key"])[2:]),
        purpose=str(request["purpose"]),
        days=days,
        max_uses=int(request["max_uses"]),
        owner_wrapped_key=bytes.fromhex(str(own["wrapped_key"])[2:]),
        chain_nonce=int(nonces["access_ledger"]),
        domains=wire.domains,
        form=RequestForm.of_request(request),
        now=now,
    )
    return {"signed": action.to_json(), "wrapped_key": "0x" + wrapped.hex()}


def revoke_body(
    keys: MemberKeys, domains: Domains, *, dataset_id: int, grantee: str, chain_nonce: int
) -> dict[str, Any]:
    message = typed_data.revoke_message(dataset_id, grantee, nonce=chain_nonce, deadline=deadline())
    return {"signed": sign_action(keys.account, "revoke", message, domains).to_json()}


def action_json(action: SignedAction) -> dict[str, Any]:
    return {"signed": action.to_json()}


# -- what a refused request must not have written ---------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The state a refused request must leave exactly as it was."""

    block: int
    log_size: int
    anchored_size: int
    grants: tuple[tuple[int, int, bool], ...]
    blobs: frozenset[str]
    tables: tuple[tuple[str, int, str], ...]

    def changes(self, later: Snapshot) -> list[str]:
        """What differs in ``later``, in words (empty when nothing was written)."""
        out = [
            f"{name}: {getattr(self, name)!r} -> {getattr(later, name)!r}"
            for name in ("block", "log_size", "anchored_size", "grants")
            if getattr(self, name) != getattr(later, name)
        ]
        if self.blobs != later.blobs:
            out.append(
                f"blobs: +{sorted(later.blobs - self.blobs)} -{sorted(self.blobs - later.blobs)}"
            )
        before = {t[0]: t[1:] for t in self.tables}
        for name, rows, digest in later.tables:
            if before.get(name) != (rows, digest):
                was = before.get(name, (0, ""))[0]
                out.append(f"table {name}: {was} -> {rows} rows (or rows changed)")
        return out


#: What a refused fetch that the broker logs (docs/protocol.md §11.12) writes: its record and
#: tree nodes, the log's size and the fetch's used nonce.
LOGGED_REFUSAL_TABLES = frozenset({"log_records", "tree_nodes", "log_state", "used_nonces"})


def one_logged_refusal(before: Snapshot, after: Snapshot) -> bool:
    """Whether ``after`` is ``before`` plus one logged refusal, and nothing else."""
    if after.log_size != before.log_size + 1:
        return False
    changes = before.changes(replace(after, log_size=before.log_size))
    return all(c.split(":")[0] in {f"table {t}" for t in LOGGED_REFUSAL_TABLES} for c in changes)


#: Not state: every authenticated request records its nonce, the snapshot's own signed reads
#: included (tests/http/test_request_nonces.py checks that table), and the anchoring leader
#: renews its lease as time passes.
BOOKKEEPING_TABLES = frozenset({"request_nonces", "leases"})


def table_digests(db: Path) -> tuple[tuple[str, int, str], ...]:
    """Row count and a digest of the rows of every table but the bookkeeping (read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [
            str(r[0])
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out = []
        for name in names:
            if name in BOOKKEEPING_TABLES:
                continue
            rows = sorted(repr(r) for r in con.execute(f'SELECT * FROM "{name}"'))  # noqa: S608
            out.append((name, len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()))
        return tuple(out)
    finally:
        con.close()


def blob_names(root: Path) -> frozenset[str]:
    """Every stored blob (temporary files under ``.tmp`` excluded)."""
    return frozenset(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".tmp" not in p.relative_to(root).parts
    )


def snapshot(wire: Wire, operator: MemberKeys, home: Path) -> Snapshot:
    health = wire.http.get("/v1/health").json()
    head = wire.get(operator, "/v1/log/head")
    grants = wire.get(operator, "/v1/grants?limit=1000")["data"]
    return Snapshot(
        block=int(health["block"]),
        log_size=int(health["log_size"]),
        anchored_size=int(head["anchored_size"]),
        grants=tuple((int(g["id"]), int(g["uses"]), bool(g["revoked"])) for g in grants),
        blobs=blob_names(home / "broker" / "blobs"),
        tables=table_digests(home / "broker" / "broker.db"),
    )


def error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) and "code" in body else None

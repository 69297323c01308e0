"""The member SDK: a typed HTTP client of the broker that keeps every secret on this machine.

It signs each request (``ledger.protocol.http``) and each action, encrypts before uploading,
re-wraps keys on approval, and decrypts and verifies after download, streaming both ways so
memory stays flat whatever the dataset size. Request bodies and answers are the protocol's wire
models (``ledger.protocol.wire``), the very classes the broker answers with.

Every step is public, and every call is made of them, the streamed upload and fetch included:
:meth:`BrokerClient.require_keys` (the member's identity), :meth:`~BrokerClient.sign` (a signed
action), :meth:`~BrokerClient.signed_headers` and :meth:`~BrokerClient.signed_request` (request
signing), :meth:`~BrokerClient.send` (transport and error answers) and
:meth:`~BrokerClient.call` (a JSON call parsed into a wire model). ``http=`` injects the HTTP
client, for example ``starlette.testclient.TestClient(app)`` to drive a broker app in process.

A broker that cannot be reached raises :class:`~ledger.errors.BrokerUnreachable`; an error
answer raises the exception :func:`error_for` picks, carrying the broker's code and message.

The module is long (~670 lines) because it is one small typed method per broker route (about
thirty) on top of the shared steps; splitting the routes across modules would split one client.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx
from pydantic import BaseModel

from ledger.audit.inclusion import ProofKeeper, check_inclusion
from ledger.audit.records import parse_leaf
from ledger.client import trust
from ledger.client.member import (
    MemberKeys,
    PreparedUpload,
    open_delivery,
    prepare_grant,
    prepare_upload,
    sign_revoke,
)
from ledger.client.member import sign as sign_as
from ledger.errors import (
    BrokerUnreachable,
    ChainError,
    ChainUnavailable,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    InvalidSignature,
    LedgerError,
    NotFound,
    PayloadTooLarge,
    Throttled,
    Unauthenticated,
)
from ledger.protocol import http as auth
from ledger.protocol.actions import ActionName, Domains, SignedAction
from ledger.protocol.checkpoint import SignedCheckpoint
from ledger.protocol.codes import ErrorCode, status_for
from ledger.protocol.documents import RequestForm
from ledger.protocol.documents import metadata_hash as document_hash
from ledger.protocol.messages import terms_message, terms_of
from ledger.protocol.wire import (
    AnchorPublic,
    ApproveIn,
    ApproveOut,
    CarryIn,
    CheckpointPublic,
    Config,
    Credits,
    DatasetPublic,
    DatasetsPublic,
    DatasetTracePublic,
    DeliveryPublic,
    GrantPublic,
    GrantsPublic,
    Health,
    Hex,
    IssuePublic,
    IssuesPublic,
    LogHead,
    LogRecordPublic,
    LogRecordsPublic,
    MemberPublic,
    MembersPublic,
    MemberTracePublic,
    Nonces,
    Proof,
    QualityScorePublic,
    RatingPublic,
    ReassignIn,
    RequestPublic,
    RequestsPublic,
    RpcIn,
    SignedActionIn,
    SignedBody,
    UploadIn,
    UploadIntentPublic,
    VerifyPublic,
    WrappedKeyPublic,
)
from ledger.types import Classification, MemberKind, kind_code

if TYPE_CHECKING:
    from ledger.audit import AuditReport, AuditState
    from ledger.audit import Progress as AuditProgress
    from ledger.chain.client import LedgerChain
    from ledger.chain.models import DatasetInfo, MemberInfo
    from ledger.scoring import Score

Progress = Callable[[int], None]
CHUNK = 1024 * 1024
DEFAULT_TIMEOUT = 120.0
Model = TypeVar("Model", bound=BaseModel)
#: The paged list answers (``data`` and ``next``) and the traces (``flows`` and ``next_after``).
PagedT = TypeVar("PagedT", MembersPublic, DatasetsPublic, RequestsPublic, GrantsPublic)
TraceT = TypeVar("TraceT", DatasetTracePublic, MemberTracePublic)
#: Answers to a signed POST that name the action's flow-log record (``log_seq``).
LoggedT = TypeVar("LoggedT", MemberPublic, DeliveryPublic, RatingPublic, IssuePublic, RequestPublic)


class BrokerError(LedgerError):
    """An error answer no narrower class stands for: its ``code``, message and HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


#: What an error answer can raise: each class stands for the HTTP status of its generic code
#: (``InvalidSignature.code`` is ``invalid_signature``, answered 400, and so on).
ANSWER_ERRORS: Final[tuple[type[LedgerError], ...]] = (
    Unauthenticated,  # 401
    PayloadTooLarge,  # 413
    InvalidSignature,  # 400
    Forbidden,  # 403
    NotFound,  # 404
    Conflict,  # 409
    InvalidInput,  # 422
    Throttled,  # 429
    ChainUnavailable,  # 503
    ChainError,  # 502
)


def error_for(status: int, code: str, message: str) -> LedgerError:
    """The exception for an error answer, carrying the broker's ``code`` and ``message``.

    401 raises :class:`~ledger.errors.Unauthenticated` and 413
    :class:`~ledger.errors.PayloadTooLarge` whatever the code. Otherwise the code's status in
    the protocol's table (:mod:`ledger.protocol.codes`) picks the class, or the answer's status
    for a code outside the table (a contract's custom error): 400 InvalidSignature,
    403 Forbidden, 404 NotFound, 409 Conflict, 422 InvalidInput, 429 Throttled,
    503 ChainUnavailable,
    502 ChainError, and :class:`BrokerError` for anything else.
    """
    wanted = status if status in (401, 413) else (status_for(code) or status)
    for kind in ANSWER_ERRORS:
        if ErrorCode(kind.code).status == wanted:
            return kind(message, code=code)
    return BrokerError(status, code, message)


def raise_for_answer(response: httpx.Response) -> None:
    """Raise :func:`error_for` an error answer (its body read); a success passes."""
    if response.is_success:
        return
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = ErrorCode.HTTP_ERROR, f"broker answered {response.status_code}"
    raise error_for(response.status_code, code, message)


class Fetched(BaseModel):
    """What :meth:`BrokerClient.fetch` did: the verified plaintext and the signed receipt."""

    dataset_id: int
    path: str
    content_hash: Hex  # verified against the registered content hash
    uses_left: int
    generation: int
    receipt: DeliveryPublic | None = None  # None when not acknowledged
    chain_independent: bool = True  # False: chain facts came through the broker's relay


class Approved(ApproveOut):
    """An approval as the owner's client saw it: the on-chain key it wrapped to."""

    grantee_key_fingerprint: str
    chain_independent: bool


@dataclass(frozen=True)
class Carried:
    """Grants carried over to a new version, and those skipped: (grant id, grantee, code)."""

    carried: list[GrantPublic]
    skipped: list[tuple[int, str, str]]


def fingerprint(key_suite: int, key: bytes) -> str:
    """A short, comparable fingerprint of an encryption key: SHA-256 over suite and key."""
    digest = hashlib.sha256(key_suite.to_bytes(2, "big") + key).hexdigest()[:32]
    return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


class _ResponseReader(io.RawIOBase):
    """A streamed HTTP body as a readable file object (no whole-body buffering)."""

    def __init__(self, chunks: Iterator[bytes], progress: Progress | None) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
            if self._progress:
                self._progress(len(chunk))
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class BrokerClient:
    """One member talking to one broker; every method answers with wire models.

    ``keys`` is the member's identity (``None`` for unsigned calls: :meth:`config`,
    :meth:`health`). ``http`` is used as is when given, and left open for its owner to close
    (for example a ``starlette.testclient.TestClient`` around the app, with ``base_url``
    ``http://testserver``); otherwise the client opens its own with ``timeout`` seconds and
    closes it in :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        keys: MemberKeys | None = None,
        *,
        http: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        trust_dir: Path | None = None,
        chain: LedgerChain | None = None,
        chain_url: str | None = None,
        deployment_file: Path | None = None,
    ) -> None:
        self.keys = keys
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(timeout=timeout) if http is None else http
        self._owns_http = http is None
        self._config: Config | None = None
        self.trust = trust.TrustStore(trust_dir, self.base_url)  # the pin, per broker URL
        self._log_trust: trust.TrustStore | None = None
        self._deployment_file = deployment_file
        self._pinned: trust.Pinned | None = None
        self._chain = chain
        self._chain_url = chain_url
        self._view: trust.ChainView | None = None
        self._audit: AuditState | None = None

    def close(self) -> None:
        """Close the HTTP client, if this SDK opened it."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the steps every call is made of ------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of a broker path such as ``/v1/members`` (or an absolute URL)."""
        return path if "://" in path else self.base_url + path

    def require_keys(self) -> MemberKeys:
        """The member's keys (:class:`~ledger.errors.InvalidInput` ``no_identity`` if none)."""
        if self.keys is None:
            raise InvalidInput(
                "this call needs a member identity (--as HANDLE)", code=ErrorCode.NO_IDENTITY
            )
        return self.keys

    def config(self) -> Config:
        """The broker's public configuration: chain, contracts, domains, limits (read once)."""
        if self._config is None:
            response = self.send(self.http.build_request("GET", self.url("/v1/config")))
            self._config = Config.model_validate(response.json())
        return self._config

    def health(self) -> Health:
        """Liveness (unsigned): the chain answers and the database is readable."""
        response = self.send(self.http.build_request("GET", self.url("/v1/health")))
        return Health.model_validate(response.json())

    @property
    def log_trust(self) -> trust.TrustStore:
        """What this member keeps about the pinned log: checkpoints, proofs, audit state."""
        self.pinned()
        assert self._log_trust is not None
        return self._log_trust

    def pinned(self) -> trust.Pinned:
        """The deployment pinned at first contact (``deployment_changed`` if the broker differs)."""
        if self._pinned is None:
            self._pinned = trust.pin(self.trust, self.config(), self._deployment_file)
            # Checkpoints, proofs and the audit state belong to the log, not to the URL it was
            # reached at: a broker that moves keeps its members' history.
            self._log_trust = trust.TrustStore(self.trust.directory, self._pinned.origin)
        return self._pinned

    @property
    def domains(self) -> Domains:
        """The EIP-712 domains of the pinned deployment (never re-read from the broker)."""
        return self.pinned().domains

    def chain_view(self) -> trust.ChainView:
        """The contracts, read through the member's node (``chain_url``) or the broker's relay.

        Imported on first use: commands that never read the chain stay small.
        """
        if self._view is not None:
            return self._view
        from ledger.chain.client import LedgerChain

        p = self.pinned()
        deployment = p.deployment
        if self._chain is not None:
            view = trust.ChainView(LedgerChain(self._chain.backend, deployment, None), True, "node")
        elif self._chain_url:
            from ledger.chain.rpc import RpcChain

            view = trust.ChainView(
                LedgerChain(RpcChain(self._chain_url), deployment, None), True, "node"
            )
        else:
            from ledger.client.relay import BrokerRelayChain

            view = trust.ChainView(
                LedgerChain(BrokerRelayChain(self.rpc), deployment, None), False, "broker relay"
            )
        if view.chain.backend.chain_id != p.chain_id:
            raise IntegrityError(
                f"the chain node serves chain {view.chain.backend.chain_id}, "
                f"the pinned deployment is on chain {p.chain_id}",
                code=ErrorCode.DEPLOYMENT_CHANGED,
            )
        self._view = view
        return view

    @property
    def chain_view_opened(self) -> bool:
        """Whether a command read the chain (so its caveat, if any, is worth saying)."""
        return self._view is not None

    def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        """One read-only JSON-RPC call through the broker's relay (embedded chain)."""
        body = RpcIn(jsonrpc="2.0", id=1, method=method, params=params)
        response = self.send(self.json_request("POST", "/v1/chain/rpc", body))
        answer: dict[str, Any] = response.json()
        return answer

    # -- confirming each signed action in a signed head ---------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """The broker's current signed head, checked against the pinned deployment and key,
        and against the last head this member kept (it must extend it)."""
        note = self.call("GET", "/v1/log/checkpoint", CheckpointPublic).note
        cp = trust.check_checkpoint(note, self.pinned())
        kept = self.log_trust.read("checkpoint.json")
        if kept is not None:
            old = trust.check_checkpoint(str(kept["note"]), self.pinned())
            if cp.size < old.size:
                raise IntegrityError(
                    f"the broker's signed head shrank from {old.size} to {cp.size}: history "
                    "rewritten (both signed notes kept)",
                    code=ErrorCode.LOG_INCONSISTENT,
                )
            path = self.consistency(old.size, cp.size) if old.size else []
            if old.size and cp.size != old.size:
                trust.check_extends(old, cp, path)
            elif old.root != cp.root and old.size:
                trust.check_extends(old, cp, [])
        if kept is None or kept.get("note") != note:
            if kept is not None:
                self.log_trust.append("checkpoints.jsonl", kept)
            self.log_trust.write("checkpoint.json", {"note": note})
        return cp

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        proof = self.call(
            "GET",
            "/v1/log/proofs/consistency",
            Proof,
            params={"old_size": old_size, "tree_size": new_size},
        )
        return [bytes.fromhex(h[2:]) for h in proof.path]

    # -- without a node of one's own: chain facts checked against signed records -------------

    def evidence(self, path: str) -> list[LogRecordPublic]:
        """Every record of an evidence route, page after page, in log order."""
        records: list[LogRecordPublic] = []
        params: dict[str, Any] = {}
        while True:
            page = self.call("GET", path, LogRecordsPublic, params=params)
            records.extend(page.data)
            if page.next_after is None:
                return records
            params["after"] = page.next_after

    def attested_key(self, address: str) -> tuple[int, bytes]:
        """A member's encryption key as the signed log attests it: the latest of its Onboard
        (signed by the pinned ADMIN key) and its RotateKey records (signed by the member).

        Used when the chain is read through the broker's relay: the broker may serve a stale
        record, but cannot sign a key of its own into one.
        """
        attested: tuple[int, bytes] | None = None
        for record in self.evidence(f"/v1/log/evidence/members/{address}"):
            signed = parse_leaf(record.leaf.encode()).signed
            signed.verify(self.domains)
            expected = self.pinned().admin if signed.action == "onboard" else address
            msg = signed.message
            if (
                signed.action not in ("onboard", "rotate_key")
                or signed.actor.lower() != expected.lower()
                or str(msg["member"]).lower() != address.lower()
            ):
                raise IntegrityError(
                    f"record {record.seq} does not attest {address}'s key",
                    code=ErrorCode.RECORD_MISMATCH,
                )
            attested = (int(msg["keySuite"]), bytes.fromhex(str(msg["encryptionKey"])[2:]))
        if attested is None:
            raise IntegrityError(
                f"no signed record attests the key of {address}", code=ErrorCode.CHAIN_DISAGREES
            )
        return attested

    def attested_content(self, dataset_id: int) -> bytes:
        """A dataset's content hash as its registrant signed it in the Register record (the
        owner may since have changed by an ADMIN reassignment; the content hash cannot)."""
        for record in self.evidence(f"/v1/log/evidence/datasets/{dataset_id}"):
            signed = parse_leaf(record.leaf.encode()).signed
            signed.verify(self.domains)
            if signed.action == "register":
                return bytes.fromhex(str(signed.message["contentHash"])[2:])
        raise IntegrityError(
            f"no signed Register attests dataset {dataset_id}", code=ErrorCode.CHAIN_DISAGREES
        )

    def confirm(self, signed: SignedAction, seq: int | None = None) -> None:
        """Check that the broker logged exactly the action this member signed, in a signed head.

        The record is record ``seq``, or found by the action's signature among this member's
        own records. Keeps the proof (:class:`ledger.audit.ProofKeeper`, in the trust directory).
        Raises LogError ``record_mismatch`` or ``record_not_included``, IntegrityError
        ``log_inconsistent``, or a checkpoint code.
        """
        if seq is None:
            record = self.call(
                "GET",
                "/v1/log/records/mine",
                LogRecordPublic,
                params={"action": signed.action, "signature": "0x" + signed.signature.hex()},
            )
        else:
            record = self.call("GET", f"/v1/log/records/{seq}", LogRecordPublic)
        leaf = record.leaf.encode()
        cp = self.checkpoint()
        proof = self.call(
            "GET",
            "/v1/log/proofs/inclusion",
            Proof,
            params={"seq": record.seq, "tree_size": cp.size},
        )
        path = [bytes.fromhex(h[2:]) for h in proof.path]
        check_inclusion(cp, origin=cp.origin, seq=record.seq, leaf=leaf, path=path, signed=signed)
        kept = self.log_trust.path("proofs.jsonl")
        if kept is not None:
            ProofKeeper(kept).keep(seq=record.seq, leaf=leaf, checkpoint=cp.note, path=path)

    def sign(self, action: ActionName, message: dict[str, Any]) -> SignedAction:
        """Sign a broker action as this member (a random nonce and a deadline when absent).

        Contract actions (register, grant, revoke) carry the member's contract nonce instead:
        :func:`~ledger.client.member.prepare_upload`, :func:`~ledger.client.member.prepare_grant`
        and :func:`~ledger.client.member.sign_revoke` sign those.
        """
        return sign_as(self.require_keys(), action, message, self.domains)

    def signed_headers(self, method: str, target: str, body_sha256: str) -> dict[str, str]:
        """The five X-DRL-* headers that authenticate one request as this member.

        ``target`` is the path as sent, with ``?query`` when there is one; ``body_sha256`` the
        hex SHA-256 of the body (for a streamed upload, the ciphertext digest its registration
        signed). See :mod:`ledger.protocol.http`.
        """
        return auth.sign_request(
            self.require_keys().account,
            method=method,
            target=target,
            body_sha256=body_sha256,
            chain_id=self.config().chain_id,
            deployment=self.config().flow_log,
        )

    def signed_request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | Iterator[bytes] = b"",
        body_sha256: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Request:
        """A request to ``path`` signed over its target as sent and its body.

        ``body_sha256`` defaults to the SHA-256 of ``content``; give it for a streamed body (an
        iterator of chunks).
        """
        if body_sha256 is None:
            if not isinstance(content, bytes):
                raise TypeError("a streamed body needs its body_sha256")
            body_sha256 = auth.body_sha256(content)
        request = self.http.build_request(
            method, self.url(path), params=params, content=content or None, headers=headers
        )
        target = request.url.raw_path.decode("ascii")
        request.headers.update(self.signed_headers(method, target, body_sha256))
        return request

    def json_request(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> httpx.Request:
        """A signed request whose body, if any, is a wire model as JSON."""
        if body is None:
            return self.signed_request(method, path, params=params)
        content = json.dumps(body.model_dump(mode="json")).encode()
        return self.signed_request(
            method,
            path,
            content=content,
            params=params,
            headers={"content-type": "application/json"},
        )

    def send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send a request; raise for an unreachable broker or an error answer.

        A transport failure raises :class:`~ledger.errors.BrokerUnreachable`; an error answer
        the exception :func:`error_for` picks. With ``stream`` the body of a successful answer
        is left unread: close the response when done.
        """
        try:
            response = self.http.send(request, stream=stream)
            if not response.is_success:
                response.read()
        except httpx.TransportError as exc:
            raise BrokerUnreachable(f"broker not reachable at {self.base_url}: {exc}") from None
        if not response.is_success:
            response.close()
            raise_for_answer(response)
        return response

    def call(
        self,
        method: str,
        path: str,
        answer: type[Model],
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
    ) -> Model:
        """A signed JSON call to ``path``; its answer parsed into the wire model ``answer``."""
        response = self.send(self.json_request(method, path, body, params=params))
        return answer.model_validate(response.json())

    def post_logged(self, path: str, model: type[LoggedT], signed: SignedAction) -> LoggedT:
        """POST a signed action, then confirm its log record in a checkpoint (``confirm``)
        before the answer is believed."""
        answer = self.call("POST", path, model, body=self.signed_body(signed))
        self.confirm(signed, answer.log_seq)
        return answer

    def signed_body(self, signed: SignedAction) -> SignedBody:
        """The body of the routes that take one signed action: ``{"signed": ...}``."""
        return SignedBody(signed=SignedActionIn.of(signed))

    # -- members ------------------------------------------------------------------------------

    def onboard(
        self, *, address: str, kind: MemberKind, name: str, key_suite: int, encryption_key: bytes
    ) -> MemberPublic:
        """Operator (ADMIN key): onboard a member; MemberRegistry checks this signature."""
        signed = self.sign(
            "onboard",
            {
                "member": address,
                "kind": kind_code(kind),
                "name": name,
                "keySuite": key_suite,
                "encryptionKey": encryption_key,
            },
        )
        return self.post_logged("/v1/members", MemberPublic, signed)

    def suspend(self, address: str) -> MemberPublic:
        """Operator (ADMIN key): suspend a member."""
        signed = self.sign("suspend", {"member": address})
        member = self.call(
            "POST", f"/v1/members/{address}/suspend", MemberPublic, body=self.signed_body(signed)
        )
        self.confirm(signed)
        return member

    def reinstate(self, address: str) -> MemberPublic:
        """Operator (ADMIN key): lift a member's suspension."""
        signed = self.sign("reinstate", {"member": address})
        member = self.call(
            "POST", f"/v1/members/{address}/reinstate", MemberPublic, body=self.signed_body(signed)
        )
        self.confirm(signed)
        return member

    def rotate_key(self, key_suite: int, encryption_key: bytes) -> MemberPublic:
        """Replace this member's encryption key on chain (only the member can)."""
        keys = self.require_keys()
        signed = self.sign(
            "rotate_key",
            {"member": keys.address, "keySuite": key_suite, "encryptionKey": encryption_key},
        )
        member = self.call(
            "POST", f"/v1/members/{keys.address}/key", MemberPublic, body=self.signed_body(signed)
        )
        self.confirm(signed)
        return member

    def every(
        self, path: str, model: type[PagedT], params: dict[str, Any] | None = None
    ) -> list[Any]:
        """Every item of a paged list route (``data``), page after page (``next``)."""
        query = dict(params or {})
        items: list[Any] = []
        while True:
            page = self.call("GET", path, model, params=query)
            items.extend(page.data)
            if page.next is None:
                return items
            query["offset"] = page.next

    def members(self) -> list[MemberPublic]:
        """The member directory."""
        return self.every("/v1/members", MembersPublic)

    def member(self, address: str) -> MemberPublic:
        """One member, with its encryption public key."""
        return self.call("GET", f"/v1/members/{address}", MemberPublic)

    def nonces(self, address: str | None = None) -> Nonces:
        """A member's (by default this member's) next on-chain EIP-712 nonces."""
        target = address or self.require_keys().address
        return self.call("GET", f"/v1/members/{target}/nonces", Nonces)

    def credits(self, address: str | None = None) -> Credits:
        """A member's (by default this member's) sharing credits."""
        target = address or self.require_keys().address
        return self.call("GET", f"/v1/members/{target}/credits", Credits)

    # -- datasets -----------------------------------------------------------------------------

    def register(
        self,
        source: Path,
        *,
        title: str,
        classification: Classification = "internal",
        parents: tuple[int, ...] = (),
        previous_version: int = 0,
        description: str = "",
        schema: dict[str, Any] | None = None,
        quality: dict[str, Any] | None = None,
        progress: Progress | None = None,
        media_type: str = "text/csv",
        labels: dict[str, Any] | None = None,
    ) -> DatasetPublic:
        """Encrypt locally, then upload in two steps (signed intent, streamed ciphertext).

        ``labels`` are the labelling members of the metadata document (themes, personal_data,
        keywords, update_frequency, spatial, temporal: ``ledger.protocol.labels``).
        """
        keys = self.require_keys()
        with tempfile.TemporaryDirectory(prefix="drl-upload-") as tmp:
            prepared = prepare_upload(
                keys,
                source,
                workdir=Path(tmp),
                title=title,
                domains=self.domains,
                chain_nonce=self.nonces().data_registry,
                classification=classification,
                parents=parents,
                previous_version=previous_version,
                description=description,
                schema=schema,
                quality=quality,
                media_type=media_type,
                labels=labels,
            )
            intent = self.begin_upload(prepared)
            registered = self.complete_upload(intent.upload_url, prepared, progress=progress)
        self.confirm(prepared.signed, registered.log_seq)
        return registered

    def begin_upload(self, prepared: PreparedUpload) -> UploadIntentPublic:
        """Step 1 of a registration: send the signed intent; returns its upload URL."""
        body = UploadIn(
            signed=SignedActionIn.of(prepared.signed),
            metadata=prepared.metadata,
            owner_wrapped_key="0x" + prepared.owner_wrapped_key.hex(),
        )
        return self.call("POST", "/v1/datasets/uploads", UploadIntentPublic, body=body)

    def complete_upload(
        self, url: str, prepared: PreparedUpload, *, progress: Progress | None = None
    ) -> DatasetPublic:
        """Step 2: stream the prepared ciphertext to an intent's upload URL.

        The request is signed over the ciphertext digest the registration names; the broker
        hashes the bytes as they arrive and refuses a mismatch.
        """
        with prepared.ciphertext_path.open("rb") as fh:

            def chunks() -> Iterator[bytes]:
                while chunk := fh.read(CHUNK):
                    if progress:
                        progress(len(chunk))
                    yield chunk

            request = self.signed_request(
                "PUT",
                url,
                content=chunks(),
                body_sha256=prepared.ciphertext_sha256.hex(),
                headers={
                    "content-type": "application/octet-stream",
                    "content-length": str(prepared.ciphertext_size),
                },
            )
            response = self.send(request)
        return DatasetPublic.model_validate(response.json())

    def reassign(self, dataset_id: int, to: str, reason: str) -> DatasetPublic:
        """Operator (ADMIN key): move a disputed certificate, with a reason kept in the log."""
        signed = self.sign(
            "reassign",
            {
                "datasetId": dataset_id,
                "to": to,
                "reasonHash": hashlib.sha256(reason.encode()).digest(),
            },
        )
        body = ReassignIn(signed=SignedActionIn.of(signed), reason=reason)
        moved = self.call("POST", f"/v1/datasets/{dataset_id}/reassign", DatasetPublic, body=body)
        self.confirm(signed)
        return moved

    def datasets(self, owner: str | None = None) -> list[DatasetPublic]:
        """The catalog (certificates and metadata, never contents)."""
        params = {"owner": owner} if owner else None
        return self.every("/v1/datasets", DatasetsPublic, params)

    def dataset(self, dataset_id: int) -> DatasetPublic:
        """One dataset's certificate, metadata and schema."""
        return self.call("GET", f"/v1/datasets/{dataset_id}", DatasetPublic)

    def owner_key(self, dataset_id: int) -> WrappedKeyPublic:
        """Owner: the dataset's data key wrapped to this member (re-wrapped on approval)."""
        return self.call("GET", f"/v1/datasets/{dataset_id}/owner-key", WrappedKeyPublic)

    @contextmanager
    def open_fetch(self, dataset_id: int) -> Iterator[tuple[SignedAction, httpx.Response]]:
        """Sign a Fetch and open the download, left unread (one use is recorded first).

        The Fetch is what ``AccessLedger.recordUse`` checks on chain. The answer's X-DRL-*
        headers carry the wrapped key, the grant generation and the content hash as the broker
        claims it (:data:`ledger.protocol.http.FETCH_HEADERS`); its body is the ciphertext.
        A connection lost while reading raises :class:`~ledger.errors.BrokerUnreachable`.
        """
        keys = self.require_keys()
        signed = self.sign("fetch", {"grantee": keys.address, "datasetId": dataset_id})
        request = self.json_request(
            "POST", f"/v1/datasets/{dataset_id}/fetch", self.signed_body(signed)
        )
        response = self.send(request, stream=True)
        try:
            yield signed, response
        except httpx.TransportError as exc:
            raise BrokerUnreachable(f"download interrupted: {exc}") from None
        finally:
            response.close()

    def fetch(
        self,
        dataset_id: int,
        out: Path,
        *,
        progress: Progress | None = None,
        acknowledge: bool = True,
    ) -> Fetched:
        """Download, decrypt and verify against the chain, then sign the delivery receipt.

        The content hash is the one registered on chain for ``dataset_id`` (the broker's header
        must agree); the plaintext is written beside ``out`` and renamed only once verified, so
        a forged or altered delivery leaves no output file and signs no receipt.
        """
        keys = self.require_keys()
        view = self.chain_view()
        certificate = view.chain.dataset(dataset_id)
        registered = certificate.content_hash
        chunk_size = self.signed_chunk_size(dataset_id, certificate.metadata_hash)
        if not view.independent and (self.attested_content(dataset_id) != registered):
            raise IntegrityError(
                "the chain relay's content hash is not the one the owner signed; refusing",
                code=ErrorCode.CHAIN_DISAGREES,
            )
        with self.open_fetch(dataset_id) as (signed, response):
            claimed = response.headers.get(auth.H_CONTENT_HASH, "")
            if claimed.lower() != "0x" + registered.hex():
                raise IntegrityError(
                    f"the broker's content hash {claimed[:18]}... is not the one registered on "
                    f"chain for dataset {dataset_id}; refusing the delivery",
                    code=ErrorCode.CONTENT_HASH_MISMATCH,
                )
            wrapped = bytes.fromhex(response.headers[auth.H_WRAPPED_KEY][2:])
            generation = view.chain.grant_of(dataset_id, keys.address).generation
            uses_left = int(response.headers[auth.H_USES_LEFT])
            seq = int(response.headers[auth.H_LOG_SEQ])
            reader = io.BufferedReader(
                _ResponseReader(response.iter_raw(CHUNK), progress), buffer_size=CHUNK
            )
            partial = out.with_name(f".{out.name}.partial")
            try:
                digest = open_delivery(
                    keys,
                    reader,
                    partial,
                    wrapped_key=wrapped,
                    content_hash=registered,
                    chunk_size=chunk_size,
                )
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)
        self.confirm(signed, seq)
        receipt = (
            self.acknowledge(
                dataset_id, digest, generation, fetch_nonce=int(signed.message["nonce"])
            )
            if acknowledge
            else None
        )
        return Fetched(
            dataset_id=dataset_id,
            path=str(out),
            content_hash="0x" + digest.hex(),
            uses_left=uses_left,
            generation=generation,
            receipt=receipt,
            chain_independent=view.independent,
        )

    def signed_chunk_size(self, dataset_id: int, metadata_hash: bytes) -> int | None:
        """The chunk size the owner's signed metadata declares, once the metadata the broker
        serves hashes to the ``metadataHash`` on chain (else ``metadata_mismatch``).

        A delivery whose header names another chunk size is then refused before any chunk
        buffer is allocated. ``None`` for metadata written before ``chunk_size`` existed.
        """
        metadata = self.dataset(dataset_id).metadata
        if document_hash(metadata) != metadata_hash:
            raise IntegrityError(
                f"the broker's metadata of dataset {dataset_id} is not what its owner signed",
                code=ErrorCode.METADATA_MISMATCH,
            )
        declared = metadata.get("chunk_size")
        return declared if isinstance(declared, int) and not isinstance(declared, bool) else None

    def acknowledge(
        self, dataset_id: int, content_hash: bytes, generation: int, *, fetch_nonce: int
    ) -> DeliveryPublic:
        """Sign the receipt of one fetch, naming the content hash this member verified."""
        keys = self.require_keys()
        signed = self.sign(
            "receipt",
            {
                "consumer": keys.address,
                "datasetId": dataset_id,
                "contentHash": content_hash,
                "grantGeneration": generation,
                "fetchNonce": fetch_nonce,
            },
        )
        return self.post_logged("/v1/receipts", DeliveryPublic, signed)

    def rate(self, dataset_id: int, score: int, comment: str = "") -> RatingPublic:
        """Rate a dataset this member received (1-5)."""
        keys = self.require_keys()
        signed = self.sign(
            "rate",
            {"rater": keys.address, "datasetId": dataset_id, "score": score, "comment": comment},
        )
        return self.post_logged("/v1/ratings", RatingPublic, signed)

    # -- quality issues -----------------------------------------------------------------------

    def report_issue(
        self, dataset_id: int, *, problem: str, fields: str = "", rows: str = ""
    ) -> IssuePublic:
        """File a signed quality issue about a dataset this member received: which fields or
        rows (free text, e.g. ``units`` and ``2-14``) and what is wrong."""
        keys = self.require_keys()
        signed = self.sign(
            "issue",
            {
                "reporter": keys.address,
                "datasetId": dataset_id,
                "fields": fields,
                "rows": rows,
                "problem": problem,
            },
        )
        return self.post_logged("/v1/issues", IssuePublic, signed)

    def answer_issue(
        self, issue_id: int, verdict: str, *, fixed_in: int = 0, reason: str = ""
    ) -> IssuePublic:
        """Owner: answer an issue — ``acknowledged``, ``fixed`` (in the later version
        ``fixed_in``) or ``rejected`` (with a reason)."""
        keys = self.require_keys()
        signed = self.sign(
            "answer",
            {
                "owner": keys.address,
                "issueId": issue_id,
                "verdict": verdict,
                "fixedIn": fixed_in,
                "reason": reason,
            },
        )
        issue = self.call(
            "POST", f"/v1/issues/{issue_id}/answer", IssuePublic, body=self.signed_body(signed)
        )
        if issue.answer_log_seq is not None:
            self.confirm(signed, issue.answer_log_seq)
        return issue

    def quality(self, dataset_id: int, *, as_of: int | None = None) -> QualityScorePublic:
        """The broker's quality score of a dataset (recompute it with :meth:`recompute_quality`)."""
        query = "" if as_of is None else f"?as_of={as_of}"
        return self.call("GET", f"/v1/datasets/{dataset_id}/quality{query}", QualityScorePublic)

    def recompute_quality(self, dataset_id: int, *, as_of: int) -> Score | None:
        """The score recomputed from the records this machine verified (run :meth:`audit` first).

        Reads the dataset's own records and the registration of its next version from the local
        audit state, never from the broker.
        """
        from ledger.audit.credits import CreditQualities
        from ledger.scoring import score_of

        state = self.audit_state()
        try:
            leaves = CreditQualities(state).leaves(dataset_id)
        finally:
            if self.trust.directory is not None:
                state.close()
        return score_of(leaves, dataset_id, as_of=as_of)

    def issues(
        self, dataset_id: int | None = None, *, status: str | None = None
    ) -> list[IssuePublic]:
        """Quality issues this member may see (filed by it, about its datasets, or all for
        overseers)."""
        query = "&".join(
            f"{k}={v}" for k, v in (("dataset_id", dataset_id), ("status", status)) if v is not None
        )
        return self.call("GET", "/v1/issues" + (f"?{query}" if query else ""), IssuesPublic).data

    # -- access -------------------------------------------------------------------------------

    def request_access(
        self,
        dataset_id: int,
        *,
        purpose: str,
        days: int,
        uses: int,
        form: RequestForm | None = None,
    ) -> RequestPublic:
        """Ask a dataset's owner for access on the standard request form: a purpose (free text
        and a category), a legal basis, a retention period, where the data will be processed,
        a duration and a number of uses. Without ``form`` the form says ``unspecified``."""
        keys = self.require_keys()
        signed = self.sign(
            "request",
            {
                "requester": keys.address,
                "datasetId": dataset_id,
                "purpose": purpose,
                **(form or RequestForm()).message(),
                "days": days,
                "maxUses": uses,
            },
        )
        return self.post_logged("/v1/requests", RequestPublic, signed)

    def requests(self, *, status: str | None = None) -> list[RequestPublic]:
        """Requests this member made or received (all of them for overseers)."""
        params = {"status": status} if status else None
        return self.every("/v1/requests", RequestsPublic, params)

    def request(self, request_id: int) -> RequestPublic:
        """One access request."""
        return self.call("GET", f"/v1/requests/{request_id}", RequestPublic)

    def approve(self, request_id: int, *, admin_approval: SignedAction | None = None) -> Approved:
        """Owner: re-wrap the data key to the requester's key **as registered on chain**.

        The requester's standing and encryption key and the dataset's content hash are read
        from the contracts (:meth:`chain_view`), never from the broker's directory, and the
        key's fingerprint is returned for the owner to see. A grant that needs the operator's
        co-signature waits for it (``awaiting_approval``).
        """
        keys = self.require_keys()
        req = self.request(request_id)
        view = self.chain_view()
        on_chain = self._recipient(view, req.requester)
        certificate = self._own_certificate(view, req.dataset_id)
        own = self.owner_key(req.dataset_id)
        signed, wrapped = prepare_grant(
            keys,
            request_id=request_id,
            dataset_id=req.dataset_id,
            content_hash=certificate.content_hash,
            requester=req.requester,
            requester_suite=on_chain.key_suite,
            requester_key=on_chain.encryption_key,
            purpose=req.purpose,
            days=req.days,
            max_uses=req.max_uses,
            owner_wrapped_key=bytes.fromhex(own.wrapped_key[2:]),
            chain_nonce=self.nonces().access_ledger,
            domains=self.domains,
            form=RequestForm.of_request(req.model_dump()),
        )
        body = ApproveIn(
            signed=SignedActionIn.of(signed),
            wrapped_key="0x" + wrapped.hex(),
            admin_approval=None if admin_approval is None else SignedActionIn.of(admin_approval),
        )
        out = self.call("POST", f"/v1/requests/{request_id}/approve", ApproveOut, body=body)
        if out.grant is not None:
            self.confirm(signed, out.grant.log_seq)
        return Approved(
            **out.model_dump(),
            grantee_key_fingerprint=fingerprint(on_chain.key_suite, on_chain.encryption_key),
            chain_independent=view.independent,
        )

    def _recipient(self, view: trust.ChainView, address: str) -> MemberInfo:
        """A member to wrap a data key to, with its key **as registered on chain**.

        Through the broker's relay (no node of one's own) the key must also be the one the
        log's signed records attest, or nothing is wrapped.
        """
        on_chain = view.chain.member(address)
        if not on_chain.active:
            raise Forbidden(
                f"{address} is not an active member on chain", code=ErrorCode.NOT_ON_CHAIN
            )
        if not view.independent:
            attested = self.attested_key(address)
            if attested != (on_chain.key_suite, on_chain.encryption_key):
                raise IntegrityError(
                    "the chain relay's key for the requester is not the one its signed "
                    "records attest; refusing to wrap",
                    code=ErrorCode.CHAIN_DISAGREES,
                )
        return on_chain

    def _own_certificate(self, view: trust.ChainView, dataset_id: int) -> DatasetInfo:
        certificate = view.chain.dataset(dataset_id)
        if certificate.owner.lower() != self.require_keys().address.lower():
            raise Forbidden(
                f"the chain says dataset {dataset_id} is not yours", code=ErrorCode.NOT_OWNER
            )
        return certificate

    def carry_body(self, grant: GrantPublic, dataset_id: int) -> CarryIn:
        """Owner: sign the grant of ``dataset_id`` (the next version of ``grant``'s dataset) on
        ``grant``'s terms — its purpose and request form, and the expiry and uses left that
        **the chain** holds — with the new data key wrapped to the grantee's on-chain key."""
        keys = self.require_keys()
        if grant.request_id is None:
            raise InvalidInput(
                f"grant {grant.id} has no request to carry", code=ErrorCode.GRANT_NOT_LIVE
            )
        view = self.chain_view()
        live = view.chain.grant_of(grant.dataset_id, grant.grantee)
        on_chain = self._recipient(view, grant.grantee)
        certificate = self._own_certificate(view, dataset_id)
        req = self.request(grant.request_id)
        signed, wrapped = prepare_grant(
            keys,
            request_id=grant.request_id,
            dataset_id=dataset_id,
            content_hash=certificate.content_hash,
            requester=grant.grantee,
            requester_suite=on_chain.key_suite,
            requester_key=on_chain.encryption_key,
            purpose=req.purpose,
            days=req.days,
            max_uses=max(live.max_uses - live.uses, 0),
            owner_wrapped_key=bytes.fromhex(self.owner_key(dataset_id).wrapped_key[2:]),
            chain_nonce=self.nonces().access_ledger,
            domains=self.domains,
            form=RequestForm.of_request(req.model_dump()),
            expires_at=live.expires_at,
        )
        return CarryIn(signed=SignedActionIn.of(signed), wrapped_key="0x" + wrapped.hex())

    def carry_grant(self, grant: GrantPublic, dataset_id: int) -> GrantPublic:
        """Owner: carry one live grant over to the next version ``dataset_id``."""
        body = self.carry_body(grant, dataset_id)
        carried = self.call("POST", f"/v1/grants/{grant.id}/carry", GrantPublic, body=body)
        self.confirm(body.signed.parse(), carried.log_seq)
        return carried

    def carry_grants(self, previous_id: int, dataset_id: int) -> Carried:
        """Owner: carry every live grant of ``previous_id`` over to its next version.

        Grants the broker or the chain says cannot be carried (revoked, expired, used up, or
        SENSITIVE to an enterprise, which needs the operator again) are listed as skipped with
        the reason's code: those grantees request the new version.
        """
        latest: dict[str, GrantPublic] = {}
        for g in self.grants(previous_id):
            if g.dataset_id == previous_id and (
                g.grantee not in latest or g.generation > latest[g.grantee].generation
            ):
                latest[g.grantee] = g
        carried: list[GrantPublic] = []
        skipped: list[tuple[int, str, str]] = []
        for g in latest.values():
            if g.revoked:
                skipped.append((g.id, g.grantee, ErrorCode.GRANT_REVOKED))
                continue
            try:
                carried.append(self.carry_grant(g, dataset_id))
            except (Conflict, Forbidden) as exc:
                skipped.append((g.id, g.grantee, exc.code))
        return Carried(carried=carried, skipped=skipped)

    def cosign(self, request_id: int) -> ApproveOut:
        """Operator (ADMIN key): co-sign a grant awaiting approval, for the exact terms shown.

        The owner's signed Grant is checked here (its signer owns the dataset on chain); the
        approval is single use, bound to the grant generation it creates and to a deadline.
        """
        req = self.request(request_id)
        if req.status != "awaiting_approval" or req.pending_grant is None:
            raise Conflict(f"request {request_id} is {req.status}", code=ErrorCode.REQUEST_DECIDED)
        grant = SignedAction.from_json(req.pending_grant)
        grant.verify(self.domains)
        view = self.chain_view()
        dataset_id = int(grant.message["datasetId"])
        if view.chain.owner_of(dataset_id).lower() != grant.actor.lower():
            raise Forbidden(
                "the grant is not signed by the dataset's owner", code=ErrorCode.NOT_OWNER
            )
        grantee = str(grant.message["grantee"])
        generation = view.chain.grant_of(dataset_id, grantee).generation + 1
        terms = terms_message(terms_of(grant.message))
        approval = self.sign("approval", {**terms, "generation": generation})
        out = self.call(
            "POST",
            f"/v1/requests/{request_id}/cosign",
            ApproveOut,
            body=self.signed_body(approval),
        )
        self.confirm(approval)
        return out

    def deny(self, request_id: int, reason: str = "") -> RequestPublic:
        """Owner: refuse a request."""
        keys = self.require_keys()
        signed = self.sign(
            "deny", {"owner": keys.address, "requestId": request_id, "reason": reason}
        )
        denied = self.call(
            "POST", f"/v1/requests/{request_id}/deny", RequestPublic, body=self.signed_body(signed)
        )
        self.confirm(signed)
        return denied

    def grants(self, dataset_id: int | None = None) -> list[GrantPublic]:
        """Grants this member received or gave (all of them for overseers)."""
        params = {"dataset_id": dataset_id} if dataset_id is not None else None
        return self.every("/v1/grants", GrantsPublic, params)

    def revoke(self, grant_id: int) -> GrantPublic:
        """Owner: revoke a grant by its id."""
        grant = next((g for g in self.grants() if g.id == grant_id), None)
        if grant is None:
            raise NotFound(f"no grant {grant_id} visible to you", code=ErrorCode.GRANT_NOT_FOUND)
        signed = sign_revoke(
            self.require_keys(),
            dataset_id=grant.dataset_id,
            grantee=grant.grantee,
            chain_nonce=self.nonces().access_ledger,
            domains=self.domains,
        )
        revoked = self.call("POST", "/v1/grants/revoke", GrantPublic, body=self.signed_body(signed))
        self.confirm(signed)
        return revoked

    # -- audit --------------------------------------------------------------------------------

    def trace_dataset(self, dataset_id: int) -> DatasetTracePublic:
        """Lineage and every flow of a dataset (overseers and its owner), all pages."""
        return self._whole_trace(f"/v1/trace/datasets/{dataset_id}", DatasetTracePublic)

    def trace_member(self, address: str) -> MemberTracePublic:
        """A member's datasets, grants, credits and signed actions (overseers, or itself)."""
        return self._whole_trace(f"/v1/trace/members/{address}", MemberTracePublic)

    def _whole_trace(self, path: str, model: type[TraceT]) -> TraceT:
        trace = self.call("GET", path, model)
        while trace.next_after is not None:
            more = self.call("GET", path, model, params={"after": trace.next_after})
            trace.flows.extend(more.flows)
            trace.next_after = more.next_after
        return trace

    def self_check(self) -> VerifyPublic:
        """The broker's own check of itself (overseers): the operator's tool, not evidence."""
        return self.call("GET", "/v1/verify", VerifyPublic)

    def audit_state(self) -> AuditState:
        """The local audit state of this broker (in memory when no trust directory is set)."""
        from ledger.audit import AuditState

        directory = self.trust.directory
        if directory is None:
            if self._audit is None:
                self._audit = AuditState.in_memory()
            return self._audit
        return AuditState.open(directory / f"{self.log_trust.key}.audit.sqlite")

    def audit(self, *, progress: AuditProgress | None = None) -> AuditReport:
        """Verify the broker on this machine, from its raw records and the chain (overseers).

        Incremental from the checkpoint kept last time: every new record's signature, the
        recomputed tree against the signed head and every anchored root, chain events matched to
        signed records both ways, and consistency with the kept head (:func:`ledger.audit.verify`).
        """
        from ledger.audit import verify
        from ledger.client.audit_sources import BrokerLog, ChainEvents

        p = self.pinned()
        view = self.chain_view()
        state = self.audit_state()
        try:
            return verify(
                BrokerLog(self),
                ChainEvents(view.chain, broker=p.broker),
                state,
                domains=p.domains,
                origin=p.origin,
                progress=progress,
            )
        finally:
            if self.trust.directory is not None:
                state.close()

    def log_head(self) -> LogHead:
        """The log's current tree head and the latest one anchored on chain."""
        return self.call("GET", "/v1/log/head", LogHead)

    def anchor(self) -> AnchorPublic:
        """Operator: anchor the current head and mint due credits now."""
        return self.call("POST", "/v1/log/anchor", AnchorPublic)

"""The member SDK: a typed HTTP client of the broker that keeps every secret on this machine.

It signs each request (``ledger.protocol.http``) and each action, encrypts before uploading,
re-wraps keys on approval, and decrypts and verifies after download, streaming both ways so
memory stays flat whatever the dataset size.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ledger.client.member import (
    MemberKeys,
    PreparedUpload,
    open_delivery,
    prepare_grant,
    prepare_upload,
    sign,
    sign_revoke,
)
from ledger.errors import (
    ChainUnavailable,
    Conflict,
    ContractRevert,
    Forbidden,
    InvalidInput,
    InvalidSignature,
    LedgerError,
    NotFound,
)
from ledger.protocol import http as auth
from ledger.protocol.actions import Domains, SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.types import Classification, MemberKind

Progress = Callable[[int], None]
CHUNK = 1024 * 1024


class BrokerError(LedgerError):
    """An error answered by the broker: its ``code``, message and HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


_BY_STATUS: dict[int, type[LedgerError]] = {
    400: InvalidSignature,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    503: ChainUnavailable,
}


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", f"broker answered {response.status_code}"
    kind = _BY_STATUS.get(response.status_code)
    if kind is not None and kind is not ContractRevert:
        error = kind(message)
        error.code = code
        raise error
    raise BrokerError(response.status_code, code, message)


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
    """One member talking to one broker."""

    def __init__(
        self, base_url: str, keys: MemberKeys | None = None, *, timeout: float = 120.0
    ) -> None:
        self.keys = keys
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._config: dict[str, Any] | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        if self._config is None:
            try:
                response = self._http.get("/v1/config")
            except httpx.TransportError as exc:
                raise ChainUnavailable(
                    f"broker not reachable at {self._http.base_url}: {exc}",
                    code=ErrorCode.BROKER_UNREACHABLE,
                ) from None
            _raise_for(response)
            self._config = dict(response.json())
        return self._config

    @property
    def domains(self) -> Domains:
        c = self.config()
        return Domains(
            chain_id=int(c["chain_id"]),
            flow_log=c["flow_log"],
            data_registry=c["data_registry"],
            access_ledger=c["access_ledger"],
        )

    def _keys(self) -> MemberKeys:
        if self.keys is None:
            raise InvalidInput(
                "this call needs a member identity (--as HANDLE)", code=ErrorCode.NO_IDENTITY
            )
        return self.keys

    def _headers(self, method: str, target: str, body_sha256: str) -> dict[str, str]:
        return auth.sign_request(
            self._keys().account,
            method=method,
            target=target,
            body_sha256=body_sha256,
            chain_id=int(self.config()["chain_id"]),
        )

    def _call(
        self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        body = b"" if json_body is None else json.dumps(json_body).encode()
        request = self._http.build_request(
            method, "/v1" + path, params=params, content=body or None
        )
        target = request.url.raw_path.decode()
        request.headers.update(self._headers(method, target, hashlib.sha256(body).hexdigest()))
        if body:
            request.headers["content-type"] = "application/json"
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise ChainUnavailable(
                f"broker not reachable: {exc}", code=ErrorCode.BROKER_UNREACHABLE
            ) from None
        _raise_for(response)
        return response.json()

    def _signed(self, signed: SignedAction) -> dict[str, Any]:
        return signed.to_json()

    # -- members --------------------------------------------------------------------------

    def onboard(
        self, *, address: str, kind: MemberKind, name: str, key_suite: int, encryption_key: bytes
    ) -> dict[str, Any]:
        """Operator: onboard a member."""
        signed = sign(
            self._keys(),
            "onboard",
            {
                "member": address,
                "kind": kind,
                "name": name,
                "keySuite": key_suite,
                "encryptionKey": encryption_key,
            },
            self.domains,
        )
        return dict(self._call("POST", "/members", json_body={"signed": self._signed(signed)}))

    def suspend(self, address: str) -> dict[str, Any]:
        """Operator: suspend a member."""
        signed = sign(self._keys(), "suspend", {"member": address}, self.domains)
        return dict(
            self._call(
                "POST", f"/members/{address}/suspend", json_body={"signed": self._signed(signed)}
            )
        )

    def members(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/members")["data"])

    def member(self, address: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/members/{address}"))

    def nonces(self, address: str | None = None) -> dict[str, Any]:
        return dict(self._call("GET", f"/members/{address or self._keys().address}/nonces"))

    def credits(self, address: str | None = None) -> dict[str, Any]:
        return dict(self._call("GET", f"/members/{address or self._keys().address}/credits"))

    # -- datasets -------------------------------------------------------------------------

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
    ) -> dict[str, Any]:
        """Encrypt locally, then upload in two steps (signed intent, streamed ciphertext)."""
        keys = self._keys()
        with tempfile.TemporaryDirectory(prefix="drl-upload-") as tmp:
            prepared = prepare_upload(
                keys,
                source,
                workdir=Path(tmp),
                title=title,
                domains=self.domains,
                chain_nonce=int(self.nonces()["data_registry"]),
                classification=classification,
                parents=parents,
                previous_version=previous_version,
                description=description,
                schema=schema,
                quality=quality,
            )
            intent = self.begin_upload(prepared)
            return self.complete_upload(str(intent["upload_url"]), prepared, progress=progress)

    def begin_upload(self, prepared: PreparedUpload) -> dict[str, Any]:
        """Step 1 of a registration: send the signed intent; returns its upload URL."""
        return dict(
            self._call(
                "POST",
                "/datasets/uploads",
                json_body={
                    "signed": self._signed(prepared.signed),
                    "metadata": prepared.metadata,
                    "owner_wrapped_key": "0x" + prepared.owner_wrapped_key.hex(),
                },
            )
        )

    def complete_upload(
        self, url: str, prepared: PreparedUpload, *, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Step 2: stream the prepared ciphertext to an intent's upload URL."""
        with prepared.ciphertext_path.open("rb") as fh:
            return self._put_stream(
                url, fh, prepared.ciphertext_sha256.hex(), prepared.ciphertext_size, progress
            )

    def _put_stream(
        self, url: str, fh: BinaryIO, digest_hex: str, size: int, progress: Progress | None
    ) -> dict[str, Any]:
        def body() -> Iterator[bytes]:
            while chunk := fh.read(CHUNK):
                if progress:
                    progress(len(chunk))
                yield chunk

        headers = self._headers("PUT", url, digest_hex)
        headers["content-type"] = "application/octet-stream"
        headers["content-length"] = str(size)
        try:
            response = self._http.put(url, content=body(), headers=headers)
        except httpx.TransportError as exc:
            raise ChainUnavailable(
                f"upload interrupted: {exc}", code=ErrorCode.BROKER_UNREACHABLE
            ) from None
        _raise_for(response)
        return dict(response.json())

    def datasets(self, owner: str | None = None) -> list[dict[str, Any]]:
        params = {"owner": owner} if owner else None
        return list(self._call("GET", "/datasets", params=params)["data"])

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/datasets/{dataset_id}"))

    def fetch(
        self,
        dataset_id: int,
        out: Path,
        *,
        progress: Progress | None = None,
        acknowledge: bool = True,
    ) -> dict[str, Any]:
        """Download, decrypt and verify, then sign the delivery receipt (owner earns credits)."""
        keys = self._keys()
        signed = sign(
            keys, "fetch", {"grantee": keys.address, "datasetId": dataset_id}, self.domains
        )
        body = json.dumps({"signed": self._signed(signed)}).encode()
        target = f"/v1/datasets/{dataset_id}/fetch"
        headers = self._headers("POST", target, hashlib.sha256(body).hexdigest())
        headers["content-type"] = "application/json"
        try:
            with self._http.stream("POST", target, content=body, headers=headers) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response)
                wrapped = bytes.fromhex(response.headers[auth.H_WRAPPED_KEY][2:])
                content_hash = bytes.fromhex(response.headers[auth.H_CONTENT_HASH][2:])
                generation = int(response.headers[auth.H_GENERATION])
                uses_left = int(response.headers[auth.H_USES_LEFT])
                reader = io.BufferedReader(
                    _ResponseReader(response.iter_raw(CHUNK), progress), buffer_size=CHUNK
                )
                digest = open_delivery(
                    keys, reader, out, wrapped_key=wrapped, content_hash=content_hash
                )
        except httpx.TransportError as exc:
            raise ChainUnavailable(
                f"download interrupted: {exc}", code=ErrorCode.BROKER_UNREACHABLE
            ) from None
        result: dict[str, Any] = {
            "dataset_id": dataset_id,
            "path": str(out),
            "content_hash": "0x" + digest.hex(),
            "uses_left": uses_left,
            "generation": generation,
        }
        if acknowledge:
            result["receipt"] = self.acknowledge(dataset_id, digest, generation)
        return result

    def acknowledge(self, dataset_id: int, content_hash: bytes, generation: int) -> dict[str, Any]:
        keys = self._keys()
        signed = sign(
            keys,
            "receipt",
            {
                "consumer": keys.address,
                "datasetId": dataset_id,
                "contentHash": content_hash,
                "grantGeneration": generation,
            },
            self.domains,
        )
        return dict(self._call("POST", "/receipts", json_body={"signed": self._signed(signed)}))

    def rate(self, dataset_id: int, score: int, comment: str = "") -> dict[str, Any]:
        keys = self._keys()
        signed = sign(
            keys,
            "rate",
            {"rater": keys.address, "datasetId": dataset_id, "score": score, "comment": comment},
            self.domains,
        )
        return dict(self._call("POST", "/ratings", json_body={"signed": self._signed(signed)}))

    # -- access ---------------------------------------------------------------------------

    def request_access(
        self, dataset_id: int, *, purpose: str, days: int, uses: int
    ) -> dict[str, Any]:
        keys = self._keys()
        signed = sign(
            keys,
            "request",
            {
                "requester": keys.address,
                "datasetId": dataset_id,
                "purpose": purpose,
                "days": days,
                "maxUses": uses,
            },
            self.domains,
        )
        return dict(self._call("POST", "/requests", json_body={"signed": self._signed(signed)}))

    def requests(self, *, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else None
        return list(self._call("GET", "/requests", params=params)["data"])

    def approve(self, request_id: int, *, admin_approval: bytes = b"") -> dict[str, Any]:
        """Owner: re-wrap the data key to the requester and sign the grant it asked for."""
        keys = self._keys()
        req = self._call("GET", f"/requests/{request_id}")
        data = self.dataset(int(req["dataset_id"]))
        requester = self.member(str(req["requester"]))
        own = self._call("GET", f"/datasets/{req['dataset_id']}/owner-key")
        signed, wrapped = prepare_grant(
            keys,
            request_id=request_id,
            dataset_id=int(req["dataset_id"]),
            content_hash=bytes.fromhex(str(data["content_hash"])[2:]),
            requester=str(req["requester"]),
            requester_suite=int(requester["key_suite"]),
            requester_key=bytes.fromhex(str(requester["encryption_key"])[2:]),
            purpose=str(req["purpose"]),
            days=int(req["days"]),
            max_uses=int(req["max_uses"]),
            owner_wrapped_key=bytes.fromhex(str(own["wrapped_key"])[2:]),
            chain_nonce=int(self.nonces()["access_ledger"]),
            domains=self.domains,
        )
        return dict(
            self._call(
                "POST",
                f"/requests/{request_id}/approve",
                json_body={
                    "signed": self._signed(signed),
                    "wrapped_key": "0x" + wrapped.hex(),
                    "admin_approval": "0x" + admin_approval.hex(),
                },
            )
        )

    def deny(self, request_id: int, reason: str = "") -> dict[str, Any]:
        keys = self._keys()
        signed = sign(
            keys,
            "deny",
            {"owner": keys.address, "requestId": request_id, "reason": reason},
            self.domains,
        )
        return dict(
            self._call(
                "POST", f"/requests/{request_id}/deny", json_body={"signed": self._signed(signed)}
            )
        )

    def grants(self, dataset_id: int | None = None) -> list[dict[str, Any]]:
        params = {"dataset_id": dataset_id} if dataset_id is not None else None
        return list(self._call("GET", "/grants", params=params)["data"])

    def revoke(self, grant_id: int) -> dict[str, Any]:
        """Owner: revoke a grant by its id."""
        grant = next((g for g in self.grants() if int(g["id"]) == grant_id), None)
        if grant is None:
            raise NotFound(f"no grant {grant_id} visible to you", code=ErrorCode.GRANT_NOT_FOUND)
        signed = sign_revoke(
            self._keys(),
            dataset_id=int(grant["dataset_id"]),
            grantee=str(grant["grantee"]),
            chain_nonce=int(self.nonces()["access_ledger"]),
            domains=self.domains,
        )
        return dict(
            self._call("POST", "/grants/revoke", json_body={"signed": self._signed(signed)})
        )

    # -- audit ----------------------------------------------------------------------------

    def trace_dataset(self, dataset_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/trace/datasets/{dataset_id}"))

    def trace_member(self, address: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/trace/members/{address}"))

    def verify(self) -> dict[str, Any]:
        return dict(self._call("GET", "/verify"))

    def log_head(self) -> dict[str, Any]:
        return dict(self._call("GET", "/log/head"))

    def anchor(self) -> dict[str, Any]:
        return dict(self._call("POST", "/log/anchor"))

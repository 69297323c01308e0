"""Capture the HTTP examples of docs/protocol.md §11 from one real exchange.

    .venv/bin/python scripts/capture_examples.py           # rewrite the captured blocks
    .venv/bin/python scripts/capture_examples.py --check   # exit 1 if a block changed shape
    .venv/bin/python scripts/capture_examples.py --list    # every exchange recorded, in order

The reference broker runs in this process: ``ledger.broker.open_broker`` on a temporary
``DRL_HOME`` (embedded chain, SQLite, ``DRL_KDF_FAST=1``), ``api.main.create_app`` around it,
and starlette's ``TestClient`` in front, as ``tests/http/test_sdk_inprocess.py`` does. The
member SDK (``ledger.client.sdk.BrokerClient``) drives one exchange with the signing and
encryption keys of the test vectors (``tests/vectors/protocol.json``, section ``keys``): the
vectors' operator key is the deployment's ADMIN, the vectors' broker key its BROKER. Its HTTP
client is an ``httpx.Client`` whose transport records every request (its body exactly as sent)
and every answer, then hands the request to the TestClient.

Each example sits between ``<!-- capture:NAME -->`` and ``<!-- /capture:NAME -->`` in the
document; the prose around them is written by hand. A request is shown with the headers that
matter to the protocol (``Content-Type``, ``Content-Length`` and the ``X-DRL-*`` request
signature; not the ones httpx adds such as ``Host`` or ``User-Agent``) and its body exactly as
sent; an answer with all its headers and its JSON body indented by two spaces (its
``Content-Length`` is that of the bytes sent). Ciphertext bodies are elided as
``<the N bytes of the ciphertext>``.

``--check`` runs the exchange again into memory and compares the **shape** of every captured
block with the document: both are masked (``0x``-hex, long bare hex, base64, ISO times and
every decimal number become placeholders, see :func:`shape`) and must then be equal. So a
changed route, status, header, field name, field order or string value fails the check, while
the ids, nonces, signatures, times and hashes that differ on every run do not. Both modes
also check what the prose claims of the run (a receipt's ``receipt_id`` is its EIP-712 digest).
A run takes about 5 s (some 150 exchanges: the SDK confirms each signed action in a signed
head and reads the embedded chain through the broker's relay).
"""

from __future__ import annotations

import argparse
import difflib
import http
import json
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

ROOT: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# starlette asks for httpx2 instead of httpx; the SDK is an httpx client, as in the tests.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from eth_account import Account  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from api.main import create_app  # noqa: E402
from ledger.broker import open_broker  # noqa: E402
from ledger.client.member import MemberKeys  # noqa: E402
from ledger.client.sdk import BrokerClient  # noqa: E402
from ledger.crypto import generate_keypair, load_private_key  # noqa: E402
from ledger.errors import LedgerError  # noqa: E402
from ledger.keys import save_account  # noqa: E402
from ledger.protocol import http as auth  # noqa: E402
from ledger.protocol.actions import SignedAction  # noqa: E402
from ledger.protocol.documents import RequestForm  # noqa: E402
from ledger.settings import Settings  # noqa: E402

DOC: Final = ROOT / "docs" / "protocol.md"
VECTORS: Final = ROOT / "tests" / "vectors" / "protocol.json"
BASE_URL: Final = "http://testserver"  # TestClient's host; the app never sees a socket
#: Encrypts the temporary broker key file, deleted with the run.
PASSPHRASE: Final = "capture-examples-passphrase"  # noqa: S105

#: Request headers shown, in this order (the rest are httpx's own: Host, Accept, User-Agent…).
REQUEST_HEADERS: Final = (
    "Content-Type",
    "Content-Length",
    auth.H_ADDRESS,
    auth.H_TIMESTAMP,
    auth.H_NONCE,
    auth.H_BODY,
    auth.H_SIGNATURE,
)
#: How each header name is spelled in the examples (the ASGI server sends them in lower case).
SPELLING: Final = {
    name.lower(): name
    for name in (
        *REQUEST_HEADERS,
        *auth.FETCH_HEADERS,
        auth.H_WRAPPED_KEY,
        auth.H_GENERATION,
        auth.H_CONTENT_HASH,
        auth.H_CIPHERTEXT_SHA256,
        auth.H_USES_LEFT,
        auth.H_LOG_SEQ,
        auth.H_METADATA,
    )
}


# -- recording ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request as sent and the answer to it, with the step of the story it belongs to."""

    step: str
    request: httpx.Request
    request_body: bytes
    response: httpx.Response
    response_body: bytes

    @property
    def target(self) -> str:
        return self.request.url.raw_path.decode("ascii")

    def summary(self) -> str:
        return (
            f"{self.step:<10} {self.request.method:<4} {self.target} -> {self.response.status_code}"
        )


@dataclass
class Recorder(httpx.BaseTransport):
    """A transport that records each exchange and hands the request to ``inner`` (a client)."""

    inner: httpx.Client
    step: str = "start"
    exchanges: list[Exchange] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # a streamed upload becomes its bytes, sent unchanged
        answer = self.inner.send(request)
        content = answer.content
        self.exchanges.append(Exchange(self.step, request, body, answer, content))
        return httpx.Response(
            answer.status_code,
            headers=answer.headers,
            stream=httpx.ByteStream(content),
            request=request,
        )

    @contextmanager
    def at(self, step: str) -> Iterator[None]:
        """Label the exchanges made inside the block with ``step``."""
        before, self.step = self.step, step
        try:
            yield
        finally:
            self.step = before


# -- the exchange -------------------------------------------------------------------------------


def member_keys(keys: dict[str, Any], name: str, encryption: str | None = None) -> MemberKeys:
    """A vectors' signing key with its encryption key (a fresh one where it has none)."""
    account = Account.from_key(keys["signing"][name]["private_key"])
    if encryption is None:
        hpke = generate_keypair()[0]
    else:
        enc = keys["encryption"][encryption]
        hpke = load_private_key(enc["suite"], bytes.fromhex(enc["private_key"][2:]))
    return MemberKeys(account=account, hpke=hpke)


@contextmanager
def reference_broker(work: Path, broker_key: str, admin: str) -> Iterator[httpx.Client]:
    """The reference broker in process on a fresh embedded chain, behind a TestClient."""
    settings = Settings(
        home=work / "home",
        chain_url=None,
        database_url=None,
        anchor_every_seconds=3600,  # no anchoring in the middle of the story
        anchor_every_records=100_000,
        admin_address=admin,
    )
    fast = os.environ.get("DRL_KDF_FAST")
    os.environ["DRL_KDF_FAST"] = "1"  # the broker key file: a fast KDF
    try:
        # The BROKER key is the vectors' (open_broker uses the key file it finds in place).
        account = Account.from_key(broker_key)
        save_account(settings.broker_dir / "broker.key.json", account, PASSPHRASE)
        broker = open_broker(settings, PASSPHRASE)
    finally:
        if fast is None:
            del os.environ["DRL_KDF_FAST"]
        else:
            os.environ["DRL_KDF_FAST"] = fast
    try:
        with TestClient(create_app(broker), base_url=BASE_URL) as app:
            yield app
    finally:
        broker.close()


SAMPLE_TITLE: Final = "District building permits 2025 (sample)"
PURPOSE: Final = "Quarterly construction-activity statistics for the regional housing report"
REFUSED_PURPOSE: Final = "Marketing lists of recent home builders in the North district"
REFUSAL: Final = "Purpose not covered by our data-sharing policy"
SENSITIVE_ROWS: Final = "district,households_in_arrears\nNorth,41\nHarbour,17\nOld Town,9\n"


def check_receipt_id(recorder: Recorder, client: BrokerClient) -> None:
    """The prose of §11.8 says so: the answer's ``receipt_id`` is the receipt's EIP-712 digest."""
    sent = Pick("fetch", "POST", "/v1/receipts").find(recorder.exchanges)
    signed = SignedAction.from_json(json.loads(sent.request_body)["signed"])
    answered = json.loads(sent.response_body)["receipt_id"]
    if answered != "0x" + signed.digest(client.domains).hex():
        raise AssertionError(f"receipt_id {answered} is not the receipt's EIP-712 digest")


def run_exchange(work: Path) -> Recorder:
    """One exchange with the vectors' keys; every request and answer recorded."""
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    keys = vectors["keys"]
    operator = member_keys(keys, "operator")  # ADMIN; its HPKE key is never used
    owner = member_keys(keys, "owner", "owner")
    requester = member_keys(keys, "requester", "requester")
    sample = next(d for d in vectors["datasets"] if d["name"] == "upload")
    source = work / "building_permits_2025.csv"
    source.write_text(sample["plaintext_text"], encoding="utf-8")
    sensitive = work / "arrears_2025.csv"
    sensitive.write_text(SENSITIVE_ROWS, encoding="utf-8")

    with reference_broker(work, keys["signing"]["broker"]["private_key"], operator.address) as app:
        recorder = Recorder(app)
        with httpx.Client(base_url=BASE_URL, transport=recorder) as http_client:

            def client(member: MemberKeys) -> BrokerClient:
                return BrokerClient(BASE_URL, member, http=http_client)

            op, own, req = client(operator), client(owner), client(requester)
            at = recorder.at
            with at("onboard"):
                for member, kind, name in (
                    (owner, "department", "Urban Planning Department"),
                    (requester, "enterprise", "Acme Analytics Ltd"),
                ):
                    op.onboard(
                        address=member.address,
                        kind=kind,  # type: ignore[arg-type]
                        name=name,
                        key_suite=member.hpke.suite.id,
                        encryption_key=member.public_key.to_bytes(),
                    )
            with at("register"):
                dataset = own.register(source, title=SAMPLE_TITLE)
            with at("request"):
                asked = req.request_access(
                    dataset.id,
                    purpose=PURPOSE,
                    days=30,
                    uses=3,
                    form=RequestForm(
                        purpose_category="official-statistics",
                        legal_basis="public-task",
                        retention_days=90,
                        processing_location="DE",
                    ),
                )
            with at("approve"):
                own.approve(asked.id)
            with at("refused-request"):
                refused = req.request_access(dataset.id, purpose=REFUSED_PURPOSE, days=7, uses=1)
            with at("deny"):  # its confirmation gives the flow-log examples
                own.deny(refused.id, REFUSAL)
            with at("fetch"):
                req.fetch(dataset.id, work / "received.csv")
            check_receipt_id(recorder, req)
            with at("rate"):
                req.rate(dataset.id, 4, "Complete and well documented; «units» always filled.")
            with at("sensitive"):
                secret = own.register(
                    sensitive, title="Households in rent arrears 2025", classification="sensitive"
                )
                waiting = req.request_access(
                    secret.id, purpose="Targeting of energy-saving advice", days=7, uses=1
                )
                own.approve(waiting.id)
            with at("cosign"):
                op.cosign(waiting.id)
            with at("revoke"):
                grant = next(g for g in own.grants(dataset.id) if g.grantee == requester.address)
                own.revoke(grant.id)
            with at("refused"):
                try:
                    req.fetch(dataset.id, work / "after-revoke.csv")
                except LedgerError:
                    pass
                else:
                    raise AssertionError("a fetch after the revocation was served")
            with at("replay"):
                again = req.signed_request("GET", f"/v1/datasets/{dataset.id}")
                http_client.send(again)
                http_client.send(again)
    return recorder


# -- the examples -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """One recorded exchange: the ``index``-th of ``step`` matching ``method``, ``path`` (a
    regex over the target) and, when given, ``body`` (a regex searched in the request body)."""

    step: str
    method: str
    path: str
    index: int = 0
    body: str | None = None
    show: tuple[str, ...] = ("request", "response")

    def find(self, exchanges: list[Exchange]) -> Exchange:
        found = [
            e
            for e in exchanges
            if e.step == self.step
            and e.request.method == self.method
            and re.fullmatch(self.path, e.target)
            and (
                self.body is None or re.search(self.body, e.request_body.decode("utf-8", "replace"))
            )
        ]
        if len(found) <= self.index:
            raise LookupError(f"no exchange #{self.index} {self.method} {self.path} in {self.step}")
        return found[self.index]


ID: Final = r"\d+"
ADDRESS: Final = r"0x[0-9a-fA-F]{40}"
#: Every captured block of §11, by marker name, in the order of the document.
CAPTURES: Final[dict[str, tuple[Pick, ...]]] = {
    "onboard": (Pick("onboard", "POST", "/v1/members"),),
    "nonces": (Pick("register", "GET", f"/v1/members/{ADDRESS}/nonces"),),
    "register-intent": (Pick("register", "POST", "/v1/datasets/uploads"),),
    "register-upload": (Pick("register", "PUT", "/v1/datasets/uploads/[0-9a-f]+"),),
    "request": (Pick("request", "POST", "/v1/requests"),),
    "approve": (Pick("approve", "POST", f"/v1/requests/{ID}/approve"),),
    "approve-waiting": (Pick("sensitive", "POST", f"/v1/requests/{ID}/approve"),),
    "cosign": (Pick("cosign", "POST", f"/v1/requests/{ID}/cosign"),),
    "deny": (Pick("deny", "POST", f"/v1/requests/{ID}/deny"),),
    "fetch": (Pick("fetch", "POST", f"/v1/datasets/{ID}/fetch"),),
    "receipt": (Pick("fetch", "POST", "/v1/receipts"),),
    "rate": (Pick("rate", "POST", "/v1/ratings"),),
    "revoke": (Pick("revoke", "POST", "/v1/grants/revoke"),),
    "fetch-revoked": (Pick("refused", "POST", f"/v1/datasets/{ID}/fetch"),),
    "replay": (
        Pick("replay", "GET", f"/v1/datasets/{ID}", 0, show=("request",)),
        Pick("replay", "GET", f"/v1/datasets/{ID}", 1, show=("response",)),
    ),
    "checkpoint": (Pick("deny", "GET", "/v1/log/checkpoint"),),
    "record-mine": (Pick("deny", "GET", r"/v1/log/records/mine\?.*"),),
    "inclusion": (Pick("deny", "GET", r"/v1/log/proofs/inclusion\?.*"),),
    "chain-rpc": (Pick("approve", "POST", "/v1/chain/rpc", body='"method": "eth_call"'),),
}


def fenced(text: str) -> str:
    return f"```http\n{text.rstrip()}\n```"


def body_text(body: bytes, content_type: str) -> str:
    if content_type.startswith("application/octet-stream"):
        return f"<the {len(body)} bytes of the ciphertext>"
    return body.decode("utf-8")


def render_request(e: Exchange) -> str:
    lines = [f"{e.request.method} {e.target} HTTP/1.1"]
    lines += [f"{n}: {e.request.headers[n]}" for n in REQUEST_HEADERS if n in e.request.headers]
    text = "\n".join(lines)
    if e.request_body:
        text += "\n\n" + body_text(e.request_body, e.request.headers.get("content-type", ""))
    return fenced(text)


def render_response(e: Exchange) -> str:
    status = e.response.status_code
    lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
    lines += [f"{SPELLING.get(k, k.title())}: {v}" for k, v in e.response.headers.multi_items()]
    text = "\n".join(lines)
    content_type = e.response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        answer = json.loads(e.response_body)
        text += "\n\n" + json.dumps(answer, indent=2, ensure_ascii=False)
    elif e.response_body:
        text += "\n\n" + body_text(e.response_body, content_type)
    return fenced(text)


def render(exchanges: list[Exchange]) -> dict[str, str]:
    """Every captured block, by name."""
    blocks: dict[str, str] = {}
    for name, picks in CAPTURES.items():
        parts: list[str] = []
        for pick in picks:
            e = pick.find(exchanges)
            if "request" in pick.show:
                parts.append(render_request(e))
            if "response" in pick.show:
                parts.append(render_response(e))
        blocks[name] = "\n\n".join(parts)
    return blocks


# -- the document ------------------------------------------------------------------------------

REGION: Final = re.compile(
    r"(?P<open><!-- capture:(?P<name>[a-z0-9-]+) -->\n)(?P<body>(?:.*?\n)?)"
    r"(?P<close><!-- /capture:(?P=name) -->)",
    re.DOTALL,
)


def regions(text: str) -> dict[str, str]:
    """The body of every captured block in ``text``, by name."""
    found = {m["name"]: m["body"].removesuffix("\n") for m in REGION.finditer(text)}
    missing = [name for name in CAPTURES if name not in found]
    unknown = [name for name in found if name not in CAPTURES]
    if missing or unknown:
        raise ValueError(
            f"{DOC.name}: capture markers missing for {missing or 'none'}, "
            f"unknown for {unknown or 'none'}"
        )
    return found


def rewrite(text: str, blocks: dict[str, str]) -> str:
    regions(text)  # every marker is there
    return REGION.sub(lambda m: m["open"] + blocks[m["name"]] + "\n" + m["close"], text)


#: What differs on every run, masked in this order (a signed note's base64 first, since it may
#: hold "0x" or digits): see :func:`shape`.
VOLATILE: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"(\\n)[A-Za-z0-9+/]{43}=(?=\\n)"), r"\1<base64>"),  # a note's root
    (re.compile("(\u2014 \\S+ )[A-Za-z0-9+/]+={0,2}"), r"\1<base64>"),  # a note's signature
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"0x[0-9a-fA-F]*"), "<x-hex>"),
    (re.compile(r"\b[0-9a-fA-F]{16,}\b"), "<hex>"),  # request nonces, digests, upload ids
    (re.compile(r"\d+"), "<n>"),  # ids, sizes, nonces, times, lengths
)


def shape(text: str) -> str:
    """``text`` with every run-specific value masked: what ``--check`` compares."""
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def check(current: str, blocks: dict[str, str]) -> list[str]:
    """The blocks of ``current`` whose shape differs from a fresh capture, as unified diffs."""
    problems: list[str] = []
    for name, body in regions(current).items():
        old, new = shape(body).splitlines(), shape(blocks[name]).splitlines()
        if old != new:
            diff = difflib.unified_diff(old, new, f"doc:{name}", f"captured:{name}", lineterm="")
            problems.append("\n".join(diff))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare shapes, write nothing")
    parser.add_argument("--list", action="store_true", help="print every recorded exchange")
    args = parser.parse_args(argv)
    shown = DOC.relative_to(ROOT) if DOC.is_relative_to(ROOT) else DOC
    current = DOC.read_text(encoding="utf-8")
    try:
        regions(current)  # every marker in place before the exchange runs
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="drl-capture-") as tmp:
        recorder = run_exchange(Path(tmp))
    if args.list:
        for e in recorder.exchanges:
            print(e.summary())
    blocks = render(recorder.exchanges)
    took = f"{len(recorder.exchanges)} exchanges in {time.monotonic() - started:.1f} s"
    if args.check:
        problems = check(current, blocks)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                f"{shown}: {len(problems)} captured block(s) changed shape; run "
                f"scripts/capture_examples.py ({took})",
                file=sys.stderr,
            )
            return 1
        print(f"{len(blocks)} captured blocks have the shape of a fresh exchange ({took})")
        return 0
    DOC.write_text(rewrite(current, blocks), encoding="utf-8")
    print(f"{len(blocks)} captured blocks written to {shown} ({took})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

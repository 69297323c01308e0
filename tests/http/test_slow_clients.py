"""Slow and stalled transfers cannot hold the broker: paced, one per intent, within quotas.

Forty signed PUTs on one intent, each sending a byte now and then, used to take every thread
of the pool the other routes run on, and `/v1/health` timed out. Now only one upload runs per
intent (the others get 409 ``upload_in_progress`` at once), transfers run on threads of their
own within per-member and per-replica slots, and a transfer that stalls or crawls is ended
(408 ``transfer_stalled`` for an upload; a download's connection is closed), freeing its slot
and its intent for a retry that then completes. The broker runs with short limits here:
idle 2 s, grace 2 s, 64 KiB/s minimum, two transfers per member.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from ledger.client.member import MemberKeys, PreparedUpload, prepare_upload
from ledger.client.sdk import BrokerClient
from ledger.errors import Throttled
from ledger.protocol import http as auth
from tests.support.http_kit import RunningBroker, new_member, running_broker
from tests.support.http_probe import Wire, error_code, snapshot

LIMITS = {
    "DRL_TRANSFER_IDLE_SECONDS": "2",
    "DRL_TRANSFER_GRACE_SECONDS": "2",
    "DRL_TRANSFER_MIN_BYTES_PER_SECOND": str(64 * 1024),
    "DRL_TRANSFERS_PER_MEMBER": "2",
    "DRL_TRANSFERS_TOTAL": "8",
}


@dataclass
class World:
    broker: RunningBroker
    root: Path
    dataset_id: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("slow")
    with running_broker(root / "home", extra_env=LIMITS) as broker:
        new_member(broker, "office", "department", "District Planning Office")
        new_member(broker, "works", "department", "Public Works")
        new_member(broker, "coop", "enterprise", "Harbour Solar Cooperative")
        source = root / "wards.csv"
        source.write_bytes(b"ward,roofs\n" + b"".join(b"w%d,%d\n" % (i, i) for i in range(300_000)))
        with broker.client("works") as works, broker.client("coop") as coop:
            dataset = works.register(source, title="Wards")
            request = coop.request_access(
                dataset.id, purpose="Rooftop solar planning, harbour", days=30, uses=50
            )
            works.approve(request.id)
        yield World(broker, root, dataset.id)


def big_file(root: Path, name: str) -> Path:
    path = root / name
    path.write_bytes(
        b"id,v\n" + b"".join(b"%s-%d,%d\n" % (name.encode(), i, i) for i in range(60_000))
    )
    return path


def prepared_intent(client: BrokerClient, root: Path, name: str) -> tuple[PreparedUpload, str]:
    prepared = prepare_upload(
        client.require_keys(),
        big_file(root, name),
        workdir=root,
        title=name,
        domains=client.domains,
        chain_nonce=client.nonces().data_registry,
    )
    return prepared, client.begin_upload(prepared).upload_url


def open_request(
    url: str, method: str, target: str, headers: dict[str, str], length: int
) -> socket.socket:
    """A raw HTTP request whose head is sent; the body is up to the caller."""
    where = urlparse(url)
    conn = socket.create_connection((where.hostname, where.port), timeout=15)
    head = [f"{method} {target} HTTP/1.1", f"Host: {where.netloc}", f"Content-Length: {length}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    return conn


def answer(conn: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the response on ``conn`` (the broker closes or answers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    return status, json.loads(body)


def put_upload(client: BrokerClient, url: str, prepared: PreparedUpload) -> socket.socket:
    size = prepared.ciphertext_path.stat().st_size
    headers = client.signed_headers("PUT", url, prepared.ciphertext_sha256.hex())
    headers["Content-Type"] = "application/octet-stream"
    return open_request(client.base_url, "PUT", url, headers, size)


def operator_keys(world: World) -> MemberKeys:
    with world.broker.client("operator") as op:
        assert op.keys is not None
        return op.keys


def timed_get(url: str) -> float:
    started = time.monotonic()
    assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200
    return time.monotonic() - started


def test_one_upload_runs_per_intent_and_a_stalled_one_ends_and_frees_it(world: World) -> None:
    with world.broker.client("office") as office:
        prepared, url = prepared_intent(office, world.root, "stalled")
        data = prepared.ciphertext_path.read_bytes()
        wire = Wire(world.broker.url)
        operator = operator_keys(world)
        before = snapshot(wire, operator, world.broker.home)
        first = put_upload(office, url, prepared)
        first.sendall(data[:4096])
        time.sleep(0.5)  # the first PUT has claimed the intent
        try:
            second = office.http.put(
                office.url(url),
                content=data,
                headers=office.signed_headers("PUT", url, prepared.ciphertext_sha256.hex()),
            )
            assert (second.status_code, error_code(second)) == (409, "upload_in_progress")
            status, body = answer(first)  # nothing more is sent: ended after 2 s idle
        finally:
            first.close()
        assert (status, body["code"]) == (408, "transfer_stalled")
        assert office.datasets(owner=office.require_keys().address) == []
        # Nothing of either upload stayed: no row, blob, log record or transaction.
        assert before.changes(snapshot(wire, operator, world.broker.home)) == []
        wire.close()
        done = office.complete_upload(url, prepared)
        assert done.title == "stalled"


def test_an_upload_below_the_minimum_rate_ends_after_the_grace_period(world: World) -> None:
    with world.broker.client("office") as office:
        prepared, url = prepared_intent(office, world.root, "crawling")
        data = prepared.ciphertext_path.read_bytes()
        conn = put_upload(office, url, prepared)
        try:
            started = time.monotonic()
            status: int | None = None
            for offset in range(0, 40 * 1024, 1024):  # 1 KiB every 0.2 s: 5 KiB/s
                try:
                    conn.sendall(data[offset : offset + 1024])
                except OSError:
                    break  # the broker answered and closed
                time.sleep(0.2)
                if time.monotonic() - started > 2.5:
                    break
            status, body = answer(conn)
        finally:
            conn.close()
        assert (status, body["code"]) == (408, "transfer_stalled")
        assert "bytes/s" in body["message"]
        assert office.complete_upload(url, prepared).title == "crawling"


def test_forty_slow_uploads_on_one_intent_leave_every_route_answering(world: World) -> None:
    with world.broker.client("office") as office:
        prepared, url = prepared_intent(office, world.root, "forty")
        data = prepared.ciphertext_path.read_bytes()
        holder = put_upload(office, url, prepared)
        stop = threading.Event()

        def trickle() -> None:  # 128 KiB/s: slow, but above the minimum rate
            for offset in range(0, len(data) - 1, 64 * 1024):
                if stop.wait(0.5):
                    return
                holder.sendall(data[offset : min(offset + 64 * 1024, len(data) - 1)])

        sender = threading.Thread(target=trickle)
        sender.start()
        time.sleep(0.5)  # the holder has claimed the intent
        try:

            def attempt(_: int) -> httpx.Response:
                headers = office.signed_headers("PUT", url, prepared.ciphertext_sha256.hex())
                with httpx.Client(base_url=office.base_url, timeout=10) as http:
                    return http.put(url, content=data, headers=headers)

            with ThreadPoolExecutor(8) as pool:
                refused = Counter(
                    (r.status_code, error_code(r)) for r in pool.map(attempt, range(39))
                )
            # Refused before a byte is read: the intent is taken, or the member's slots are.
            assert set(refused) <= {(409, "upload_in_progress"), (429, "too_many_transfers")}
            assert refused[(409, "upload_in_progress")] >= 1
            assert timed_get(world.broker.url) < 1.0
            started = time.monotonic()
            office.datasets()  # a signed read answers at once
            assert time.monotonic() - started < 1.0
        finally:
            stop.set()
            sender.join()
            holder.close()


def fetch_request(coop: BrokerClient, dataset_id: int) -> tuple[str, bytes, dict[str, str]]:
    """A signed fetch: its target, body and headers (sent raw by the caller)."""
    keys = coop.require_keys()
    signed = coop.sign("fetch", {"grantee": keys.address, "datasetId": dataset_id})
    body = json.dumps({"signed": signed.to_json()}).encode()
    target = f"/v1/datasets/{dataset_id}/fetch"
    headers = coop.signed_headers("POST", target, auth.body_sha256(body))
    headers["Content-Type"] = "application/json"
    return target, body, headers


def test_a_member_runs_at_most_its_transfers_and_a_reader_that_stops_is_cut_off(
    world: World,
) -> None:
    with world.broker.client("coop") as coop:
        held = []
        try:
            for _ in range(2):  # the member's two slots: downloads whose client reads nothing
                target, body, headers = fetch_request(coop, world.dataset_id)
                conn = open_request(coop.base_url, "POST", target, headers, len(body))
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                conn.sendall(body)
                held.append(conn)
            time.sleep(0.5)
            target, body, headers = fetch_request(coop, world.dataset_id)
            third = coop.http.post(coop.url(target), content=body, headers=headers)
            assert (third.status_code, error_code(third)) == (429, "too_many_transfers")
            assert timed_get(world.broker.url) < 1.0
            # Neither reader reads: after 2 s without progress both are cut, and the slots
            # come back, so a real fetch completes.
            deadline = time.monotonic() + 20
            while True:
                try:
                    fetched = coop.fetch(world.dataset_id, world.root / "out.csv")
                    break
                except Throttled as exc:  # until the slots are back
                    refusal = exc.code
                assert refusal == "too_many_transfers"
                assert time.monotonic() < deadline, "the stalled downloads were never cut"
                time.sleep(0.5)
            assert Path(fetched.path).read_bytes().startswith(b"ward,roofs\n")
        finally:
            for conn in held:
                conn.close()

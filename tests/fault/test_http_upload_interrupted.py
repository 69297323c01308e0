"""An interrupted upload leaves nothing registered and no orphaned blob; it can be resumed."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlparse

from ledger.client.member import prepare_upload
from tests.support.http_kit import new_member, running_broker


def _blob_files(home: Path) -> list[Path]:
    root = home / "broker" / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


def test_disconnect_mid_upload_registers_nothing_and_the_intent_completes_later(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with running_broker(home) as broker:
        new_member(broker, "office", "department", "Office")
        source = tmp_path / "big.csv"
        source.write_bytes(
            b"id,value\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(400_000))
        )
        with broker.client("office") as client:
            prepared = prepare_upload(
                client.require_keys(),
                source,
                workdir=tmp_path,
                title="Interrupted",
                domains=client.domains,
                chain_nonce=client.nonces().data_registry,
            )
            intent = client.begin_upload(prepared)
            url = intent.upload_url
            headers = client.signed_headers("PUT", url, prepared.ciphertext_sha256.hex())
            data = prepared.ciphertext_path.read_bytes()
            where = urlparse(broker.url)
            with socket.create_connection((where.hostname, where.port)) as conn:
                head = [
                    f"PUT {url} HTTP/1.1",
                    f"Host: {where.netloc}",
                    "Content-Type: application/octet-stream",
                    f"Content-Length: {len(data)}",
                ]
                head += [f"{k}: {v}" for k, v in headers.items()]
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
                conn.sendall(data[: len(data) // 2])
            time.sleep(1.5)  # let the broker notice the disconnect and clean up
            assert client.datasets() == []
            assert _blob_files(home) == []
            assert not list((home / "broker" / "blobs").rglob(".tmp/*"))
            done = client.complete_upload(url, prepared)
            assert done.title == "Interrupted"
            assert len(_blob_files(home)) == 1
    log = (home.parent / "home-serve.log").read_text()
    assert "Traceback" not in log

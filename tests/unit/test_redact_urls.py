"""Secrets in URLs never reach a message, a log line or a repr (issue 9)."""

from __future__ import annotations

import socket

import pytest

from ledger.chain.rpc import RpcChain
from ledger.errors import ChainUnavailable, ConfigurationError
from ledger.redact import UNPARSEABLE, mask_url, scrub
from ledger.settings import Settings
from ledger.store.db import Database

SECRET = "s3cr3t-Pa55"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "keep_path", "shown"),
    [
        (
            "postgresql+psycopg://alice:pw@db:5432/drl",
            True,
            "postgresql+psycopg://alice:***@db:5432/drl",
        ),
        (
            "postgresql://alice@db/drl?password=pw&sslmode=require",
            True,
            "postgresql://alice@db/drl?...",
        ),
        ("sqlite:////var/lib/drl/broker.db", True, "sqlite:////var/lib/drl/broker.db"),
        ("https://u:pw@node.example:8545/v3/APIKEY", False, "https://u:***@node.example:8545/..."),
        ("http://127.0.0.1:8545", False, "http://127.0.0.1:8545"),
        ("http://[::1]:8545/", False, "http://[::1]:8545"),
        ("http//pw@node", False, UNPARSEABLE),
        ("http://node:notaport/pw", False, UNPARSEABLE),
    ],
)
def test_mask_url(url: str, keep_path: bool, shown: str) -> None:
    assert mask_url(url, keep_path=keep_path) == shown


def test_scrub_removes_the_password_and_query() -> None:
    url = f"postgresql://alice:{SECRET}@db/drl?sslpassword=other-{SECRET}"
    text = f"failed for {url}: password {SECRET} / other-{SECRET}"
    assert SECRET not in scrub(text, url)


def test_an_unreachable_postgresql_url_is_reported_without_its_password() -> None:
    url = f"postgresql://alice:{SECRET}@127.0.0.1:{closed_port()}/drl?sslpassword={SECRET}"
    db = Database(url)
    try:
        assert SECRET not in repr(db)
        with pytest.raises(ConfigurationError) as caught:
            db.upgrade()
    finally:
        db.dispose()
    message = str(caught.value)
    assert "cannot connect to the database postgresql+psycopg://alice:***@127.0.0.1" in message
    assert SECRET not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://alice:{SECRET}@db:port/drl",  # a port that is not a number
        f"alice:{SECRET}@db/drl",  # no scheme
        f"postgresql+psycopg2://alice:{SECRET}@db/drl",
        f"mysql://alice:{SECRET}@db/drl",
    ],
)
def test_a_bad_database_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Database(url)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://alice:{SECRET}@node/",
        f"http//alice:{SECRET}@node",
        f"http://alice:{SECRET}@node:port/",
    ],
)
def test_a_bad_chain_url_is_refused_without_its_credentials(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RpcChain(url)
    assert SECRET not in str(caught.value)


def test_an_unreachable_node_is_named_without_credentials_or_api_key() -> None:
    url = f"http://alice:{SECRET}@127.0.0.1:{closed_port()}/v3/{SECRET}"
    with pytest.raises(ChainUnavailable) as caught:
        RpcChain(url, timeout=2)
    assert SECRET not in str(caught.value)
    assert "http://alice:***@127.0.0.1:" in str(caught.value)


def test_settings_repr_hides_both_urls() -> None:
    settings = Settings(
        chain_url=f"https://node.example/v3/{SECRET}",
        database_url=f"postgresql://alice:{SECRET}@db/drl",
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)

"""The broker's two keys at start-up: ADMIN is looked for (or created) only at the first deploy.

A restarted broker reopens its deployment, whose record names ADMIN; it must not create a new
ADMIN key, for example after its operator moved the one a pilot created off the host.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.broker import open_broker
from ledger.keys import keystore_address
from ledger.settings import Settings

PASSPHRASE = "broker-keys-test-passphrase"


def test_a_restart_after_the_admin_key_moved_away_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRL_KDF_FAST", "1")
    settings = Settings(home=tmp_path / "home", chain_url=None, database_url=None)
    first = open_broker(settings, PASSPHRASE)
    try:
        assert first.admin_created
        admin = first.ledger.chain.deployment.admin
        assert keystore_address(settings.admin_key_path) == admin
        assert admin != first.ledger.chain.account.address
    finally:
        first.close()
    moved = tmp_path / "operator-machine" / "admin.key.json"
    moved.parent.mkdir()
    settings.admin_key_path.rename(moved)

    again = open_broker(settings, PASSPHRASE)
    try:
        assert not again.admin_created
        assert not settings.admin_key_path.exists()
        assert again.ledger.chain.deployment.admin == admin
        assert again.ledger.operator == admin
    finally:
        again.close()

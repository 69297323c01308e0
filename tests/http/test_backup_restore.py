"""Backup and restore of a broker on the embedded defaults, through the installed `drl`.

A broker that shared a dataset is stopped and backed up; the backup is restored into a fresh
home, started, verified clean by a regulator from the member side, and the exchange goes on
(the grant's next use). A running broker is not backed up, a damaged backup is not restored,
and a home that holds a broker is not overwritten: each refusal writes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ledger.protocol.codes import ErrorCode
from tests.http.test_cli_exit_codes import drl, no_traceback, one_line_error
from tests.support.http_kit import env_for, new_member, running_broker
from tests.support.net import free_port

PURPOSE = "Planning of rooftop solar installations in the harbour ward"


def test_a_broker_restored_from_its_backup_verifies_clean_and_goes_on(tmp_path: Path) -> None:
    old, backup, home = tmp_path / "old", tmp_path / "backup", tmp_path / "restored"
    source = tmp_path / "harbour.csv"
    source.write_text("ward,roofs\nharbour,412\nquay,97\n")
    with running_broker(old) as broker:
        new_member(broker, "office", "department", "District Planning Office")
        new_member(broker, "coop", "enterprise", "Harbour Solar Cooperative")
        new_member(broker, "dpa", "regulator", "Data Protection Authority")
        with broker.client("office") as office, broker.client("coop") as coop:
            dataset = office.register(source, title="Harbour ward rooftops")
            request = coop.request_access(dataset.id, purpose=PURPOSE, days=30, uses=3)
            office.approve(request.id)
            assert coop.fetch(dataset.id, tmp_path / "first.csv").uses_left == 2
        running = drl(env_for(old, broker.url), "admin", "backup", str(backup))
        assert "stop it" in one_line_error(running, ErrorCode.BROKER_RUNNING)
        assert not backup.exists()
        with broker.client("dpa") as dpa:
            log_size = dpa.log_head().size

    done = drl(env_for(old, ""), "admin", "backup", str(backup), "--json")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert (backup / "drl-backup.json").stat().st_mode & 0o777 == 0o600

    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    (blob,) = (p for p in (damaged / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 1]))
    refused = drl(env_for(tmp_path / "elsewhere", ""), "admin", "restore", str(damaged))
    assert "damaged" in one_line_error(refused, ErrorCode.BACKUP_REFUSED)
    assert not (tmp_path / "elsewhere" / "broker").exists()

    restored = drl(env_for(home, ""), "admin", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert f"log size {log_size}" in restored.stdout
    again = drl(env_for(home, ""), "admin", "restore", str(backup))
    assert "already holds a broker" in one_line_error(again, ErrorCode.BACKUP_REFUSED)
    shutil.copytree(old / "members", home / "members")  # the members' own keys, not the broker's
    assert (home / "broker").stat().st_mode & 0o777 == 0o700

    with running_broker(home) as broker:
        with broker.client("dpa") as dpa:
            assert dpa.log_head().size == log_size
            report = dpa.audit()
            assert report.ok, report.problems
        with broker.client("coop") as coop:
            again_fetched = coop.fetch(dataset.id, tmp_path / "second.csv")
            assert again_fetched.uses_left == 1
            assert Path(again_fetched.path).read_text() == source.read_text()


def test_backup_and_restore_refuse_the_scale_out_layouts(tmp_path: Path) -> None:
    env = env_for(tmp_path, f"http://127.0.0.1:{free_port()}") | {
        "DRL_DATABASE_URL": "postgresql+psycopg://drl@127.0.0.1/drl"
    }
    result = drl(env, "admin", "backup", str(tmp_path / "b"))
    assert "DRL_DATABASE_URL" in one_line_error(result, ErrorCode.BACKUP_REFUSED)
    assert not (tmp_path / "b").exists()

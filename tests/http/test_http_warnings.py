"""`drl warnings` over a real broker: a fetch after revocation is refused, logged and warned of.

One `drl serve` for the module. The office grants the enterprise access, the enterprise fetches
once, the office revokes the grant; the enterprise's next fetch is refused (403) and the broker
logs it as refused. A second enterprise, suspended by the operator while its grant is live,
tries a fetch too: refused and logged the same way. The regulator's `drl warnings` (the
installed executable, in a subprocess) verifies the log on its own machine and lists a
fetch-after-revocation warning citing each record. Refused fetches also spend the member's
write rate: a member without a grant sends signed fetches until the broker answers 429, and each
refusal before it is one log record.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import LedgerError
from tests.support.broker import DRL
from tests.support.http_kit import RunningBroker, new_member, running_broker
from tests.support.http_probe import Wire, error_code, signed

#: Signed writes each member may burst, with almost no refill (one per 100 s) during the test.
#: (The SDK's chain reads through the broker's relay are POSTs: they count as writes too.)
BURST = 50


@dataclass
class Scene:
    broker: RunningBroker
    dataset_id: int
    revoke_seq: int
    refused_seq: int
    suspend_seq: int
    suspended_seq: int
    #: What a member without a grant got for BURST + 5 signed fetches, in order (error codes).
    answers: list[str]
    #: Records the log gained during those fetches.
    logged: int


def drl(broker: RunningBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRL, *args],
        capture_output=True,
        text=True,
        env=broker.env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def log_size(broker: RunningBroker) -> int:
    with broker.client("dpa") as dpa:
        return dpa.log_head().size


def hammer(broker: RunningBroker, dataset_id: int, times: int) -> list[str]:
    """``times`` signed fetches by the prober (no grant), as fast as it can: the error codes."""
    with broker.client("prober") as prober:
        keys = prober.require_keys()
    wire = Wire(broker.url)
    try:
        target = f"/v1/datasets/{dataset_id}/fetch"
        answers = []
        for _ in range(times):
            body = signed(
                keys, "fetch", {"grantee": keys.address, "datasetId": dataset_id}, wire.domains
            )
            answers.append(str(error_code(wire.send(keys, "POST", target, json_body=body))))
        return answers
    finally:
        wire.close()


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("warnings")
    rate = {"DRL_WRITES_PER_SECOND": "0.01", "DRL_WRITE_BURST": str(BURST)}
    with running_broker(root / "home", extra_env=rate) as b:
        new_member(b, "office", "department", "District Planning Office")
        new_member(b, "ent", "enterprise", "Harbour Analytics")
        new_member(b, "dpa", "regulator", "Data Protection Authority")
        new_member(b, "prober", "enterprise", "Persistent Prober Ltd")
        held = new_member(b, "held", "enterprise", "Quay Surveys")
        source = root / "d.csv"
        source.write_text("ward,roofs\nharbour,412\nquay,97\n")
        with b.client("office") as office, b.client("ent") as ent:
            dataset = office.register(source, title="Harbour rooftops")
            request = ent.request_access(
                dataset.id, purpose="Solar potential study", days=5, uses=5
            )
            grant = office.approve(request.id).grant
            assert grant is not None
            ent.fetch(dataset.id, root / "first.csv")
            office.revoke(grant.id)
            revoke_seq = log_size(b) - 1
            with pytest.raises(LedgerError) as refused:
                ent.fetch(dataset.id, root / "again.csv")
            assert (refused.value.code, getattr(refused.value, "status", 403)) == (
                "access_ledger_grant_revoked",
                403,
            )
        refused_seq = log_size(b) - 1
        with b.client("office") as office, b.client("held") as held_client:
            asked = held_client.request_access(dataset.id, purpose="Quay survey", days=60, uses=5)
            assert office.approve(asked.id).grant is not None
            with b.client("operator") as operator:
                operator.suspend(held.address)
            suspend_seq = log_size(b) - 1
            keys = held_client.require_keys()
        # Signed as the SDK signs (which, suspended, may no longer read the chain relay).
        wire = Wire(b.url)
        try:
            body = signed(
                keys, "fetch", {"grantee": keys.address, "datasetId": dataset.id}, wire.domains
            )
            answer = wire.send(keys, "POST", f"/v1/datasets/{dataset.id}/fetch", json_body=body)
        finally:
            wire.close()
        assert (answer.status_code, error_code(answer)) == (403, "member_suspended")
        suspended_seq = log_size(b) - 1
        assert suspended_seq == suspend_seq + 1  # the refused fetch is the one record it wrote
        before = log_size(b)
        answers = hammer(b, dataset.id, BURST + 5)
        yield Scene(
            b,
            dataset.id,
            revoke_seq,
            refused_seq,
            suspend_seq,
            suspended_seq,
            answers,
            log_size(b) - before,
        )


def test_a_fetch_after_revocation_is_refused_logged_and_listed_with_its_record(
    scene: Scene,
) -> None:
    done = drl(scene.broker, "warnings", "--json", "--as", "dpa")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["verified"]["ok"] is True
    assert report["rules"] == "packaged defaults"
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for found in report["warnings"]:
        by_rule.setdefault(found["rule"], []).append(found)
    # Nothing else: the requests, grants and fetch match; the log is fresh.
    assert set(by_rule) == {"fetch-after-revocation", "repeated-refusals"}
    assert len(by_rule["fetch-after-revocation"]) == 2  # the revoked grant, the suspension
    (warning,) = (w for w in by_rule["fetch-after-revocation"] if scene.refused_seq in w["records"])
    assert warning["severity"] == "warning"
    assert warning["subject"].startswith(f"grant {scene.dataset_id}→0x")
    assert scene.refused_seq in warning["records"]
    assert scene.revoke_seq in warning["records"]
    assert "after the grant was revoked" in warning["message"]
    assert warning["first_seen"].endswith("+00:00")


def test_a_fetch_by_a_suspended_member_is_refused_logged_and_warned_of(scene: Scene) -> None:
    done = drl(scene.broker, "warnings", "--json", "--as", "dpa")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    (warning,) = (
        w for w in report["warnings"] if scene.suspended_seq in w["records"]
    )  # exactly one warning cites the suspended member's fetch
    assert warning["rule"] == "fetch-after-revocation"
    assert scene.suspend_seq in warning["records"]
    assert "while the grantee was suspended" in warning["message"]


def test_fail_on_exits_non_zero_at_or_above_the_severity_named(scene: Scene) -> None:
    failing = drl(scene.broker, "warnings", "--fail-on", "warning", "--as", "dpa")
    assert failing.returncode == 1, failing.stderr
    assert "fetch-after-revocation" in failing.stdout
    assert "Traceback" not in failing.stderr
    calm = drl(scene.broker, "warnings", "--fail-on", "critical", "--as", "dpa")
    assert calm.returncode == 0, calm.stderr


def test_refused_fetches_spend_the_write_rate_and_each_refusal_is_logged(scene: Scene) -> None:
    refusals = scene.answers.count("no_grant")
    assert BURST - 1 <= refusals <= BURST + 1, scene.answers  # the bucket, give or take a refill
    assert scene.answers == ["no_grant"] * refusals + ["rate_limited"] * (
        len(scene.answers) - refusals
    )
    assert scene.logged == refusals  # a throttled fetch writes nothing


def test_a_bad_rules_file_is_refused_before_anything_runs(scene: Scene, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.volume-spike]\nfactor = -1\n")
    done = drl(scene.broker, "warnings", "--rules", str(rules), "--as", "dpa")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error [rules_invalid]: {rules}: rules.volume-spike.factor must not be negative, got -1"
    )

"""The whole exchange over real HTTP: a uvicorn broker process driven by the SDK and the CLI."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import prov
import pytest
from prov.model import ProvActivity, ProvAgent, ProvDerivation, ProvEntity

from ledger.quality import validate_file
from tests.support.http_kit import RunningBroker, new_member, running_broker

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "building_permits.csv"
SCHEMA = SAMPLE.with_name("building_permits.schema.json")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("http") / "home") as b:
        yield b


def test_sdk_walks_the_whole_exchange(broker: RunningBroker, tmp_path: Path) -> None:
    office = new_member(broker, "sdk-office", "department", "District Planning Office")
    coop = new_member(broker, "sdk-coop", "enterprise", "Harbour Solar Cooperative", pq=True)
    new_member(broker, "sdk-dpa", "regulator", "Data Protection Authority")
    with broker.client("sdk-office") as owner, broker.client("sdk-coop") as consumer:
        schema = json.loads(SCHEMA.read_text())
        dataset = owner.register(
            SAMPLE,
            title="Permits 2025 (SDK)",
            schema=schema,
            quality=validate_file(SAMPLE, schema).summary(),  # a clean report: the score is 100
        )
        assert dataset.owner == office.address
        request = consumer.request_access(
            dataset.id, purpose="rooftop solar potential study", days=30, uses=2
        )
        assert request.status == "pending"
        approved = owner.approve(request.id)
        assert approved.status == "granted"
        assert approved.grant is not None
        assert approved.grant.grantee == coop.address
        assert not approved.chain_independent  # the embedded chain, read through the relay
        out = tmp_path / "received.csv"
        fetched = consumer.fetch(dataset.id, out)
        assert out.read_bytes() == SAMPLE.read_bytes()
        assert fetched.content_hash == dataset.content_hash
        assert fetched.uses_left == 1
        assert fetched.receipt is not None
        assert fetched.receipt.content_hash == dataset.content_hash
        consumer.rate(dataset.id, 5, "complete")
    with broker.client("operator") as operator:
        anchored = operator.anchor()
        assert anchored.anchored
        # The first credited delivery to a consumer (CreditRules), weighted by quality 100.
        assert anchored.minted == 6
        assert operator.credits(office.address).balance == 6
    with broker.client("sdk-dpa") as regulator:
        trace = regulator.trace_dataset(dataset.id)
        actions = [f.action for f in trace.flows]
        assert actions == ["register", "request", "grant", "fetch", "receipt", "rate"]
        assert regulator.self_check().ok  # the broker's word about itself ...
        report = regulator.audit()  # ... and the regulator's own check, on its machine
        assert report.ok, report.problems
        head = regulator.log_head()
        assert head.anchored_size == head.size == report.tree_size


def test_cli_reproduces_the_exchange_by_hand(broker: RunningBroker, tmp_path: Path) -> None:
    def drl(*args: str) -> str:
        result = broker.drl(*args)
        assert result.returncode == 0, f"drl {' '.join(args)}: {result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    drl("member", "new", "cli-office", "--kind", "department", "--name", "Parks Department")
    drl("member", "new", "cli-ent", "--kind", "enterprise", "--name", "Green Routes Ltd")
    drl("member", "new", "cli-dpa", "--kind", "regulator", "--name", "Audit Office")
    for handle in ("cli-office", "cli-ent", "cli-dpa"):
        drl("admin", "onboard", handle)
    source = tmp_path / "trees.csv"
    source.write_text("tree_id,species,ward\n" + "".join(f"T{i},oak,Harbour\n" for i in range(500)))
    registered = json.loads(
        drl(
            "dataset",
            "register",
            str(source),
            "--as",
            "cli-office",
            "--title",
            "Street trees",
            "--json",
        )
    )
    dataset_id = str(registered["id"])
    assert "Street trees" in drl("dataset", "list", "--as", "cli-ent")
    assert "Street trees" in drl("dataset", "show", dataset_id, "--as", "cli-ent")
    request = json.loads(
        drl(
            "access",
            "request",
            dataset_id,
            "--as",
            "cli-ent",
            "--purpose",
            "cycling route planning",
            "--days",
            "7",
            "--uses",
            "1",
            "--json",
        )
    )
    assert "pending" in drl("access", "list", "--as", "cli-office")
    approved = json.loads(
        drl("access", "approve", str(request["id"]), "--as", "cli-office", "--json")
    )
    assert approved["status"] == "granted"
    assert approved["grantee_key_fingerprint"]
    grant = approved["grant"]
    out = tmp_path / "out.csv"
    drl("dataset", "fetch", dataset_id, "--as", "cli-ent", "-o", str(out))
    assert out.read_bytes() == source.read_bytes()
    spent = broker.drl("dataset", "fetch", dataset_id, "--as", "cli-ent", "-o", str(out))
    assert spent.returncode == 1
    assert spent.stderr.startswith("error [access_ledger_uses_exhausted]")
    drl("access", "revoke", str(grant["id"]), "--as", "cli-office")
    drl("admin", "anchor")
    assert "DSC" in drl("credits", "--as", "cli-office")
    assert "fetch" in drl("trace", dataset_id, "--as", "cli-dpa")
    assert "revoke" in drl("trace", "--member", "cli-office", "--as", "cli-dpa")
    assert "verified on this machine" in drl("verify", "--as", "cli-dpa")
    assert "self-check passed" in drl("admin", "self-check")


def test_restarted_broker_reopens_the_same_chain_and_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_broker(home) as first:
        new_member(first, "office", "department", "Office")
        new_member(first, "dpa", "regulator", "Audit Office")
        with first.client("office") as c:
            c.register(SAMPLE, title="Permits")
        before = httpx.get(f"{first.url}/v1/health").json()
        verified = first.drl("verify", "--as", "dpa")
        assert verified.returncode == 0, verified.stderr
        assert "first run" in verified.stdout
    with running_broker(home) as second:
        # Another port, the same log: the regulator continues from the checkpoint it kept.
        assert second.url != first.url
        again = second.drl("verify", "--as", "dpa")
        assert again.returncode == 0, again.stderr
        assert f"incremental from size {before['log_size']}" in again.stdout, again.stdout
        after = httpx.get(f"{second.url}/v1/health").json()
        assert after["chain_id"] == before["chain_id"]
        assert after["block"] >= before["block"]
        assert after["log_size"] == before["log_size"]
        with second.client("office") as c:
            assert [d.title for d in c.datasets()] == ["Permits"]
        with second.client("operator") as op:
            assert op.self_check().ok
            assert op.audit().ok


def test_trace_exports_the_lineage_and_flows_as_w3c_prov(
    broker: RunningBroker, tmp_path: Path
) -> None:
    """`drl trace ID --prov FILE`: PROV-JSON that the `prov` package reads back, never written
    over an existing file without --force, and only for a dataset."""
    office = new_member(broker, "prov-office", "department", "Statistics Office")
    ent = new_member(broker, "prov-ent", "enterprise", "Harbour Analytics")
    new_member(broker, "prov-dpa", "regulator", "Audit Office")
    source = tmp_path / "counts.csv"
    source.write_text("ward,count\n" + "".join(f"W{i},{i * 7}\n" for i in range(50)))
    extract = tmp_path / "extract.csv"
    extract.write_text("ward,count\n" + "".join(f"W{i},{i * 7}\n" for i in range(10)))
    with broker.client("prov-office") as owner, broker.client("prov-ent") as consumer:
        parent = owner.register(source, title="Ward counts")
        child = owner.register(extract, title="Ward counts, first ten", parents=(parent.id,))
        request = consumer.request_access(parent.id, purpose="housing study", days=7, uses=1)
        owner.approve(request.id)
        consumer.fetch(parent.id, tmp_path / "received.csv")
    out = tmp_path / "trail.prov.json"
    out.write_text("an older export\n")

    kept = broker.drl("trace", str(parent.id), "--as", "prov-dpa", "--prov", str(out))
    assert kept.returncode == 1
    assert kept.stderr.startswith("error [output_exists]"), kept.stderr
    assert out.read_text() == "an older export\n"
    member = broker.drl("trace", "--member", "prov-ent", "--as", "prov-dpa", "--prov", str(out))
    assert member.returncode == 1
    assert member.stderr.startswith("error [bad_arguments]"), member.stderr

    done = broker.drl("trace", str(parent.id), "--as", "prov-dpa", "--prov", str(out), "--force")
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: W3C PROV-JSON of dataset #{parent.id}" in done.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    doc = prov.read(str(out), format="json")
    assert doc is not None

    def ids(kind: type) -> set[str]:
        return {str(r.identifier.localpart) for r in doc.get_records(kind)}

    assert {str(parent.id), str(child.id)} <= ids(ProvEntity)
    assert ids(ProvAgent) == {office.address, ent.address}
    label = prov.model.PROV["label"]
    actions = sorted(str(dict(r.attributes)[label]) for r in doc.get_records(ProvActivity))
    assert actions == ["fetch", "grant", "receipt", "register", "register", "request"]
    (derived,) = doc.get_records(ProvDerivation)
    pair = dict(derived.attributes)
    assert str(pair[prov.model.PROV["generatedEntity"]].localpart) == str(child.id)
    assert str(pair[prov.model.PROV["usedEntity"]].localpart) == str(parent.id)

"""Data quality and the description standards, end to end against one real broker.

The owner's `drl` infers a Table Schema with frictionless, validates every row before it
encrypts, and signs the report's summary and digest; labels follow the labelling rules on the
owner's side, at the broker (nothing written on a refusal) and in member-side verify; the
catalog is served as DCAT-AP 3.0 JSON-LD that conforms to the official SHACL shapes; a fetched
dataset comes with a Frictionless Data Package descriptor that frictionless validates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.client.member import MemberKeys, prepare_upload
from ledger.quality import validate_file
from tests.support.http_kit import RunningBroker, new_member, running_broker
from tests.support.http_probe import Wire, error_code, snapshot

SHAPES = Path(__file__).resolve().parents[1] / "standards" / "dcat-ap-3.0.0" / "dcat-ap-SHACL.ttl"
PERMITS = (
    "permit_id,district,issued_on,units,status\n"
    "P-001,D4,2025-01-14,12,open\n"
    "P-002,D4,2025-02-03,3,closed\n"
    "P-003,D7,2025-03-21,40,open\n"
)


@dataclass
class World:
    broker: RunningBroker
    wire: Wire
    keys: dict[str, MemberKeys]
    work: Path
    dataset: dict[str, Any]

    def drl(self, *args: str) -> Any:
        return self.broker.drl(*args)

    def snapshot(self) -> Any:
        return snapshot(self.wire, self.keys["operator"], self.broker.home)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("quality")
    with running_broker(root / "home") as broker:
        wire = Wire(broker.url)
        keys: dict[str, MemberKeys] = {}
        for handle, kind, name in (
            ("office", "department", "District Planning Office"),
            ("coop", "enterprise", "Harbour Solar Cooperative"),
            ("auditor", "regulator", "Data Protection Authority"),
        ):
            new_member(broker, handle, kind, name)
            with broker.client(handle) as c:
                assert c.keys is not None
                keys[handle] = c.keys
        with broker.client("operator") as op:
            assert op.keys is not None
            keys["operator"] = op.keys
        work = root / "work"
        work.mkdir()
        (work / "permits.csv").write_text(PERMITS)
        done = broker.drl(
            "dataset", "register", str(work / "permits.csv"), "--as", "office",
            "--title", "District building permits", "--description", "Permits issued in 2025",
            "--theme", "GOVE", "--theme", "regi", "--keyword", "housing",
            "--frequency", "monthly", "--spatial", "District 4",
            "--temporal-start", "2025-01-01", "--temporal-end", "2025-12-31", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        try:
            yield World(broker, wire, keys, work, json.loads(done.stdout))
        finally:
            wire.close()


def _datasets(world: World) -> int:
    return int(world.wire.get(world.keys["auditor"], "/v1/datasets?limit=1000")["count"])


# -- frictionless: inference, review, validation, the signed report ----------------------------


def test_registration_infers_the_schema_and_signs_the_report_summary(world: World) -> None:
    meta = world.dataset["metadata"]
    fields = {f["name"]: f["type"] for f in meta["schema"]["fields"]}
    assert fields == {
        "permit_id": "string",
        "district": "string",
        "issued_on": "date",
        "units": "integer",
        "status": "string",
    }
    quality = meta["quality"]
    assert quality["standard"] == "frictionless-table-schema"
    assert (quality["rows"], quality["errors"], quality["truncated"]) == (3, 0, False)
    assert quality["bytes"] == len(PERMITS.encode())
    # The owner can show the full report later: it hashes to the digest it signed.
    report = world.work / "report.json"
    done = world.drl("dataset", "check", str(world.work / "permits.csv"), "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert quality["report_sha256"] in done.stdout
    again = validate_file(world.work / "permits.csv", meta["schema"])
    assert again.report_sha256() == quality["report_sha256"]


def test_the_owner_reviews_the_inferred_schema_in_one_command(world: World) -> None:
    out = world.work / "reviewed.schema.json"
    done = world.drl("dataset", "schema", str(world.work / "permits.csv"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "issued_on" in done.stdout
    assert "date" in done.stdout
    assert json.loads(out.read_text())["fields"][0]["name"] == "permit_id"


def test_every_constraint_is_checked_and_a_failing_file_is_refused(world: World) -> None:
    schema = {
        "fields": [
            {"name": "permit_id", "type": "string", "constraints": {"pattern": "P-[0-9]{3}"}},
            {"name": "district", "type": "string", "constraints": {"maxLength": 2}},
            {"name": "issued_on", "type": "date", "constraints": {"required": True}},
            {"name": "units", "type": "integer", "constraints": {"minimum": 1, "maximum": 30}},
            {"name": "status", "type": "string", "constraints": {"enum": ["open", "closed"]}},
        ],
        "primaryKey": ["permit_id"],
    }
    (world.work / "strict.json").write_text(json.dumps(schema))
    bad = world.work / "bad.csv"
    bad.write_text(
        "permit_id,district,issued_on,units,status\n"
        "P-001,D4,2025-01-14,12,open\n"
        "P-001,D40,,0,pending\n"
        "X-9,D4,2025-13-01,99,open\n"
    )
    before = _datasets(world)
    done = world.drl(
        "dataset", "register", str(bad), "--as", "office", "--title", "Bad permits",
        "--schema", str(world.work / "strict.json"),
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error [quality_check_failed]:"), done.stderr
    assert _datasets(world) == before
    report = validate_file(bad, schema)
    # required, maxLength, minimum, maximum, enum and pattern; a repeated key; a bad date
    assert report.error_types == {"constraint-error": 6, "primary-key": 1, "type-error": 1}
    kinds = " ".join(report.errors)
    for needle in ("required", "maxLength", "minimum", "maximum", "enum", "pattern", "primary"):
        assert needle in kinds, (needle, report.errors)


def test_json_and_excel_are_checked_the_same_way_and_other_formats_refused(world: World) -> None:
    rows = [{"ward": "harbour", "roofs": 412}, {"ward": "quay", "roofs": 97}]
    as_json = world.work / "roofs.json"
    as_json.write_text(json.dumps(rows))
    done = world.drl(
        "dataset", "register", str(as_json), "--as", "office", "--title", "Roofs", "--json"
    )
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)["metadata"]
    assert meta["media_type"] == "application/json"
    assert [f["type"] for f in meta["schema"]["fields"]] == ["string", "integer"]
    assert meta["quality"]["rows"] == 2

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (("ward", "roofs"), ("harbour", 412), ("quay", "many")):
        sheet.append(row)
    xlsx = world.work / "roofs.xlsx"
    book.save(xlsx)
    schema = world.work / "roofs.schema.json"
    schema.write_text(
        json.dumps({"fields": [{"name": "ward"}, {"name": "roofs", "type": "integer"}]})
    )
    checked = validate_file(xlsx, json.loads(schema.read_text()))
    assert (checked.rows, checked.error_types) == (2, {"type-error": 1})
    assert checked.media_type.endswith("spreadsheetml.sheet")

    other = world.work / "roofs.pdf"
    other.write_bytes(b"%PDF-1.7")
    before = _datasets(world)
    done = world.drl("dataset", "register", str(other), "--as", "office", "--title", "PDF")
    assert done.returncode == 1
    assert done.stderr.startswith("error [data_format_unsupported]:"), done.stderr
    assert _datasets(world) == before


# -- labelling rules ---------------------------------------------------------------------------


def test_the_owners_client_refuses_labels_that_break_the_rules(world: World) -> None:
    source = str(world.work / "permits.csv")
    for extra, code in (
        (["--personal-data", "--classification", "public"], "label_rule_broken"),
    ):  # every other label refusal: tests/unit/test_quality_labels.py
        done = world.drl("dataset", "register", source, "--as", "office", "--title", "X", *extra)
        assert done.returncode == 1
        assert done.stderr.startswith(f"error [{code}]:"), (extra, done.stderr)


def _upload(world: World, name: str, labels: dict[str, Any], classification: str) -> Any:
    source = world.work / name
    source.write_text(f"ward,roofs\n{name},1\n")
    out = world.work / f"{name}-enc"
    out.mkdir()
    keys = world.keys["office"]
    nonce = world.wire.get(keys, f"/v1/members/{keys.address}/nonces")["data_registry"]
    prepared = prepare_upload(
        keys,
        source,
        workdir=out,
        title=name,
        domains=world.wire.domains,
        chain_nonce=int(nonce),
        classification=classification,  # type: ignore[arg-type]
    )
    # A client that skips the rules: the labels go into the signed document unchecked.
    metadata = {**prepared.metadata, **labels}
    from ledger.protocol.actions import sign_action
    from ledger.protocol.documents import metadata_hash

    message = {**prepared.signed.message, "metadataHash": "0x" + metadata_hash(metadata).hex()}
    signed = sign_action(keys.account, "register", message, world.wire.domains)
    body = {
        "signed": signed.to_json(),
        "metadata": metadata,
        "owner_wrapped_key": "0x" + prepared.owner_wrapped_key.hex(),
    }
    return world.wire.send(keys, "POST", "/v1/datasets/uploads", json_body=body)


@pytest.mark.parametrize(
    ("labels", "classification", "code"),
    [
        ({"personal_data": True}, "public", "label_rule_broken"),
        ({"themes": ["JUST"]}, "internal", "label_rule_broken"),
        ({"themes": ["XXXX"]}, "internal", "label_unknown"),
        ({"update_frequency": "SOMETIMES"}, "internal", "label_unknown"),
        ({"temporal": {"start": "2025-12-31", "end": "2025-01-01"}}, "internal", "label_unknown"),
    ],
)
def test_the_broker_refuses_labels_that_break_the_rules_and_writes_nothing(
    world: World, labels: dict[str, Any], classification: str, code: str
) -> None:
    before = world.snapshot()
    response = _upload(world, f"labels-{code}-{len(str(labels))}", labels, classification)
    assert (response.status_code, error_code(response)) == (422, code), response.text
    assert before.changes(world.snapshot()) == []


# -- DCAT-AP 3.0 and the Data Package ----------------------------------------------------------


def _conforms(document: dict[str, Any]) -> None:
    from pyshacl import validate
    from rdflib import Graph

    data = Graph().parse(data=json.dumps(document), format="json-ld")
    shapes = Graph().parse(SHAPES, format="turtle")
    ok, _, text = validate(data, shacl_graph=shapes, inference="none")
    assert ok, text


def test_the_catalog_is_served_as_dcat_ap_json_ld_that_conforms(world: World) -> None:
    response = world.wire.send(world.keys["coop"], "GET", "/v1/catalog.jsonld")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    doc = response.json()
    _conforms(doc)
    node = next(d for d in doc["dcat:dataset"] if d["dct:identifier"] == str(world.dataset["id"]))
    assert node["dct:publisher"]["foaf:name"] == "District Planning Office"
    assert sorted(t["@id"].rsplit("/", 1)[1] for t in node["dcat:theme"]) == ["GOVE", "REGI"]
    assert node["dct:accrualPeriodicity"]["@id"].endswith("/frequency/MONTHLY")
    assert node["dct:accessRights"]["@id"].endswith("/access-right/RESTRICTED")
    dist = node["dcat:distribution"]
    assert dist["dcat:byteSize"]["@value"] == str(len(PERMITS.encode()))
    assert (
        dist["spdx:checksum"]["spdx:checksumValue"]["@value"]
        == (world.dataset["metadata"]["quality"]["sha256"])
    )
    unsigned = world.wire.send(None, "GET", "/v1/catalog.jsonld")
    assert (unsigned.status_code, error_code(unsigned)) == (401, "unauthenticated")


def test_drl_dataset_show_dcat_prints_a_conforming_description(world: World) -> None:
    done = world.drl("dataset", "show", str(world.dataset["id"]), "--as", "coop", "--dcat")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    _conforms(doc)
    assert doc["dct:title"]["@value"] == "District building permits"


def test_a_fetched_dataset_comes_with_a_data_package_that_validates(world: World) -> None:
    dataset_id = world.dataset["id"]
    with world.broker.client("coop") as coop:
        request = coop.request_access(dataset_id, purpose="Rooftop solar planning", days=5, uses=2)
    with world.broker.client("office") as office:
        office.approve(request.id)
    out = world.work / "fetched.csv"
    done = world.drl("dataset", "fetch", str(dataset_id), "--as", "coop", "-o", str(out))
    assert done.returncode == 0, done.stderr
    package = world.work / "fetched.csv.datapackage.json"
    import frictionless

    report = frictionless.Package(str(package.name), basepath=str(package.parent)).validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    assert report.tasks[0].stats["rows"] == 3


# -- the standard request form -----------------------------------------------------------------


def test_the_request_form_is_signed_shown_at_approval_carried_by_the_grant_and_traced(
    world: World,
) -> None:
    dataset_id = str(world.dataset["id"])
    done = world.drl(
        "access", "request", dataset_id, "--as", "coop", "--purpose", "Rooftop solar siting study",
        "--days", "10", "--uses", "2", "--category", "research", "--legal-basis", "public-task",
        "--retention-days", "30", "--location", "de", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    request = json.loads(done.stdout)
    assert (request["purpose_category"], request["legal_basis"]) == ("research", "public-task")
    assert (request["retention_days"], request["processing_location"]) == (30, "DE")
    done = world.drl("access", "approve", str(request["id"]), "--as", "office")
    assert done.returncode == 0, done.stderr
    assert "(research); legal basis public-task; kept 30 days after the grant; processed in DE" in (
        done.stdout
    )
    records = world.wire.get(world.keys["auditor"], "/v1/log/records?limit=1000")["data"]
    leaves = [json.loads(r["leaf"]) for r in records]
    grants = [leaf for leaf in leaves if leaf["signed"]["action"] == "grant"]
    terms = grants[-1]["context"]["terms"]
    assert (terms["v"], terms["purpose_category"], terms["processing_location"]) == (
        2,
        "research",
        "DE",
    )
    # Regulators see the form in the trace (the signed request's own fields).
    flows = world.wire.get(world.keys["auditor"], f"/v1/trace/datasets/{dataset_id}")["flows"]
    asked = next(f for f in flows if f["action"] == "request" and f["seq"] == request["log_seq"])
    assert asked["detail"]["legalBasis"] == "public-task"
    assert asked["detail"]["retentionDays"] == 30


def test_a_request_form_outside_its_lists_is_refused_and_writes_nothing(world: World) -> None:
    done = world.drl(
        "access", "request", str(world.dataset["id"]), "--as", "coop", "--purpose",
        "Marketing of solar panels", "--days", "5", "--category", "marketing",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error [request_form_invalid]:"), done.stderr
    from tests.support.http_probe import signed

    keys = world.keys["coop"]
    body = signed(
        keys,
        "request",
        {
            "requester": keys.address,
            "datasetId": world.dataset["id"],
            "purpose": "Marketing of solar panels",
            "purposeCategory": "research",
            "legalBasis": "because-we-can",
            "retentionDays": 0,
            "processingLocation": "EU",
            "days": 5,
            "maxUses": 1,
        },
        world.wire.domains,
    )
    before = world.snapshot()
    response = world.wire.send(keys, "POST", "/v1/requests", json_body=body)
    assert (response.status_code, error_code(response)) == (422, "request_form_invalid")
    assert before.changes(world.snapshot()) == []


# -- the lifecycle: versions, quality issues and their answers, freshness, the score ------------


STOCK_SCHEMA = {"fields": [{"name": "ward"}, {"name": "dwellings", "type": "integer"}]}


def _answer_body(world: World, who: str, issue_id: int, verdict: str, **extra: Any) -> Any:
    from tests.support.http_probe import signed

    keys = world.keys[who]
    message = {
        "owner": keys.address,
        "issueId": issue_id,
        "verdict": verdict,
        "fixedIn": 0,
        "reason": "",
    } | extra
    return signed(keys, "answer", message, world.wire.domains)


def test_versions_issues_answers_freshness_and_the_score(world: World) -> None:
    source = world.work / "stock.csv"
    source.write_text("ward,dwellings\nharbour,412\nquay,97\n")
    with world.broker.client("office") as office:
        first = office.register(
            source,
            title="Dwelling stock",
            schema=STOCK_SCHEMA,
            quality=validate_file(source, STOCK_SCHEMA).summary(),
            labels={"themes": ["REGI"], "update_frequency": "MONTHLY"},
        )
    with world.broker.client("coop") as coop:
        request = coop.request_access(first.id, purpose="Rooftop solar siting", days=5, uses=2)
    with world.broker.client("office") as office:
        office.approve(request.id)
    with world.broker.client("coop") as coop:
        coop.fetch(first.id, world.work / "stock-fetched.csv")
    # The consumer files a signed issue about what it received.
    with world.broker.client("coop") as coop:
        issue = coop.report_issue(
            first.id, fields="dwellings", rows="3", problem="quay counts buildings, not dwellings"
        ).model_dump()
    assert (issue["status"], issue["fields"], issue["rows"]) == ("open", "dwellings", "3")

    # Refusals write nothing: a member that received nothing, a stranger's answer, a fix in a
    # version that does not exist yet.
    before = world.snapshot()
    from tests.support.http_probe import signed

    office_keys = world.keys["office"]
    for who, target, body, expected in (
        (
            "office",
            "/v1/issues",
            signed(
                office_keys, "issue",
                {"reporter": office_keys.address, "datasetId": first.id, "fields": "", "rows": "",
                 "problem": "the owner received nothing"},
                world.wire.domains,
            ),
            (403, "not_a_recipient"),
        ),
        ("coop", f"/v1/issues/{issue['id']}/answer",
         _answer_body(world, "coop", issue["id"], "acknowledged"), (403, "not_owner")),
        ("office", f"/v1/issues/{issue['id']}/answer",
         _answer_body(world, "office", issue["id"], "fixed", fixedIn=first.id),
         (422, "not_a_later_version")),
        ("office", f"/v1/issues/{issue['id'] + 1000}/answer",
         _answer_body(world, "office", issue["id"] + 1000, "acknowledged"),
         (404, "issue_not_found")),
        ("office", f"/v1/issues/{issue['id']}/answer",
         _answer_body(world, "office", issue["id"], "rejected"), (422, "invalid_field")),
    ):  # fmt: skip
        response = world.wire.send(world.keys[who], "POST", target, json_body=body)
        assert (response.status_code, error_code(response)) == expected, response.text
    assert before.changes(world.snapshot()) == []

    # The owner registers the next version, linked on chain; the consumer sees it.
    source.write_text("ward,dwellings\nharbour,412\nquay,131\n")
    done = world.drl("dataset", "update", str(first.id), str(source), "--as", "office", "--json")
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert second["previous_version"] == first.id
    assert second["metadata"]["update_frequency"] == "MONTHLY"
    assert second["metadata"]["schema"] == first.metadata["schema"]
    with world.broker.client("coop") as coop:
        assert coop.dataset(first.id).newer_version == second["id"]
        assert coop.chain_view().chain.dataset(second["id"]).previous_version == first.id
    done = world.drl(
        "issue", "answer", str(issue["id"]), "--as", "office", "--verdict", "fixed",
        "--fixed-in", str(second["id"]), "--reason", "recounted as dwellings",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = world.wire.send(
        office_keys,
        "POST",
        f"/v1/issues/{issue['id']}/answer",
        json_body=_answer_body(world, "office", issue["id"], "acknowledged"),
    )
    assert (again.status_code, error_code(again)) == (409, "issue_answered")

    # The score: validation 1, freshness kept (the next version came in time), one fixed issue.
    with world.broker.client("coop") as coop:
        score = coop.quality(first.id)
        assert (score.score, score.counts["fixed"], score.lapsed) == (95, 1, False)
        latest = coop.quality(second["id"])
        assert (latest.score, latest.lapsed) == (100, False)
        later = coop.quality(second["id"], as_of=latest.as_of + 40 * 86400)
        assert (later.score, later.freshness, later.lapsed) == (50, 0.5, True)
    # A regulator recomputes it from the log it verified on its own machine.
    done = world.drl("dataset", "quality", str(first.id), "--as", "auditor", "--verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "score 95" in done.stdout
    assert "recomputed from the log verified on this machine: same" in done.stdout
    # `drl dataset show` puts versions, the score and the issues on the dataset's page.
    done = world.drl("dataset", "show", str(first.id), "--as", "coop", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["newer_version"], shown["score"]["score"]) == (second["id"], 95)
    assert [(i["id"], i["status"]) for i in shown["issues"]] == [(issue["id"], "fixed")]
    done = world.drl("dataset", "show", str(first.id), "--as", "coop")
    assert f"newer version  #{second['id']}" in done.stdout
    assert "quality score  95 (validation 1.0, freshness 1.0, issues 0.95)" in done.stdout
    assert "quality issues  1 fixed" in done.stdout


# -- a new version: the owner's grant policy ---------------------------------------------------


def test_live_grants_carry_over_to_a_new_version_when_the_owner_says_so(world: World) -> None:
    source = world.work / "counts.csv"
    source.write_text("ward,vehicles\nharbour,1200\nquay,310\n")
    with world.broker.client("office") as office:
        first = office.register(source, title="Traffic counts", labels={"themes": ["TRAN"]})
    with world.broker.client("coop") as coop:
        request = coop.request_access(first.id, purpose="Charging-point siting", days=5, uses=3)
    with world.broker.client("office") as office:
        office.approve(request.id)
    with world.broker.client("coop") as coop:
        coop.fetch(first.id, world.work / "counts-v1.csv")  # one use of three
        live = coop.chain_view().chain.grant_of(first.id, world.keys["coop"].address)

    # The owner's policy: carry. The grant is signed again for the new version, on the terms the
    # chain holds: same purpose and form, the same expiry, the two uses left.
    source.write_text("ward,vehicles\nharbour,1250\nquay,305\n")
    done = world.drl(
        "dataset", "update", str(first.id), str(source), "--as", "office", "--grants", "carry",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    (carried,) = second["carried"]
    assert second["skipped"] == []
    assert (carried["dataset_id"], carried["grantee"]) == (second["id"], world.keys["coop"].address)
    assert (carried["expires_at"], carried["max_uses"], carried["request_id"]) == (
        live.expires_at,
        2,
        request.id,
    )
    with world.broker.client("coop") as coop:
        got = coop.fetch(second["id"], world.work / "counts-v2.csv")
        assert (world.work / "counts-v2.csv").read_text() == source.read_text()
        assert got.uses_left == 1
    record = world.wire.get(world.keys["auditor"], f"/v1/log/records/{carried['log_seq']}")
    leaf = json.loads(record["leaf"])
    assert (record["action"], leaf["context"]["carried_from"]) == (
        "grant",
        _grants(world, first.id)[0].id,
    )

    # Refusals write nothing: carrying twice, carrying to a dataset that is not the next version.
    before = world.snapshot()
    with world.broker.client("office") as office:
        (old,) = [g for g in office.grants(first.id) if g.dataset_id == first.id]
        for target, expected in (
            (second["id"], (409, "already_granted")),
            (int(world.dataset["id"]), (422, "not_next_version")),
        ):
            body = office.carry_body(old, target).model_dump(mode="json")
            response = world.wire.send(
                world.keys["office"], "POST", f"/v1/grants/{old.id}/carry", json_body=body
            )
            assert (response.status_code, error_code(response)) == expected, response.text
    assert before.changes(world.snapshot()) == []

    # A revoked grant is not carried: the next update says so and carries nothing.
    assert world.drl("access", "revoke", str(carried["id"]), "--as", "office").returncode == 0
    source.write_text("ward,vehicles\nharbour,1300\nquay,300\n")
    done = world.drl(
        "dataset", "update", str(second["id"]), str(source), "--as", "office", "--grants",
        "carry", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    third = json.loads(done.stdout)
    assert third["carried"] == []
    assert third["skipped"] == [[carried["id"], world.keys["coop"].address, "grant_revoked"]]


def _grants(world: World, dataset_id: int) -> list[Any]:
    with world.broker.client("office") as office:
        return [g for g in office.grants(dataset_id) if g.dataset_id == dataset_id]


def test_credits_are_weighted_by_the_quality_score_and_verify_recomputes_it(world: World) -> None:
    """One row in four breaks the schema: validation 0.75, so the score is 75 and the first
    credit (6 by the chain's rules) is weighted to 5; the regulator's verify agrees."""
    source = world.work / "bins.csv"
    source.write_text("ward,bins\nharbour,40\nquay,-3\npier,12\nmarsh,9\n")
    schema = {
        "fields": [
            {"name": "ward"},
            {"name": "bins", "type": "integer", "constraints": {"minimum": 0}},
        ]
    }
    report = validate_file(source, schema)
    assert (report.rows, report.error_count) == (4, 1)
    with world.broker.client("office") as office:
        dataset = office.register(
            source, title="Litter bins", schema=schema, quality=report.summary()
        )
    # A consumer new to this owner: its first delivery in the epoch earns the first credit.
    new_member(world.broker, "sweep", "enterprise", "Harbour Sweepers Ltd")
    with world.broker.client("sweep") as coop:
        request = coop.request_access(dataset.id, purpose="Route planning", days=5, uses=1)
    with world.broker.client("office") as office:
        office.approve(request.id)
    with world.broker.client("sweep") as coop:
        coop.fetch(dataset.id, world.work / "bins-fetched.csv")
        assert coop.quality(dataset.id).score == 75
    with world.broker.client("operator") as op:
        op.anchor()
    with world.broker.client("auditor") as auditor:
        chain = auditor.chain_view().chain
        (minted,) = [
            e.args
            for e in chain.events("SharingCredits", "CreditsMinted")
            if e.args["datasetId"] == dataset.id
        ]
        rules = chain.credit_rules()
    assert minted["quality"] == 75
    assert minted["amount"] == (rules.first_credit * 75 + 50) // 100
    done = world.drl("verify", "--as", "auditor")
    assert done.returncode == 0, done.stdout + done.stderr

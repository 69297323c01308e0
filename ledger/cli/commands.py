"""The member, admin, dataset, access, credits, trace and verify commands (over the broker)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ledger.cli.common import AsOpt, JsonOpt, client, emit, err, out, passphrase, settings
from ledger.client import keystore
from ledger.client.audit_sources import plain
from ledger.errors import ConfigurationError, InvalidInput, LedgerError
from ledger.protocol.codes import ErrorCode
from ledger.types import Classification, MemberKind

if TYPE_CHECKING:
    from ledger.audit import AuditState, DatasetTrace, MemberTrace, Problem
    from ledger.quality import QualityReport

member_app = typer.Typer(help="Local member identities.", no_args_is_help=True)
admin_app = typer.Typer(
    help="Operator actions, signed with the ADMIN key (which may live off the broker host).",
    no_args_is_help=True,
)
dataset_app = typer.Typer(help="Register, browse and fetch datasets.", no_args_is_help=True)
access_app = typer.Typer(help="Request, approve, deny and revoke access.", no_args_is_help=True)


def _progress(total: int, label: str) -> Progress:
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    bar.add_task(label, total=total)
    return bar


# -- members ------------------------------------------------------------------------------


@member_app.command("new")
def member_new(
    handle: Annotated[str, typer.Argument(help="Local name for the identity.")],
    kind: Annotated[MemberKind, typer.Option(help="department, enterprise or regulator")],
    name: Annotated[str, typer.Option(help="The organisation's name.")],
    pq: Annotated[
        bool, typer.Option("--pq", help="Post-quantum hybrid ML-KEM-768+X25519.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a signing key and an encryption key pair, encrypted under the passphrase."""
    cfg = settings()
    p = keystore.create(
        cfg.home.expanduser(), handle, kind=kind, name=name, passphrase=passphrase(cfg), pq=pq
    )
    emit(
        p.__dict__,
        as_json,
        f"created {p.kind} [bold]{handle}[/] {p.address} "
        f"(HPKE suite {p.key_suite}); ask the operator: drl admin onboard {handle}",
    )


@member_app.command("list")
def member_list(as_json: JsonOpt = False) -> None:
    """Local identities."""
    home = settings().home.expanduser()
    rows = [keystore.profile(home, h).__dict__ for h in keystore.handles(home)]
    if as_json:
        emit(rows, True)
        return
    for r in rows:
        out.print(f"{r['handle']:<20} {r['kind']:<11} {r['address']}  {r['name']}")


def _resolve_member(handle_or_address: str) -> keystore.Profile | str:
    if handle_or_address.startswith("0x") and len(handle_or_address) == 42:
        return handle_or_address
    return keystore.profile(settings().home.expanduser(), handle_or_address)


@admin_app.command("init")
def admin_init(as_json: JsonOpt = False) -> None:
    """Create the ADMIN key on this machine (DRL_ADMIN_KEY, default HOME/admin/) and show it.

    Start the broker elsewhere with DRL_ADMIN_ADDRESS set to the address printed here: the
    broker host then never holds the ADMIN key (docs/deployment.md).
    """
    from eth_account import Account

    from ledger.keys import save_account

    cfg = settings()
    path = cfg.admin_key_path
    if path.exists():
        raise InvalidInput(f"an ADMIN key already exists at {path}", code=ErrorCode.BAD_ARGUMENTS)
    account = Account.create()
    save_account(path, account, passphrase(cfg))
    info = {"address": account.address, "keystore": str(path)}
    emit(
        info,
        as_json,
        f"ADMIN key {account.address} created at {path}; start the broker with "
        f"DRL_ADMIN_ADDRESS={account.address}",
    )


@admin_app.command("onboard")
def admin_onboard(
    handle: Annotated[str, typer.Argument(help="Local identity to onboard.")],
    as_json: JsonOpt = False,
) -> None:
    """Onboard a local identity on chain (operator)."""
    p = keystore.profile(settings().home.expanduser(), handle)
    with client("operator") as c:
        m = c.onboard(
            address=p.address,
            kind=p.kind,
            name=p.name,
            key_suite=p.key_suite,
            encryption_key=bytes.fromhex(p.encryption_key[2:]),
        )
    emit(m, as_json, f"onboarded {m.kind} {m.name!r} {m.address} tx {m.onboarded_tx}")


@admin_app.command("suspend")
def admin_suspend(
    member: Annotated[str, typer.Argument(help="Handle or address.")], as_json: JsonOpt = False
) -> None:
    """Suspend a member (operator)."""
    target = _resolve_member(member)
    address = target if isinstance(target, str) else target.address
    with client("operator") as c:
        m = c.suspend(address)
    emit(m, as_json, f"suspended {m.name!r} {m.address}")


@admin_app.command("reinstate")
def admin_reinstate(
    member: Annotated[str, typer.Argument(help="Handle or address.")], as_json: JsonOpt = False
) -> None:
    """Lift a member's suspension (operator)."""
    target = _resolve_member(member)
    address = target if isinstance(target, str) else target.address
    with client("operator") as c:
        m = c.reinstate(address)
    emit(m, as_json, f"reinstated {m.name!r} {m.address}")


@admin_app.command("cosign")
def admin_cosign(request_id: int, as_json: JsonOpt = False) -> None:
    """Co-sign a grant of SENSITIVE data to an enterprise that awaits it (operator)."""
    with client("operator") as c:
        a = c.cosign(request_id)
    g = a.grant
    assert g is not None
    emit(
        a,
        as_json,
        f"co-signed: grant #{g.id} of dataset #{g.dataset_id} to {g.grantee}, generation "
        f"{g.generation}, tx {g.granted_tx}",
    )


@admin_app.command("reassign")
def admin_reassign(
    dataset_id: int,
    to: Annotated[str, typer.Argument(help="Handle or address of the rightful holder.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the flow log; its hash is signed).")],
    as_json: JsonOpt = False,
) -> None:
    """The dispute path: move a data-rights certificate to its rightful holder (operator)."""
    target = _resolve_member(to)
    address = target if isinstance(target, str) else target.address
    with client("operator") as c:
        d = c.reassign(dataset_id, address, reason)
    emit(d, as_json, f"dataset #{d.id} reassigned to {d.owner}; reason logged")


@admin_app.command("self-check")
def admin_self_check(as_json: JsonOpt = False) -> None:
    """The broker's check of itself (index, blobs, log): the operator's tool, not evidence.

    Members and regulators use `drl verify`, which checks the broker from this machine.
    """
    with client("operator") as c:
        r = c.self_check()
    if as_json:
        emit(r, True)
    else:
        checked = ", ".join(f"{v} {k}" for k, v in r.checked.items())
        if r.ok:
            out.print(f"[green]broker self-check passed[/]: {checked}")
        for p in r.problems:
            out.print(f"[red]FAIL[/] {escape(f'{p.where}: {p.what}')}", highlight=False)
    if not r.ok:
        raise typer.Exit(1)


@admin_app.command("anchor")
def admin_anchor(as_json: JsonOpt = False) -> None:
    """Anchor the flow log now and mint due credits (the broker also does it periodically)."""
    with client("operator") as c:
        r = c.anchor()
    emit(
        r,
        as_json,
        f"tree size {r.tree_size}: "
        + (f"anchored, tx {r.tx_hash}" if r.anchored else "already anchored")
        + f"; {r.credited} deliveries credited, {r.minted} credits minted",
    )


# -- datasets -----------------------------------------------------------------------------


def _quality(
    file: Path, schema: Path | None, *, accept_errors: bool
) -> tuple[dict[str, Any], QualityReport]:
    """The schema (given, else inferred) and frictionless's report; refuses a failing file."""
    from ledger.quality import check_file, load_schema

    used, report = check_file(file, load_schema(schema) if schema is not None else None)
    if not report.ok and not accept_errors:
        shown = "; ".join(report.errors[:3])
        against = schema.name if schema is not None else "the inferred schema"
        raise InvalidInput(
            f"{report.error_count}{'+' if report.truncated else ''} quality errors against "
            f"{against}: {shown} (see drl dataset check {file.name})",
            code=ErrorCode.QUALITY_CHECK_FAILED,
        )
    return used, report


def _labels(
    *,
    classification: str,
    themes: list[str] | None,
    personal_data: bool,
    keywords: list[str] | None,
    frequency: str | None,
    spatial: str | None,
    temporal_start: str | None,
    temporal_end: str | None,
) -> dict[str, Any]:
    """The labelling members of the metadata document, checked against the rules."""
    from ledger.protocol.labels import check_labels

    labels: dict[str, Any] = {
        "themes": [t.upper() for t in themes or []],
        "personal_data": personal_data,
        "keywords": [k.strip() for k in keywords or []],
    }
    if frequency:
        labels["update_frequency"] = frequency.upper()
    if spatial:
        labels["spatial"] = spatial
    temporal = {
        k: v for k, v in (("start", temporal_start), ("end", temporal_end)) if v is not None
    }
    if temporal:
        labels["temporal"] = temporal
    check_labels(labels, classification)
    return labels


ThemeOpt = Annotated[
    list[str] | None,
    typer.Option("--theme", help="EU data theme code, e.g. ENVI, GOVE, HEAL (repeatable)."),
]
PersonalOpt = Annotated[
    bool,
    typer.Option(
        "--personal-data/--no-personal-data", help="Whether it describes identifiable persons."
    ),
]
KeywordOpt = Annotated[list[str] | None, typer.Option("--keyword", help="Keyword (repeatable).")]
FrequencyOpt = Annotated[
    str | None,
    typer.Option(help="Update frequency promised (EU code: DAILY, WEEKLY, MONTHLY, ANNUAL, …)."),
]
SchemaOpt = Annotated[
    Path | None,
    typer.Option(
        exists=True, dir_okay=False, help="Table Schema (JSON); inferred from the file if absent."
    ),
]
AcceptErrorsOpt = Annotated[
    bool,
    typer.Option(
        "--accept-errors",
        help="Register even if rows fail the schema (the signed summary says how many).",
    ),
]


@dataset_app.command("schema")
def dataset_schema(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the schema here (JSON).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Infer a Table Schema from FILE (frictionless) for review; edit it and pass --schema."""
    from ledger.quality import infer_schema

    inferred = infer_schema(file)
    if output is not None:
        output.write_text(json.dumps(inferred, indent=2) + "\n", encoding="utf-8")
    if as_json:
        emit(inferred, True)
        return
    table = Table("field", "type", "format", "constraints", box=None)
    for f in inferred["fields"]:
        table.add_row(
            f["name"],
            f.get("type", "any"),
            f.get("format", ""),
            json.dumps(f.get("constraints", {})),
        )
    out.print(table)
    if output is not None:
        out.print(f"wrote {output}; review it, then: drl dataset register {file} --schema {output}")


@dataset_app.command("check")
def dataset_check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    schema: SchemaOpt = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write frictionless's full report here (JSON)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate every row of FILE against its schema, as registration will (no upload)."""
    from ledger.quality import check_file, load_schema

    used, result = check_file(file, load_schema(schema) if schema is not None else None)
    if report is not None:
        report.write_text(json.dumps(result.document(), indent=2) + "\n", encoding="utf-8")
    if as_json:
        emit({"schema": used, "summary": result.summary(), "errors": result.errors}, True)
    else:
        s = result.summary()
        verdict = "[green]valid[/]" if result.ok else "[red]invalid[/]"
        out.print(
            f"{verdict}: {s['rows']} rows, {len(s['fields'])} fields, {s['errors']} errors "
            f"({s['standard']}); report sha256 {s['report_sha256']}",
            highlight=False,
        )
        for line in result.errors:
            out.print(f"  {escape(line)}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@dataset_app.command("register")
def dataset_register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str, typer.Option(help="Title shown in the catalog.")],
    as_: AsOpt = None,
    schema: SchemaOpt = None,
    classification: Annotated[Classification, typer.Option()] = "internal",
    derived_from: Annotated[
        list[int] | None, typer.Option("--derived-from", help="Parent dataset id (repeatable).")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    theme: ThemeOpt = None,
    personal_data: PersonalOpt = False,
    keyword: KeywordOpt = None,
    frequency: FrequencyOpt = None,
    spatial: Annotated[str | None, typer.Option(help="Place covered (name or URI).")] = None,
    temporal_start: Annotated[str | None, typer.Option(help="Period start, YYYY-MM-DD.")] = None,
    temporal_end: Annotated[str | None, typer.Option(help="Period end, YYYY-MM-DD.")] = None,
    accept_errors: AcceptErrorsOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate (frictionless), encrypt locally, upload, and register on chain."""
    labels = _labels(
        classification=classification,
        themes=theme,
        personal_data=personal_data,
        keywords=keyword,
        frequency=frequency,
        spatial=spatial,
        temporal_start=temporal_start,
        temporal_end=temporal_end,
    )
    schema_doc, report = _quality(file, schema, accept_errors=accept_errors)
    size = file.stat().st_size
    with client(as_) as c, _progress(size + 64, "encrypt+upload") as bar:
        d = c.register(
            file,
            title=title,
            classification=classification,
            parents=tuple(derived_from or ()),
            description=description,
            schema=schema_doc,
            quality=report.summary(),
            media_type=report.media_type,
            labels=labels,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    emit(
        d,
        as_json,
        f"registered dataset [bold]#{d.id}[/] {d.title!r} "
        f"({d.classification}) content {d.content_hash[:18]}… tx {d.registered_tx}; "
        f"quality {report.rows} rows, {report.error_count} errors",
    )


class GrantPolicy(StrEnum):
    """What happens to live grants when a dataset gets a new version."""

    carry = "carry"
    reapprove = "reapprove"


@dataset_app.command("update")
def dataset_update(
    dataset_id: Annotated[int, typer.Argument(help="The version this one supersedes.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_: AsOpt = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="A new Table Schema (default: the previous one's)."
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Default: the previous title.")] = None,
    description: Annotated[str | None, typer.Option(help="Default: the previous one.")] = None,
    temporal_start: Annotated[str | None, typer.Option(help="Period start, YYYY-MM-DD.")] = None,
    temporal_end: Annotated[str | None, typer.Option(help="Period end, YYYY-MM-DD.")] = None,
    accept_errors: AcceptErrorsOpt = False,
    grants: Annotated[
        GrantPolicy,
        typer.Option(
            help="carry: live grants of the previous version carry over, same terms, expiry "
            "and uses left; reapprove: grantees request the new version.",
        ),
    ] = GrantPolicy.reapprove,
    as_json: JsonOpt = False,
) -> None:
    """Register FILE as the next version of DATASET_ID (linked on chain by previousVersion).

    The new version keeps the previous one's labels, classification, lineage and schema (FILE
    must satisfy it unless --schema says otherwise). Your policy decides the grants: with
    --grants carry each live grant is signed again for the new version (its data key wrapped
    to the grantee's on-chain key); with reapprove (the default) grantees see that a newer
    version exists and request it.
    """
    from ledger.protocol.labels import LABEL_MEMBERS
    from ledger.quality import check_file, load_schema

    with client(as_) as c:
        previous = c.dataset(dataset_id)
        me = c.require_keys().address
        if previous.owner.lower() != me.lower():
            raise InvalidInput(
                f"dataset {dataset_id} belongs to {previous.owner}, not to you",
                code=ErrorCode.PREVIOUS_VERSION_NOT_OWNED,
            )
        if previous.newer_version is not None:
            raise InvalidInput(
                f"dataset {dataset_id} already has a newer version, #{previous.newer_version}: "
                f"update that one",
                code=ErrorCode.BAD_ARGUMENTS,
            )
        meta = previous.metadata
        given = load_schema(schema) if schema is not None else meta.get("schema")
        used, report = check_file(file, given)
        if not report.ok and not accept_errors:
            shown = "; ".join(report.errors[:3])
            raise InvalidInput(
                f"{report.error_count} quality errors against the "
                f"{'given' if schema is not None else 'previous version'}'s schema: {shown}",
                code=ErrorCode.QUALITY_CHECK_FAILED,
            )
        labels: dict[str, Any] = {k: meta[k] for k in LABEL_MEMBERS if k in meta}
        temporal = dict(labels.get("temporal") or {})
        if temporal_start is not None:
            temporal["start"] = temporal_start
        if temporal_end is not None:
            temporal["end"] = temporal_end
        if temporal:
            labels["temporal"] = temporal
        size = file.stat().st_size
        with _progress(size + 64, "encrypt+upload") as bar:
            d = c.register(
                file,
                title=title or previous.title,
                classification=previous.classification,  # type: ignore[arg-type]
                parents=tuple(previous.parents),
                previous_version=dataset_id,
                description=meta.get("description", "") if description is None else description,
                schema=used,
                quality=report.summary(),
                media_type=report.media_type,
                labels=labels,
                progress=lambda n: bar.advance(bar.task_ids[0], n),
            )
        carried = c.carry_grants(dataset_id, d.id) if grants is GrantPolicy.carry else None
    if carried is None:
        outcome = f"grants of #{dataset_id} do not carry over (grantees request #{d.id})"
    else:
        outcome = f"carried {_count(len(carried.carried), 'grant')} over" + "".join(
            f"; grant {gid} to {grantee} not carried [{code}]"
            for gid, grantee, code in carried.skipped
        )
    if as_json:
        extra = {} if carried is None else {"carried": carried.carried, "skipped": carried.skipped}
        emit(d.model_dump(mode="json") | extra, True)
        return
    out.print(
        f"registered dataset [bold]#{d.id}[/] as the next version of #{dataset_id} "
        f"content {d.content_hash[:18]}… tx {d.registered_tx}; quality {report.rows} rows, "
        f"{report.error_count} errors; {escape(outcome)}",
        highlight=False,
    )


@dataset_app.command("quality")
def dataset_quality(
    dataset_id: int,
    as_: AsOpt = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Recompute the score from the log verified on this machine (overseers).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The quality score (validation x freshness x issues, docs/standards.md) and the issues."""
    with client(as_) as c:
        served = c.quality(dataset_id)
        found = c.issues(dataset_id)
        recomputed = None
        if verify:
            report = c.audit()
            if not report.ok:
                _print_problems(report.problems)
                raise typer.Exit(1)
            recomputed = c.recompute_quality(dataset_id, as_of=served.as_of)
    same = recomputed is not None and recomputed.to_json() == served.model_dump()
    if as_json:
        emit(
            {
                "score": served,
                "issues": found,
                "recomputed": None if recomputed is None else recomputed.to_json(),
                "same": same if verify else None,
            },
            True,
        )
    else:
        out.print(
            f"dataset #{dataset_id}: score {served.score} = 100 x validation "
            f"{served.validation} x freshness {served.freshness}"
            f"{' (promise lapsed)' if served.lapsed else ''} x issues {served.issues}; "
            + ", ".join(f"{v} {k}" for k, v in served.counts.items()),
            highlight=False,
        )
        for i in found:
            answer = f" -> {i.status}" + (f" in #{i.fixed_in}" if i.fixed_in else "")
            out.print(
                f"  issue #{i.id} by {i.reporter[:10]}… (fields {escape(i.fields or '-')}, rows "
                f"{escape(i.rows or '-')}): {escape(i.problem[:60])}{answer}"
                + (f" ({escape(i.reason)})" if i.reason else ""),
                highlight=False,
            )
        if verify:
            out.print(
                "[green]recomputed from the log verified on this machine: same[/]"
                if same
                else f"[red]FAIL[/] recomputed {recomputed}",
                highlight=False,
            )
    if verify and not same:
        raise LedgerError(
            "the broker's quality score differs from the one recomputed from the verified log",
            code=ErrorCode.QUALITY_SCORE_MISMATCH,
        )


@dataset_app.command("list")
def dataset_list(as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """The catalog."""
    with client(as_) as c:
        rows = c.datasets()
    if as_json:
        emit(rows, True)
        return
    table = Table("id", "title", "class", "owner", "size", box=None)
    for d in rows:
        table.add_row(
            str(d.id), d.title, d.classification, d.owner[:10] + "…", f"{d.ciphertext_size:,}"
        )
    out.print(table)


@dataset_app.command("show")
def dataset_show(
    dataset_id: int,
    as_: AsOpt = None,
    dcat: Annotated[
        bool, typer.Option("--dcat", help="Print its DCAT-AP 3.0 description (JSON-LD).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """One dataset's certificate and metadata, its versions, quality score and issues.

    The score is the broker's figure (`drl dataset quality ID --verify` recomputes it from the
    log verified on this machine); the issues are those this member may see.
    """
    with client(as_) as c:
        d = c.dataset(dataset_id)
        publisher = c.member(d.owner).name if dcat else ""
        base = c.base_url if dcat else ""
        score = None if dcat else c.quality(dataset_id)
        issues = [] if dcat else c.issues(dataset_id)
    if dcat:
        from ledger.dcat import dataset_document

        doc = dataset_document(d.model_dump(mode="json"), base=base, publisher=publisher)
        out.print_json(json.dumps(doc))
        return
    assert score is not None
    if as_json:
        emit(d.model_dump(mode="json") | {"score": score, "issues": issues}, True)
        return
    for key in (
        "id",
        "title",
        "owner",
        "classification",
        "content_hash",
        "metadata_hash",
        "ciphertext_size",
        "parents",
        "previous_version",
        "registered_tx",
        "retired",
    ):
        out.print(f"{key:>17}  {getattr(d, key)}", highlight=False)
    if d.newer_version is not None:
        out.print(f"{'newer version':>17}  #{d.newer_version}", highlight=False)
    meta = d.metadata
    quality = meta.get("quality") or {}
    if quality:
        out.print(
            f"{'quality':>17}  {quality.get('rows')} rows, {quality.get('errors')} errors "
            f"against {quality.get('standard')} (report {quality.get('report_sha256', '-')})",
            highlight=False,
        )
    labels = {
        "themes": ", ".join(meta.get("themes") or []) or "-",
        "personal data": "yes" if meta.get("personal_data") else "no",
        "keywords": ", ".join(meta.get("keywords") or []) or "-",
        "update frequency": meta.get("update_frequency") or "-",
    }
    for key, value in labels.items():
        out.print(f"{key:>17}  {value}", highlight=False)
    lapsed = "; update promise lapsed" if score.lapsed else ""
    out.print(
        f"{'quality score':>17}  {score.score} (validation {score.validation}, freshness "
        f"{score.freshness}, issues {score.issues}{lapsed})",
        highlight=False,
    )
    by_status: dict[str, int] = {}
    for i in issues:
        by_status[i.status] = by_status.get(i.status, 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())) or "none"
    out.print(f"{'quality issues':>17}  {shown}", highlight=False)


@dataset_app.command("fetch")
def dataset_fetch(
    dataset_id: int,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the plaintext.")],
    as_: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download under your grant, decrypt, verify the content hash, sign the receipt."""
    from ledger.dcat import data_package

    with client(as_) as c:
        described = c.dataset(dataset_id)
        size = described.ciphertext_size
        with _progress(size, "download+decrypt") as bar:
            r = c.fetch(dataset_id, output, progress=lambda n: bar.advance(bar.task_ids[0], n))
    # The content hash verified against the chain binds the metadata document (through the
    # same signed registration), so the schema below is the one the owner signed.
    if described.newer_version is not None:
        err.print(
            f"note: dataset #{dataset_id} has a newer version, #{described.newer_version}",
            highlight=False,
        )
    package = output.with_name(output.name + ".datapackage.json")
    descriptor = data_package(described.model_dump(mode="json"), path=output.name)
    package.write_text(json.dumps(descriptor, indent=2) + "\n", encoding="utf-8")
    emit(
        r,
        as_json,
        f"wrote {output} — content hash {r.content_hash[:18]}… verified against the chain; "
        f"receipt signed; {r.uses_left} uses left; Data Package descriptor {package.name}",
    )


# -- access -------------------------------------------------------------------------------


@access_app.command("request")
def access_request(
    dataset_id: int,
    purpose: Annotated[str, typer.Option(help="What the data will be used for.")],
    days: Annotated[int, typer.Option(min=1, max=3650)],
    as_: AsOpt = None,
    uses: Annotated[int, typer.Option(min=1)] = 10,
    category: Annotated[
        str,
        typer.Option(
            help="Purpose category: public-service, policy-planning, official-statistics, "
            "research, product-development, service-provision, compliance, security."
        ),
    ] = "unspecified",
    legal_basis: Annotated[
        str,
        typer.Option(
            help="GDPR Art. 6(1) basis: consent, contract, legal-obligation, vital-interests, "
            "public-task, legitimate-interests."
        ),
    ] = "unspecified",
    retention_days: Annotated[
        int, typer.Option(help="Days the data may be kept after the grant ends (0: delete).")
    ] = 0,
    location: Annotated[
        str, typer.Option(help="Where it will be processed: ISO 3166-1 alpha-2 code, or EU.")
    ] = "unspecified",
    as_json: JsonOpt = False,
) -> None:
    """Ask a dataset's owner for access on the standard request form (signed, logged)."""
    from ledger.protocol.documents import RequestForm
    from ledger.protocol.labels import check_request_form

    form = RequestForm(
        purpose_category=category,
        legal_basis=legal_basis,
        retention_days=retention_days,
        processing_location=location if location == "unspecified" else location.upper(),
    )
    check_request_form(form.message())  # before anything is signed
    with client(as_) as c:
        r = c.request_access(dataset_id, purpose=purpose, days=days, uses=uses, form=form)
    emit(r, as_json, f"request [bold]#{r.id}[/] for dataset #{dataset_id}: {r.status}")


def _form_line(r: Any) -> str:
    """A request's standard form in one line (what the owner approves, what regulators see)."""
    return (
        f"purpose {r.purpose!r} ({r.purpose_category}); legal basis {r.legal_basis}; "
        f"kept {r.retention_days} days after the grant; processed in {r.processing_location}; "
        f"{r.days} days, {r.max_uses} uses"
    )


@access_app.command("list")
def access_list(as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Requests you made or received, and grants."""
    with client(as_) as c:
        requests, grants = c.requests(), c.grants()
    if as_json:
        emit({"requests": requests, "grants": grants}, True)
        return
    table = Table(
        "request", "dataset", "requester", "status", "days", "uses", "category", "basis",
        "kept", "where", "purpose", box=None,
    )  # fmt: skip
    for r in requests:
        table.add_row(
            str(r.id),
            str(r.dataset_id),
            r.requester[:10] + "…",
            r.status,
            str(r.days),
            str(r.max_uses),
            r.purpose_category,
            r.legal_basis,
            str(r.retention_days),
            r.processing_location,
            r.purpose[:40],
        )
    out.print(table)
    table = Table("grant", "dataset", "grantee", "uses", "expires", "revoked", box=None)
    for g in grants:
        table.add_row(
            str(g.id),
            str(g.dataset_id),
            g.grantee[:10] + "…",
            f"{g.uses}/{g.max_uses}",
            str(g.expires_at),
            str(g.revoked),
        )
    out.print(table)


@access_app.command("approve")
def access_approve(request_id: int, as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Approve: wrap the data key to the requester and sign the grant (owner).

    The request's standard form is shown with the outcome; the grant's signed terms carry it.
    """
    with client(as_) as c:
        r = c.request(request_id)
        a = c.approve(request_id)
    form = f"the request's form: {_form_line(r)}"
    key = f"wrapped to the key registered on chain, fingerprint {a.grantee_key_fingerprint}"
    if a.grant is None:
        emit(
            a,
            as_json,
            f"request #{request_id} awaits the operator's co-signature (SENSITIVE data to an "
            f"enterprise): drl admin cosign {request_id}; {key}; {form}",
        )
        return
    g = a.grant
    emit(
        a,
        as_json,
        f"grant [bold]#{g.id}[/] of dataset #{g.dataset_id} to "
        f"{g.grantee}: {g.max_uses} uses until {g.expires_at} tx {g.granted_tx}; {key}; {form}",
    )


@access_app.command("deny")
def access_deny(
    request_id: int,
    as_: AsOpt = None,
    reason: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Deny a request (owner)."""
    with client(as_) as c:
        r = c.deny(request_id, reason)
    emit(r, as_json, f"request #{r.id} denied")


@access_app.command("revoke")
def access_revoke(grant_id: int, as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a grant (owner)."""
    with client(as_) as c:
        g = c.revoke(grant_id)
    emit(g, as_json, f"grant #{g.id} revoked")


# -- credits, trace, verify -----------------------------------------------------------------


issue_app = typer.Typer(
    help="Quality issues: filed by consumers, answered by owners.", no_args_is_help=True
)


@issue_app.command("report")
def issue_report(
    dataset_id: int,
    problem: Annotated[str, typer.Option(help="What is wrong (10-2000 characters).")],
    as_: AsOpt = None,
    fields: Annotated[str, typer.Option(help="Which fields, e.g. 'units,issued_on'.")] = "",
    rows: Annotated[str, typer.Option(help="Which rows, e.g. '2-14,30'.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """File a signed quality issue about a dataset you received."""
    with client(as_) as c:
        i = c.report_issue(dataset_id, problem=problem, fields=fields, rows=rows)
    emit(i, as_json, f"issue [bold]#{i.id}[/] about dataset #{dataset_id}: {i.status}")


@issue_app.command("answer")
def issue_answer(
    issue_id: int,
    verdict: Annotated[str, typer.Option(help="acknowledged, fixed or rejected.")],
    as_: AsOpt = None,
    fixed_in: Annotated[int, typer.Option(help="The later version with the fix.")] = 0,
    reason: Annotated[str, typer.Option(help="Why (needed to reject).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Answer a quality issue about your dataset (owner, signed)."""
    from ledger.protocol.limits import check_issue_answer

    check_issue_answer({"verdict": verdict, "fixedIn": fixed_in, "reason": reason})
    with client(as_) as c:
        i = c.answer_issue(issue_id, verdict, fixed_in=fixed_in, reason=reason)
    emit(i, as_json, f"issue #{i.id}: {i.status}" + (f" in #{i.fixed_in}" if i.fixed_in else ""))


@issue_app.command("list")
def issue_list(
    as_: AsOpt = None,
    dataset: Annotated[int | None, typer.Option(help="Only this dataset's.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Issues you filed, issues about your datasets (all for overseers)."""
    with client(as_) as c:
        rows = c.issues(dataset)
    if as_json:
        emit(rows, True)
        return
    table = Table("issue", "dataset", "reporter", "status", "fields", "rows", "problem", box=None)
    for i in rows:
        table.add_row(
            str(i.id), str(i.dataset_id), i.reporter[:10] + "…", i.status, i.fields, i.rows,
            i.problem[:40],
        )  # fmt: skip
    out.print(table)


def credits(as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Sharing credits: yours with --as, else every member's."""
    with client(as_) as c:
        if as_ is not None:
            rows = [c.credits().model_dump(mode="json")]
        else:
            rows = [
                c.credits(m.address).model_dump(mode="json") | {"name": m.name} for m in c.members()
            ]
    if as_json:
        emit(rows, True)
        return
    for r in rows:
        out.print(f"{r['balance']:>8} {r['symbol']}  {r['address']}  {r.get('name', '')}")


def trace(
    dataset_id: Annotated[int | None, typer.Argument(help="Dataset to trace.")] = None,
    member: Annotated[str | None, typer.Option("--member", help="Handle or address.")] = None,
    as_: AsOpt = None,
    prov: Annotated[
        Path | None,
        typer.Option(
            "--prov",
            help="Write the dataset's lineage and flows as W3C PROV-JSON to this file.",
            dir_okay=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="With --prov: replace the file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Lineage and every flow of a dataset, or everything a member did — from records verified
    on this machine (an incremental `drl verify` runs first)."""
    from ledger.audit import dataset_trace, member_trace

    if (dataset_id is None) == (member is None):
        raise InvalidInput("give a dataset id or --member, not both", code=ErrorCode.BAD_ARGUMENTS)
    if prov is not None and dataset_id is None:
        raise InvalidInput(
            "--prov exports a dataset's trace: give a dataset id, not --member",
            code=ErrorCode.BAD_ARGUMENTS,
        )
    if prov is not None and prov.exists() and not force:
        raise InvalidInput(f"{prov} exists (--force replaces it)", code=ErrorCode.OUTPUT_EXISTS)
    if prov is not None and not prov.expanduser().absolute().parent.is_dir():
        raise InvalidInput(
            f"no folder {prov.parent} to write {prov.name} in", code=ErrorCode.BAD_ARGUMENTS
        )
    data: DatasetTrace | MemberTrace
    with client(as_) as c:
        report = c.audit()
        state = c.audit_state()
        try:
            if dataset_id is not None:
                d = dataset_trace(state, dataset_id)
                head = (
                    f"dataset #{d.dataset_id} owner {d.owner} "
                    f"({_classification(d.classification)}); "
                    f"parents {list(d.parents) or '-'}; derived {list(d.derived) or '-'}; "
                    f"previous version {d.previous_version or '-'}"
                )
                entries, data = d.flows, d
                if prov is not None and report.ok:
                    _write_prov(state, d, prov, force=force, as_json=as_json)
            else:
                assert member is not None
                target = _resolve_member(member)
                address = target if isinstance(target, str) else target.address
                m = member_trace(state, address)
                head = f"member {m.address}: registered {list(m.registered) or '-'}"
                entries, data = m.entries, m
        finally:
            state.close()
    if prov is None and as_json:
        emit(plain(asdict(data)), True)
    elif prov is None:  # with --prov, the export's summary line stands for the trace
        out.print(
            f"{head}\n  (from {report.tree_size} records verified on this machine)",
            highlight=False,
        )
        names = _names()
        for f in entries:
            detail = ", ".join(f"{k}={_short(v)}" for k, v in f.detail.items() if k not in _QUIET)
            out.print(
                f"  #{f.seq:<4} {f.at[:19]}  {f.action:<9} "
                f"{names.get(f.actor, f.actor[:10])}  chain:{f.chain}  {detail}",
                highlight=False,
            )
    if not report.ok:
        if prov is not None:
            err.print(f"nothing written to {prov}: local verification failed", highlight=False)
        _print_problems(report.problems)
        raise typer.Exit(1)


def _write_prov(
    state: AuditState, trace: DatasetTrace, path: Path, *, force: bool, as_json: bool
) -> None:
    """``trace`` as PROV-JSON at ``path`` (atomically; an existing file only with ``force``)."""
    import os
    import tempfile

    from ledger.client.provenance import dataset_document, summary

    doc = dataset_document(state, trace.dataset_id, trace=trace)
    text = doc.serialize(format="json", indent=2)
    assert isinstance(text, str)
    path = path.expanduser()
    temp: str | None = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.absolute().parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.chmod(temp, 0o644)  # an export for other tools, not a secret
        if force:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # fails if the file appeared meanwhile: never overwritten
    except FileExistsError:
        raise InvalidInput(
            f"{path} exists (--force replaces it)", code=ErrorCode.OUTPUT_EXISTS
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
    n = summary(doc)
    emit(
        {
            "file": str(path),
            "format": "PROV-JSON",
            "dataset_id": trace.dataset_id,
            "verified_size": trace.verified_size,
        }
        | asdict(n),
        as_json,
        f"wrote {path}: W3C PROV-JSON of dataset #{trace.dataset_id} — {n.entities} entities, "
        f"{n.agents} agents, {n.activities} activities, {n.relations} relations "
        f"(from {trace.verified_size} records verified on this machine)",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


#: Signed fields a trace line leaves out (still in --json): replay protection, not meaning.
_QUIET = frozenset({"tx", "nonce", "deadline", "fetchNonce"})


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "…" if text.startswith("0x") and len(text) > 42 else text


def _classification(code: int | None) -> str:
    from ledger.types import CLASSIFICATIONS

    known = code is not None and 0 <= code < len(CLASSIFICATIONS)
    return CLASSIFICATIONS[code] if known and code is not None else "unknown"


def _names() -> dict[str, str]:
    home = settings().home.expanduser()
    return {keystore.profile(home, h).address: h for h in keystore.handles(home)}


def _print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        err.print(f"[red]FAIL[/] {escape(f'[{p.code}] {p.where}: {p.what}')}", highlight=False)


def verify(as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Verify the broker on this machine: records, signatures and heads against the chain.

    Reads the raw log (incrementally, from the checkpoint kept last time), checks every
    signature, recomputes the tree against the broker-signed head and every root anchored on
    chain, matches chain events to signed records both ways, and keeps the new checkpoint.
    """
    with client(as_) as c:
        report = c.audit()
        view = c.chain_view()
    if as_json:
        emit(plain(asdict(report)), True)
    else:
        n = report.counts
        mode = (
            f"incremental from size {report.previous_size}"
            if report.incremental
            else "first run, from the start"
        )
        source = "your chain node" if view.independent else "the broker's relay (embedded chain)"
        if report.ok:
            out.print(
                f"[green]verified on this machine[/] ({mode}): {report.tree_size} records in "
                f"all, {n['records']} new; "
                f"{n['signatures']} signatures, {_count(n['anchors'], 'anchored root')} and "
                f"{n['events']} chain events ({n['matched']} matched to signed records) "
                f"checked against the chain via {source}",
                highlight=False,
            )
            out.print(
                f"checkpoint kept: size {report.tree_size}, signed by the broker key",
                highlight=False,
            )
            for p in report.pending:
                out.print(escape(f"  pending [{p.code}] {p.where}: {p.what}"), highlight=False)
        _print_problems(report.problems)
    if not report.ok:
        raise typer.Exit(1)

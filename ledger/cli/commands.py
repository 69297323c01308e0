"""The member, admin, dataset, access, credits, trace and verify commands (over the broker)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ledger.cli.common import AsOpt, JsonOpt, client, emit, err, out, passphrase, settings
from ledger.client import keystore
from ledger.client.audit_sources import plain
from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode
from ledger.quality import check_schema, validate_csv
from ledger.types import Classification, MemberKind

if TYPE_CHECKING:
    from ledger.audit import DatasetTrace, MemberTrace, Problem

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


@dataset_app.command("register")
def dataset_register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str, typer.Option(help="Title shown in the catalog.")],
    as_: AsOpt = None,
    schema: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Table Schema (JSON).")
    ] = None,
    classification: Annotated[Classification, typer.Option()] = "internal",
    derived_from: Annotated[
        list[int] | None, typer.Option("--derived-from", help="Parent dataset id (repeatable).")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    as_json: JsonOpt = False,
) -> None:
    """Validate against the schema, encrypt locally, upload, and register on chain."""
    schema_doc: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    if schema is not None:
        try:
            schema_doc = check_schema(json.loads(schema.read_text()))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{schema} is not JSON: {exc}", code=ErrorCode.BAD_SCHEMA) from None
        report = validate_csv(file, schema_doc)
        if not report.ok:
            shown = "; ".join(report.errors[:3])
            raise InvalidInput(
                f"{report.error_count} quality errors against {schema.name}: {shown}",
                code=ErrorCode.QUALITY_CHECK_FAILED,
            )
        quality = report.summary()
    size = file.stat().st_size
    with client(as_) as c, _progress(size + 64, "encrypt+upload") as bar:
        d = c.register(
            file,
            title=title,
            classification=classification,
            parents=tuple(derived_from or ()),
            description=description,
            schema=schema_doc,
            quality=quality,
            progress=lambda n: bar.advance(bar.task_ids[0], n),
        )
    emit(
        d,
        as_json,
        f"registered dataset [bold]#{d.id}[/] {d.title!r} "
        f"({d.classification}) content {d.content_hash[:18]}… tx {d.registered_tx}",
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
def dataset_show(dataset_id: int, as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """One dataset's certificate and metadata."""
    with client(as_) as c:
        d = c.dataset(dataset_id)
    if as_json:
        emit(d, True)
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
    quality = d.metadata.get("quality") or {}
    if quality:
        out.print(
            f"{'quality':>17}  {quality.get('rows')} rows, {quality.get('errors')} errors "
            f"against {quality.get('standard')}"
        )


@dataset_app.command("fetch")
def dataset_fetch(
    dataset_id: int,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the plaintext.")],
    as_: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download under your grant, decrypt, verify the content hash, sign the receipt."""
    with client(as_) as c:
        size = c.dataset(dataset_id).ciphertext_size
        with _progress(size, "download+decrypt") as bar:
            r = c.fetch(dataset_id, output, progress=lambda n: bar.advance(bar.task_ids[0], n))
    emit(
        r,
        as_json,
        f"wrote {output} — content hash {r.content_hash[:18]}… verified against the chain; "
        f"receipt signed; {r.uses_left} uses left",
    )


# -- access -------------------------------------------------------------------------------


@access_app.command("request")
def access_request(
    dataset_id: int,
    purpose: Annotated[str, typer.Option(help="What the data will be used for.")],
    days: Annotated[int, typer.Option(min=1, max=3650)],
    as_: AsOpt = None,
    uses: Annotated[int, typer.Option(min=1)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Ask a dataset's owner for access (signed, logged)."""
    with client(as_) as c:
        r = c.request_access(dataset_id, purpose=purpose, days=days, uses=uses)
    emit(r, as_json, f"request [bold]#{r.id}[/] for dataset #{dataset_id}: {r.status}")


@access_app.command("list")
def access_list(as_: AsOpt = None, as_json: JsonOpt = False) -> None:
    """Requests you made or received, and grants."""
    with client(as_) as c:
        requests, grants = c.requests(), c.grants()
    if as_json:
        emit({"requests": requests, "grants": grants}, True)
        return
    table = Table("request", "dataset", "requester", "status", "days", "uses", "purpose", box=None)
    for r in requests:
        table.add_row(
            str(r.id),
            str(r.dataset_id),
            r.requester[:10] + "…",
            r.status,
            str(r.days),
            str(r.max_uses),
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
    """Approve: wrap the data key to the requester and sign the grant (owner)."""
    with client(as_) as c:
        a = c.approve(request_id)
    key = f"wrapped to the key registered on chain, fingerprint {a.grantee_key_fingerprint}"
    if a.grant is None:
        emit(
            a,
            as_json,
            f"request #{request_id} awaits the operator's co-signature (SENSITIVE data to an "
            f"enterprise): drl admin cosign {request_id}; {key}",
        )
        return
    g = a.grant
    emit(
        a,
        as_json,
        f"grant [bold]#{g.id}[/] of dataset #{g.dataset_id} to "
        f"{g.grantee}: {g.max_uses} uses until {g.expires_at} tx {g.granted_tx}; {key}",
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
    as_json: JsonOpt = False,
) -> None:
    """Lineage and every flow of a dataset, or everything a member did — from records verified
    on this machine (an incremental `drl verify` runs first)."""
    from ledger.audit import dataset_trace, member_trace

    if (dataset_id is None) == (member is None):
        raise InvalidInput("give a dataset id or --member, not both", code=ErrorCode.BAD_ARGUMENTS)
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
            else:
                assert member is not None
                target = _resolve_member(member)
                address = target if isinstance(target, str) else target.address
                m = member_trace(state, address)
                head = f"member {m.address}: registered {list(m.registered) or '-'}"
                entries, data = m.entries, m
        finally:
            state.close()
    if as_json:
        emit(plain(asdict(data)), True)
    else:
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
        _print_problems(report.problems)
        raise typer.Exit(1)


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

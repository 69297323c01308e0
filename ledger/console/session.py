"""One member's console: its SDK, what it verified, and the answers every page is made of.

The session holds the member's :class:`~ledger.client.sdk.BrokerClient` (unlocked keys stay in
this process) and answers in plain JSON-ready dicts; ``ledger.console.app`` renders them.

- Regulators and the operator read the whole log: "Verify now" runs the incremental
  :func:`ledger.audit.verify` (``BrokerClient.audit``), and every graph, timeline and warning
  is computed from the records it verified (:class:`~ledger.console.records.VerifiedLog`).
- Departments and enterprises may not read others' records: "Verify now" checks the broker's
  signed head against the pinned key and the head kept last time, and re-checks every inclusion
  proof kept for the member's own actions; the pages show the broker's trace, marked unverified.

Opening a record re-checks it on this machine: its signature under the pinned deployment's
domains and its inclusion proof against a signed head (the kept checkpoint for overseers).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Final

from ledger.audit import AuditReport, Progress, check_inclusion
from ledger.audit.inclusion import ProofKeeper
from ledger.audit.records import parse_leaf
from ledger.audit.warnings import evaluate, load_rules
from ledger.client.audit_sources import BrokerLog
from ledger.console.graphs import flow_graph, lineage_graph
from ledger.console.present import name_of, named, plain, row
from ledger.console.records import Records, Scope, VerifiedLog, moment
from ledger.console.reported import BrokerView
from ledger.console.verifyjob import VerifyJob
from ledger.errors import InvalidInput, LedgerError, NotFound, StorageError
from ledger.protocol.checkpoint import parse_checkpoint
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import LogRecordPublic

if TYPE_CHECKING:
    from pathlib import Path

    from ledger.client.sdk import BrokerClient
    from ledger.protocol.wire import DatasetPublic

OVERSEERS: Final = frozenset({"regulator", "operator"})
#: Most records a timeline page shows.
MAX_PAGE: Final = 500
#: Kept in the member's trust directory: when the console last verified, and how it went.
LAST_RUN: Final = "console-verified.json"
#: Seconds the broker's quality scores are reused in the catalog.
SCORES_FRESH: Final = 30.0


class ConsoleSession:
    """What one running console knows and does (see the module docstring)."""

    def __init__(
        self,
        client: BrokerClient,
        *,
        handle: str,
        role: str,
        rules: Path | None = None,
        clock: Any = None,
    ) -> None:
        self.client = client
        self.handle = handle
        self.role = role
        self.address = client.require_keys().address.lower()
        self.overseer = role in OVERSEERS
        self.rules_path = rules
        load_rules(rules)  # a bad rules file stops the console at once (rules_invalid)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.origin = client.pinned().origin
        self.records: Records
        self._log: VerifiedLog | None = None
        if self.overseer:
            state = client.audit_state()  # creates the state's file and tables if new
            path = state.path
            state.close()
            if path is None:
                raise InvalidInput(
                    "the console keeps its audit state on disk: set DRL_HOME",
                    code=ErrorCode.BAD_ARGUMENTS,
                )
            self._log = VerifiedLog(path)
            self._log.prepare()
            self.records = self._log
        else:
            self.records = BrokerView(client, self.address)
        self.last_report: AuditReport | None = None
        self.job = VerifyJob(self._verify)
        self._scores: dict[int, tuple[float, dict[str, Any] | None]] = {}
        self._scores_lock = threading.Lock()

    @classmethod
    def open(
        cls, client: BrokerClient, *, handle: str, rules: Path | None = None
    ) -> ConsoleSession:
        """The session of ``handle``: its role read from the member directory."""
        client.pinned()
        client.chain_view()  # opened once, before threads share the client
        address = client.require_keys().address
        if address.lower() == client.pinned().admin.lower():
            role = "operator"
        else:
            role = client.member(address).kind
        return cls(client, handle=handle, role=role, rules=rules)

    def now(self) -> dt.datetime:
        value = self._clock()
        assert isinstance(value, dt.datetime)
        return value

    # -- verification ------------------------------------------------------------------------

    def _verify(self, progress: Progress) -> dict[str, Any]:
        if self.overseer:
            report = self.client.audit(progress=progress)
            self.last_report = report
            self.client.log_trust.write(
                LAST_RUN,
                {
                    "at": self.now().isoformat(timespec="seconds"),
                    "ok": report.ok,
                    "tree_size": report.tree_size,
                },
            )
            return {
                "kind": "log",
                "ok": report.ok,
                "tree_size": report.tree_size,
                "previous_size": report.previous_size,
                "incremental": report.incremental,
                "advanced": report.advanced,
                "counts": report.counts,
                "problems": [asdict(p) for p in report.problems],
                "pending": len(report.pending),
                "evidence": len(report.evidence),
            }
        return self._verify_own(progress)

    def _verify_own(self, progress: Progress) -> dict[str, Any]:
        """A member's own check: the signed head, and every inclusion proof it kept."""
        progress("checkpoint", 0, 1)
        head = self.client.checkpoint()
        kept = self.client.log_trust.path("proofs.jsonl")
        proofs = ProofKeeper(kept).proofs() if kept is not None else []
        problems = []
        for done, proof in enumerate(proofs, start=1):
            try:
                proof.check(origin=self.origin)
            except LedgerError as exc:
                problems.append(
                    {"code": exc.code, "where": f"record {proof.seq}", "what": exc.message}
                )
            progress("proofs", done, len(proofs))
        if isinstance(self.records, BrokerView):
            self.records.refresh(force=True)
        return {
            "kind": "own",
            "ok": not problems,
            "tree_size": head.size,
            "proofs": len(proofs),
            "problems": problems,
        }

    def verification(self) -> dict[str, Any]:
        """The kept state: checkpoint, records verified, when; and the job's status."""
        status = self.job.status()
        out: dict[str, Any] = {"job": status, "overseer": self.overseer}
        if self._log is not None:
            note = self._kept_note()
            head = parse_checkpoint(note, origin=self.origin) if note else None
            anchored, mismatched = self._log.anchored()
            last = self.client.log_trust.read(LAST_RUN) or {}
            out.update(
                checkpoint_size=head.size if head else 0,
                checkpoint_root="0x" + head.root.hex() if head else None,
                records=self._log.size(),
                anchored_verified=anchored,
                anchors_mismatched=mismatched,
                when=last.get("at"),
                last_ok=last.get("ok"),
            )
        return out

    def _kept_note(self) -> str | None:
        assert self._log is not None
        return self._log.checkpoint_note()

    # -- pages -------------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        c = self.client
        orgs = self.records.organisations()
        counts = self.records.counts()
        kinds: dict[str, int] = {}
        for org in orgs.values():
            kinds[org.kind] = kinds.get(org.kind, 0) + 1
        grants = c.grants()
        head = c.log_head()
        if self.overseer:
            credits = [
                {"name": o.name, "address": o.address, "balance": c.credits(o.address).balance}
                for o in sorted(orgs.values(), key=lambda o: o.name)[:50]
                if o.kind != "regulator"
            ]
        else:
            mine = c.credits()
            credits = [{"name": self.name, "address": self.address, "balance": mine.balance}]
        now = self.now().timestamp()
        return {
            "members": {"total": len(orgs), "by_kind": kinds},
            "datasets": len(self.records.registrations()),
            "grants": {
                "total": len(grants),
                "active": sum(1 for g in grants if not g.revoked and g.expires_at > now),
                "revoked": sum(1 for g in grants if g.revoked),
            },
            "deliveries": counts.get("receipt", 0),
            "fetches": counts.get("fetch", 0),
            "records": sum(counts.values()),
            "by_action": dict(sorted(counts.items())),
            "credits": credits,
            "head": {
                "size": head.size,
                "anchored_size": head.anchored_size,
                "anchored_root": head.anchored_root,
                "anchored_at": dt.datetime.fromtimestamp(head.anchored_at, dt.UTC).isoformat(
                    timespec="seconds"
                )
                if head.anchored_at
                else None,
            },
            "verification": self.verification(),
        }

    @property
    def name(self) -> str:
        org = self.records.organisations().get(self.address)
        return org.name if org else self.handle

    def scope(
        self,
        *,
        dataset: str | None = None,
        member: str | None = None,
        since: str | None = None,
        until: str | None = None,
        actions: str | None = None,
        records: str | None = None,
    ) -> Scope:
        """A scope from query parameters (InvalidInput ``bad_arguments`` for bad ones)."""
        address = None
        owned: tuple[int, ...] = ()
        if member:
            address = member.strip().lower()
            if len(address) != 42 or not address.startswith("0x"):
                raise InvalidInput(f"{member!r} is not a 0x address", code=ErrorCode.BAD_ADDRESS)
            owned = tuple(d for d, r in self.records.registrations().items() if r.owner == address)
        return Scope(
            dataset=_int_arg("dataset", dataset),
            member=address,
            since=moment(since),
            until=moment(until),
            actions=tuple(a for a in actions.split(",") if a) if actions else None,
            seqs=tuple(_int_arg("records", s) or 0 for s in records.split(",") if s.strip())
            if records
            else None,
            owned=owned,
        )

    def flow(self, scope: Scope) -> dict[str, Any]:
        focus = [scope.member] if scope.member else []
        if scope.dataset is not None:
            reg = self.records.registrations().get(scope.dataset)
            if reg is None:
                raise NotFound(
                    f"no {'verified ' if self.records.verified else ''}registration of dataset "
                    f"{scope.dataset}",
                    code=ErrorCode.DATASET_NOT_FOUND,
                )
            focus.append(reg.owner)
        graph = flow_graph(self.records, scope, now=self.now(), focus=focus)
        return graph | {"verified": self.records.verified, "size": self.records.size()}

    def lineage(self, dataset: int | None) -> dict[str, Any]:
        regs = self.records.registrations()
        if dataset is not None and dataset not in regs:
            raise NotFound(
                f"no registration of dataset {dataset}", code=ErrorCode.DATASET_NOT_FOUND
            )
        graph = lineage_graph(regs, self.records.organisations(), dataset=dataset)
        return graph | {"verified": self.records.verified}

    def timeline(self, scope: Scope, *, after: int = -1, limit: int = 50) -> dict[str, Any]:
        limit = max(1, min(limit, MAX_PAGE))
        entries, next_after = self.records.page(scope, after=after, limit=limit)
        orgs = self.records.organisations()
        return {
            "records": [row(e, orgs) for e in entries],
            "next_after": next_after,
            "verified": self.records.verified,
        }

    def record(self, seq: int) -> dict[str, Any]:
        """Record ``seq``, its signature and its inclusion proof, re-checked on this machine."""
        c = self.client
        log = BrokerLog(c)
        if self._log is not None:
            leaf = self._log.leaf(seq)
            if leaf is None:
                raise NotFound(
                    f"record {seq} is not among the records verified here (verify now?)",
                    code=ErrorCode.NOT_FOUND,
                )
            note = self._kept_note()
            assert note is not None
            head = parse_checkpoint(note, origin=self.origin)
            vouched = "the checkpoint kept by the last verification"
        else:
            leaf = c.call("GET", f"/v1/log/records/{seq}", LogRecordPublic).leaf.encode()
            head = c.checkpoint()
            vouched = "the broker's current signed head (checked against the one kept)"
        record = parse_leaf(leaf)
        try:
            record.signed.verify(c.domains)
            signature: dict[str, Any] = {"ok": True, "signer": record.actor}
        except LedgerError as exc:
            signature = {"ok": False, "signer": record.actor, "why": exc.message}
        path = log.inclusion(seq, head.size)
        try:
            check_inclusion(head, origin=self.origin, seq=seq, leaf=leaf, path=path)
            inclusion: dict[str, Any] = {"ok": True}
        except LedgerError as exc:
            inclusion = {"ok": False, "why": f"[{exc.code}] {exc.message}"}
        entry = self.records.entry(seq)
        orgs = self.records.organisations()
        inclusion.update(
            tree_size=head.size,
            root="0x" + head.root.hex(),
            signer=head.signer,
            path=["0x" + p.hex() for p in path],
            head=vouched,
        )
        return {
            "seq": seq,
            "at": record.at,
            "action": record.action,
            "actor": record.actor,
            "actor_name": name_of(record.actor.lower(), orgs),
            "message": plain(record.signed.message),
            "context": {k: v for k, v in plain(record.context).items() if k != "metadata"},
            "signature": signature,
            "inclusion": inclusion,
            "chain": entry.chain if entry else "unknown",
            "tx": entry.tx_hash if entry else None,
            "verified": entry.verified if entry else False,
        }

    def warnings(self) -> dict[str, Any]:
        """Early warnings over the verified log (overseers), each with its records."""
        if not self.overseer:
            return {
                "available": False,
                "why": "early warnings are computed from the whole verified log: regulators "
                "and the operator only",
                "warnings": [],
            }
        rules = load_rules(self.rules_path)  # read again: the file may have been edited
        orgs = self.records.organisations()
        state = self.client.audit_state()
        try:
            found = evaluate(state, rules, now=self.now(), report=self.last_report)
        except sqlite3.OperationalError as exc:  # evaluate keeps first-seen times: it writes
            raise StorageError(
                f"the audit state is busy ({exc}); a verification may be running: try again",
                code=ErrorCode.DATABASE_BUSY,
            ) from None
        finally:
            state.close()
        return {
            "available": True,
            "rules": rules.source,
            "warnings": [
                w.to_json()
                | {"subject_text": named(w.subject, orgs), "message_text": named(w.message, orgs)}
                for w in found
            ],
        }

    # -- catalog -----------------------------------------------------------------------------

    def score(self, dataset_id: int) -> dict[str, Any] | None:
        """The broker's quality score of a dataset (cached a little), or None."""
        with self._scores_lock:
            cached = self._scores.get(dataset_id)
        if cached is not None and time.monotonic() - cached[0] < SCORES_FRESH:
            return cached[1]
        try:
            value: dict[str, Any] | None = self.client.quality(dataset_id).model_dump(mode="json")
        except LedgerError:
            value = None
        with self._scores_lock:
            self._scores[dataset_id] = (time.monotonic(), value)
        return value

    def catalog(
        self,
        *,
        q: str = "",
        classification: str = "",
        owner: str = "",
        theme: str = "",
        min_quality: int | None = None,
    ) -> dict[str, Any]:
        orgs = self.records.organisations()
        rows = []
        every = self.client.datasets()
        themes = sorted({str(t) for d in every for t in d.metadata.get("themes") or []})
        owners = sorted({d.owner.lower() for d in every})
        needle = q.strip().lower()
        for d in every:
            meta = d.metadata
            text = " ".join(
                [d.title, str(meta.get("description", "")), " ".join(meta.get("keywords") or [])]
            ).lower()
            if needle and needle not in text:
                continue
            if classification and d.classification != classification:
                continue
            if owner and d.owner.lower() != owner.lower():
                continue
            if theme and theme not in (meta.get("themes") or []):
                continue
            score = self.score(d.id)
            if min_quality is not None and (score is None or score["score"] < min_quality):
                continue
            rows.append(_catalog_row(d, score, orgs))
        return {
            "datasets": rows,
            "themes": themes,
            "owners": [{"address": a, "name": name_of(a, orgs)} for a in owners],
            "classifications": ["public", "internal", "sensitive"],
        }

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        c = self.client
        d = c.dataset(dataset_id)
        orgs = self.records.organisations()
        versions: list[dict[str, Any]] = []
        regs = self.records.registrations()
        cursor: int | None = dataset_id
        seen: set[int] = set()
        while cursor and cursor not in seen:  # back to the first version
            seen.add(cursor)
            reg = regs.get(cursor)
            versions.insert(
                0, {"id": cursor, "title": reg.title if reg else "", "at": reg.at if reg else ""}
            )
            cursor = reg.previous if reg else None
        newer = {r.previous: r for r in regs.values() if r.previous}
        cursor = dataset_id
        while cursor in newer and newer[cursor].dataset_id not in seen:  # on to the latest
            reg = newer[cursor]
            seen.add(reg.dataset_id)
            versions.append({"id": reg.dataset_id, "title": reg.title, "at": reg.at})
            cursor = reg.dataset_id
        score = self.score(dataset_id)
        local = None
        if self.overseer and score is not None:
            mine = c.recompute_quality(dataset_id, as_of=int(score["as_of"]))
            local = None if mine is None else mine.score
        try:
            issues = [i.model_dump(mode="json") for i in c.issues(dataset_id)]
        except LedgerError:
            issues = []
        return {
            "dataset": d.model_dump(mode="json"),
            "owner_name": name_of(d.owner, orgs),
            "versions": versions,
            "score": score,
            "score_recomputed": local,
            "issues": issues,
            "derived": sorted(r.dataset_id for r in regs.values() if dataset_id in r.parents),
        }


def _int_arg(name: str, text: str | None) -> int | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = int(str(text).strip().lstrip("#"))
    except ValueError:
        raise InvalidInput(
            f"{name} must be a number, not {text!r}", code=ErrorCode.BAD_ARGUMENTS
        ) from None
    if value < 0:
        raise InvalidInput(f"{name} must not be negative", code=ErrorCode.BAD_ARGUMENTS)
    return value


def int_arg(name: str, text: str | None) -> int | None:
    """A non-negative integer query parameter (InvalidInput ``bad_arguments`` otherwise)."""
    return _int_arg(name, text)


def _catalog_row(
    d: DatasetPublic, score: Mapping[str, Any] | None, orgs: Mapping[str, Any]
) -> dict[str, Any]:
    meta = d.metadata
    quality = meta.get("quality") or {}
    return {
        "id": d.id,
        "title": d.title,
        "classification": d.classification,
        "owner": d.owner,
        "owner_name": name_of(d.owner, orgs),
        "themes": list(meta.get("themes") or []),
        "keywords": list(meta.get("keywords") or []),
        "score": score["score"] if score else None,
        "rows": quality.get("rows"),
        "errors": quality.get("errors"),
        "parents": d.parents,
        "previous_version": d.previous_version or None,
        "newer_version": d.newer_version,
        "retired": d.retired,
    }

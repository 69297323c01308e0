"""One function per rule: what it looks for in the verified records, and the records it cites.

Each check yields :class:`Finding`s: a subject (``member 0x…``, ``dataset 7``, ``grant 7→0x…``,
``log``), a part that tells findings of one subject apart and stays the same from run to run
(it names the records the finding starts from, never a time or a count), a message, and the
log records that prove it. docs/warnings.md describes every rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from ledger.audit.state import AuditState
from ledger.audit.verifier import AuditReport
from ledger.audit.warnings.facts import (
    ENTERPRISE,
    SENSITIVE,
    Facts,
    Rec,
    parse_time,
    signed_metadata,
    signed_terms,
)
from ledger.audit.warnings.rules import Rule
from ledger.audit.warnings.store import record_times
from ledger.protocol.documents import purpose_hash
from ledger.protocol.labels import frequency_days

#: Most records an anchoring-lag warning cites (the oldest ones): one proves the lag.
MAX_CITED: Final = 10
#: The request form members a grant's terms document carries over, and their names there.
FORM: Final = (
    ("purpose_category", "purposeCategory"),
    ("legal_basis", "legalBasis"),
    ("retention_days", "retentionDays"),
    ("processing_location", "processingLocation"),
)
_LOG_RECORD: Final = re.compile(r"log record (\d+)")


@dataclass(frozen=True)
class Finding:
    """One warning before it has a rule, a severity and a first-seen time."""

    subject: str
    part: str
    message: str
    records: tuple[int, ...]


@dataclass(frozen=True)
class Inputs:
    """What every check may read."""

    facts: Facts
    state: AuditState
    report: AuditReport | None
    now: dt.datetime


Check = Callable[[Inputs, Rule], Iterator[Finding]]


def member(address: str) -> str:
    return f"member {address}"


def grant_subject(dataset_id: int, grantee: str) -> str:
    return f"grant {dataset_id}→{grantee}"


def cited(*groups: Sequence[int] | int) -> tuple[int, ...]:
    """Record numbers, each once, in log order."""
    seqs: set[int] = set()
    for group in groups:
        seqs.update([group] if isinstance(group, int) else group)
    return tuple(sorted(seqs))


def _when(at: dt.datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "an unknown time"


# -- repeated refusals --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    at: dt.datetime
    seq: int
    records: tuple[int, ...]
    kind: str  # "fetch" or "deny"


def repeated_refusals(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """At least ``count`` refusals of one member within ``window_hours``."""
    facts = inputs.facts
    need = max(1, rule.count("count"))
    window = dt.timedelta(hours=rule.number("window_hours"))
    by_member: dict[str, list[_Refusal]] = {}
    for rec in facts.of("fetch"):
        if rec.refused is not None and rec.at is not None:
            by_member.setdefault(rec.actor, []).append(
                _Refusal(rec.at, rec.seq, (rec.seq,), "fetch")
            )
    for deny in facts.of("deny"):
        request = denied_request(facts, deny)
        if request is not None and deny.at is not None:
            by_member.setdefault(request.actor, []).append(
                _Refusal(deny.at, deny.seq, (request.seq, deny.seq), "deny")
            )
    for address, refusals in by_member.items():
        refusals.sort(key=lambda r: (r.at, r.seq))
        for episode in _episodes(refusals, need, window):
            kinds = Counter(r.kind for r in episode)
            first, last = episode[0], episode[-1]
            yield Finding(
                subject=member(address),
                part=f"from record {first.seq}",
                message=(
                    f"{len(episode)} refusals of {address} from {_when(first.at)} to "
                    f"{_when(last.at)}, at least {need} within {rule.number('window_hours'):g} h "
                    f"({kinds['fetch']} fetches refused, {kinds['deny']} requests denied)"
                ),
                records=cited(*(r.records for r in episode)),
            )


def _episodes(
    refusals: Sequence[_Refusal], need: int, window: dt.timedelta
) -> Iterator[list[_Refusal]]:
    """Runs of refusals in which each one closes a window holding at least ``need``."""
    recent: deque[_Refusal] = deque()
    episode: list[_Refusal] | None = None
    for refusal in refusals:
        recent.append(refusal)
        while refusal.at - recent[0].at > window:
            recent.popleft()
        if len(recent) >= need:
            if episode is None:
                episode = list(recent)
            else:
                episode.append(refusal)
        elif episode is not None:
            yield episode
            episode = None
    if episode is not None:
        yield episode


def denied_request(facts: Facts, deny: Rec) -> Rec | None:
    """The signed request a denial refused: the record its context names, if that record is
    a request for a dataset the denial's signer owned (else the broker's word is not used)."""
    seq = deny.context.get("request_seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq >= deny.seq:
        return None
    request = facts.by_seq.get(seq)
    if request is None or request.action != "request":
        return None
    dataset_id = request.uint("datasetId")
    if dataset_id is None or facts.owner(dataset_id, before=deny.seq) != deny.actor:
        return None
    return request


# -- fetches after a revocation, an expiry or a suspension -------------------------------------


def _latest(records: Sequence[Rec], before: int, after: int = -1) -> Rec | None:
    found = [r for r in records if after < r.seq < before]
    return found[-1] if found else None


def suspension(facts: Facts, address: str, before: int) -> Rec | None:
    """The suspension of ``address`` in force at record ``before`` (none if reinstated)."""
    changes = [r for r in facts.of("suspend", "reinstate") if r.address("member") == address]
    last = _latest(changes, before)
    return last if last is not None and last.action == "suspend" else None


def expiry(grant: Rec) -> dt.datetime | None:
    expires = grant.uint("expiresAt")
    if expires is None:
        return None
    try:
        return dt.datetime.fromtimestamp(expires, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _reason(code: str) -> str:
    if "revoked" in code:
        return "revoked"
    if "expired" in code:
        return "expired"
    if code == "owner_suspended":
        return "owner suspended"
    if "suspended" in code or "inactive" in code:
        return "suspended"
    return code


def fetch_after_revocation(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """Fetches (refused or, worse, served) after a revocation, an expiry or a suspension."""
    facts = inputs.facts
    codes = set(rule.codes("codes"))
    pairs: dict[tuple[int, str], dict[str, list[Rec]]] = {}
    for rec in facts.of("grant", "revoke"):
        dataset_id = rec.uint("datasetId")
        if dataset_id is not None:
            pairs.setdefault((dataset_id, rec.address("grantee")), {}).setdefault(
                rec.action, []
            ).append(rec)
    groups: dict[tuple[int, str, str, int | None], list[Rec]] = {}
    anchors: dict[tuple[int, str, str, int | None], Rec | None] = {}
    for fetch in facts.of("fetch"):
        dataset_id, grantee = fetch.uint("datasetId"), fetch.address("grantee") or fetch.actor
        if dataset_id is None:
            continue
        history = pairs.get((dataset_id, grantee), {})
        grant = _latest(history.get("grant", []), fetch.seq)
        revoke = _latest(history.get("revoke", []), fetch.seq, grant.seq if grant else -1)
        owner = facts.owner(dataset_id, before=fetch.seq)
        reason: str | None = None
        anchor: Rec | None = None
        if fetch.refused is not None:
            if fetch.refused not in codes:
                continue
            reason = _reason(fetch.refused)
            anchor = {
                "revoked": revoke,
                "expired": grant,
                "suspended": suspension(facts, grantee, fetch.seq),
                "owner suspended": suspension(facts, owner, fetch.seq) if owner else None,
            }.get(reason)
        else:
            expires = expiry(grant) if grant is not None else None
            if revoke is not None:
                reason, anchor = "revoked", revoke
            elif expires is not None and fetch.at is not None and fetch.at >= expires:
                reason, anchor = "expired", grant
            elif (held := suspension(facts, grantee, fetch.seq)) is not None:
                reason, anchor = "suspended", held
            elif owner and (held := suspension(facts, owner, fetch.seq)) is not None:
                reason, anchor = "owner suspended", held
            else:
                continue
        key = (dataset_id, grantee, reason, anchor.seq if anchor else None)
        groups.setdefault(key, []).append(fetch)
        anchors[key] = anchor
    for key, fetches in groups.items():
        dataset_id, grantee, reason, _ = key
        anchor = anchors[key]
        served = sum(1 for f in fetches if f.refused is None)
        yield Finding(
            subject=grant_subject(dataset_id, grantee),
            part=f"{reason} since record {anchor.seq}" if anchor else reason,
            message=(
                f"{len(fetches)} fetch attempt(s) by {grantee} of dataset {dataset_id} "
                f"{_after(reason, anchor)}; {served} of them served"
            ),
            records=cited([f.seq for f in fetches], [anchor.seq] if anchor else []),
        )


def _after(reason: str, anchor: Rec | None) -> str:
    where = f" (record {anchor.seq})" if anchor is not None else ""
    if reason == "revoked":
        return f"after the grant was revoked{where}"
    if reason == "expired":
        expires = expiry(anchor) if anchor is not None else None
        return f"after the grant expired at {_when(expires)}{where}"
    if reason == "suspended":
        return f"while the grantee was suspended{where}"
    if reason == "owner suspended":
        return f"while the dataset's owner was suspended{where}"
    return f"refused with {reason}"


# -- volume ---------------------------------------------------------------------------------------


def volume_spike(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """A day's served fetches far above the consumer's median of its previous days."""
    factor, least = rule.number("factor"), rule.count("min_count")
    history, span = rule.count("history_days"), rule.count("baseline_days")
    days: dict[str, dict[dt.date, list[int]]] = {}
    for fetch in inputs.facts.of("fetch"):
        if fetch.refused is None and fetch.at is not None:
            day = fetch.at.astimezone(dt.UTC).date()
            days.setdefault(fetch.actor, {}).setdefault(day, []).append(fetch.seq)
    for consumer, per_day in days.items():
        first = min(per_day)
        for day, seqs in sorted(per_day.items()):
            elapsed = (day - first).days
            looked = min(elapsed, span)
            if elapsed < history or looked == 0 or len(seqs) < least:
                continue
            previous = [
                len(per_day.get(day - dt.timedelta(days=i), [])) for i in range(1, 1 + looked)
            ]
            median = statistics.median(previous)
            if len(seqs) > factor * max(median, 1):
                yield Finding(
                    subject=member(consumer),
                    part=f"day {day.isoformat()}",
                    message=(
                        f"{len(seqs)} fetches by {consumer} on {day.isoformat()}, against a "
                        f"median of {median:g} a day over the previous {looked} days"
                    ),
                    records=cited(seqs),
                )


# -- what reaches whom ----------------------------------------------------------------------------


def sensitive_to_enterprise(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """A grant to an enterprise of SENSITIVE data or (``derivatives``) of data derived from it."""
    facts = inputs.facts
    for grant in facts.of("grant"):
        dataset_id, grantee = grant.uint("datasetId"), grant.address("grantee")
        kind = facts.kinds.get(grantee)
        if dataset_id is None or kind is None or kind[0] != ENTERPRISE:
            continue
        lineage = facts.lineage(dataset_id) if rule.flag("derivatives") else {dataset_id: None}
        sensitive = [
            d
            for d in lineage
            if (reg := facts.registered.get(d)) is not None
            and reg.uint("classification") == SENSITIVE
        ]
        if not sensitive:
            continue
        source = dataset_id if dataset_id in sensitive else min(sensitive)
        path = [source]
        while (child := lineage[path[-1]]) is not None:
            path.append(child)
        approvals = [
            a.seq
            for a in facts.of("approval")
            if a.seq < grant.seq
            and a.uint("datasetId") == dataset_id
            and a.address("grantee") == grantee
        ]
        if source == dataset_id:
            what = f"SENSITIVE dataset {dataset_id} was granted to enterprise {grantee}"
        else:
            chain = " → ".join(str(d) for d in path)
            what = (
                f"dataset {dataset_id} derives from SENSITIVE dataset {source} ({chain}) and "
                f"was granted to enterprise {grantee}"
            )
        if approvals:
            what += f", co-signed by the operator (record {approvals[-1]})"
        yield Finding(
            subject=grant_subject(dataset_id, grantee),
            part=f"grant record {grant.seq}",
            message=what,
            records=cited(
                grant.seq,
                kind[1].seq,
                [facts.registered[d].seq for d in path if d in facts.registered],
                approvals[-1:],
            ),
        )


def _purpose_of(request: Rec) -> str | None:
    purpose = request.message.get("purpose")
    return "0x" + purpose_hash(purpose).hex() if isinstance(purpose, str) else None


def versions(facts: Facts, dataset_id: int) -> set[int]:
    """The dataset and its earlier versions (``previousVersion``, transitively)."""
    found = {dataset_id}
    while (reg := facts.registered.get(dataset_id)) is not None:
        previous = reg.uint("previousVersion")
        if not previous or previous in found:
            break
        found.add(previous)
        dataset_id = previous
    return found


def purpose_mismatch(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """A grant whose purpose or form differs from the grantee's request, that gives more uses
    than asked, or that follows no request (of this dataset or an earlier version: a grant
    carried over to a new version keeps the old request's terms)."""
    facts = inputs.facts
    requests = facts.of("request")
    for grant in facts.of("grant"):
        dataset_id, grantee = grant.uint("datasetId"), grant.address("grantee")
        if dataset_id is None:
            continue
        subject, part = grant_subject(dataset_id, grantee), f"grant record {grant.seq}"
        lineage = versions(facts, dataset_id)
        asked = [
            r
            for r in requests
            if r.seq < grant.seq and r.actor == grantee and r.uint("datasetId") in lineage
        ]
        if not asked:
            yield Finding(
                subject,
                part,
                f"the grant of dataset {dataset_id} to {grantee} follows no signed request of "
                "the grantee for it",
                (grant.seq,),
            )
            continue
        wanted = str(grant.message.get("purposeHash", "")).lower()
        same = [r for r in asked if _purpose_of(r) == wanted]
        request = (same or asked)[-1]
        differences: list[str] = []
        if not same:
            differences.append("its purposeHash is the hash of no purpose the grantee asked for")
        given_uses, asked_uses = grant.uint("maxUses"), request.uint("maxUses")
        if given_uses is None or asked_uses is None or given_uses > asked_uses:
            differences.append(f"maxUses {given_uses} where {asked_uses} was asked")
        terms = signed_terms(grant)
        if terms is not None:
            for in_terms, in_request in FORM:
                given, asked_for = terms.get(in_terms), request.message.get(in_request)
                if given != asked_for:
                    differences.append(f"{in_request} {given!r} where {asked_for!r} was asked")
        if differences:
            yield Finding(
                subject,
                part,
                f"the grant of dataset {dataset_id} to {grantee} differs from its request "
                f"(record {request.seq}): " + "; ".join(differences),
                cited(grant.seq, request.seq),
            )


# -- the log itself ------------------------------------------------------------------------------


def anchoring_lag(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """Records older than ``minutes`` beyond the largest head anchored (and checked) on chain."""
    anchored = max((a.tree_size for a in inputs.state.anchors("ok")), default=0)
    cutoff = inputs.now - dt.timedelta(minutes=rule.number("minutes"))
    late = [
        (seq, at)
        for seq, text in record_times(inputs.state, from_seq=anchored)
        if (at := parse_time(text)) is not None and at < cutoff
    ]
    if late:
        oldest_seq, oldest_at = late[0]
        yield Finding(
            subject="log",
            part=f"beyond {anchored} anchored records",
            message=(
                f"{len(late)} records older than {rule.number('minutes'):g} minutes are not "
                f"anchored on chain: the largest anchored head holds {anchored} records; the "
                f"oldest waiting is record {oldest_seq}, of {_when(oldest_at)}"
            ),
            records=cited([seq for seq, _ in late[:MAX_CITED]]),
        )


def verification_failed(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """Every problem the verification run found (``report``; nothing without one)."""
    if inputs.report is None:
        return
    for problem in inputs.report.problems:
        text = f"{problem.where} {problem.what}"
        yield Finding(
            subject="log",
            part=f"{problem.code} at {problem.where}",
            message=f"verification failed [{problem.code}] {problem.where}: {problem.what}",
            records=cited([int(n) for n in _LOG_RECORD.findall(text)]),
        )


def inconsistent_checkpoint(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """Two signed heads kept as evidence that the broker showed two histories."""
    for item in inputs.state.evidence():
        digest = hashlib.sha256(f"{item.kept_note}\n{item.served_note}".encode()).hexdigest()
        yield Finding(
            subject="log",
            part=f"notes {digest[:16]}",
            message=(
                f"the broker signed two histories [{item.code}] (found {item.found_at}): "
                f"{item.detail}; both signed notes are kept in the audit state"
            ),
            records=(),
        )


# -- promises ------------------------------------------------------------------------------------


def grant_expiring(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """A grant (not revoked) that expires within ``days`` with uses left."""
    facts, now = inputs.facts, inputs.now
    horizon = now + dt.timedelta(days=rule.number("days"))
    latest: dict[tuple[int, str], Rec] = {}
    for grant in facts.of("grant"):
        dataset_id = grant.uint("datasetId")
        if dataset_id is not None:
            latest[(dataset_id, grant.address("grantee"))] = grant
    for (dataset_id, grantee), grant in latest.items():
        expires = expiry(grant)
        if expires is None or not now < expires <= horizon:
            continue
        later = [
            r
            for r in facts.of("revoke", "fetch")
            if r.seq > grant.seq
            and r.uint("datasetId") == dataset_id
            and r.address("grantee") == grantee
        ]
        if any(r.action == "revoke" for r in later):
            continue
        used = [r.seq for r in later if r.refused is None]
        left = (grant.uint("maxUses") or 0) - len(used)
        if left > 0:
            yield Finding(
                subject=grant_subject(dataset_id, grantee),
                part=f"grant record {grant.seq}",
                message=(
                    f"the grant of dataset {dataset_id} to {grantee} expires at "
                    f"{_when(expires)} with {left} of {grant.uint('maxUses')} uses left"
                ),
                records=cited(grant.seq, used),
            )


def update_promise_lapsed(inputs: Inputs, rule: Rule) -> Iterator[Finding]:
    """A latest version older than its owner's promised update frequency (plus grace)."""
    facts = inputs.facts
    grace = 1 + rule.number("grace_percent") / 100
    superseded = {
        previous for reg in facts.of("register") if (previous := reg.uint("previousVersion"))
    }
    for dataset_id, reg in sorted(facts.registered.items()):
        metadata = signed_metadata(reg)
        frequency = metadata.get("update_frequency") if metadata is not None else None
        days = frequency_days(frequency) if isinstance(frequency, str) else None
        if dataset_id in superseded or not days or reg.at is None:
            continue
        due = reg.at + dt.timedelta(days=days * grace)
        if inputs.now > due:
            yield Finding(
                subject=f"dataset {dataset_id}",
                part=f"version record {reg.seq}",
                message=(
                    f"dataset {dataset_id} was promised {frequency} updates (every {days} days) "
                    f"and has no newer version since {_when(reg.at)}: due by {_when(due)}"
                ),
                records=(reg.seq,),
            )


#: Every rule's check, in the order of ``ledger.audit.warnings.rules.PARAMS``.
CHECKS: Final[dict[str, Check]] = {
    "repeated-refusals": repeated_refusals,
    "fetch-after-revocation": fetch_after_revocation,
    "volume-spike": volume_spike,
    "sensitive-to-enterprise": sensitive_to_enterprise,
    "purpose-mismatch": purpose_mismatch,
    "anchoring-lag": anchoring_lag,
    "verification-failed": verification_failed,
    "inconsistent-checkpoint": inconsistent_checkpoint,
    "grant-expiring": grant_expiring,
    "update-promise-lapsed": update_promise_lapsed,
}

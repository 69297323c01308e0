"""Early warnings (ledger.audit.warnings): each rule on a log verified by the member-side verifier.

Every scene is a fake broker log of real signed actions and a fake chain of matching events
(tests/unit/test_audit_verifier.py), verified into an in-memory audit state exactly as
``drl verify`` would; the rules then read only that state. Record times are set per record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from ledger.audit import AuditState
from ledger.audit.verifier import AuditReport, Problem
from ledger.audit.warnings import EarlyWarning, Rules, evaluate, load_rules
from ledger.protocol.actions import SignedAction, new_nonce, sign_action
from ledger.protocol.canonical import canonical
from ledger.protocol.documents import metadata_hash, purpose_hash
from tests.unit.test_audit_verifier import ALICE, BOB, DEADLINE, DOMAINS, MALLORY, World

OPERATOR = Account.from_key(b"\x05" * 32)
CAROL = Account.from_key(b"\x06" * 32)  # a department
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
DEPARTMENT, ENTERPRISE = 1, 2
INTERNAL, SENSITIVE = 1, 2
PURPOSE = "quarterly statistics"
#: A grant's terms document carrying the unspecified request form over (what the SDK signs).
TERMS: dict[str, Any] = {
    "v": 1,
    "request_id": 7,
    "purpose_category": "unspecified",
    "legal_basis": "unspecified",
    "retention_days": 0,
    "processing_location": "unspecified",
}


def addr(account: LocalAccount) -> str:
    return account.address.lower()


class Scene(World):
    """A broker and a chain that behave, with each record's time chosen (``at``)."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = NOW - dt.timedelta(days=2)
        self.chain_nonces: dict[str, int] = {}  # AccessLedger's sequential nonce per owner

    def chain_nonce(self, who: LocalAccount) -> int:
        nonce = self.chain_nonces.get(who.address, 0)
        self.chain_nonces[who.address] = nonce + 1
        return nonce

    def add(
        self,
        signed: SignedAction,
        context: dict[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        if at is None:
            self.clock += dt.timedelta(minutes=1)
            at = self.clock
        seq = len(self.log.leaves)
        leaf = canonical(
            {
                "v": 1,
                "seq": seq,
                "at": at.isoformat(timespec="microseconds"),
                "signed": signed.to_json(),
                "context": context or {},
            }
        )
        self.log.leaves.append(leaf)
        self.log.tree.append(leaf)
        return seq

    # -- members ---------------------------------------------------------------------------

    def onboard(self, who: LocalAccount, kind: int) -> int:
        message = {
            "member": who.address,
            "kind": kind,
            "name": f"member {who.address[:8]}",
            "keySuite": 1,
            "encryptionKey": b"\x07" * 32,
            "nonce": new_nonce(),
            "deadline": DEADLINE,
        }
        signed = sign_action(OPERATOR, "onboard", message, DOMAINS)
        self.chain.emit(
            "MemberRegistry",
            "MemberOnboarded",
            member=who.address,
            kind=kind,
            nameHash=bytes(keccak(message["name"].encode())),
            keySuite=1,
            encryptionKey=message["encryptionKey"],
        )
        return self.add(signed)

    def standing(self, action: str, who: LocalAccount, at: dt.datetime | None = None) -> int:
        signed = sign_action(
            OPERATOR,
            action,  # type: ignore[arg-type]
            {"member": who.address, "nonce": new_nonce(), "deadline": DEADLINE},
            DOMAINS,
        )
        event = "MemberSuspended" if action == "suspend" else "MemberReinstated"
        self.chain.emit("MemberRegistry", event, member=who.address)
        return self.add(signed, at=at)

    # -- datasets --------------------------------------------------------------------------

    def publish(
        self,
        dataset_id: int,
        *,
        who: LocalAccount = ALICE,
        classification: int = INTERNAL,
        parents: tuple[int, ...] = (),
        previous: int = 0,
        metadata: dict[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        metadata = metadata or {"title": f"dataset {dataset_id}"}
        message = {
            "owner": who.address,
            "contentHash": bytes([dataset_id]) * 32,
            "metadataHash": metadata_hash(metadata),
            "classification": classification,
            "parents": list(parents),
            "previousVersion": previous,
            "nonce": dataset_id,
            "deadline": DEADLINE,
        }
        signed = sign_action(who, "register", message, DOMAINS)
        self.chain.emit(
            "DataRegistry",
            "DatasetRegistered",
            datasetId=dataset_id,
            owner=who.address,
            contentHash=message["contentHash"],
            metadataHash=message["metadataHash"],
            classification=classification,
            parents=parents,
            previousVersion=previous,
        )
        return self.add(signed, {"dataset_id": dataset_id, "metadata": metadata}, at=at)

    # -- access ----------------------------------------------------------------------------

    def ask(
        self,
        who: LocalAccount = BOB,
        dataset_id: int = 1,
        *,
        purpose: str = PURPOSE,
        uses: int = 3,
        at: dt.datetime | None = None,
        **form: Any,
    ) -> int:
        message = {
            "requester": who.address,
            "datasetId": dataset_id,
            "purpose": purpose,
            "days": 30,
            "maxUses": uses,
            "nonce": new_nonce(),
            "deadline": DEADLINE,
            **form,
        }
        return self.add(sign_action(who, "request", message, DOMAINS), at=at)

    def refuse(
        self,
        request_seq: int,
        *,
        who: LocalAccount = ALICE,
        dataset_id: int = 1,
        at: dt.datetime | None = None,
    ) -> int:
        message = {
            "owner": who.address,
            "requestId": 7,
            "reason": "not now",
            "nonce": new_nonce(),
            "deadline": DEADLINE,
        }
        context = {"dataset_id": dataset_id, "request_id": 7, "request_seq": request_seq}
        return self.add(sign_action(who, "deny", message, DOMAINS), context, at=at)

    def give(
        self,
        grantee: LocalAccount = BOB,
        dataset_id: int = 1,
        *,
        owner: LocalAccount = ALICE,
        purpose: str = PURPOSE,
        uses: int = 3,
        expires: dt.datetime | None = None,
        terms: dict[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        terms = terms or TERMS
        expires_at = int((expires or NOW + dt.timedelta(days=30)).timestamp())
        message = {
            "datasetId": dataset_id,
            "grantee": grantee.address,
            "purposeHash": purpose_hash(purpose),
            "expiresAt": expires_at,
            "maxUses": uses,
            "termsHash": hashlib.sha256(canonical(terms)).digest(),
            "nonce": self.chain_nonce(owner),
            "deadline": DEADLINE,
        }
        signed = sign_action(owner, "grant", message, DOMAINS)
        self.chain.emit(
            "AccessLedger",
            "AccessGranted",
            datasetId=dataset_id,
            grantee=grantee.address,
            grantor=owner.address,
            purposeHash=message["purposeHash"],
            termsHash=message["termsHash"],
            expiresAt=expires_at,
            maxUses=uses,
            generation=1,
        )
        return self.add(signed, {"request_id": 7, "terms": terms}, at=at)

    def cosign(self, grantee: LocalAccount = BOB, dataset_id: int = 1) -> int:
        message = {
            "datasetId": dataset_id,
            "grantee": grantee.address,
            "purposeHash": purpose_hash(PURPOSE),
            "expiresAt": int((NOW + dt.timedelta(days=30)).timestamp()),
            "maxUses": 3,
            "termsHash": b"\x00" * 32,
            "generation": 1,
            "nonce": new_nonce(),
            "deadline": DEADLINE,
        }
        return self.add(sign_action(OPERATOR, "approval", message, DOMAINS))

    def take_back(
        self, grantee: LocalAccount = BOB, dataset_id: int = 1, owner: LocalAccount = ALICE
    ) -> int:
        message = {
            "datasetId": dataset_id,
            "grantee": grantee.address,
            "nonce": self.chain_nonce(owner),
            "deadline": DEADLINE,
        }
        signed = sign_action(owner, "revoke", message, DOMAINS)
        self.chain.emit(
            "AccessLedger",
            "AccessRevoked",
            datasetId=dataset_id,
            grantee=grantee.address,
            by=owner.address,
        )
        return self.add(signed)

    def use(
        self,
        who: LocalAccount = BOB,
        dataset_id: int = 1,
        *,
        refused: str | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        signed = self.sign_fetch(who, dataset_id)
        if refused is not None:
            return self.add(signed, {"refused": refused}, at=at)
        self.used(signed)
        return self.add(signed, {"uses": 1}, at=at)

    # -- the audit ---------------------------------------------------------------------------

    def warnings(
        self, rules: Rules | None = None, *, now: dt.datetime = NOW, rule: str | None = None
    ) -> list[EarlyWarning]:
        report = self.verify()
        assert report.ok, report.problems
        found = evaluate(self.state, rules or load_rules(), now=now, report=report)
        return [w for w in found if rule is None or w.rule == rule]


def tuned(rule_id: str, **params: Any) -> Rules:
    """The packaged rules with some thresholds of one rule changed."""
    base = load_rules()
    rule = base[rule_id]
    changed = replace(rule, params={**rule.params, **params})
    return replace(base, rules={**base.rules, rule_id: changed})


@pytest.fixture
def scene() -> Scene:
    """Alice (a department) owns dataset 1; Bob is an enterprise, Carol a department."""
    s = Scene()
    s.onboard(ALICE, DEPARTMENT)  # 0
    s.onboard(BOB, ENTERPRISE)  # 1
    s.onboard(CAROL, DEPARTMENT)  # 2
    s.publish(1)  # 3
    return s


def test_a_well_behaved_log_raises_no_warning(scene: Scene) -> None:
    scene.ask(BOB, 1)
    scene.give(BOB, 1)
    scene.use(BOB, 1)
    scene.anchor()
    assert scene.warnings() == []


# -- repeated refusals ---------------------------------------------------------------------------


def test_three_refusals_of_one_member_within_a_day_are_one_warning(scene: Scene) -> None:
    first = scene.use(BOB, 1, refused="no_grant")
    request = scene.ask(BOB, 1)
    denial = scene.refuse(request)
    third = scene.use(BOB, 1, refused="no_grant")
    (warning,) = scene.warnings(rule="repeated-refusals")
    assert warning.subject == f"member {addr(BOB)}"
    assert warning.severity == "warning"
    assert warning.records == (first, request, denial, third)
    assert "3 refusals" in warning.message
    assert "(2 fetches refused, 1 requests denied)" in warning.message
    assert warning.key == f"repeated-refusals|member {addr(BOB)}|from record {first}"


def test_refusals_spread_wider_than_the_window_raise_nothing(scene: Scene) -> None:
    for hours in (0, 13, 26):
        scene.use(BOB, 1, refused="no_grant", at=NOW - dt.timedelta(hours=30 - hours))
    assert scene.warnings(rule="repeated-refusals") == []
    (warning,) = scene.warnings(
        tuned("repeated-refusals", window_hours=26), rule="repeated-refusals"
    )
    assert len(warning.records) == 3


def test_a_denial_counts_only_against_the_signed_request_it_names(scene: Scene) -> None:
    scene.publish(2, who=CAROL)  # 4: Carol's dataset
    other = scene.ask(BOB, 2)  # 5: a request for Carol's dataset
    scene.use(BOB, 1, refused="no_grant")
    scene.use(BOB, 1, refused="no_grant")
    scene.refuse(other)  # Alice cannot deny a request for Carol's dataset
    scene.refuse(scene.use(BOB, 1))  # the record named is no request
    assert scene.warnings(rule="repeated-refusals") == []
    scene.refuse(other, who=CAROL, dataset_id=2)
    (warning,) = scene.warnings(rule="repeated-refusals")
    assert other in warning.records


# -- fetches after a revocation, an expiry or a suspension ---------------------------------------


def test_a_fetch_refused_after_revocation_cites_the_attempt_and_the_revocation(
    scene: Scene,
) -> None:
    scene.ask(BOB, 1)
    scene.give(BOB, 1)
    revoked = scene.take_back(BOB, 1)
    attempt = scene.use(BOB, 1, refused="access_ledger_grant_revoked")
    (warning,) = scene.warnings(rule="fetch-after-revocation")
    assert warning.subject == f"grant 1→{addr(BOB)}"
    assert warning.records == (revoked, attempt)
    assert f"after the grant was revoked (record {revoked}); 0 of them served" in warning.message
    key = warning.key
    again = scene.use(BOB, 1, refused="access_ledger_grant_revoked")
    (warning,) = scene.warnings(rule="fetch-after-revocation")
    assert (warning.key, warning.records) == (key, (revoked, attempt, again))


def test_a_fetch_served_after_revocation_is_named_as_served(scene: Scene) -> None:
    scene.give(BOB, 1)
    revoked = scene.take_back(BOB, 1)
    served = scene.use(BOB, 1)
    (warning,) = scene.warnings(rule="fetch-after-revocation")
    assert warning.records == (revoked, served)
    assert "1 of them served" in warning.message


def test_a_new_grant_after_the_revocation_makes_fetches_normal_again(scene: Scene) -> None:
    scene.give(BOB, 1)
    scene.take_back(BOB, 1)
    scene.give(BOB, 1)
    scene.use(BOB, 1)
    assert scene.warnings(rule="fetch-after-revocation") == []


def test_fetches_after_expiry_and_under_suspension_name_what_they_came_after(
    scene: Scene,
) -> None:
    grant = scene.give(BOB, 1, expires=NOW - dt.timedelta(hours=1))
    late = scene.use(BOB, 1, at=NOW - dt.timedelta(minutes=30))  # served after expiresAt
    suspended = scene.standing("suspend", BOB, at=NOW - dt.timedelta(minutes=20))
    attempt = scene.use(BOB, 1, refused="member_suspended", at=NOW - dt.timedelta(minutes=10))
    found = {
        w.message.split(";")[0]: w.records for w in scene.warnings(rule="fetch-after-revocation")
    }
    assert found == {
        f"1 fetch attempt(s) by {addr(BOB)} of dataset 1 after the grant expired at "
        f"{(NOW - dt.timedelta(hours=1)).isoformat(timespec='seconds')} (record {grant})": (
            grant,
            late,
        ),
        f"1 fetch attempt(s) by {addr(BOB)} of dataset 1 while the grantee was suspended "
        f"(record {suspended})": (suspended, attempt),
    }


def test_only_the_refusal_codes_listed_count_as_attempts_after_revocation(scene: Scene) -> None:
    scene.use(BOB, 1, refused="no_grant")
    scene.use(BOB, 1, refused="access_ledger_uses_exhausted")
    assert scene.warnings(rule="fetch-after-revocation") == []
    rules = tuned("fetch-after-revocation", codes=("access_ledger_uses_exhausted",))
    (warning,) = scene.warnings(rules, rule="fetch-after-revocation")
    assert "refused with access_ledger_uses_exhausted" in warning.message


# -- volume ----------------------------------------------------------------------------------


def fetch_days(scene: Scene, counts: list[int]) -> list[list[int]]:
    """Bob's served fetches, ``counts[i]`` on the i-th day before NOW's day (the last: NOW)."""
    days = []
    for back, count in zip(range(len(counts) - 1, -1, -1), counts, strict=True):
        day = NOW - dt.timedelta(days=back, hours=1)
        days.append([scene.use(BOB, 1, at=day + dt.timedelta(seconds=i)) for i in range(count)])
    return days


def test_a_day_far_above_the_consumers_own_median_is_a_volume_spike(scene: Scene) -> None:
    scene.give(BOB, 1, uses=100)
    days = fetch_days(scene, [2, 1, 2, 0, 2, 12])
    (warning,) = scene.warnings(rule="volume-spike")
    assert warning.subject == f"member {addr(BOB)}"
    assert warning.records == tuple(days[-1])
    assert warning.message == (
        f"12 fetches by {addr(BOB)} on {NOW.date()}, against a median of 2 a day over the "
        "previous 5 days"
    )
    assert warning.key == f"volume-spike|member {addr(BOB)}|day {NOW.date()}"


def test_volume_needs_the_minimum_count_a_history_and_the_factor(scene: Scene) -> None:
    scene.give(BOB, 1, uses=100)
    fetch_days(scene, [1, 1, 1, 9])  # a median of 1, then 9: below min_count 10

    def spikes(**params: Any) -> int:
        return len(scene.warnings(tuned("volume-spike", **params), rule="volume-spike"))

    assert spikes() == 0
    assert spikes(min_count=9) == 1
    assert spikes(min_count=9, factor=8.9) == 1
    assert spikes(min_count=9, factor=9.0) == 0  # 9 is not above 9 × 1
    assert spikes(min_count=9, history_days=4) == 0  # the first fetch was 3 days before


# -- sensitive data reaching enterprises, and purposes --------------------------------------------


def test_sensitive_data_granted_to_an_enterprise_cites_grant_member_dataset_and_cosignature(
    scene: Scene,
) -> None:
    registered = scene.publish(5, classification=SENSITIVE)
    scene.ask(BOB, 5)
    approval = scene.cosign(BOB, 5)
    grant = scene.give(BOB, 5)
    (warning,) = scene.warnings(rule="sensitive-to-enterprise")
    assert warning.subject == f"grant 5→{addr(BOB)}"
    assert warning.records == (1, registered, approval, grant)  # 1: Bob's onboarding
    assert warning.message == (
        f"SENSITIVE dataset 5 was granted to enterprise {addr(BOB)}, co-signed by the "
        f"operator (record {approval})"
    )


def test_a_derivative_of_sensitive_data_granted_to_an_enterprise_shows_its_lineage(
    scene: Scene,
) -> None:
    source = scene.publish(5, classification=SENSITIVE)
    extract = scene.publish(6, parents=(5,))
    version = scene.publish(7, previous=6)
    scene.ask(BOB, 7)
    grant = scene.give(BOB, 7)
    scene.ask(CAROL, 7)
    scene.give(CAROL, 7)  # a department: no warning
    (warning,) = scene.warnings(rule="sensitive-to-enterprise")
    assert "dataset 7 derives from SENSITIVE dataset 5 (5 → 6 → 7)" in warning.message
    assert warning.records == (1, source, extract, version, grant)
    rules = tuned("sensitive-to-enterprise", derivatives=False)
    assert scene.warnings(rules, rule="sensitive-to-enterprise") == []


def test_a_grant_for_another_purpose_than_requested_is_named(scene: Scene) -> None:
    request = scene.ask(BOB, 1, purpose=PURPOSE)
    grant = scene.give(BOB, 1, purpose="marketing")
    (warning,) = scene.warnings(rule="purpose-mismatch")
    assert warning.severity == "critical"
    assert warning.records == (request, grant)
    assert "its purposeHash is the hash of no purpose the grantee asked for" in warning.message


def test_a_grant_matching_any_earlier_request_of_the_grantee_is_fine(scene: Scene) -> None:
    scene.ask(BOB, 1, purpose=PURPOSE)
    scene.ask(BOB, 1, purpose="another purpose")
    scene.give(BOB, 1, purpose=PURPOSE)
    assert scene.warnings(rule="purpose-mismatch") == []


def test_a_grant_carried_to_a_new_version_keeps_the_old_requests_terms(scene: Scene) -> None:
    request = scene.ask(BOB, 1, uses=3)
    scene.give(BOB, 1, uses=3)
    scene.publish(2, previous=1)
    scene.give(BOB, 2, uses=2)  # carried over: the uses left
    assert scene.warnings(rule="purpose-mismatch") == []
    more = scene.give(BOB, 2, uses=4)
    (warning,) = scene.warnings(rule="purpose-mismatch")
    assert warning.records == (request, more)
    assert "maxUses 4 where 3 was asked" in warning.message


def test_a_grant_without_request_or_with_other_uses_or_form_is_named(scene: Scene) -> None:
    alone = scene.give(CAROL, 1)
    request = scene.ask(BOB, 1, uses=3, legalBasis="consent")
    grant = scene.give(BOB, 1, uses=5, terms={**TERMS, "legal_basis": "contract"})
    by_grant = {w.records[-1]: w for w in scene.warnings(rule="purpose-mismatch")}
    assert by_grant[alone].records == (alone,)
    assert "follows no signed request" in by_grant[alone].message
    assert by_grant[grant].records == (request, grant)
    assert by_grant[grant].message.endswith(
        f"differs from its request (record {request}): maxUses 5 where 3 was asked; "
        "legalBasis 'contract' where 'consent' was asked"
    )


# -- the log itself ------------------------------------------------------------------------------


def test_records_left_unanchored_too_long_are_anchoring_lag(scene: Scene) -> None:
    scene.anchor()  # the first 4 records
    old = scene.ask(BOB, 1, at=NOW - dt.timedelta(minutes=90))
    scene.ask(BOB, 1, at=NOW - dt.timedelta(minutes=5))
    (warning,) = scene.warnings(rule="anchoring-lag")
    assert (warning.subject, warning.records) == ("log", (old,))
    assert "the largest anchored head holds 4 records" in warning.message
    assert scene.warnings(tuned("anchoring-lag", minutes=120), rule="anchoring-lag") == []
    scene.anchor()
    assert scene.warnings(rule="anchoring-lag") == []


def test_a_failed_verification_is_a_warning_per_problem_citing_its_record(scene: Scene) -> None:
    report = AuditReport(origin="o")
    report.problems.append(Problem("record_unconfirmed", "log record 3", "no event"))
    report.problems.append(Problem("chain_event_unmatched", "tx 0xab", "no record"))
    scene.anchor()
    assert scene.verify().ok
    found = evaluate(scene.state, load_rules(), now=NOW, report=report)
    assert [(w.rule, w.severity, w.records) for w in found] == [
        ("verification-failed", "critical", ()),
        ("verification-failed", "critical", (3,)),
    ]
    assert evaluate(scene.state, load_rules(), now=NOW) == []


def test_a_broker_that_showed_two_histories_is_a_critical_warning(scene: Scene) -> None:
    scene.anchor()
    assert scene.verify().ok
    scene.state.add_evidence(
        code="log_inconsistent", detail="two heads of size 4", kept_note="a", served_note="b"
    )
    (warning,) = evaluate(scene.state, load_rules(), now=NOW)
    assert (warning.rule, warning.severity, warning.subject) == (
        "inconsistent-checkpoint",
        "critical",
        "log",
    )
    assert "two heads of size 4" in warning.message


# -- promises ------------------------------------------------------------------------------------


def test_a_grant_expiring_soon_with_uses_left_is_named_with_the_uses_made(scene: Scene) -> None:
    grant = scene.give(BOB, 1, uses=3, expires=NOW + dt.timedelta(days=3))
    used = scene.use(BOB, 1)
    scene.use(BOB, 1, refused="no_grant")  # a refusal is no use
    (warning,) = scene.warnings(rule="grant-expiring")
    assert warning.severity == "info"
    assert warning.records == (grant, used)
    assert "with 2 of 3 uses left" in warning.message
    assert scene.warnings(tuned("grant-expiring", days=2), rule="grant-expiring") == []


def test_a_grant_used_up_revoked_or_expired_is_not_expiring(scene: Scene) -> None:
    scene.give(BOB, 1, uses=1, expires=NOW + dt.timedelta(days=3))
    scene.use(BOB, 1)
    scene.give(CAROL, 1, expires=NOW + dt.timedelta(days=3))
    scene.take_back(CAROL, 1)
    scene.give(MALLORY, 1, expires=NOW - dt.timedelta(days=1))
    assert scene.warnings(rule="grant-expiring") == []


def test_a_dataset_past_its_owners_update_promise_is_named(scene: Scene) -> None:
    weekly = {"title": "weekly", "update_frequency": "WEEKLY"}
    lapsed = scene.publish(5, metadata=weekly, at=NOW - dt.timedelta(days=8))
    scene.publish(6, metadata=weekly, at=NOW - dt.timedelta(days=7, hours=12))  # within grace
    scene.publish(7, metadata=weekly, at=NOW - dt.timedelta(days=30))
    scene.publish(8, metadata=weekly, previous=7)  # the next version came
    scene.publish(9, at=NOW - dt.timedelta(days=30))  # no promise
    (warning,) = scene.warnings(rule="update-promise-lapsed")
    assert (warning.subject, warning.records) == ("dataset 5", (lapsed,))
    assert "promised WEEKLY updates (every 7 days)" in warning.message
    assert (
        scene.warnings(
            tuned("update-promise-lapsed", grace_percent=20), rule="update-promise-lapsed"
        )
        == []
    )


# -- the engine ------------------------------------------------------------------------------------


def test_a_disabled_rule_is_silent_and_severity_comes_from_the_rules(scene: Scene) -> None:
    scene.give(BOB, 1)
    scene.take_back(BOB, 1)
    scene.use(BOB, 1, refused="access_ledger_grant_revoked")
    rule = load_rules()["fetch-after-revocation"]
    base = load_rules()
    off = replace(base, rules={**base.rules, rule.id: replace(rule, enabled=False)})
    assert scene.warnings(off, rule="fetch-after-revocation") == []
    loud = replace(base, rules={**base.rules, rule.id: replace(rule, severity="critical")})
    (warning,) = scene.warnings(loud, rule="fetch-after-revocation")
    assert warning.severity == "critical"


def test_first_seen_is_kept_across_runs_and_reopenings(tmp_path: Path) -> None:
    scene = Scene()
    scene.state = AuditState.open(tmp_path / "audit.sqlite")
    scene.onboard(BOB, ENTERPRISE)
    scene.use(BOB, 1, refused="no_grant")
    scene.use(BOB, 1, refused="no_grant")
    scene.use(BOB, 1, refused="no_grant")
    (first,) = scene.warnings(now=NOW, rule="repeated-refusals")
    assert first.first_seen == "2025-06-01T12:00:00+00:00"
    scene.state.close()
    scene.state = AuditState.open(tmp_path / "audit.sqlite")
    later = NOW + dt.timedelta(hours=5)
    for _ in range(3):
        scene.use(MALLORY, 1, refused="no_grant", at=NOW + dt.timedelta(hours=4))
    found = {w.subject: w.first_seen for w in scene.warnings(now=later, rule="repeated-refusals")}
    assert found == {
        f"member {addr(BOB)}": "2025-06-01T12:00:00+00:00",
        f"member {addr(MALLORY)}": "2025-06-01T17:00:00+00:00",
    }
    scene.state.close()


def test_warnings_come_most_severe_first() -> None:
    scene = Scene()
    daily = {"title": "t", "update_frequency": "DAILY"}
    scene.publish(1, metadata=daily, at=NOW - dt.timedelta(days=9))  # info
    scene.ask(BOB, 1)
    scene.give(BOB, 1, purpose="other")  # critical
    scene.take_back(BOB, 1)
    scene.use(BOB, 1, refused="access_ledger_grant_revoked")  # warning
    scene.anchor()
    assert [(w.severity, w.rule) for w in scene.warnings()] == [
        ("critical", "purpose-mismatch"),
        ("warning", "fetch-after-revocation"),
        ("info", "update-promise-lapsed"),
    ]

"""Attacks 1, 4, 5, 7 and 8: what the broker host's database and keys can make up.

The attacker holds the broker host: broker.db and the BROKER key (and, in the single-host
setup, the ADMIN key beside it). Through the real broker it swaps a member's key before an
approval (1), sends a second receipt for one fetch (7) and farms credits with one colluding
consumer (8). With the BROKER key used directly against the contracts (the broker stopped, so
the embedded chain file is free, as ``drl chain`` uses it) it tries to rotate a member's key
(1), onboard a sybil (4), record uses without a signed Fetch and mint credits for made-up
receipts (4), and replay a spent GrantApproval (5). The contracts refuse, and what they do
accept without a signed record (withheld or minted credits for receipts never logged) is named
by the regulator's ``drl verify``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger import crypto
from ledger.chain.client import LedgerChain, encode_approval
from ledger.chain.models import SignedReceipt
from ledger.client.sdk import BrokerClient, fingerprint
from ledger.errors import Conflict, LedgerError
from ledger.protocol.actions import SignedAction, new_nonce, sign_action
from ledger.protocol.documents import key_context
from ledger.protocol.messages import GrantTerms
from tests.adversary.conftest import Site
from tests.adversary.helpers import expect_revert, people, sample_csv

#: SharingCredits.Withheld
ALREADY_CREDITED, CAP_REACHED, INVALID_SIGNATURE, FETCH_NOT_RECORDED = 1, 2, 4, 5
PAIR_CAP = 12  # CreditRules default: per (owner, consumer, epoch)


@pytest.fixture(scope="module")
def crowd(site: Site) -> dict[str, str]:
    return people(
        site,
        ("office", "department"),
        ("works", "department"),
        ("coop", "enterprise"),
        ("crony", "enterprise"),
        ("auditor", "regulator"),
    )


def _share(site: Site, owner: str, grantee: str, source: Path, *, uses: int, **kw: Any) -> int:
    """Register ``source`` as ``owner`` and grant it to ``grantee``; returns the dataset id."""
    with site.sdk(owner) as c:
        dataset = c.register(source, title=source.stem, **kw)
    with site.sdk(grantee) as c:
        request = c.request_access(dataset.id, purpose="district planning", days=30, uses=uses)
    with site.sdk(owner) as c:
        c.approve(request.id)
    return dataset.id


# -- attack 1 through the broker's database ---------------------------------------------------


def test_key_swapped_in_broker_db_is_not_wrapped_to(
    site: Site, crowd: dict[str, str], tmp_path: Path
) -> None:
    """Attack 1: the requester's key is swapped in broker.db before approve; the owner's
    ``drl access approve`` wraps to the key registered on chain and shows its fingerprint, the
    grantee decrypts, and the broker's substitute key opens nothing."""
    coop = site.members["coop"]
    source = sample_csv(tmp_path / "casework.csv", rows=300, tag="K")
    with site.sdk("office") as c:
        dataset = c.register(source, title="Casework register")
    with site.sdk("coop") as c:
        request = c.request_access(dataset.id, purpose="solar siting study", days=30, uses=2)

    thief, thief_public = crypto.generate_keypair()
    with site.db() as db:
        db.execute(
            "UPDATE members SET encryption_key = ? WHERE address = ?",
            (thief_public.to_bytes(), coop.address),
        )
    try:
        with site.sdk("office") as c:  # the broker's directory now names the thief's key
            assert c.member(coop.address).encryption_key == "0x" + thief_public.to_bytes().hex()

        approved = site.drl("office", "access", "approve", str(request.id))
    finally:  # the attacker restores the row, as in the issue
        with site.db() as db:
            db.execute(
                "UPDATE members SET encryption_key = ? WHERE address = ?",
                (bytes.fromhex(coop.profile.encryption_key[2:]), coop.address),
            )

    assert approved.returncode == 0, approved.stderr
    real_key = bytes.fromhex(coop.profile.encryption_key[2:])
    assert fingerprint(coop.profile.key_suite, real_key) in approved.stdout
    assert fingerprint(thief_public.suite.id, thief_public.to_bytes()) not in approved.stdout
    # Where that key was read: the member's own node, or (embedded chain) the broker's relay,
    # which the command says is the broker's word (docs/threat-model.md, "The embedded chain").
    relayed = "note: chain read through the broker (embedded chain)" in approved.stderr
    assert relayed == (site.backend == "embedded"), approved.stderr
    with site.db() as db:
        (wrapped,) = db.execute(
            "SELECT wrapped FROM wrapped_keys WHERE dataset_id = ? AND recipient = ?",
            (dataset.id, coop.address),
        ).fetchone()
    info = key_context(bytes.fromhex(dataset.content_hash[2:]), coop.address)
    with pytest.raises(LedgerError):
        crypto.unwrap_key(bytes(wrapped), thief.to_bytes(), info=info)
    out = tmp_path / "received.csv"
    with site.sdk("coop") as c:
        c.fetch(dataset.id, out)
    assert out.read_bytes() == source.read_bytes()


# -- attack 7: one receipt per fetch ----------------------------------------------------------


def test_second_receipt_for_one_fetch_is_refused(
    site: Site, crowd: dict[str, str], tmp_path: Path
) -> None:
    """Attack 7 (the CLI/SDK view; PostgreSQL races are in tests/fault): a second receipt for
    a fetch, sequential or eight at once, is refused ``receipt_exists``; exactly one stands."""
    coop = site.members["coop"]
    source = sample_csv(tmp_path / "meters.csv", rows=50, tag="R")
    dataset_id = _share(site, "office", "coop", source, uses=3)
    with site.sdk("coop") as c:
        first = c.fetch(dataset_id, tmp_path / "a.csv", acknowledge=False)
        second = c.fetch(dataset_id, tmp_path / "b.csv", acknowledge=False)
        content = bytes.fromhex(first.content_hash[2:])
        nonce_of = dict(
            zip(("first", "second"), _fetch_nonces(site, coop.address, dataset_id), strict=True)
        )

        c.acknowledge(dataset_id, content, first.generation, fetch_nonce=nonce_of["first"])
        with pytest.raises(Conflict) as again:
            c.acknowledge(dataset_id, content, first.generation, fetch_nonce=nonce_of["first"])
        assert again.value.code == "receipt_exists"

    def acknowledge(_: int) -> str:
        with BrokerClient(site.url, coop.keys, chain_url=site.chain_url) as own:
            try:
                own.acknowledge(
                    dataset_id, content, second.generation, fetch_nonce=nonce_of["second"]
                )
            except LedgerError as exc:
                return exc.code
            return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(acknowledge, range(8)))
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) == {"ok", "receipt_exists"}, outcomes
    with site.db() as db:
        (n,) = db.execute(
            "SELECT count(*) FROM deliveries WHERE consumer = ? AND dataset_id = ?",
            (coop.address, dataset_id),
        ).fetchone()
    assert n == 2


def _fetch_nonces(site: Site, grantee: str, dataset_id: int) -> list[int]:
    """The nonces of ``grantee``'s logged fetches of ``dataset_id``, oldest first."""
    with site.db() as db:
        leaves = [
            json.loads(bytes(r[0]))
            for r in db.execute(
                "SELECT leaf FROM log_records WHERE action = 'fetch' AND actor = ? "
                "AND dataset_id = ? ORDER BY seq",
                (grantee, dataset_id),
            )
        ]
    return [int(leaf["signed"]["message"]["nonce"]) for leaf in leaves]


# -- attack 8: credit farming -----------------------------------------------------------------


def test_credit_farming_earns_at_most_the_pair_cap(
    site: Site, crowd: dict[str, str], tmp_path: Path
) -> None:
    """Attack 8: an owner and one colluding consumer, three 3-row datasets fetched ten times
    each and rated 5: the contract computes the amounts and clips the pair at its cap per epoch
    (12, not the 300 the old rules paid); every delivery past it is withheld ``CAP_REACHED``."""
    works, crony = site.members["works"], site.members["crony"]
    ids = [
        _share(
            site,
            "works",
            "crony",
            sample_csv(tmp_path / f"farm{i}.csv", rows=3, tag=f"{i}"),
            uses=10,
        )
        for i in range(3)
    ]

    def farm(dataset_id: int) -> None:  # one client per thread (each keeps its proofs in memory)
        with BrokerClient(site.url, crony.keys, chain_url=site.chain_url) as c:
            for k in range(10):
                c.fetch(dataset_id, tmp_path / f"got-{dataset_id}-{k}.csv")
            c.rate(dataset_id, 5, "excellent")

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(farm, ids))
    with site.admin_sdk() as op:
        op.anchor()

    with site.sdk("works") as c:
        chain = c.chain_view().chain
        minted = [
            e for e in chain.events("SharingCredits", "CreditsMinted") if e.args["datasetId"] in ids
        ]
        withheld = [
            e
            for e in chain.events("SharingCredits", "CreditWithheld")
            if e.args["datasetId"] in ids
        ]
        per_epoch: dict[int, int] = {}
        for e in minted:
            per_epoch[e.args["epoch"]] = per_epoch.get(e.args["epoch"], 0) + e.args["amount"]
        for epoch, total in per_epoch.items():
            assert chain.minted_for_pair(works.address, crony.address, epoch) == total
        assert chain.credits_of(works.address) == sum(per_epoch.values())
    assert all(total <= PAIR_CAP for total in per_epoch.values()), per_epoch
    assert len(minted) + len(withheld) == 30
    if len(per_epoch) == 1:  # (a run straddling two epochs earns the cap in each)
        # Weighted by quality 50 (these registrations carry no quality summary): 3, then 1s.
        assert {e.args["quality"] for e in minted} == {50}
        assert [e.args["amount"] for e in minted] == [3] + [1] * 9
        assert {e.args["reason"] for e in withheld} == {CAP_REACHED}


# -- the BROKER key against the contracts (attacks 1, 4, 5, 7) --------------------------------


@dataclass
class Loot:
    """What the broker host holds when the attacker turns to the contracts."""

    dataset_id: int  # works' dataset granted to coop (3 uses); one fetch recorded, no receipt
    content_hash: bytes
    generation: int
    fetch: SignedAction  # coop's Fetch, as logged
    sensitive_id: int  # office's SENSITIVE dataset, granted to coop with the operator's approval
    first_grant: SignedAction  # the owner's Grant that approval was for, as logged
    approval: SignedAction  # the operator's spent GrantApproval, as logged
    pending: SignedAction  # the owner's second Grant, awaiting a co-signature in broker.db


def _logged(site: Site, action: str, dataset_id: int) -> SignedAction:
    with site.db() as db:
        (leaf,) = db.execute(
            "SELECT leaf FROM log_records WHERE action = ? AND dataset_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            (action, dataset_id),
        ).fetchone()
    return SignedAction.from_json(json.loads(bytes(leaf))["signed"])


@pytest.fixture(scope="module")
def loot(site: Site, crowd: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Loot:
    """Attack 5 set up as in use: a SENSITIVE grant to an enterprise, co-signed by the
    operator (``drl admin cosign``), then a second request the owner approved, which
    awaits a co-signature; and a fetch of another grant with no receipt yet."""
    work = tmp_path_factory.mktemp("loot")
    dataset_id = _share(site, "works", "coop", sample_csv(work / "loot.csv", rows=40), uses=3)
    with site.sdk("coop") as c:
        fetched = c.fetch(dataset_id, work / "loot-got.csv", acknowledge=False)

    with site.sdk("office") as c:
        sensitive = c.register(
            sample_csv(work / "health.csv", rows=40, tag="S"),
            title="Clinic visits",
            classification="sensitive",
        )
    with site.sdk("coop") as c:
        first = c.request_access(sensitive.id, purpose="one cohort study", days=30, uses=1)
    with site.sdk("office") as c:
        assert c.approve(first.id).grant is None  # SENSITIVE to an enterprise: awaits ADMIN
    cosigned = site.drl("admin", "admin", "cosign", str(first.id))
    assert cosigned.returncode == 0, cosigned.stderr
    with site.sdk("coop") as c:
        second = c.request_access(sensitive.id, purpose="another cohort study", days=30, uses=1)
    first_grant, approval = (
        _logged(site, "grant", sensitive.id),
        _logged(site, "approval", sensitive.id),
    )
    with site.sdk("office") as c:
        assert c.approve(second.id).grant is None  # awaits the operator again
    with site.db() as db:
        (pending,) = db.execute(
            "SELECT pending_grant_json FROM access_requests WHERE id = ?", (second.id,)
        ).fetchone()
    return Loot(
        dataset_id=dataset_id,
        content_hash=bytes.fromhex(fetched.content_hash[2:]),
        generation=fetched.generation,
        fetch=_logged(site, "fetch", dataset_id),
        sensitive_id=sensitive.id,
        first_grant=first_grant,
        approval=approval,
        pending=SignedAction.from_json(json.loads(pending)),
    )


def _fund_from(chain: LedgerChain, address: str) -> None:
    """Give the ADMIN key gas money from the broker key (the attacker holds both)."""
    w3, sender = chain.w3, chain.account
    tx = {
        "to": address,
        "value": 10**18,
        "gas": 21000,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 2 * int(w3.eth.get_block("latest")["baseFeePerGas"]) + 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def _receipt(
    signer: LocalAccount,
    chain: LedgerChain,
    *,
    consumer: str,
    dataset_id: int,
    content_hash: bytes,
    generation: int,
    fetch_nonce: int,
) -> SignedReceipt:
    message = {
        "consumer": consumer,
        "datasetId": dataset_id,
        "contentHash": content_hash,
        "grantGeneration": generation,
        "fetchNonce": fetch_nonce,
        "nonce": new_nonce(),
        "deadline": int(time.time()) + 600,
    }
    signed = sign_action(signer, "receipt", message, chain.deployment.domains)
    return SignedReceipt(
        dataset_id=dataset_id,
        consumer=consumer,
        content_hash=content_hash,
        grant_generation=generation,
        fetch_nonce=fetch_nonce,
        nonce=int(message["nonce"]),
        deadline=int(message["deadline"]),
        signature=signed.signature,
    )


@pytest.fixture(scope="class")
def stolen(site: Site, loot: Loot) -> Iterator[LedgerChain]:
    """The contracts signing as the BROKER key read from the host (the broker stopped, and
    started again after the class)."""
    with site.broker_stopped(), site.attacker_chain() as chain:
        yield chain


class TestTheBrokerKeyAlone:
    """The BROKER key (and the ADMIN key beside it) straight against the contracts."""

    def test_no_key_of_the_operator_rotates_a_members_key(
        self, site: Site, stolen: LedgerChain
    ) -> None:
        """Attack 1: neither the BROKER nor the ADMIN key replaces the coop's encryption key,
        directly (``rotateKey`` only rotates the caller's own) or with a signature of its own
        (``rotateKeyFor`` needs the member's)."""
        coop = site.members["coop"]
        admin = stolen.acting_as(site.admin_account())
        _fund_from(stolen, admin.account.address)
        before = stolen.member(coop.address)
        _, thief = crypto.generate_keypair()
        for chain in (stolen, admin):
            with expect_revert("MemberRegistryUnknownMember", member=chain.account.address):
                chain.rotate_key(key_suite=thief.suite.id, encryption_key=thief.to_bytes())
            deadline = int(time.time()) + 600
            forged = sign_action(
                chain.account,
                "rotate_key",
                {
                    "member": coop.address,
                    "keySuite": thief.suite.id,
                    "encryptionKey": thief.to_bytes(),
                    "nonce": new_nonce(),
                    "deadline": deadline,
                },
                chain.deployment.domains,
            )
            with expect_revert("MemberRegistryInvalidSigner", signer=chain.account.address):
                chain.rotate_key_for(
                    coop.address,
                    key_suite=thief.suite.id,
                    encryption_key=thief.to_bytes(),
                    nonce=int(forged.message["nonce"]),
                    deadline=deadline,
                    signature=forged.signature,
                )
        assert stolen.member(coop.address) == before
        assert stolen.events("MemberRegistry", "EncryptionKeyRotated") == []

    def test_broker_key_onboards_no_sybil(self, stolen: LedgerChain) -> None:
        """Attack 4 (sybils to farm credits): the BROKER key cannot onboard a member, directly
        (no ADMIN role) or relaying an Onboard signed by itself (the signer must hold ADMIN)."""
        sybil = Account.create().address
        _, key = crypto.generate_keypair()
        with expect_revert("AccessControlUnauthorizedAccount"):
            stolen.onboard(
                sybil,
                kind="enterprise",
                name_hash=os.urandom(32),
                key_suite=key.suite.id,
                encryption_key=key.to_bytes(),
            )
        deadline = int(time.time()) + 600
        onboard = sign_action(
            stolen.account,
            "onboard",
            {
                "member": sybil,
                "kind": 2,
                "name": "Sybil Analytics Ltd",
                "keySuite": key.suite.id,
                "encryptionKey": key.to_bytes(),
                "nonce": new_nonce(),
                "deadline": deadline,
            },
            stolen.deployment.domains,
        )
        with expect_revert("MemberRegistryUnauthorizedSigner", signer=stolen.account.address):
            stolen.onboard_for(
                sybil,
                kind="enterprise",
                name="Sybil Analytics Ltd",
                key_suite=key.suite.id,
                encryption_key=key.to_bytes(),
                nonce=int(onboard.message["nonce"]),
                deadline=deadline,
                signature=onboard.signature,
            )
        assert not stolen.member(sybil).active

    def test_broker_key_records_no_use_without_the_grantees_fetch(
        self, site: Site, stolen: LedgerChain, loot: Loot
    ) -> None:
        """Attack 4 (made-up uses): ``recordUse`` with no signature, with a Fetch the broker
        signed itself, or with the grantee's Fetch replayed from the log: all refused, and the
        grant's use count stays where the grantee's own fetches put it."""
        coop = site.members["coop"]
        before = stolen.grant_of(loot.dataset_id, coop.address)
        deadline = int(time.time()) + 600
        with pytest.raises(LedgerError):  # OpenZeppelin ECDSA refuses a zero signature
            stolen.record_use(
                loot.dataset_id,
                coop.address,
                nonce=new_nonce(),
                deadline=deadline,
                signature=bytes(65),
            )
        own = sign_action(
            stolen.account,
            "fetch",
            {
                "grantee": coop.address,
                "datasetId": loot.dataset_id,
                "nonce": new_nonce(),
                "deadline": deadline,
            },
            stolen.deployment.domains,
        )
        with expect_revert("AccessLedgerInvalidSigner", signer=stolen.account.address):
            stolen.record_use(
                loot.dataset_id,
                coop.address,
                nonce=int(own.message["nonce"]),
                deadline=deadline,
                signature=own.signature,
            )
        replay = loot.fetch
        with expect_revert("AccessLedgerFetchAlreadyRecorded"):
            stolen.record_use(
                loot.dataset_id,
                coop.address,
                nonce=int(replay.message["nonce"]),
                deadline=int(replay.message["deadline"]),
                signature=replay.signature,
            )
        assert stolen.grant_of(loot.dataset_id, coop.address) == before

    def test_broker_key_mints_nothing_for_made_up_receipts(
        self, site: Site, stolen: LedgerChain, loot: Loot
    ) -> None:
        """Attack 4 (made-up credits) and 7 (one credit per fetch): receipts of fresh keys with
        made-up fetches, and one naming the coop but signed by the broker, are withheld; of two
        receipts the colluding coop signed for its one fetch, only the first is credited."""
        coop, works = site.members["coop"], site.members["works"]
        balance = stolen.credits_of(works.address)
        common = {
            "dataset_id": loot.dataset_id,
            "content_hash": loot.content_hash,
            "generation": loot.generation,
        }
        fake = []
        for _ in range(10):
            stranger = Account.create()
            fake.append(
                _receipt(
                    stranger, stolen, consumer=stranger.address, fetch_nonce=new_nonce(), **common
                )
            )
        fetch_nonce = int(loot.fetch.message["nonce"])
        fake.append(
            _receipt(
                stolen.account, stolen, consumer=coop.address, fetch_nonce=fetch_nonce, **common
            )
        )
        made_up = stolen.mint_batch(fake)
        reasons = [e.args["reason"] for e in made_up.events if e.name == "CreditWithheld"]
        assert reasons == [FETCH_NOT_RECORDED] * 10 + [INVALID_SIGNATURE]
        assert not [e for e in made_up.events if e.name == "CreditsMinted"]
        assert stolen.credits_of(works.address) == balance

        twice = [
            _receipt(
                coop.keys.account, stolen, consumer=coop.address, fetch_nonce=fetch_nonce, **common
            )
            for _ in range(2)
        ]
        result = stolen.mint_batch(twice)
        events = [
            (e.name, e.args.get("reason"))
            for e in result.events
            if e.name in ("CreditsMinted", "CreditWithheld")
        ]
        assert events == [("CreditsMinted", None), ("CreditWithheld", ALREADY_CREDITED)]
        assert stolen.credits_of(works.address) == balance + 6

    def test_spent_grant_approval_is_not_replayed(
        self, site: Site, stolen: LedgerChain, loot: Loot
    ) -> None:
        """Attack 5: the operator's GrantApproval, spent on generation 1, relayed again with the
        owner's next Grant, with the very terms re-signed by a colluding owner, or relabelled for
        generation 2: refused; the enterprise keeps the one use it was approved for."""
        coop, office = site.members["coop"], site.members["office"]
        before = stolen.grant_of(loot.sensitive_id, coop.address)
        assert (before.generation, before.max_uses) == (1, 1)
        a = loot.approval.message
        old = encode_approval(
            int(a["generation"]), int(a["nonce"]), int(a["deadline"]), loot.approval.signature
        )
        relabelled = encode_approval(
            2, int(a["nonce"]), int(a["deadline"]), loot.approval.signature
        )
        nonce = stolen.nonce("AccessLedger", office.address)
        same_terms = sign_action(
            office.keys.account,
            "grant",
            {**loot.first_grant.message, "nonce": nonce, "deadline": int(time.time()) + 600},
            stolen.deployment.domains,
        )
        attempts = [
            (loot.pending, old, "AccessLedgerApprovalGenerationMismatch"),
            (same_terms, old, "AccessLedgerApprovalGenerationMismatch"),
            (loot.pending, relabelled, "AccessLedgerInvalidAdminApproval"),
        ]
        for grant, approval, error in attempts:
            m = grant.message
            terms = GrantTerms(
                dataset_id=int(m["datasetId"]),
                grantee=str(m["grantee"]),
                purpose_hash=bytes.fromhex(str(m["purposeHash"])[2:]),
                expires_at=int(m["expiresAt"]),
                max_uses=int(m["maxUses"]),
                terms_hash=bytes.fromhex(str(m["termsHash"])[2:]),
            )
            with expect_revert(error):
                stolen.grant_for(
                    terms,
                    nonce=int(m["nonce"]),
                    deadline=int(m["deadline"]),
                    signature=grant.signature,
                    admin_approval=approval,
                )
        assert stolen.grant_of(loot.sensitive_id, coop.address) == before


def test_local_verify_names_credits_no_signed_receipt_explains(
    site: Site, crowd: dict[str, str]
) -> None:
    """Attack 4 (detection): the mints and withheld credits the broker key made up left events
    no signed record in the log explains; the regulator's ``drl verify`` names each."""
    run = site.drl("auditor", "verify")
    assert run.returncode == 1, run.stdout
    unmatched = [line for line in run.stderr.splitlines() if "[chain_event_unmatched]" in line]
    assert len([u for u in unmatched if "CreditWithheld" in u]) == 12, run.stderr
    assert len([u for u in unmatched if "CreditsMinted" in u]) == 1, run.stderr

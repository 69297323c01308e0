"""Refused fetches in the use case (ledger.services.exchange.fetch): logged once, or not at all.

A department's or enterprise's validly signed fetch that its grant or a standing refuses is
logged with context ``{"refused": code}`` and its nonce is spent, so the same signed fetch is
never usable later; anything else refused (a bad signature, a non-member, a regulator, an
unknown dataset) writes nothing. The routes refuse a suspended caller before the use case runs,
so its branch is reached here, in process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from sqlmodel import col, select

from ledger.client.member import MemberKeys, sign, sign_revoke
from ledger.errors import Forbidden, InvalidSignature, LedgerError, NotFound, ReplayedNonce
from ledger.protocol.actions import SignedAction
from ledger.services import access, exchange, members
from ledger.services.verify import verify
from ledger.store.models import LogRecord, UsedNonce
from tests.support import kit


@dataclass
class World:
    broker: kit.Broker
    office: MemberKeys
    coop: MemberKeys
    auditor: MemberKeys
    dataset_id: int

    def records(self) -> list[dict[str, object]]:
        with self.broker.ledger.db.session() as session:
            rows = session.exec(select(LogRecord).order_by(col(LogRecord.seq))).all()
            return [json.loads(row.leaf) for row in rows]

    def nonces(self) -> int:
        with self.broker.ledger.db.session() as session:
            return len(session.exec(select(UsedNonce)).all())

    def standing(self, action: str, who: MemberKeys) -> None:
        signed = sign(
            self.broker.operator, action, {"member": who.address}, self.broker.ledger.domains
        )
        (members.suspend if action == "suspend" else members.reinstate)(self.broker.ledger, signed)

    def refused(self, signed: SignedAction, code: str, error: type[LedgerError]) -> None:
        """``signed`` is refused with ``code`` and writes nothing at all."""
        before = (self.records(), self.nonces())
        with pytest.raises(error) as caught:
            exchange.fetch(self.broker.ledger, signed)
        assert caught.value.code == code
        assert (self.records(), self.nonces()) == before

    def logged(self, signed: SignedAction, code: str) -> None:
        """``signed`` is refused with ``code`` (403), logged once as refused, nonce spent."""
        before = self.records()
        with pytest.raises(Forbidden) as caught:
            exchange.fetch(self.broker.ledger, signed)
        assert caught.value.code == code
        (record,) = self.records()[len(before) :]
        assert record["signed"] == signed.to_json()
        assert record["context"] == {"refused": code}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("fetch-refusals")
    broker = kit.make_broker(root / "broker")
    office = kit.onboard(broker, "department", "District Planning Office")
    coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
    auditor = kit.onboard(broker, "regulator", "Data Protection Authority")
    work = root / "work"
    work.mkdir()
    data = kit.register(broker, office, kit.small_csv(work / "harbour.csv"), workdir=work)
    kit.approve(broker, office, kit.request(broker, coop, data.id))
    yield World(broker, office, coop, auditor, data.id)
    broker.close()


def test_a_suspended_grantees_fetch_is_logged_and_never_usable_later(world: World) -> None:
    signed = kit.sign_fetch(world.broker, world.coop, world.dataset_id)
    world.standing("suspend", world.coop)
    try:
        world.logged(signed, "member_suspended")
        world.refused(signed, "member_suspended", Forbidden)  # sent again: not logged twice
        unknown = kit.sign_fetch(world.broker, world.coop, 987_654)
        world.refused(unknown, "member_suspended", Forbidden)  # names no dataset: nothing
    finally:
        world.standing("reinstate", world.coop)
    world.refused(signed, "nonce_replayed", ReplayedNonce)  # reinstated: the nonce is spent
    fresh = kit.sign_fetch(world.broker, world.coop, world.dataset_id)
    assert exchange.fetch(world.broker.ledger, fresh).dataset.id == world.dataset_id


def test_a_fetch_refused_on_chain_is_logged_with_the_contracts_code(world: World) -> None:
    other = kit.onboard(world.broker, "enterprise", "Revoked Research")
    kit.approve(world.broker, world.office, kit.request(world.broker, other, world.dataset_id))
    ledger = world.broker.ledger
    revoke = sign_revoke(
        world.office,
        dataset_id=world.dataset_id,
        grantee=other.address,
        chain_nonce=ledger.chain.nonce("AccessLedger", world.office.address),
        domains=ledger.domains,
    )
    access.revoke(ledger, revoke)
    signed = kit.sign_fetch(world.broker, other, world.dataset_id)
    world.logged(signed, "access_ledger_grant_revoked")
    # Sent again it is a replay, refused before the chain is asked (as before refusals were
    # logged), and logged no second time.
    world.refused(signed, "nonce_replayed", ReplayedNonce)


def test_what_is_not_a_members_grant_or_standing_writes_nothing(world: World) -> None:
    stranger = kit.new_keys()
    d = world.dataset_id
    world.refused(kit.sign_fetch(world.broker, stranger, d), "not_a_member", Forbidden)
    world.refused(kit.sign_fetch(world.broker, world.auditor, d), "regulator_read_only", Forbidden)
    forged = kit.sign_fetch(world.broker, world.coop, d)
    forged = replace(forged, signature=kit.sign_fetch(world.broker, stranger, d).signature)
    world.refused(forged, "invalid_signature", InvalidSignature)
    world.refused(kit.sign_fetch(world.broker, world.coop, 987_654), "dataset_not_found", NotFound)
    world.refused(kit.sign_fetch(world.broker, world.office, d), "own_dataset", LedgerError)


def test_the_brokers_self_check_passes_over_logged_refusals(world: World) -> None:
    signed = kit.sign_fetch(
        world.broker, kit.onboard(world.broker, "enterprise", "No Grant Ltd"), 1
    )
    world.logged(signed, "no_grant")
    report = verify(world.broker.ledger)
    assert report.ok, report.problems

"""The member SDK against the broker app in process: starlette's TestClient as its HTTP client.

No subprocess and no port: the app ``drl serve`` runs (``api.main.create_app`` around a broker
that ``ledger.broker.open_broker`` opened on an embedded chain) is wrapped in a ``TestClient``,
which is an ``httpx.Client``, and injected with ``BrokerClient(..., http=...)``. Every answer
must be one of the protocol's wire models, and every error answer the exception its code maps to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from starlette.testclient import TestClient

from api.main import create_app
from ledger.broker import open_broker
from ledger.client.member import MemberKeys
from ledger.client.sdk import Approved, BrokerClient, BrokerError, Fetched, error_for, fingerprint
from ledger.crypto import generate_keypair
from ledger.errors import (
    BrokerUnreachable,
    ChainError,
    ChainUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidSignature,
    LedgerError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
)
from ledger.keys import load_account
from ledger.protocol import http as auth
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import (
    ApproveOut,
    Config,
    DatasetPublic,
    DeliveryPublic,
    GrantPublic,
    Health,
    MemberPublic,
    MembersPublic,
    MemberTracePublic,
    RequestPublic,
)
from ledger.services.system import JSON_BODY_LIMIT
from ledger.settings import Settings
from tests.support.http_kit import free_port
from tests.support.kit import new_keys

BASE_URL = "http://testserver"  # TestClient's host; the app never sees a socket
PASSPHRASE = "in-process-test-passphrase"
ROWS = "ward,roofs,panels\nHarbour,412,97\nQuay,97,12\nOld Town,230,41\n"


@dataclass
class InProcess:
    """The app behind a TestClient, the operator, and two onboarded members."""

    http: TestClient
    operator: MemberKeys
    owner: MemberKeys
    consumer: MemberKeys
    work: Path

    def client(self, keys: MemberKeys | None) -> BrokerClient:
        return BrokerClient(BASE_URL, keys, http=self.http)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    root = tmp_path_factory.mktemp("sdk-inprocess")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRL_KDF_FAST", "1")  # the operator key file: a fast KDF for tests
        settings = Settings(
            home=root / "home", chain_url=None, database_url=None, anchor_every_seconds=3600
        )
        broker = open_broker(settings, PASSPHRASE)
    try:
        # The operator signs with the ADMIN key the first start created (not the broker key);
        # it never decrypts: its HPKE key is unused (as in ``drl``).
        admin = load_account(settings.admin_key_path, PASSPHRASE)
        assert admin.address != broker.opened.chain.account.address
        operator = MemberKeys(account=admin, hpke=generate_keypair()[0])
        with TestClient(create_app(broker), base_url=BASE_URL) as http:
            work = root / "work"
            work.mkdir()
            yield InProcess(http, operator, new_keys(), new_keys(), work)
    finally:
        broker.close()


def onboard(world: InProcess, keys: MemberKeys, kind: str, name: str) -> MemberPublic:
    with world.client(world.operator) as op:
        return op.onboard(
            address=keys.address,
            kind=kind,  # type: ignore[arg-type]
            name=name,
            key_suite=keys.hpke.suite.id,
            encryption_key=keys.public_key.to_bytes(),
        )


def test_the_whole_exchange_answers_wire_models(world: InProcess) -> None:
    with world.client(None) as anonymous:
        config = anonymous.config()
        assert isinstance(config, Config)
        assert isinstance(anonymous.health(), Health)
        assert config.operator == config.admin == world.operator.address
        assert config.broker != config.admin

    office = onboard(world, world.owner, "department", "District Planning Office")
    coop = onboard(world, world.consumer, "enterprise", "Harbour Solar Cooperative")
    assert isinstance(office, MemberPublic)
    assert (office.address, office.kind, office.status) == (
        world.owner.address,
        "department",
        "active",
    )
    assert coop.encryption_key == "0x" + world.consumer.public_key.to_bytes().hex()

    source = world.work / "rooftops.csv"
    source.write_text(ROWS)
    with world.client(world.owner) as owner, world.client(world.consumer) as consumer:
        members = consumer.members()
        assert {m.address for m in members} >= {office.address, coop.address}
        assert all(isinstance(m, MemberPublic) for m in members)

        dataset = owner.register(source, title="Harbour ward rooftops")
        assert isinstance(dataset, DatasetPublic)
        assert dataset.owner == world.owner.address
        assert dataset.metadata["title"] == "Harbour ward rooftops"
        assert consumer.dataset(dataset.id) == dataset
        assert [d.id for d in consumer.datasets()] == [dataset.id]

        request = consumer.request_access(
            dataset.id, purpose="rooftop solar potential study", days=30, uses=2
        )
        assert isinstance(request, RequestPublic)
        assert (request.status, request.requester) == ("pending", world.consumer.address)
        assert owner.requests() == [request]

        approved = owner.approve(request.id)
        assert isinstance(approved, Approved)
        assert approved.status == "granted"
        # Wrapped to the key registered on chain, read through the broker's relay (embedded).
        assert approved.grantee_key_fingerprint == fingerprint(
            world.consumer.hpke.suite.id, world.consumer.public_key.to_bytes()
        )
        assert not approved.chain_independent
        grant = approved.grant
        assert isinstance(grant, GrantPublic)
        assert approved.request.status == "approved"
        assert (grant.grantee, grant.dataset_id, grant.max_uses) == (
            world.consumer.address,
            dataset.id,
            2,
        )
        assert consumer.grants() == [grant]

        out = world.work / "received.csv"
        fetched = consumer.fetch(dataset.id, out)  # decrypts and verifies the content hash
        assert isinstance(fetched, Fetched)
        assert out.read_text() == ROWS
        assert fetched.content_hash == dataset.content_hash
        assert (fetched.uses_left, fetched.generation) == (1, grant.generation)

        receipt = fetched.receipt
        assert isinstance(receipt, DeliveryPublic)
        assert (receipt.consumer, receipt.dataset_id) == (world.consumer.address, dataset.id)
        assert receipt.content_hash == dataset.content_hash
        assert receipt.grant_generation == grant.generation

        # Each action above was confirmed in a head signed by the BROKER key, which grew.
        checkpoint = consumer.checkpoint()
        assert checkpoint.signer == config.broker
        assert checkpoint.size == consumer.log_head().size

    # An injected HTTP client stays open after the SDK closes: it belongs to the caller.
    assert world.http.get("/v1/health").status_code == 200


def test_a_sensitive_grant_to_an_enterprise_waits_for_the_operator(world: InProcess) -> None:
    """The owner's grant waits (``awaiting_approval``); the operator's co-signature relays it."""
    source = world.work / "sensitive.csv"
    source.write_text("ward,households\nHarbour,1204\n")
    with world.client(world.owner) as owner, world.client(world.consumer) as consumer:
        dataset = owner.register(source, title="Harbour households", classification="sensitive")
        request = consumer.request_access(dataset.id, purpose="energy advice", days=7, uses=1)
        waiting = owner.approve(request.id)
        assert (waiting.status, waiting.grant) == ("awaiting_approval", None)
        assert waiting.request.status == "awaiting_approval"
        assert waiting.request.pending_grant is not None
        with pytest.raises(Forbidden) as refused:  # a member cannot co-sign
            consumer.cosign(request.id)
        assert refused.value.code == ErrorCode.WRONG_ROLE
    with world.client(world.operator) as op:
        cosigned = op.cosign(request.id)
        assert isinstance(cosigned, ApproveOut)
        assert cosigned.status == "granted"
        assert cosigned.grant is not None
        assert cosigned.grant.grantee == world.consumer.address
        with pytest.raises(Conflict) as again:  # single use: the request is decided
            op.cosign(request.id)
        assert again.value.code == ErrorCode.REQUEST_DECIDED
    with world.client(world.consumer) as consumer:
        fetched = consumer.fetch(dataset.id, world.work / "households.csv")
        assert fetched.uses_left == 0


def test_an_owner_signs_again_a_grant_whose_nonce_another_grant_used(world: InProcess) -> None:
    """A waiting grant names the owner's next grant nonce; if another grant uses it first, the
    co-signature is refused on chain, and the owner approves the waiting request again."""
    sensitive, plain = world.work / "stale-sensitive.csv", world.work / "stale-plain.csv"
    sensitive.write_text("ward,cases\nHarbour,17\n")
    plain.write_text("ward,benches\nHarbour,40\n")
    with world.client(world.owner) as owner, world.client(world.consumer) as consumer:
        secret = owner.register(sensitive, title="Harbour cases", classification="sensitive")
        public = owner.register(plain, title="Harbour benches", classification="public")
        waiting = consumer.request_access(secret.id, purpose="care planning", days=7, uses=1)
        other = consumer.request_access(public.id, purpose="park upkeep", days=7, uses=1)
        assert owner.approve(waiting.id).status == "awaiting_approval"
        assert owner.approve(other.id).status == "granted"  # uses the nonce the first named
    with world.client(world.operator) as op, pytest.raises(LedgerError) as stale:
        op.cosign(waiting.id)
    assert stale.value.code == "invalid_account_nonce"
    with world.client(world.owner) as owner:
        again = owner.approve(waiting.id)
    assert (again.status, again.request.status) == ("awaiting_approval", "awaiting_approval")
    with world.client(world.operator) as op:
        cosigned = op.cosign(waiting.id)
    assert cosigned.status == "granted"


def test_only_the_member_rotates_its_key_and_the_operator_reinstates(world: InProcess) -> None:
    new_hpke = generate_keypair()[0]
    with world.client(world.consumer) as consumer:
        rotated = consumer.rotate_key(new_hpke.suite.id, new_hpke.public_key().to_bytes())
        assert rotated.encryption_key == "0x" + new_hpke.public_key().to_bytes().hex()
        view = consumer.chain_view()
        on_chain = view.chain.member(world.consumer.address)
        assert on_chain.encryption_key == new_hpke.public_key().to_bytes()
        # back to the key the other tests decrypt with
        consumer.rotate_key(world.consumer.hpke.suite.id, world.consumer.public_key.to_bytes())
    with world.client(world.operator) as op:
        with pytest.raises(Forbidden) as refused:  # ADMIN cannot replace a member's key
            op.call(
                "POST",
                f"/v1/members/{world.consumer.address}/key",
                MemberPublic,
                body=op.signed_body(
                    op.sign(
                        "rotate_key",
                        {
                            "member": world.consumer.address,
                            "keySuite": new_hpke.suite.id,
                            "encryptionKey": new_hpke.public_key().to_bytes(),
                        },
                    )
                ),
            )
        assert refused.value.code == ErrorCode.WRONG_ROLE
        assert op.suspend(world.consumer.address).status == "suspended"
        assert op.reinstate(world.consumer.address).status == "active"


def test_log_queries_through_the_relay_are_bounded_and_the_client_pages_them(
    world: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded chain answers eth_getLogs over at most MAX_LOG_BLOCKS blocks (-32005
    beyond, as a node provider would), through the relay too; the member's chain client asks
    in windows and halves a refused one, so it still reads every event. Here the chain allows
    2 blocks and the client asks 4."""
    import ledger.chain.client as chain_client
    import ledger.chain.embedded as relay

    for keys, kind, name in (
        (world.owner, "department", "District Planning Office"),
        (world.consumer, "enterprise", "Harbour Solar Cooperative"),
    ):
        with contextlib.suppress(Conflict):  # the tests share one broker, in any order
            onboard(world, keys, kind, name)
    with world.client(world.consumer) as consumer:
        chain = consumer.chain_view().chain
        head = chain.latest_block()
        expected = chain.events("MemberRegistry", "MemberOnboarded")  # one window: no limit hit
        assert len(expected) >= 2
        assert head - chain.deployment.block_number > 4
        monkeypatch.setattr(relay, "MAX_LOG_BLOCKS", 2)
        monkeypatch.setattr(chain_client, "LOG_WINDOW", 4)
        for bounds in (
            {"fromBlock": "0x0", "toBlock": hex(2)},
            {"fromBlock": 0, "toBlock": 2},  # however the bounds are written
            {"fromBlock": "earliest", "toBlock": "latest"},
            {"fromBlock": "0x00000000000000000000", "toBlock": "0x2"},
        ):
            wide = consumer.rpc("eth_getLogs", [bounds])
            assert wide.get("error", {}).get("code") == relay.LIMIT_EXCEEDED, (bounds, wide)
        assert "result" in consumer.rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "0x1"}])
        assert chain.events("MemberRegistry", "MemberOnboarded") == expected
        monkeypatch.setattr(relay, "MAX_LOG_RESULTS", 0)  # every block holds too many now
        with pytest.raises(ChainError) as refused:
            chain.events("MemberRegistry", "MemberOnboarded")
        assert refused.value.code == ErrorCode.CHAIN_REFUSED


def test_a_request_signed_with_another_key_is_unauthenticated(world: InProcess) -> None:
    class WrongKey(BrokerClient):
        """Claims the member's address but signs requests with a stranger's key."""

        stranger: LocalAccount = Account.create()

        def signed_headers(self, method: str, target: str, body_sha256: str) -> dict[str, str]:
            headers = auth.sign_request(
                self.stranger,
                method=method,
                target=target,
                body_sha256=body_sha256,
                chain_id=self.config().chain_id,
                deployment=self.config().flow_log,
            )
            headers[auth.H_ADDRESS] = self.require_keys().address
            return headers

    client = WrongKey(BASE_URL, world.consumer, http=world.http)
    with client, pytest.raises(Unauthenticated) as refused:
        client.datasets()
    assert refused.value.code == ErrorCode.UNAUTHENTICATED
    assert "does not match" in refused.value.message


def test_an_oversize_json_body_is_payload_too_large(world: InProcess) -> None:
    with world.client(world.consumer) as consumer, pytest.raises(PayloadTooLarge) as refused:
        consumer.rate(1, 5, "x" * (JSON_BODY_LIMIT + 1))
    assert refused.value.code == ErrorCode.PAYLOAD_TOO_LARGE


def test_a_closed_port_is_broker_unreachable(world: InProcess) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # bound, then released: nothing listens
    client = BrokerClient(closed, world.consumer, timeout=5)
    with client, pytest.raises(BrokerUnreachable) as unreachable:
        client.datasets()
    assert unreachable.value.code == ErrorCode.BROKER_UNREACHABLE
    assert not isinstance(unreachable.value, ChainUnavailable)


def test_an_unknown_dataset_is_not_found(world: InProcess) -> None:
    with world.client(world.consumer) as consumer, pytest.raises(NotFound) as missing:
        consumer.dataset(987_654)
    assert missing.value.code == ErrorCode.DATASET_NOT_FOUND
    assert "987654" in missing.value.message


def test_a_call_without_an_identity_is_refused_before_sending(world: InProcess) -> None:
    with world.client(None) as anonymous, pytest.raises(InvalidInput) as refused:
        anonymous.datasets()
    assert refused.value.code == ErrorCode.NO_IDENTITY


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "request_replayed", Unauthenticated),
        (413, "blob_too_large", PayloadTooLarge),
        (400, "deadline_expired", InvalidSignature),
        (403, "no_grant", Forbidden),
        (404, "dataset_not_found", NotFound),
        (409, "access_ledger_uses_exhausted", Conflict),  # a contract error: by its status
        (422, "bad_hex", InvalidInput),
        (503, "chain_unavailable", ChainUnavailable),
        (502, "chain_error", ChainError),
        (500, "integrity_alarm", BrokerError),
        (405, "method_not_allowed", BrokerError),
    ],
)
def test_error_answers_map_through_their_code(status: int, code: str, kind: type) -> None:
    error = error_for(status, code, "the broker's message")
    assert type(error) is kind
    assert (error.code, error.message) == (code, "the broker's message")
    if isinstance(error, BrokerError):
        assert error.status == status


def test_every_list_and_trace_is_paged_and_the_sdk_reads_every_page(world: InProcess) -> None:
    """A page holds at most ``limit`` items and says where the next starts; the SDK follows."""
    extra = [new_keys() for _ in range(3)]
    for n, keys in enumerate(extra):
        onboard(world, keys, "enterprise", f"Paged enterprise {n}")
    with world.client(world.operator) as op:
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            page = op.call(
                "GET", "/v1/members", MembersPublic, params={"limit": 2, "offset": offset}
            )
            assert page.count == len(page.data) <= 2
            seen += [m.address for m in page.data]
            offset = page.next
        assert seen == [m.address for m in op.members()]
        assert {k.address for k in extra} <= set(seen)
        assert len(seen) == len(set(seen))

    with world.client(world.consumer) as consumer:  # a member traces itself
        address = world.consumer.address
        whole = consumer.trace_member(address)  # every page, joined by the SDK
        first = consumer.call(
            "GET", f"/v1/trace/members/{address}", MemberTracePublic, params={"limit": 1}
        )
        assert len(first.flows) == 1
        assert first.next_after == first.flows[0].seq
        assert [f.seq for f in whole.flows] == sorted(f.seq for f in whole.flows)
        assert len(whole.flows) >= 3
        assert whole.next_after is None
        last = consumer.call(
            "GET",
            f"/v1/trace/members/{address}",
            MemberTracePublic,
            params={"after": whole.flows[-2].seq, "limit": 1},
        )
        assert [f.seq for f in last.flows] == [whole.flows[-1].seq]
        assert last.next_after is None

"""The contract tests' deployment: ADMIN and BROKER are separate keys, as in production.

``env.chain`` signs as the ADMIN key (direct onboarding, suspension, rules), ``env.broker_chain``
as the BROKER key that deployed the contracts and relays signed actions; ``env.as_(account)``
signs as anyone else. ``env.sign_action`` signs any contract-domain action with the type strings
of :mod:`ledger.protocol.eip712` (the ones the contracts' TYPEHASH constants must match).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.chain.client import LedgerChain, encode_approval
from ledger.chain.models import SignedReceipt, TxResult
from ledger.chain.tx import plain
from ledger.protocol import eip712
from ledger.protocol.actions import ACTIONS
from ledger.protocol.messages import GrantTerms, Registration, typed_approval
from ledger.types import Classification, DatasetId, MemberKind
from tests.support.chain import HPKE_X25519, ChainNet, encryption_key, new_hash


def random_nonce() -> int:
    """A random 256-bit nonce, as members draw them for single-use signatures."""
    return secrets.randbits(256)


@dataclass
class ContractEnv:
    """A deployment with an ADMIN key, a BROKER key and four onboarded members.

    The shared members (two departments, an enterprise and a regulator) must stay active:
    tests that suspend someone use :meth:`new_member`.
    """

    net: ChainNet
    chain: LedgerChain
    broker_chain: LedgerChain
    steps: list[tuple[str, TxResult]]
    admin: LocalAccount
    broker: LocalAccount
    dept_a: LocalAccount
    dept_b: LocalAccount
    enterprise: LocalAccount
    regulator: LocalAccount

    _clients: dict[str, LedgerChain] = field(default_factory=dict, repr=False)

    def as_(self, account: LocalAccount) -> LedgerChain:
        """The deployment's client signing as ``account`` (built once per account)."""
        if account.address == self.broker.address:
            return self.broker_chain
        client = self._clients.get(account.address)
        if client is None:
            client = self._clients[account.address] = self.chain.acting_as(account)
        return client

    def now(self) -> int:
        return self.net.now()

    def new_hash(self) -> bytes:
        return new_hash()

    def new_member(self, kind: MemberKind = "department", *, funded: bool = True) -> LocalAccount:
        """Onboard a fresh account of ``kind`` (directly, by ADMIN).

        ``funded=False`` for members that only sign (relayed actions): the embedded chain has a
        limited reserve of funded accounts per module.
        """
        account = self.net.new_account() if funded else Account.create()
        self.chain.onboard(
            account.address,
            kind=kind,
            name_hash=new_hash(),
            key_suite=HPKE_X25519,
            encryption_key=encryption_key(),
        )
        return account

    def registration(
        self,
        classification: Classification = "internal",
        *,
        parents: tuple[int, ...] = (),
        previous_version: int = 0,
    ) -> Registration:
        return Registration(
            content_hash=new_hash(),
            metadata_hash=new_hash(),
            classification=classification,
            parents=parents,
            previous_version=previous_version,
        )

    def register(
        self,
        owner: LocalAccount,
        classification: Classification = "internal",
        *,
        parents: tuple[int, ...] = (),
        previous_version: int = 0,
    ) -> DatasetId:
        """Register a fresh dataset directly as ``owner``; returns its id."""
        registration = self.registration(
            classification, parents=parents, previous_version=previous_version
        )
        dataset_id, _ = self.as_(owner).register(registration)
        return dataset_id

    def terms(
        self,
        dataset_id: int,
        grantee: LocalAccount | str,
        *,
        expires_in: int = 3600,
        max_uses: int = 3,
    ) -> GrantTerms:
        """Grant terms for ``grantee`` expiring ``expires_in`` seconds after the latest block."""
        address = grantee if isinstance(grantee, str) else grantee.address
        return GrantTerms(
            dataset_id=dataset_id,
            grantee=Web3.to_checksum_address(address),
            purpose_hash=new_hash(),
            expires_at=self.now() + expires_in,
            max_uses=max_uses,
            terms_hash=new_hash(),
        )

    def deadline(self, seconds: int = 3600) -> int:
        return self.now() + seconds

    def sign(self, account: LocalAccount, message: dict[str, Any]) -> bytes:
        return eip712.sign_typed(account, message)

    def sign_action(self, account: LocalAccount, action: str, message: dict[str, Any]) -> bytes:
        """``account``'s signature over ``action`` (e.g. "fetch") in its contract's domain."""
        domain = self.chain.deployment.domains.for_action(action)
        typed = eip712.typed_message(ACTIONS[action].primary, message, domain)
        return eip712.sign_typed(account, typed)

    # -- signed uses, receipts and approvals -----------------------------------------------

    def fetch_signature(
        self,
        grantee: LocalAccount,
        dataset_id: int,
        *,
        nonce: int | None = None,
        deadline: int | None = None,
        signer: LocalAccount | None = None,
    ) -> tuple[int, int, bytes]:
        """(nonce, deadline, signature) of a Fetch by ``grantee`` (or signed by ``signer``)."""
        nonce = random_nonce() if nonce is None else nonce
        deadline = self.deadline() if deadline is None else deadline
        message = {
            "grantee": grantee.address,
            "datasetId": dataset_id,
            "nonce": nonce,
            "deadline": deadline,
        }
        return nonce, deadline, self.sign_action(signer or grantee, "fetch", message)

    def use(self, dataset_id: int, grantee: LocalAccount) -> tuple[int, TxResult]:
        """Record one signed use as the broker; returns the Fetch nonce and the transaction."""
        nonce, deadline, signature = self.fetch_signature(grantee, dataset_id)
        result = self.broker_chain.record_use(
            dataset_id, grantee.address, nonce=nonce, deadline=deadline, signature=signature
        )
        return nonce, result

    def receipt(
        self,
        consumer: LocalAccount,
        dataset_id: int,
        fetch_nonce: int,
        *,
        content_hash: bytes | None = None,
        generation: int = 1,
        signer: LocalAccount | None = None,
    ) -> SignedReceipt:
        """``consumer``'s signed DeliveryReceipt for a fetch (content hash from the chain)."""
        if content_hash is None:
            content_hash = self.chain.dataset(dataset_id).content_hash
        nonce, deadline = random_nonce(), self.deadline()
        message = {
            "consumer": consumer.address,
            "datasetId": dataset_id,
            "contentHash": content_hash,
            "grantGeneration": generation,
            "fetchNonce": fetch_nonce,
            "nonce": nonce,
            "deadline": deadline,
        }
        return SignedReceipt(
            dataset_id=dataset_id,
            consumer=consumer.address,
            content_hash=content_hash,
            grant_generation=generation,
            fetch_nonce=fetch_nonce,
            nonce=nonce,
            deadline=deadline,
            signature=self.sign_action(signer or consumer, "receipt", message),
        )

    def approval(
        self,
        terms: GrantTerms,
        *,
        generation: int | None = None,
        nonce: int | None = None,
        deadline: int | None = None,
        signer: LocalAccount | None = None,
    ) -> bytes:
        """An ADMIN GrantApproval for ``terms``, packed for ``adminApproval``.

        ``generation`` defaults to the one the grant will create (current + 1).
        """
        if generation is None:
            generation = self.chain.grant_of(terms.dataset_id, terms.grantee).generation + 1
        nonce = random_nonce() if nonce is None else nonce
        deadline = self.deadline() if deadline is None else deadline
        message = typed_approval(
            self.chain.deployment.domains,
            terms,
            generation=generation,
            nonce=nonce,
            deadline=deadline,
        )
        signature = eip712.sign_typed(signer or self.admin, message)
        return encode_approval(generation, nonce, deadline, signature)

    # -- raw access ------------------------------------------------------------------------

    def view(self, contract: str, function: str, *args: Any) -> Any:
        """Call a view the typed client does not wrap (plain Python values back)."""
        fn = getattr(self.chain.contract(contract).functions, function)(*args)
        return plain(self.chain.tx.call(fn.call))

    def send(self, account: LocalAccount, contract: str, function: str, *args: Any) -> TxResult:
        """Send a transaction the typed client does not wrap, signed by ``account``."""
        fn = getattr(self.chain.contract(contract).functions, function)(*args)
        return self.chain.tx.send(fn, account)

    def simulate(self, account: LocalAccount, contract: str, function: str, *args: Any) -> Any:
        """A function's return value as ``account`` would get it now (``eth_call``)."""
        fn = getattr(self.chain.contract(contract).functions, function)(*args)
        return plain(self.chain.tx.call(lambda: fn.call({"from": account.address})))

    def redeploy(self, **options: Any) -> tuple[LedgerChain, LedgerChain]:
        """A second, empty deployment: (client of its ADMIN, client of its BROKER).

        Both are fresh accounts. Every client caches its senders' nonces (``Transactor``), so an
        account must not send through this deployment's clients and ``env.chain`` both.
        """
        admin, broker = self.net.new_account(), self.net.new_account()
        broker_chain, _ = LedgerChain.deploy(
            self.net.backend, broker, admin=admin.address, **options
        )
        return broker_chain.acting_as(admin), broker_chain


@pytest.fixture(scope="module")
def deploy_options() -> dict[str, Any]:
    """Keyword arguments for ``LedgerChain.deploy``; override in a module to change them."""
    return {}


@pytest.fixture(scope="module")
def env(net: ChainNet, deploy_options: dict[str, Any]) -> ContractEnv:
    """The module's deployment: ADMIN, BROKER and four onboarded members."""
    admin, broker = net.new_account(), net.new_account()
    broker_chain, steps = LedgerChain.deploy(
        net.backend, broker, admin=admin.address, **deploy_options
    )
    chain = broker_chain.acting_as(admin)
    members: dict[str, LocalAccount] = {}
    for name, kind in (
        ("dept_a", "department"),
        ("dept_b", "department"),
        ("enterprise", "enterprise"),
        ("regulator", "regulator"),
    ):
        account = net.new_account()
        chain.onboard(
            account.address,
            kind=kind,  # type: ignore[arg-type]
            name_hash=new_hash(),
            key_suite=HPKE_X25519,
            encryption_key=encryption_key(),
        )
        members[name] = account
    return ContractEnv(
        net=net,
        chain=chain,
        broker_chain=broker_chain,
        steps=steps,
        admin=admin,
        broker=broker,
        **members,
    )

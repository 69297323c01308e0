"""The typed contract client: every contract function behind a Python method.

``LedgerChain`` speaks in frozen dataclasses and raises :class:`ledger.errors.ContractRevert`
with decoded custom errors. It signs with the account it was given (the broker key relaying
signed actions, the ADMIN key or a member's key acting directly) and never leaks web3 types.
Without an account it is read-only: calls and event reads work, sends raise
:class:`~ledger.errors.ConfigurationError` (a member's verifier reading its own node).
The module is long (~550 lines) because it is one thin typed method per contract function of
five contracts; splitting it per contract would scatter the shared deploy/send/call plumbing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Final, Literal

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from ledger.chain.abi import CONTRACT_NAMES, artifact
from ledger.chain.backend import ChainBackend
from ledger.chain.models import (
    CreditRules,
    DatasetInfo,
    Deployment,
    Event,
    GrantInfo,
    MemberInfo,
    SignedReceipt,
    TreeHead,
    TxResult,
)
from ledger.chain.tx import TooManyLogs, Transactor, plain
from ledger.errors import ConfigurationError, DeploymentError
from ledger.protocol.messages import GrantTerms, Registration
from ledger.types import (
    CLASSIFICATIONS,
    MEMBER_STATUSES,
    Address,
    DatasetId,
    MemberKind,
    TxHash,
    classification_code,
    kind_code,
    kind_name,
)

BROKER_ROLE: Final = keccak(text="BROKER_ROLE")
ADMIN_ROLE: Final = b"\x00" * 32
#: Contracts where the broker key holds BROKER_ROLE (it relays, anchors, records, mints).
BROKER_CONTRACTS: Final = ("AccessLedger", "FlowLog", "SharingCredits")
DEFAULT_CREDIT_RULES: Final = CreditRules()
#: Blocks per ``eth_getLogs``: within what node providers answer, and what the embedded chain
#: answers (``ledger.chain.embedded.MAX_LOG_BLOCKS``), also through the broker's relay.
LOG_WINDOW: Final = 5_000


def encode_approval(generation: int, nonce: int, deadline: int, signature: bytes) -> bytes:
    """An ADMIN GrantApproval as ``grant``/``grantFor`` take it in ``adminApproval``.

    ``generation || nonce || deadline`` (32 bytes each, big-endian) then the 65-byte signature
    over GrantApproval(terms..., generation, nonce, deadline) in the AccessLedger domain.
    """
    if len(signature) != 65:
        raise ValueError(f"a signature is 65 bytes, got {len(signature)}")
    return b"".join(v.to_bytes(32, "big") for v in (generation, nonce, deadline)) + signature


def _registration_tuple(r: Registration) -> tuple[bytes, bytes, int, list[int], int]:
    return (
        r.content_hash,
        r.metadata_hash,
        classification_code(r.classification),
        list(r.parents),
        r.previous_version,
    )


class LedgerChain:
    """The five contracts of one deployment, with ``account`` paying and signing.

    ``account=None`` gives a read-only client: calls and event reads work, and any method that
    sends a transaction raises :class:`ConfigurationError`.
    """

    def __init__(
        self,
        backend: ChainBackend,
        deployment: Deployment,
        account: LocalAccount | None = None,
        *,
        transactor: Transactor | None = None,
    ) -> None:
        self.backend = backend
        self.deployment = deployment
        self._account = account
        w3 = backend.w3
        self._c: dict[str, Contract] = {
            name: w3.eth.contract(address=deployment.address_of(name), abi=artifact(name).abi)
            for name in CONTRACT_NAMES
        }
        self.tx = transactor or Transactor(w3, self._c)
        self.tx.watch(self._c)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def deploy(
        cls,
        backend: ChainBackend,
        broker_account: LocalAccount,
        *,
        admin: str,
        rules: CreditRules | None = None,
    ) -> tuple[LedgerChain, list[tuple[str, TxResult]]]:
        """Deploy the five contracts, the broker key paying; returns a client signing as it.

        ``admin`` (an address: its key may live elsewhere) gets DEFAULT_ADMIN_ROLE everywhere and
        ``broker_account`` BROKER_ROLE on AccessLedger, FlowLog and SharingCredits, both in the
        constructors: the deployment is the broker key's first five transactions and needs no
        transaction from the admin. ADMIN and BROKER must be different keys.
        """
        admin_address = to_checksum_address(admin)
        broker = to_checksum_address(broker_account.address)
        if int(admin_address, 16) == 0:
            raise ConfigurationError("the ADMIN address must not be the zero address")
        if admin_address == broker:
            raise ConfigurationError(
                "ADMIN and BROKER must be different keys: the broker's hot key alone must not "
                "onboard, suspend or approve"
            )
        w3 = backend.w3
        tx = Transactor(w3)
        steps: list[tuple[str, TxResult]] = []

        def make(name: str, *args: Any) -> str:
            art = artifact(name)
            factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
            address, result = tx.deploy(factory.constructor(*args), broker_account, name=name)
            steps.append((f"deploy {name}", result))
            return address

        credit_rules = rules or DEFAULT_CREDIT_RULES
        members = make("MemberRegistry", admin_address)
        datasets = make("DataRegistry", admin_address, members)
        access = make("AccessLedger", admin_address, broker, members, datasets)
        flow = make("FlowLog", admin_address, broker)
        credits = make(
            "SharingCredits", admin_address, broker, access, datasets, credit_rules.as_tuple()
        )
        deployment = Deployment(
            chain_id=tx.chain_id,
            member_registry=to_checksum_address(members),
            data_registry=to_checksum_address(datasets),
            access_ledger=to_checksum_address(access),
            flow_log=to_checksum_address(flow),
            sharing_credits=to_checksum_address(credits),
            admin=admin_address,
            broker=broker,
            block_number=steps[0][1].block_number,
        )
        chain = cls(backend, deployment, broker_account, transactor=tx)
        return chain, steps

    def acting_as(self, account: LocalAccount) -> LedgerChain:
        """The same deployment with another signer (the ADMIN key or a member acting directly)."""
        return LedgerChain(self.backend, self.deployment, account, transactor=self.tx)

    def read_only(self) -> LedgerChain:
        """The same deployment with no signer: calls and events only."""
        return LedgerChain(self.backend, self.deployment, None, transactor=self.tx)

    @property
    def account(self) -> LocalAccount:
        """The signing account (ConfigurationError for a read-only client)."""
        if self._account is None:
            raise ConfigurationError(
                "this chain client is read-only (no key): it cannot send transactions"
            )
        return self._account

    @property
    def read_only_mode(self) -> bool:
        """True when the client has no key and can only read."""
        return self._account is None

    def verify_deployment(self) -> None:
        """Check the node's chain id, each contract's code, and who holds ADMIN and BROKER.

        Runtime code differs from the artifact where immutables were filled in, so the code check
        is on presence and length. The recorded ``admin`` must hold ADMIN on every contract and
        the recorded ``broker`` BROKER on the broker's three (and no ADMIN anywhere).
        """
        if self.tx.chain_id != self.deployment.chain_id:
            raise DeploymentError(
                f"deployment is for chain {self.deployment.chain_id}, node is {self.tx.chain_id}"
            )
        w3 = self.backend.w3
        for name in CONTRACT_NAMES:
            address = self.deployment.address_of(name)
            code = bytes(self.tx.call(partial(w3.eth.get_code, address)))
            expected = (len(artifact(name).deployed_bytecode) - 2) // 2
            if len(code) != expected:
                raise DeploymentError(f"{name} is not deployed at {address}")
        admin, broker = self.deployment.admin, self.deployment.broker
        for name in CONTRACT_NAMES:
            if not self.has_role(name, ADMIN_ROLE, admin):
                raise DeploymentError(f"{admin} does not hold ADMIN on {name}")
            if self.has_role(name, ADMIN_ROLE, broker):
                raise DeploymentError(f"the broker key {broker} holds ADMIN on {name}")
        for name in BROKER_CONTRACTS:
            if not self.has_role(name, BROKER_ROLE, broker):
                raise DeploymentError(f"{broker} does not hold BROKER on {name}")

    @property
    def w3(self) -> Web3:
        return self.backend.w3

    def contract(self, name: str) -> Contract:
        return self._c[name]

    def _send(self, contract: str, fn_name: str, *args: Any) -> TxResult:
        account = self.account
        fn = getattr(self._c[contract].functions, fn_name)(*args)
        return self.tx.send(fn, account)

    def _call(self, contract: str, fn_name: str, *args: Any) -> Any:
        fn = getattr(self._c[contract].functions, fn_name)(*args)
        return plain(self.tx.call(fn.call))

    # -- roles ----------------------------------------------------------------------------

    def has_role(self, contract: str, role: bytes, account: str) -> bool:
        return bool(self._call(contract, "hasRole", role, to_checksum_address(account)))

    def grant_role(self, contract: str, role: bytes, account: str) -> TxResult:
        """Give ``role`` on ``contract`` to ``account`` (the acting account must be ADMIN)."""
        return self._send(contract, "grantRole", role, to_checksum_address(account))

    def revoke_role(self, contract: str, role: bytes, account: str) -> TxResult:
        """Take ``role`` on ``contract`` from ``account`` (the acting account must be ADMIN)."""
        return self._send(contract, "revokeRole", role, to_checksum_address(account))

    def is_digest_used(self, contract: str, digest: bytes) -> bool:
        """Whether a single-use signature (by EIP-712 digest) was consumed on ``contract``.

        MemberRegistry and DataRegistry (ADMIN signatures, RotateKey) and AccessLedger (ADMIN
        GrantApprovals) keep such a set.
        """
        fn = "isApprovalUsed" if contract == "AccessLedger" else "isDigestUsed"
        return bool(self._call(contract, fn, digest))

    # -- members --------------------------------------------------------------------------

    def onboard(
        self,
        member: str,
        *,
        kind: MemberKind,
        name_hash: bytes,
        key_suite: int,
        encryption_key: bytes,
    ) -> TxResult:
        """Onboard directly (the acting account must be ADMIN)."""
        return self._send(
            "MemberRegistry",
            "onboard",
            to_checksum_address(member),
            kind_code(kind),
            name_hash,
            key_suite,
            encryption_key,
        )

    def onboard_for(
        self,
        member: str,
        *,
        kind: MemberKind,
        name: str,
        key_suite: int,
        encryption_key: bytes,
        nonce: int,
        deadline: int,
        signature: bytes,
    ) -> TxResult:
        """Relay an ADMIN's signed Onboard (the chain stores keccak256(name))."""
        return self._send(
            "MemberRegistry",
            "onboardFor",
            to_checksum_address(member),
            kind_code(kind),
            name,
            key_suite,
            encryption_key,
            nonce,
            deadline,
            signature,
        )

    def suspend(self, member: str) -> TxResult:
        """Suspend directly (the acting account must be ADMIN)."""
        return self._send("MemberRegistry", "suspend", to_checksum_address(member))

    def suspend_for(self, member: str, *, nonce: int, deadline: int, signature: bytes) -> TxResult:
        """Relay an ADMIN's signed Suspend."""
        return self._send(
            "MemberRegistry", "suspendFor", to_checksum_address(member), nonce, deadline, signature
        )

    def reinstate(self, member: str) -> TxResult:
        """Reinstate directly (the acting account must be ADMIN)."""
        return self._send("MemberRegistry", "reinstate", to_checksum_address(member))

    def reinstate_for(
        self, member: str, *, nonce: int, deadline: int, signature: bytes
    ) -> TxResult:
        """Relay an ADMIN's signed Reinstate."""
        return self._send(
            "MemberRegistry",
            "reinstateFor",
            to_checksum_address(member),
            nonce,
            deadline,
            signature,
        )

    def rotate_key(self, *, key_suite: int, encryption_key: bytes) -> TxResult:
        """Rotate the acting member's own encryption key."""
        return self._send("MemberRegistry", "rotateKey", key_suite, encryption_key)

    def rotate_key_for(
        self,
        member: str,
        *,
        key_suite: int,
        encryption_key: bytes,
        nonce: int,
        deadline: int,
        signature: bytes,
    ) -> TxResult:
        """Relay a member's own signed RotateKey."""
        return self._send(
            "MemberRegistry",
            "rotateKeyFor",
            to_checksum_address(member),
            key_suite,
            encryption_key,
            nonce,
            deadline,
            signature,
        )

    def member(self, address: str) -> MemberInfo:
        kind, status, suite, onboarded, name_hash, key = self._call(
            "MemberRegistry", "memberOf", to_checksum_address(address)
        )
        return MemberInfo(
            address=to_checksum_address(address),
            kind=kind_name(kind),
            status=MEMBER_STATUSES[status],
            key_suite=suite,
            onboarded_at=onboarded,
            name_hash=name_hash,
            encryption_key=key,
        )

    # -- datasets -------------------------------------------------------------------------

    def register(self, registration: Registration) -> tuple[DatasetId, TxResult]:
        result = self._send("DataRegistry", "register", _registration_tuple(registration))
        return DatasetId(result.event("DatasetRegistered").args["datasetId"]), result

    def register_for(
        self,
        owner: str,
        registration: Registration,
        *,
        nonce: int,
        deadline: int,
        signature: bytes,
    ) -> tuple[DatasetId, TxResult]:
        result = self._send(
            "DataRegistry",
            "registerFor",
            to_checksum_address(owner),
            _registration_tuple(registration),
            nonce,
            deadline,
            signature,
        )
        return DatasetId(result.event("DatasetRegistered").args["datasetId"]), result

    def retire(self, dataset_id: int) -> TxResult:
        return self._send("DataRegistry", "retire", dataset_id)

    def approve_transfer(self, dataset_id: int, to: str) -> TxResult:
        return self._send("DataRegistry", "approveTransfer", dataset_id, to_checksum_address(to))

    def transfer_dataset(self, dataset_id: int, to: str) -> TxResult:
        """Move a certificate from the acting owner to ``to`` (needs an ADMIN approval)."""
        return self._send(
            "DataRegistry",
            "transferFrom",
            self.account.address,
            to_checksum_address(to),
            dataset_id,
        )

    def reassign(self, dataset_id: int, to: str, reason_hash: bytes) -> TxResult:
        """Move a disputed certificate directly (the acting account must be ADMIN)."""
        return self._send(
            "DataRegistry", "reassign", dataset_id, to_checksum_address(to), reason_hash
        )

    def reassign_for(
        self,
        dataset_id: int,
        to: str,
        reason_hash: bytes,
        *,
        nonce: int,
        deadline: int,
        signature: bytes,
    ) -> TxResult:
        """Relay an ADMIN's signed Reassign (the dispute path)."""
        return self._send(
            "DataRegistry",
            "reassignFor",
            dataset_id,
            to_checksum_address(to),
            reason_hash,
            nonce,
            deadline,
            signature,
        )

    def dataset(self, dataset_id: int) -> DatasetInfo:
        content, metadata, registered, previous, classification, retired = self._call(
            "DataRegistry", "datasetOf", dataset_id
        )
        return DatasetInfo(
            dataset_id=DatasetId(dataset_id),
            owner=self.owner_of(dataset_id),
            content_hash=content,
            metadata_hash=metadata,
            classification=CLASSIFICATIONS[classification],
            parents=tuple(self._call("DataRegistry", "parentsOf", dataset_id)),
            previous_version=previous,
            registered_at=registered,
            retired=retired,
        )

    def owner_of(self, dataset_id: int) -> Address:
        return to_checksum_address(self._call("DataRegistry", "ownerOf", dataset_id))

    def dataset_id_of(self, content_hash: bytes) -> int:
        """Dataset id holding a content hash, 0 if none."""
        return int(self._call("DataRegistry", "datasetIdOf", content_hash))

    def latest_block(self) -> int:
        """The node's latest block number."""
        return int(self.tx.call(lambda: self.w3.eth.block_number))

    block_number = latest_block

    def dataset_count(self) -> int:
        return int(self._call("DataRegistry", "datasetCount"))

    def nonce(self, contract: str, owner: str) -> int:
        """The owner's next EIP-712 nonce on DataRegistry or AccessLedger."""
        return int(self._call(contract, "nonces", to_checksum_address(owner)))

    def supports_interface(self, contract: str, interface_id: bytes) -> bool:
        return bool(self._call(contract, "supportsInterface", interface_id))

    # -- access ---------------------------------------------------------------------------

    def grant(self, terms: GrantTerms, *, admin_approval: bytes = b"") -> TxResult:
        """Grant directly as the acting owner; ``admin_approval`` from :func:`encode_approval`."""
        return self._send("AccessLedger", "grant", terms.as_tuple(), admin_approval)

    def grant_for(
        self,
        terms: GrantTerms,
        *,
        nonce: int,
        deadline: int,
        signature: bytes,
        admin_approval: bytes = b"",
    ) -> TxResult:
        """Relay an owner's signed Grant; ``admin_approval`` from :func:`encode_approval`."""
        return self._send(
            "AccessLedger",
            "grantFor",
            terms.as_tuple(),
            nonce,
            deadline,
            signature,
            admin_approval,
        )

    def revoke(self, dataset_id: int, grantee: str) -> TxResult:
        return self._send("AccessLedger", "revoke", dataset_id, to_checksum_address(grantee))

    def revoke_for(
        self, dataset_id: int, grantee: str, *, nonce: int, deadline: int, signature: bytes
    ) -> TxResult:
        return self._send(
            "AccessLedger",
            "revokeFor",
            dataset_id,
            to_checksum_address(grantee),
            nonce,
            deadline,
            signature,
        )

    def record_use(
        self, dataset_id: int, grantee: str, *, nonce: int, deadline: int, signature: bytes
    ) -> TxResult:
        """Record one use with the grantee's signed Fetch (the acting account must be BROKER)."""
        return self._send(
            "AccessLedger",
            "recordUse",
            dataset_id,
            to_checksum_address(grantee),
            nonce,
            deadline,
            signature,
        )

    def fetch_recorded(self, grantee: str, nonce: int) -> int:
        """The dataset whose use recorded the grantee's Fetch ``nonce``; 0 if none."""
        return int(self._call("AccessLedger", "fetchRecorded", to_checksum_address(grantee), nonce))

    def grant_of(self, dataset_id: int, grantee: str) -> GrantInfo:
        granted, expires, max_uses, uses, generation, revoked = self._call(
            "AccessLedger", "grantOf", dataset_id, to_checksum_address(grantee)
        )
        return GrantInfo(
            dataset_id=dataset_id,
            grantee=to_checksum_address(grantee),
            granted_at=granted,
            expires_at=expires,
            max_uses=max_uses,
            uses=uses,
            generation=generation,
            revoked=revoked,
        )

    def is_usable(self, dataset_id: int, grantee: str) -> bool:
        return bool(
            self._call("AccessLedger", "isUsable", dataset_id, to_checksum_address(grantee))
        )

    # -- flow log -------------------------------------------------------------------------

    def anchor(self, tree_size: int, root_hash: bytes) -> TxResult:
        return self._send("FlowLog", "anchor", tree_size, root_hash)

    def latest_head(self) -> TreeHead:
        size, root, at, count = self._call("FlowLog", "latestHead")
        return TreeHead(tree_size=size, root_hash=root, anchored_at=at, head_count=count)

    def root_at(self, tree_size: int) -> bytes | None:
        root = self._call("FlowLog", "rootAt", tree_size)
        return None if root == b"\x00" * 32 else bytes(root)

    # -- credits --------------------------------------------------------------------------

    def mint_batch(self, receipts: Sequence[SignedReceipt]) -> TxResult:
        """Credit consumer-signed receipts (BROKER); the contract checks each and sets amounts.

        Entries that do not qualify come back as ``CreditWithheld`` events, not a revert.
        """
        return self._send("SharingCredits", "mintBatch", [r.as_tuple() for r in receipts])

    def receipt_id(self, receipt: SignedReceipt) -> bytes:
        """The receipt id SharingCredits computes (the EIP-712 digest of the receipt)."""
        return bytes(self._call("SharingCredits", "receiptIdOf", receipt.as_tuple()))

    def set_credit_rules(self, rules: CreditRules) -> TxResult:
        """Change amounts, caps and epoch length (the acting account must be ADMIN)."""
        return self._send("SharingCredits", "setCreditRules", rules.as_tuple())

    def credit_rules(self) -> CreditRules:
        epoch, first, repeat, pair_cap, owner_cap = self._call("SharingCredits", "creditRules")
        return CreditRules(
            epoch_seconds=int(epoch),
            first_credit=int(first),
            repeat_credit=int(repeat),
            pair_cap=int(pair_cap),
            owner_cap=int(owner_cap),
        )

    def credits_of(self, account: str) -> int:
        return int(self._call("SharingCredits", "balanceOf", to_checksum_address(account)))

    def credits_total(self) -> int:
        return int(self._call("SharingCredits", "totalSupply"))

    def is_credited(self, receipt_id: bytes) -> bool:
        return bool(self._call("SharingCredits", "isCredited", receipt_id))

    def is_fetch_credited(self, consumer: str, fetch_nonce: int) -> bool:
        """Whether a receipt for the consumer's Fetch ``fetch_nonce`` was credited."""
        return bool(
            self._call(
                "SharingCredits", "isFetchCredited", to_checksum_address(consumer), fetch_nonce
            )
        )

    def current_epoch(self) -> int:
        return int(self._call("SharingCredits", "currentEpoch"))

    def minted_for_pair(self, owner: str, consumer: str, epoch: int) -> int:
        """Credits ``owner`` earned from ``consumer``'s deliveries in ``epoch``."""
        return int(
            self._call(
                "SharingCredits",
                "mintedForPair",
                to_checksum_address(owner),
                to_checksum_address(consumer),
                epoch,
            )
        )

    def minted_for_owner(self, owner: str, epoch: int) -> int:
        """Credits ``owner`` earned in ``epoch``."""
        return int(
            self._call("SharingCredits", "mintedForOwner", to_checksum_address(owner), epoch)
        )

    # -- events ---------------------------------------------------------------------------

    def events(
        self,
        contract: str,
        event: str,
        *,
        from_block: int | None = None,
        to_block: int | Literal["latest"] = "latest",
        filters: dict[str, Any] | None = None,
    ) -> list[Event]:
        """Decoded events of one kind, oldest first (from the deployment block by default).

        Asked :data:`LOG_WINDOW` blocks at a time, as nodes (and the broker's relay) answer
        ``eth_getLogs``; a window they refuse as too large (JSON-RPC -32005) is halved, and
        grows back after each answer.
        """
        ev = getattr(self._c[contract].events, event)
        first = self.deployment.block_number if from_block is None else from_block
        last = self.latest_block() if to_block == "latest" else int(to_block)
        logs: list[Any] = []
        window = LOG_WINDOW
        while first <= last:
            end = min(last, first + window - 1)
            try:
                logs.extend(self.tx.logs(ev, first, end, filters))
            except TooManyLogs:
                if first == end:
                    raise
                window = max(1, (end - first + 1) // 2)
                continue
            first = end + 1
            window = min(LOG_WINDOW, window * 2)
        return [
            Event(
                contract=contract,
                name=event,
                args=plain(log["args"]),
                block_number=int(log["blockNumber"]),
                tx_hash=TxHash("0x" + bytes(log["transactionHash"]).hex()),
                log_index=int(log["logIndex"]),
            )
            for log in logs
        ]

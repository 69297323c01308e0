"""The typed contract client: every contract function behind a Python method.

``LedgerChain`` speaks in frozen dataclasses and raises :class:`ledger.errors.ContractRevert`
with decoded custom errors. It signs with the account it was given (the operator/broker key
for relayed actions, a member's key when a member acts directly) and never leaks web3 types.
The module is long (~450 lines) because it is one thin typed method per contract function of
five contracts; splitting it per contract would scatter the shared deploy/send/call plumbing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract

from ledger.chain.abi import CONTRACT_NAMES, artifact
from ledger.chain.backend import ChainBackend
from ledger.chain.models import (
    Credit,
    DatasetInfo,
    Deployment,
    Event,
    GrantInfo,
    MemberInfo,
    TreeHead,
    TxResult,
)
from ledger.chain.tx import Transactor, plain
from ledger.errors import DeploymentError
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
DEFAULT_CREDIT_CAP: Final = 100
DEFAULT_EPOCH_SECONDS: Final = 7 * 24 * 3600


def _registration_tuple(r: Registration) -> tuple[bytes, bytes, int, list[int], int]:
    return (
        r.content_hash,
        r.metadata_hash,
        classification_code(r.classification),
        list(r.parents),
        r.previous_version,
    )


class LedgerChain:
    """The five contracts of one deployment, with ``account`` paying and signing."""

    def __init__(
        self,
        backend: ChainBackend,
        deployment: Deployment,
        account: LocalAccount,
        *,
        transactor: Transactor | None = None,
    ) -> None:
        self.backend = backend
        self.deployment = deployment
        self.account = account
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
        operator: LocalAccount,
        *,
        broker: str | None = None,
        credit_cap: int = DEFAULT_CREDIT_CAP,
        epoch_seconds: int = DEFAULT_EPOCH_SECONDS,
    ) -> tuple[LedgerChain, list[tuple[str, TxResult]]]:
        """Deploy and wire the five contracts; ``operator`` is ADMIN, ``broker`` gets BROKER."""
        w3 = backend.w3
        tx = Transactor(w3)
        steps: list[tuple[str, TxResult]] = []
        admin = operator.address

        def make(name: str, *args: Any) -> str:
            art = artifact(name)
            factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
            address, result = tx.deploy(factory.constructor(*args), operator)
            steps.append((f"deploy {name}", result))
            return address

        members = make("MemberRegistry", admin)
        datasets = make("DataRegistry", admin, members)
        access = make("AccessLedger", admin, members, datasets)
        flow = make("FlowLog", admin)
        credits = make("SharingCredits", admin, datasets, credit_cap, epoch_seconds)
        deployment = Deployment(
            chain_id=tx.chain_id,
            member_registry=to_checksum_address(members),
            data_registry=to_checksum_address(datasets),
            access_ledger=to_checksum_address(access),
            flow_log=to_checksum_address(flow),
            sharing_credits=to_checksum_address(credits),
            block_number=steps[0][1].block_number,
        )
        chain = cls(backend, deployment, operator, transactor=tx)
        tx.watch(chain._c)
        broker_address = to_checksum_address(broker or admin)
        for name in ("AccessLedger", "FlowLog", "SharingCredits"):
            fn = chain._c[name].functions.grantRole(BROKER_ROLE, broker_address)
            steps.append((f"grant BROKER on {name}", tx.send(fn, operator)))
        return chain, steps

    def acting_as(self, account: LocalAccount) -> LedgerChain:
        """The same deployment with another signer (a member acting directly)."""
        return LedgerChain(self.backend, self.deployment, account, transactor=self.tx)

    def verify_deployment(self) -> None:
        """Check that each address holds code of the expected contract's size.

        Runtime code differs from the artifact where immutables were filled in, so the check is
        on presence and length; the chain id must match the deployment record too.
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

    @property
    def w3(self) -> Web3:
        return self.backend.w3

    def contract(self, name: str) -> Contract:
        return self._c[name]

    def _send(self, contract: str, fn_name: str, *args: Any) -> TxResult:
        fn = getattr(self._c[contract].functions, fn_name)(*args)
        return self.tx.send(fn, self.account)

    def _call(self, contract: str, fn_name: str, *args: Any) -> Any:
        fn = getattr(self._c[contract].functions, fn_name)(*args)
        return plain(self.tx.call(fn.call))

    # -- roles ----------------------------------------------------------------------------

    def has_role(self, contract: str, role: bytes, account: str) -> bool:
        return bool(self._call(contract, "hasRole", role, to_checksum_address(account)))

    def grant_role(self, contract: str, role: bytes, account: str) -> TxResult:
        return self._send(contract, "grantRole", role, to_checksum_address(account))

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
        return self._send(
            "MemberRegistry",
            "onboard",
            to_checksum_address(member),
            kind_code(kind),
            name_hash,
            key_suite,
            encryption_key,
        )

    def suspend(self, member: str) -> TxResult:
        return self._send("MemberRegistry", "suspend", to_checksum_address(member))

    def reinstate(self, member: str) -> TxResult:
        return self._send("MemberRegistry", "reinstate", to_checksum_address(member))

    def rotate_key(self, member: str, *, key_suite: int, encryption_key: bytes) -> TxResult:
        return self._send(
            "MemberRegistry", "rotateKey", to_checksum_address(member), key_suite, encryption_key
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

    def block_number(self) -> int:
        """The node's latest block number."""
        return int(self.w3.eth.block_number)

    def dataset_count(self) -> int:
        return int(self._call("DataRegistry", "datasetCount"))

    def nonce(self, contract: str, owner: str) -> int:
        """The owner's next EIP-712 nonce on DataRegistry or AccessLedger."""
        return int(self._call(contract, "nonces", to_checksum_address(owner)))

    def supports_interface(self, contract: str, interface_id: bytes) -> bool:
        return bool(self._call(contract, "supportsInterface", interface_id))

    # -- access ---------------------------------------------------------------------------

    def grant(self, terms: GrantTerms, *, admin_approval: bytes = b"") -> TxResult:
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

    def record_use(self, dataset_id: int, grantee: str) -> TxResult:
        return self._send("AccessLedger", "recordUse", dataset_id, to_checksum_address(grantee))

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

    def mint(self, dataset_id: int, consumer: str, amount: int, receipt_id: bytes) -> TxResult:
        return self._send(
            "SharingCredits", "mint", dataset_id, to_checksum_address(consumer), amount, receipt_id
        )

    def mint_batch(self, credits: Sequence[Credit]) -> TxResult:
        rows = [
            (c.dataset_id, to_checksum_address(c.consumer), c.amount, c.receipt_id) for c in credits
        ]
        return self._send("SharingCredits", "mintBatch", rows)

    def set_credit_rules(self, *, cap_per_epoch: int, epoch_seconds: int) -> TxResult:
        return self._send("SharingCredits", "setCreditRules", cap_per_epoch, epoch_seconds)

    def credit_rules(self) -> tuple[int, int]:
        cap, epoch = self._call("SharingCredits", "creditRules")
        return int(cap), int(epoch)

    def credits_of(self, account: str) -> int:
        return int(self._call("SharingCredits", "balanceOf", to_checksum_address(account)))

    def credits_total(self) -> int:
        return int(self._call("SharingCredits", "totalSupply"))

    def is_credited(self, receipt_id: bytes) -> bool:
        return bool(self._call("SharingCredits", "isCredited", receipt_id))

    def current_epoch(self) -> int:
        return int(self._call("SharingCredits", "currentEpoch"))

    def minted_in_epoch(self, dataset_id: int, consumer: str, epoch: int) -> int:
        return int(
            self._call(
                "SharingCredits", "mintedInEpoch", dataset_id, to_checksum_address(consumer), epoch
            )
        )

    # -- events ---------------------------------------------------------------------------

    def events(
        self,
        contract: str,
        event: str,
        *,
        from_block: int | None = None,
        to_block: int | str = "latest",
        filters: dict[str, Any] | None = None,
    ) -> list[Event]:
        """Decoded events of one kind, oldest first."""
        ev = getattr(self._c[contract].events, event)
        start = self.deployment.block_number if from_block is None else from_block
        logs = self.tx.call(
            lambda: ev.get_logs(from_block=start, to_block=to_block, argument_filters=filters)
        )
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

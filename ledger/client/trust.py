"""What a member holds against the broker: the pinned deployment, its own chain view, proofs.

The broker is the party members and regulators check, so nothing they rely on is taken on its
word (docs/threat-model.md):

- **the deployment is pinned.** The chain id, the five contract addresses and the ADMIN and
  BROKER keys are written to the member's home at first contact (or handed over by the
  operator as a file); every later answer of ``/v1/config`` must name the same, or the SDK
  refuses with ``deployment_changed``. Signing domains come from the pin, never re-read.
- **the chain is read through a node the member chooses** (``DRL_CHAIN_URL``): members' keys,
  datasets' content hashes and grants come from the contracts. A broker on the embedded chain
  has no independent node; reads then go through the broker's read-only relay and
  :attr:`ChainView.independent` is False, which the CLI states plainly. The SDK then also
  checks the relay's key and content hash against the signed records that set them (the
  ADMIN-signed Onboard or the member's RotateKey; the owner's Register): a broker can forge a
  relay answer, not those signatures.
- **each signed action is confirmed in a signed head.** After a write, the record the broker
  logged must hold exactly the action the member signed, be included in a checkpoint signed by
  the pinned BROKER key, and that checkpoint must extend the last one this member kept
  (consistency proof). The proofs are kept, one JSON line per action.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils.address import to_checksum_address

from ledger.chain.models import Deployment
from ledger.errors import ConfigurationError, IntegrityError
from ledger.keys import write_private
from ledger.merkle.proofs import verify_consistency
from ledger.protocol.actions import Domains
from ledger.protocol.checkpoint import SignedCheckpoint, origin_for, parse_checkpoint
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import Config

if TYPE_CHECKING:
    from ledger.chain.client import LedgerChain

PIN_FIELDS = (
    "chain_id",
    "admin",
    "broker",
    "member_registry",
    "data_registry",
    "access_ledger",
    "flow_log",
    "sharing_credits",
)


@dataclass(frozen=True)
class Pinned:
    """The deployment a member trusts: chain, contracts, ADMIN and BROKER keys."""

    chain_id: int
    admin: str
    broker: str
    member_registry: str
    data_registry: str
    access_ledger: str
    flow_log: str
    sharing_credits: str
    deployment_block: int = 0

    @classmethod
    def of(cls, config: Config) -> Pinned:
        return cls(
            chain_id=config.chain_id,
            admin=config.admin,
            broker=config.broker,
            member_registry=config.member_registry,
            data_registry=config.data_registry,
            access_ledger=config.access_ledger,
            flow_log=config.flow_log,
            sharing_credits=config.sharing_credits,
            deployment_block=config.deployment_block,
        )

    @cached_property
    def deployment(self) -> Deployment:
        """The pinned deployment as the chain client takes it (built once)."""
        c = to_checksum_address
        return Deployment(
            chain_id=self.chain_id,
            member_registry=c(self.member_registry),
            data_registry=c(self.data_registry),
            access_ledger=c(self.access_ledger),
            flow_log=c(self.flow_log),
            sharing_credits=c(self.sharing_credits),
            block_number=self.deployment_block,
            admin=c(self.admin),
            broker=c(self.broker),
        )

    @property
    def domains(self) -> Domains:
        return self.deployment.domains

    @property
    def origin(self) -> str:
        return origin_for(self.chain_id, self.flow_log)

    def differences(self, other: Pinned) -> list[str]:
        mine, theirs = asdict(self), asdict(other)
        return [f for f in PIN_FIELDS if str(mine[f]).lower() != str(theirs[f]).lower()]


def broker_key(subject: str) -> str:
    """A file-name-safe key of a broker URL or a log origin (lower-cased)."""
    return hashlib.sha256(subject.rstrip("/").lower().encode()).hexdigest()[:16]


class TrustStore:
    """Files a member keeps under ``directory`` for one ``subject``: a broker URL (the pinned
    deployment) or a log's origin (checkpoints, proofs, the audit state)."""

    def __init__(self, directory: Path | None, subject: str) -> None:
        self.directory = directory
        self.key = broker_key(subject)
        self._memory: dict[str, Any] = {}

    def path(self, name: str) -> Path | None:
        """Where ``name`` is kept (``None`` when nothing is kept on disk)."""
        if self.directory is None:
            return None
        return self.directory / f"{self.key}.{name}"

    def read(self, name: str) -> Any:
        path = self.path(name)
        if path is None:
            return self._memory.get(name)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"unreadable trust file {path}: {type(exc).__name__}", code=ErrorCode.BAD_KEY_FILE
            ) from None

    def write(self, name: str, value: Any) -> None:
        path = self.path(name)
        if path is None:
            self._memory[name] = value
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, json.dumps(value, indent=1).encode())

    def append(self, name: str, value: Any) -> None:
        """One JSON line appended (the kept inclusion proofs)."""
        path = self.path(name)
        if path is None:
            self._memory.setdefault(name, []).append(value)
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with path.open("a", encoding="utf-8") as fh:
            path.chmod(0o600)
            fh.write(json.dumps(value) + "\n")


def pin(store: TrustStore, config: Config, handed: Path | None = None) -> Pinned:
    """The pinned deployment: the operator's file, else the first config seen; then checked.

    A later config naming anything else is refused with ``deployment_changed``: a broker that
    switches chain, contracts or keys is not the one this member joined.
    """
    seen = Pinned.of(config)
    pinned_raw = store.read("deployment.json")
    if pinned_raw is None and handed is not None:
        try:
            pinned_raw = json.loads(handed.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"unreadable deployment file {handed}: {type(exc).__name__}"
            ) from None
    if pinned_raw is None:
        store.write("deployment.json", asdict(seen))
        return seen
    try:
        pinned = Pinned(**{k: pinned_raw[k] for k in (*PIN_FIELDS, "deployment_block")})
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(f"the pinned deployment is incomplete: {exc}") from None
    changed = pinned.differences(seen)
    if changed:
        raise IntegrityError(
            "the broker names another deployment than the one pinned at first contact "
            f"({', '.join(changed)} differ); refusing",
            code=ErrorCode.DEPLOYMENT_CHANGED,
        )
    if store.read("deployment.json") is None:
        store.write("deployment.json", asdict(pinned))
    return pinned


@dataclass(frozen=True)
class ChainView:
    """A read-only view of the contracts, and whether it is independent of the broker."""

    chain: LedgerChain
    independent: bool
    source: str  # "node" or "broker relay"

    @property
    def caveat(self) -> str | None:
        if self.independent:
            return None
        return (
            "chain read through the broker (embedded chain): no independent node, so chain "
            "facts are the broker's word; signatures, checkpoints and proofs are still checked"
        )


def check_checkpoint(note: str, pinned: Pinned) -> SignedCheckpoint:
    """A checkpoint of the pinned log, signed by the pinned BROKER key."""
    cp = parse_checkpoint(note, origin=pinned.origin)
    if cp.signer.lower() != pinned.broker.lower():
        raise IntegrityError(
            f"checkpoint signed by {cp.signer}, not by the pinned broker key {pinned.broker}",
            code=ErrorCode.CHECKPOINT_NOT_BROKER,
        )
    return cp


def check_extends(old: SignedCheckpoint, new: SignedCheckpoint, path: list[bytes]) -> None:
    """``new`` must extend ``old``: a shrunk, rewritten or forked log is refused."""
    if not verify_consistency(old.size, new.size, old.root, new.root, path):
        raise IntegrityError(
            f"the log's signed head of size {new.size} does not extend the one of size "
            f"{old.size} I kept: history rewritten or forked (both signed notes kept)",
            code=ErrorCode.LOG_INCONSISTENT,
        )

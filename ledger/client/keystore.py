"""Local member identities under ``DRL_HOME/members/HANDLE``, encrypted at rest.

``signing.key.json`` is an eth-account keystore v3; ``hpke.key.json`` holds the HPKE private
key sealed under the same passphrase (scrypt + AES-256-GCM); ``profile.json`` is public.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_account import Account

from ledger import crypto
from ledger.client.member import MemberKeys
from ledger.errors import ConfigurationError, Conflict, InvalidInput, NotFound
from ledger.keys import load_account, load_secret, save_account, save_secret, write_private
from ledger.protocol.codes import ErrorCode
from ledger.types import MemberKind

_HANDLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Profile:
    """The public half of a local identity."""

    handle: str
    kind: MemberKind
    name: str
    address: str
    key_suite: int
    encryption_key: str


def _dir(home: Path, handle: str) -> Path:
    if not _HANDLE.match(handle):
        raise InvalidInput(
            "handles are 1-63 lowercase letters, digits, '.', '_' or '-'", code=ErrorCode.BAD_HANDLE
        )
    return home / "members" / handle


def create(
    home: Path, handle: str, *, kind: MemberKind, name: str, passphrase: str, pq: bool = False
) -> Profile:
    """Generate a signing key and an HPKE key pair for a new local identity."""
    folder = _dir(home, handle)
    if (folder / "profile.json").exists():
        raise Conflict(
            f"identity {handle!r} already exists in {folder}", code=ErrorCode.HANDLE_TAKEN
        )
    account = Account.create()
    private, public = crypto.generate_keypair("mlkem768-x25519" if pq else "x25519")
    save_account(folder / "signing.key.json", account, passphrase)
    save_secret(folder / "hpke.key.json", private.to_bytes(), passphrase, label="hpke")
    profile = Profile(
        handle=handle,
        kind=kind,
        name=name,
        address=account.address,
        key_suite=public.suite.id,
        encryption_key="0x" + public.to_bytes().hex(),
    )
    write_private(folder / "profile.json", json.dumps(asdict(profile), indent=2).encode())
    return profile


def profile(home: Path, handle: str) -> Profile:
    path = _dir(home, handle) / "profile.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(
            f"no local identity {handle!r} (create it with `drl member new`)",
            code=ErrorCode.NO_IDENTITY,
        ) from None
    except ValueError as exc:
        raise ConfigurationError(f"damaged profile {path}: {exc}") from None
    try:
        return Profile(**data)
    except TypeError:  # valid JSON, but not a profile (missing or unknown fields)
        raise ConfigurationError(f"damaged profile {path}: not a member profile") from None


def unlock(home: Path, handle: str, passphrase: str) -> MemberKeys:
    """Decrypt an identity's keys."""
    p = profile(home, handle)
    folder = _dir(home, handle)
    account = load_account(folder / "signing.key.json", passphrase)
    raw = load_secret(folder / "hpke.key.json", passphrase, label="hpke")
    return MemberKeys(account=account, hpke=crypto.load_private_key(p.key_suite, raw))


def handles(home: Path) -> list[str]:
    root = home / "members"
    return sorted(p.parent.name for p in root.glob("*/profile.json")) if root.exists() else []

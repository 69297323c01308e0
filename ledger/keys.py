"""Signing keys at rest: eth-account keystore v3 (scrypt + AES-128-CTR), never plaintext.

Files are written atomically with mode 0600; a wrong passphrase is a clear error, not a
traceback from the KDF.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ledger.errors import ConfigurationError
from ledger.private import private_dir
from ledger.protocol.codes import ErrorCode

# The demo and tests use a weaker scrypt cost so they stay fast; real keys use the library
# default (n=2**18) unless DRL_KDF_FAST is set.
_FAST_KDF = {"kdf": "scrypt", "iterations": 2**14}


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file atomically, readable by its owner only."""
    private_dir(path.parent, tighten=False)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def save_account(
    path: Path, account: LocalAccount, passphrase: str, *, isolated: bool = False
) -> None:
    """Encrypt a signing key into a keystore v3 file (``isolated``: see :func:`load_account`)."""
    if not passphrase:
        raise ConfigurationError(
            "a passphrase is required to encrypt a key", code=ErrorCode.NO_PASSPHRASE
        )
    kdf: dict[str, Any] = _FAST_KDF if os.environ.get("DRL_KDF_FAST") else {}
    args = (bytes(account.key), passphrase, kdf)
    keystore = _in_child(_encrypt, *args) if isolated else _encrypt(*args)
    write_private(path, json.dumps(keystore).encode())


def _encrypt(key: bytes, passphrase: str, kdf: dict[str, Any]) -> Any:
    return Account.encrypt(key, passphrase, **kdf)


def keystore_address(path: Path) -> str:
    """The address a keystore v3 file names, read without unlocking it."""
    try:
        address = str(json.loads(path.read_text())["address"])
        return str(to_checksum_address(address if address.startswith("0x") else "0x" + address))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"unreadable key file {path}: {type(exc).__name__}", code=ErrorCode.BAD_KEY_FILE
        ) from None


def load_account(path: Path, passphrase: str, *, isolated: bool = False) -> LocalAccount:
    """Decrypt a keystore v3 file; wrong passphrase or damaged file raise ConfigurationError.

    ``isolated`` runs the KDF in a short-lived child process: scrypt at the keystore default
    (n = 2**18) allocates 256 MiB, which a long-lived server would otherwise keep as its peak
    (and often as resident memory) for its whole life. Only the 32-byte key comes back, over a
    pipe.
    """
    try:
        keystore = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"no key at {path}", code=ErrorCode.KEY_NOT_FOUND) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"unreadable key file {path}: {exc}", code=ErrorCode.BAD_KEY_FILE
        ) from None
    key = _in_child(_decrypt, keystore, passphrase) if isolated else _decrypt(keystore, passphrase)
    if key is None:
        raise ConfigurationError(f"wrong passphrase for {path}", code=ErrorCode.WRONG_PASSPHRASE)
    account: LocalAccount = Account.from_key(key)
    return account


def _decrypt(keystore: Any, passphrase: str) -> bytes | None:
    try:
        return bytes(Account.decrypt(keystore, passphrase))
    except ValueError:
        return None


def _answer(work: Any, args: tuple[Any, ...], out: Connection) -> None:
    out.send(work(*args))
    out.close()


def _in_child(work: Any, *args: Any) -> Any:
    """``work(*args)`` in a forked child, whose memory goes when it exits (no start-up cost:
    the parent's imports are already there). Runs in this process where fork is missing."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return work(*args)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_answer, args=(work, args, send), daemon=True)
    child.start()
    send.close()
    try:
        return receive.recv()
    except EOFError:  # the child died before answering (out of memory, killed)
        raise ConfigurationError("the key derivation process failed") from None
    finally:
        receive.close()
        child.join()


def _secret_kdf(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())


def save_secret(path: Path, secret: bytes, passphrase: str, *, label: str) -> None:
    """Encrypt an arbitrary secret (an HPKE private key) under a passphrase.

    scrypt derives the key, AES-256-GCM seals the secret; the label is bound as associated data
    so a file cannot be swapped for another kind of secret.
    """
    if not passphrase:
        raise ConfigurationError(
            "a passphrase is required to encrypt a key", code=ErrorCode.NO_PASSPHRASE
        )
    n = 2**14 if os.environ.get("DRL_KDF_FAST") else 2**17
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_secret_kdf(passphrase, salt, n)).encrypt(nonce, secret, label.encode())
    doc = {
        "version": 1,
        "label": label,
        "kdf": {"name": "scrypt", "n": n, "r": 8, "p": 1, "salt": salt.hex()},
        "cipher": {"name": "aes-256-gcm", "nonce": nonce.hex(), "sealed": sealed.hex()},
    }
    write_private(path, json.dumps(doc).encode())


def load_secret(path: Path, passphrase: str, *, label: str) -> bytes:
    """Decrypt a secret written by :func:`save_secret`."""
    try:
        doc = json.loads(path.read_text())
        salt = bytes.fromhex(doc["kdf"]["salt"])
        n = int(doc["kdf"]["n"])
        nonce = bytes.fromhex(doc["cipher"]["nonce"])
        sealed = bytes.fromhex(doc["cipher"]["sealed"])
    except FileNotFoundError:
        raise ConfigurationError(f"no key at {path}", code=ErrorCode.KEY_NOT_FOUND) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"unreadable key file {path}: {exc}", code=ErrorCode.BAD_KEY_FILE
        ) from None
    try:
        return AESGCM(_secret_kdf(passphrase, salt, n)).decrypt(nonce, sealed, label.encode())
    except InvalidTag:
        raise ConfigurationError(
            f"wrong passphrase for {path}", code=ErrorCode.WRONG_PASSPHRASE
        ) from None

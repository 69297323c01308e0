"""One exception root for the whole library.

Every error carries a stable machine-readable ``code`` (used by the CLI and, later, by the
broker's HTTP error mapping) and mixes in the builtin it means, so callers that only know
Python's builtins still catch it sensibly::

    LedgerError
    ├── ConfigurationError (ValueError)      settings or files that cannot work
    ├── ChainError                           anything about talking to the chain
    │   ├── ChainUnavailable (ConnectionError)   node not reachable / not answering
    │   ├── ContractRevert (ValueError)          a call reverted; decoded custom error inside
    │   └── DeploymentError (RuntimeError)       contracts missing or mis-wired
    ├── CryptoError (ValueError)             keys or ciphertext that cannot be used
    │   ├── UnsupportedFormat                unknown version, suite or header
    │   └── IntegrityError                   authentication or hash check failed
    ├── NotFound (LookupError)               an id that names nothing
    ├── InvalidInput (ValueError)            a request that can never succeed as given
    ├── InvalidSignature (ValueError)        a signed action that does not verify
    │   ├── ExpiredDeadline                  signed too long ago
    │   └── ReplayedNonce                    this nonce was used before
    ├── Forbidden (PermissionError)          the actor's role or standing does not allow it
    └── Conflict                             the target is not in a state that allows it
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Root of every error raised by the ledger library."""

    code = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(LedgerError, ValueError):
    """A setting, key file or data directory that cannot be used as given."""

    code = "configuration_error"


class ChainError(LedgerError):
    """Something went wrong talking to the chain."""

    code = "chain_error"


class ChainUnavailable(ChainError, ConnectionError):
    """The node could not be reached or did not answer."""

    code = "chain_unavailable"


class DeploymentError(ChainError, RuntimeError):
    """The contracts are not deployed where expected, or their wiring is wrong."""

    code = "deployment_error"


class ContractRevert(ChainError, ValueError):
    """A contract call reverted; ``error`` is the decoded custom error name, ``args`` its values.

    The code is the custom error's name in snake case (``DataRegistryAlreadyRegistered`` becomes
    ``data_registry_already_registered``) so clients can branch on it without parsing text.
    """

    def __init__(self, error: str, args: dict[str, Any] | None = None) -> None:
        self.error = error
        self.error_args: dict[str, Any] = dict(args or {})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.error_args.items())
        super().__init__(f"{error}({shown})", code=_snake(error))


class CryptoError(LedgerError, ValueError):
    """Keys or ciphertext that cannot be used."""

    code = "crypto_error"


class UnsupportedFormat(CryptoError):
    """An unknown format version, HPKE suite or malformed header."""

    code = "unsupported_format"


class IntegrityError(CryptoError):
    """Authentication or a hash check failed: the data was altered, truncated or reordered."""

    code = "integrity_error"


class NotFound(LedgerError, LookupError):
    """An identifier that names nothing."""

    code = "not_found"


class InvalidInput(LedgerError, ValueError):
    """A request that can never succeed as given (bad field, wrong size, unknown option)."""

    code = "invalid_input"


class InvalidSignature(LedgerError, ValueError):
    """The signature does not recover to the claimed actor, or the payload is malformed."""

    code = "invalid_signature"


class ExpiredDeadline(InvalidSignature):
    """The signed payload's deadline has passed."""

    code = "deadline_expired"


class ReplayedNonce(InvalidSignature):
    """The signed payload's nonce was already used by this signer."""

    code = "nonce_replayed"


class Forbidden(LedgerError, PermissionError):
    """The actor's role or standing does not allow this action."""

    code = "forbidden"


class Conflict(LedgerError):
    """The target exists but is not in a state that allows the action."""

    code = "conflict"


def _snake(name: str) -> str:
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)

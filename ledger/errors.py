"""One exception root for the whole library.

Every error carries a stable machine-readable ``code`` (``ledger.protocol.codes.ErrorCode``,
which also gives the HTTP status the broker answers with) and mixes in the builtin it means, so
callers that only know Python's builtins still catch it sensibly::

    LedgerError
    ├── ConfigurationError (ValueError)      settings or files that cannot work
    ├── ChainError                           anything about talking to the chain
    │   ├── ChainUnavailable (ConnectionError)   node not reachable / not answering
    │   ├── ContractRevert (ValueError)          a call reverted; decoded custom error inside
    │   └── DeploymentError (RuntimeError)       contracts missing or mis-wired
    ├── BrokerUnreachable (ConnectionError)  the member's side could not reach the broker
    ├── CryptoError (ValueError)             keys or ciphertext that cannot be used
    │   ├── UnsupportedFormat                unknown version, suite or header
    │   └── IntegrityError                   authentication or hash check failed
    ├── NotFound (LookupError)               an id that names nothing
    ├── InvalidInput (ValueError)            a request that can never succeed as given
    ├── InvalidSignature (ValueError)        a signed action that does not verify
    │   ├── ExpiredDeadline                  signed too long ago (or too far ahead)
    │   └── ReplayedNonce                    this nonce was used before
    ├── Unauthenticated (PermissionError)    a request whose signature does not prove a key
    ├── PayloadTooLarge (ValueError)         a body over the route's limit
    ├── Forbidden (PermissionError)          the actor's role or standing does not allow it
    ├── Conflict                             the target is not in a state that allows it
    ├── LogError                             the flow log (ledger.merkle, services.flowlog)
    │   └── IntegrityAlarm (RuntimeError)    the broker's own log disagrees with the chain
    └── StorageError                         the database and the blob store (ledger.store)
"""

from __future__ import annotations

from typing import Any

# Re-exported: the codes table is part of this error core (leaf packages import it from here).
from ledger.protocol.codes import ErrorCode


class LedgerError(Exception):
    """Root of every error raised by the ledger library."""

    #: An :class:`~ledger.protocol.codes.ErrorCode`, or a contract error's snake-case name.
    code: str = ErrorCode.LEDGER_ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(LedgerError, ValueError):
    """A setting, key file or data directory that cannot be used as given."""

    code = ErrorCode.CONFIGURATION_ERROR


class ChainError(LedgerError):
    """Something went wrong talking to the chain."""

    code = ErrorCode.CHAIN_ERROR


class ChainUnavailable(ChainError, ConnectionError):
    """The node could not be reached or did not answer."""

    code = ErrorCode.CHAIN_UNAVAILABLE


class DeploymentError(ChainError, RuntimeError):
    """The contracts are not deployed where expected, or their wiring is wrong."""

    code = ErrorCode.DEPLOYMENT_ERROR


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

    code = ErrorCode.CRYPTO_ERROR


class UnsupportedFormat(CryptoError):
    """An unknown format version, HPKE suite or malformed header."""

    code = ErrorCode.UNSUPPORTED_FORMAT


class IntegrityError(CryptoError):
    """Authentication or a hash check failed: the data was altered, truncated or reordered."""

    code = ErrorCode.INTEGRITY_ERROR


class NotFound(LedgerError, LookupError):
    """An identifier that names nothing."""

    code = ErrorCode.NOT_FOUND


class InvalidInput(LedgerError, ValueError):
    """A request that can never succeed as given (bad field, wrong size, unknown option)."""

    code = ErrorCode.INVALID_INPUT


class InvalidSignature(LedgerError, ValueError):
    """The signature does not recover to the claimed actor, or the payload is malformed."""

    code = ErrorCode.INVALID_SIGNATURE


class ExpiredDeadline(InvalidSignature):
    """The signed payload's deadline has passed."""

    code = ErrorCode.DEADLINE_EXPIRED


class ReplayedNonce(InvalidSignature):
    """The signed payload's nonce was already used by this signer."""

    code = ErrorCode.NONCE_REPLAYED


class BrokerUnreachable(LedgerError, ConnectionError):
    """The member's side could not reach the broker, or the connection broke mid-transfer."""

    code = ErrorCode.BROKER_UNREACHABLE


class Unauthenticated(LedgerError, PermissionError):
    """The request does not prove a member's key (missing, malformed, stale or replayed)."""

    code = ErrorCode.UNAUTHENTICATED


class PayloadTooLarge(LedgerError, ValueError):
    """The request body exceeds the limit for its route."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class LogError(LedgerError):
    """Something about the flow log: its tree, its records or its anchors."""

    code = ErrorCode.LEDGER_ERROR


class IntegrityAlarm(LogError, RuntimeError):
    """The broker's own log disagrees with the chain: an operator alarm, not a client error."""

    code = ErrorCode.INTEGRITY_ALARM


class StorageError(LedgerError):
    """The broker's database or blob store failed or holds something it should not."""

    code = ErrorCode.STORAGE_ERROR


class Forbidden(LedgerError, PermissionError):
    """The actor's role or standing does not allow this action."""

    code = ErrorCode.FORBIDDEN


class Conflict(LedgerError):
    """The target exists but is not in a state that allows the action."""

    code = ErrorCode.CONFLICT


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


class Throttled(LedgerError):
    """A quota refused the request: too many transfers or writes at once (retry later)."""

    code = ErrorCode.RATE_LIMITED

"""Helpers the routes share.

The request and response models of the HTTP API are the protocol's (``ledger.protocol.wire``),
which the member SDK parses too; the services answer with them (``ledger.services.catalog``
turns index rows into them), so no route sees a row. Bytes travel as 0x-hex.
"""

from __future__ import annotations

from ledger.errors import InvalidSignature
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode


def message_int(signed: SignedAction, name: str) -> int:
    """An integer field of a signed message, read before its signature is checked.

    Routes compare such a field with the path (``requestId``, ``datasetId``); a value of another
    type can never verify, so it is refused as a malformed signed action (400).
    """
    value = signed.message.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidSignature(
            f"{signed.action}: {name} must be an integer", code=ErrorCode.MALFORMED_ACTION
        )
    return value

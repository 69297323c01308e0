"""Records and values as a person reads them: names for addresses, short hashes, one-line gists."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final

from ledger.console.records import Entry, Organisation

#: Signed fields a line leaves out (still on the record's page): replay protection, not meaning.
QUIET: Final = frozenset({"nonce", "deadline", "fetchNonce", "tx"})


def short(value: Any) -> str:
    text = str(value)
    return text[:12] + "…" if text.startswith("0x") and len(text) > 42 else text


def name_of(address: str | None, orgs: Mapping[str, Organisation]) -> str:
    if not address:
        return "-"
    org = orgs.get(address.lower())
    return org.name if org and org.name else address[:10] + "…"


_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")


def named(text: str, orgs: Mapping[str, Organisation]) -> str:
    """``text`` with each member's address replaced by its name (unknown ones left as they are)."""

    def swap(found: re.Match[str]) -> str:
        org = orgs.get(found.group(0).lower())
        return org.name if org and org.name else found.group(0)

    return _ADDRESS.sub(swap, text)


def gist(entry: Entry, orgs: Mapping[str, Organisation]) -> str:
    """The signed message in one line, addresses named."""
    parts = []
    for key, value in entry.message.items():
        if key in QUIET:
            continue
        if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
            text = name_of(value, orgs)
        else:
            text = short(value)
        if len(text) > 60:
            text = text[:57] + "…"
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def row(entry: Entry, orgs: Mapping[str, Organisation]) -> dict[str, Any]:
    """A timeline row (JSON-ready)."""
    return {
        "seq": entry.seq,
        "at": entry.at,
        "action": entry.action,
        "actor": entry.actor,
        "actor_name": name_of(entry.actor, orgs),
        "dataset": entry.dataset_id,
        "gist": gist(entry, orgs),
        "chain": entry.chain,
        "tx": entry.tx_hash,
        "verified": entry.verified,
        "refused": entry.context.get("refused"),
    }


def plain(value: Any) -> Any:
    """JSON-ready: bytes as 0x-hex, tuples as lists, datetimes as ISO text."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value

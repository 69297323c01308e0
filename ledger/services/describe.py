"""The catalog in the description standards: DCAT-AP 3.0 JSON-LD (``ledger.dcat``).

Built from the same rows the catalog serves (every member sees the whole catalog) and the
owners' member names; nothing here reads ciphertext.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from ledger.dcat import catalog_document
from ledger.services.catalog import datasets
from ledger.services.context import Ledger
from ledger.store.models import Member


def catalog_jsonld(
    ledger: Ledger, *, base: str, owner: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[dict[str, Any], int | None]:
    """One page of the catalog as a DCAT-AP ``dcat:Catalog`` (JSON-LD), and the next offset."""
    listed = datasets(ledger, owner=owner, limit=limit, offset=offset)
    rows = [d.model_dump(mode="json") for d in listed.data]
    owners = {str(d["owner"]) for d in rows}
    with ledger.db.session() as session:
        members = session.exec(select(Member).where(col(Member.address).in_(owners))).all()
    names = {m.address: m.name for m in members}
    return catalog_document(rows, base=base, publishers=names), listed.next

"""Health and the public configuration clients need to sign."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LedgerDep
from ledger.protocol.wire import Config, Health
from ledger.services import system

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health(ledger: LedgerDep) -> Health:
    """Liveness: the chain answers and the database is readable."""
    return system.health(ledger)


@router.get("/config", response_model=Config)
def config(ledger: LedgerDep) -> Config:
    """Chain id, contracts, every EIP-712 domain and action type, and the protocol's limits."""
    return system.config(ledger)

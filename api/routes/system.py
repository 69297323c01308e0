"""Health and the public configuration clients need to sign."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LedgerDep
from api.schemas import Config, Health
from ledger.log import flowlog

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health(ledger: LedgerDep) -> Health:
    """Liveness: the chain answers and the database is readable."""
    with ledger.db.session() as session:
        size = flowlog.size(session)
    return Health(
        status="ok",
        chain_id=ledger.chain.deployment.chain_id,
        block=int(ledger.chain.w3.eth.block_number),
        log_size=size,
    )


@router.get("/config", response_model=Config)
def config(ledger: LedgerDep) -> Config:
    """Chain id and contract addresses: the EIP-712 domains every signed action uses."""
    d = ledger.chain.deployment
    return Config(
        chain_id=d.chain_id,
        operator=ledger.operator,
        member_registry=d.member_registry,
        data_registry=d.data_registry,
        access_ledger=d.access_ledger,
        flow_log=d.flow_log,
        sharing_credits=d.sharing_credits,
        max_upload_bytes=ledger.max_upload_bytes,
    )

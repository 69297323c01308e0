"""Health, and the public configuration a client needs to sign (built from the protocol)."""

from __future__ import annotations

from ledger.errors import LedgerError
from ledger.protocol import actions as spec
from ledger.protocol import limits
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import MAX_METADATA_BYTES
from ledger.protocol.http import MAX_SKEW_SECONDS, SCHEME
from ledger.protocol.wire import (
    ActionPublic,
    Config,
    Eip712Domain,
    Health,
    Limits,
    PartHealth,
    TypeField,
)
from ledger.services import flowlog
from ledger.services.anchoring import Anchorer
from ledger.services.context import Ledger

#: Largest JSON body a route reads (uploads have their own limit).
JSON_BODY_LIMIT = 1024 * 1024


def health(ledger: Ledger, anchorer: Anchorer | None = None) -> Health:
    """Each part on its own: database, chain, blob store; ``unavailable`` if any is down.

    Every check is bounded (the chain is asked once with a short timeout) and failures name
    the part and the kind of failure only, never an endpoint.
    """
    log_size: int | None = None
    try:
        with ledger.db.session() as session:
            log_size = flowlog.size(session)
        database = PartHealth(ok=True)
    except LedgerError as exc:
        database = PartHealth(ok=False, code=exc.code, message=exc.message)
    except Exception as exc:  # the driver's own errors: their text may name the server
        database = PartHealth(
            ok=False,
            code=ErrorCode.DATABASE_UNAVAILABLE,
            message=f"the database did not answer ({type(exc).__name__})",
        )
    block: int | None = None
    try:
        block = ledger.chain.backend.ping()
        chain = PartHealth(ok=True)
    except LedgerError as exc:
        chain = PartHealth(ok=False, code=ErrorCode.CHAIN_UNAVAILABLE, message=exc.message)
    try:
        ledger.blobs.check()
        blobs = PartHealth(ok=True)
    except LedgerError as exc:
        blobs = PartHealth(ok=False, code=exc.code, message=exc.message)
    leader, replica = _leadership(anchorer) if database.ok else (False, _replica(anchorer))
    down = next((part.code for part in (database, chain, blobs) if not part.ok), None)
    return Health(
        status="ok" if down is None else "unavailable",
        code=down,
        chain_id=ledger.chain.deployment.chain_id,
        block=block,
        log_size=log_size,
        database=database,
        chain=chain,
        blobs=blobs,
        replica=replica,
        leader=leader,
    )


def _replica(anchorer: Anchorer | None) -> str:
    return anchorer.lease.holder if anchorer is not None and anchorer.lease else "single"


def _leadership(anchorer: Anchorer | None) -> tuple[bool, str]:
    """Whether this replica holds the anchoring lease now, and its name."""
    if anchorer is None or anchorer.lease is None:
        return True, "single"
    try:
        return anchorer.lease.state().holder == anchorer.lease.holder, anchorer.lease.holder
    except Exception:
        return False, anchorer.lease.holder


def config(ledger: Ledger) -> Config:
    """Chain id, contracts, every EIP-712 domain and action type, and the limits."""
    d = ledger.chain.deployment
    return Config(
        protocol=SCHEME,
        chain_id=d.chain_id,
        operator=ledger.operator,
        admin=d.admin,
        broker=d.broker,
        deployment_block=d.block_number,
        member_registry=d.member_registry,
        data_registry=d.data_registry,
        access_ledger=d.access_ledger,
        flow_log=d.flow_log,
        sharing_credits=d.sharing_credits,
        max_upload_bytes=ledger.max_upload_bytes,
        domains={
            name: Eip712Domain.model_validate(domain)
            for name, domain in d.domains.as_json().items()
        },
        actions={
            name: ActionPublic(
                primary_type=a.primary,
                domain=a.domain,
                signer_field=a.signer_field,
                fields=[TypeField(**f) for f in a.fields],
            )
            for name, a in spec.ACTIONS.items()
        },
        limits=Limits(
            request_max_skew_seconds=MAX_SKEW_SECONDS,
            deadline_max_ahead_seconds=limits.MAX_DEADLINE_AHEAD,
            deadline_tolerance_seconds=limits.DEADLINE_TOLERANCE,
            min_broker_nonce=str(limits.MIN_BROKER_NONCE),
            purpose_chars=limits.PURPOSE_CHARS,
            request_days=limits.REQUEST_DAYS,
            request_uses=limits.REQUEST_USES,
            max_reason_chars=limits.MAX_REASON_CHARS,
            max_comment_chars=limits.MAX_COMMENT_CHARS,
            max_name_chars=limits.MAX_NAME_CHARS,
            max_parents=limits.MAX_PARENTS,
            max_metadata_bytes=MAX_METADATA_BYTES,
            json_body_bytes=JSON_BODY_LIMIT,
            max_upload_bytes=ledger.max_upload_bytes,
        ),
    )

"""Read-only chain access relayed by the broker, for members of an embedded-chain broker.

The embedded chain lives inside the broker's process, so members have no node of their own to
ask: this route answers a few read-only JSON-RPC methods from it. It is no independent view
(the broker answers), and the member tools say so; with an external node members set
``DRL_CHAIN_URL`` and never use this route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter

from api.deps import CallerDep, LedgerDep
from api.errors import error_responses
from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import RpcIn

router = APIRouter(prefix="/chain", tags=["chain"])

#: What a member's read-only chain client needs; nothing that sends or signs.
READ_ONLY: Final = frozenset(
    {
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_call",
        "eth_getCode",
        "eth_getLogs",
        "eth_getTransactionReceipt",
    }
)


#: ``eth_getLogs`` answers at most this many blocks (as node providers limit it; members'
#: clients ask ``ledger.chain.client.LOG_WINDOW`` blocks at a time) and this many logs, each
#: refused otherwise with JSON-RPC -32005 ("limit exceeded"), so that a query costs bounded work.
MAX_LOG_BLOCKS: Final = 5_000
MAX_LOG_RESULTS: Final = 10_000
LIMIT_EXCEEDED: Final = -32005

#: What the chain's request formatting raises for parameters of the wrong shape.
_MALFORMED_PARAMS: Final = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
)


@router.post("/rpc", responses=error_responses(400, 401, 403, 422))
def rpc(body: RpcIn, caller: CallerDep, ledger: LedgerDep) -> dict[str, Any]:
    """One read-only JSON-RPC call against the broker's chain (members; embedded chain)."""
    caller.require_member()
    if body.method not in READ_ONLY:
        raise InvalidInput(
            f"{body.method} is not a read-only method this route relays",
            code=ErrorCode.INVALID_FIELD,
        )
    refusal = (
        _too_wide(body.params, ledger.chain.latest_block) if body.method == "eth_getLogs" else None
    )
    try:
        answer = refusal or ledger.chain.backend.relay(body.method, body.params)
    except _MALFORMED_PARAMS as exc:  # the node-side formatters refuse them: as a node would
        answer = {"error": {"code": -32602, "message": f"invalid params ({type(exc).__name__})"}}
    found = answer.get("result")
    if body.method == "eth_getLogs" and isinstance(found, list) and len(found) > MAX_LOG_RESULTS:
        answer = _limit(f"query returned more than {MAX_LOG_RESULTS} results")
    return {
        "jsonrpc": "2.0",
        "id": body.id,
        **{k: answer[k] for k in ("result", "error") if k in answer},
    }


def _limit(message: str) -> dict[str, Any]:
    return {"error": {"code": LIMIT_EXCEEDED, "message": message}}


def _too_wide(params: list[Any], head: Callable[[], int]) -> dict[str, Any] | None:
    """The -32005 answer for an ``eth_getLogs`` over more than :data:`MAX_LOG_BLOCKS` blocks.

    Block numbers are read as a node reads them (hex quantities or tags; a missing bound is
    ``latest``); a filter this cannot read is left to the node's own formatting to refuse.
    """
    query = params[0] if params and isinstance(params[0], dict) else None
    if query is None or "blockHash" in query:
        return None
    bounds = [query.get("fromBlock", "latest"), query.get("toBlock", "latest")]
    numbers: list[int] = []
    for bound in bounds:
        if bound in ("latest", "pending", "safe", "finalized"):
            numbers.append(head())
        elif bound == "earliest":
            numbers.append(0)
        elif isinstance(bound, str) and bound.startswith("0x") and len(bound) <= 18:
            try:
                numbers.append(int(bound, 16))
            except ValueError:
                return None
        else:
            return None
    if numbers[1] - numbers[0] + 1 > MAX_LOG_BLOCKS:
        return _limit(f"block range too large: at most {MAX_LOG_BLOCKS} blocks per query")
    return None

"""Read-only chain access relayed by the broker, for members of an embedded-chain broker.

The embedded chain lives inside the broker's process, so members have no node of their own to
ask: this route answers a few read-only JSON-RPC methods from it. It is no independent view
(the broker answers), and the member tools say so; with an external node members set
``DRL_CHAIN_URL`` and never use this route. The embedded chain answers ``eth_getLogs`` over a
bounded range, as node providers do (``ledger.chain.embedded.MAX_LOG_BLOCKS``).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter

from api.deps import LedgerDep, ReaderDep
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


@router.post("/rpc", responses=error_responses(400, 401, 403, 422))
def rpc(body: RpcIn, caller: ReaderDep, ledger: LedgerDep) -> dict[str, Any]:
    """One read-only JSON-RPC call against the broker's chain (members; embedded chain).

    Signed like any request, but it spends none of the member's write rate: it writes nothing.
    """
    caller.require_member()
    if body.method not in READ_ONLY:
        raise InvalidInput(
            f"{body.method} is not a read-only method this route relays",
            code=ErrorCode.INVALID_FIELD,
        )
    answer = ledger.chain.backend.relay(body.method, body.params)  # malformed params: -32602
    return {
        "jsonrpc": "2.0",
        "id": body.id,
        **{k: answer[k] for k in ("result", "error") if k in answer},
    }

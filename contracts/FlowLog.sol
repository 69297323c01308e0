// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IFlowLog} from "./interfaces/IFlowLog.sol";
import {Roles} from "./Roles.sol";
import {SeparatedRoles} from "./SeparatedRoles.sol";

/// @title FlowLog
/// @notice Tree heads of the broker's append-only Merkle log of signed actions. Sizes strictly
/// grow, so history cannot be rewritten without the chain showing it; regulators verify
/// inclusion and consistency proofs against these roots.
contract FlowLog is SeparatedRoles, IFlowLog {
    /// @dev Latest head packed in one slot: size, anchoring time and number of heads.
    struct Latest {
        uint64 treeSize;
        uint40 anchoredAt;
        uint64 headCount;
    }

    Latest private _latest;
    mapping(uint64 treeSize => bytes32 rootHash) private _roots;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    /// @param broker The relayer key that receives BROKER_ROLE (not `admin`).
    constructor(address admin, address broker) SeparatedRoles(admin, broker) {}

    /// @notice Anchors the tree head (`treeSize`, `rootHash`).
    /// @dev Requirements: caller has BROKER_ROLE; `treeSize` exceeds the latest anchored size;
    /// `rootHash` is non-zero.
    /// Emits a {TreeHeadAnchored} event.
    function anchor(uint64 treeSize, bytes32 rootHash) external onlyRole(Roles.BROKER) {
        Latest memory latest = _latest;
        if (treeSize <= latest.treeSize) revert FlowLogTreeNotGrowing(latest.treeSize, treeSize);
        if (rootHash == bytes32(0)) revert FlowLogZeroRoot();
        uint40 nowTs = uint40(block.timestamp);
        _roots[treeSize] = rootHash;
        _latest = Latest({treeSize: treeSize, anchoredAt: nowTs, headCount: latest.headCount + 1});
        emit TreeHeadAnchored(treeSize, rootHash, latest.headCount, nowTs);
    }

    /// @inheritdoc IFlowLog
    function latestHead()
        external
        view
        returns (uint64 treeSize, bytes32 rootHash, uint40 anchoredAt, uint64 headCount)
    {
        Latest memory latest = _latest;
        return (latest.treeSize, _roots[latest.treeSize], latest.anchoredAt, latest.headCount);
    }

    /// @inheritdoc IFlowLog
    function rootAt(uint64 treeSize) external view returns (bytes32) {
        return _roots[treeSize];
    }
}

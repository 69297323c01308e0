// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Flow log interface: anchored RFC 6962 tree heads of the broker's signed-action log
interface IFlowLog {
    error FlowLogTreeNotGrowing(uint64 latestSize, uint64 proposedSize);
    error FlowLogZeroRoot();

    event TreeHeadAnchored(
        uint64 indexed treeSize,
        bytes32 rootHash,
        uint64 headIndex,
        uint40 anchoredAt
    );

    function anchor(uint64 treeSize, bytes32 rootHash) external;

    function latestHead()
        external
        view
        returns (uint64 treeSize, bytes32 rootHash, uint40 anchoredAt, uint64 headCount);

    function rootAt(uint64 treeSize) external view returns (bytes32);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Roles shared by the Data Rights Ledger contracts
/// @notice ADMIN is AccessControl's DEFAULT_ADMIN_ROLE (the data bureau). BROKER is the relayer
/// that records uses, anchors the flow log and mints credits.
library Roles {
    bytes32 internal constant BROKER = keccak256("BROKER_ROLE");
}

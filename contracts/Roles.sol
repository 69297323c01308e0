// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Roles shared by the Data Rights Ledger contracts
/// @notice ADMIN is AccessControl's DEFAULT_ADMIN_ROLE (the data bureau: onboarding, suspension,
/// rules, co-signatures; its key can live off the broker host). BROKER is the hot relayer key
/// that records signed uses, anchors the flow log and mints signed credits. They are different
/// keys: see {SeparatedRoles}.
library Roles {
    bytes32 internal constant BROKER = keccak256("BROKER_ROLE");
}

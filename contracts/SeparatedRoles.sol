// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Roles} from "./Roles.sol";

/// @title SeparatedRoles
/// @notice AccessControl for contracts with a BROKER role: ADMIN and BROKER are granted at
/// construction (no deploy-time admin transaction) and can never be held by the same account,
/// so the broker's hot key alone cannot act as the operator.
abstract contract SeparatedRoles is AccessControl {
    error SeparatedRolesZeroAddress();
    error SeparatedRolesAdminIsBroker(address account);

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    /// @param broker The relayer key that receives BROKER_ROLE; must differ from `admin`.
    constructor(address admin, address broker) {
        if (admin == address(0) || broker == address(0)) revert SeparatedRolesZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(Roles.BROKER, broker);
    }

    /// @dev Refuses to give BROKER to an ADMIN holder, or ADMIN to a BROKER holder.
    function _grantRole(bytes32 role, address account) internal virtual override returns (bool) {
        if (
            (role == Roles.BROKER && hasRole(DEFAULT_ADMIN_ROLE, account)) ||
            (role == DEFAULT_ADMIN_ROLE && hasRole(Roles.BROKER, account))
        ) {
            revert SeparatedRolesAdminIsBroker(account);
        }
        return super._grantRole(role, account);
    }
}

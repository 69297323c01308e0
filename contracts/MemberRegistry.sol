// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title MemberRegistry
/// @notice Departments, enterprises and regulators with their HPKE encryption public keys.
/// Only ADMIN (the data bureau) onboards, suspends and reinstates.
contract MemberRegistry is AccessControl, IMemberRegistry {
    mapping(address account => Member) private _members;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    constructor(address admin) {
        if (admin == address(0)) revert MemberRegistryZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Adds a member with its kind, name hash and encryption public key.
    /// @dev Requirements: caller is ADMIN; `member` is new and non-zero; `kind` is not NONE;
    /// `keySuite` is non-zero and `encryptionKey` non-empty.
    /// Emits a {MemberOnboarded} event.
    function onboard(
        address member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes calldata encryptionKey
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (member == address(0)) revert MemberRegistryZeroAddress();
        if (kind == Kind.NONE) revert MemberRegistryInvalidKind(uint8(kind));
        if (_members[member].status != Status.NONE) revert MemberRegistryAlreadyOnboarded(member);
        _checkKey(keySuite, encryptionKey);
        _members[member] = Member({
            kind: kind,
            status: Status.ACTIVE,
            keySuite: keySuite,
            onboardedAt: uint40(block.timestamp),
            nameHash: nameHash,
            encryptionKey: encryptionKey
        });
        emit MemberOnboarded(member, kind, nameHash, keySuite, encryptionKey);
    }

    /// @notice Suspends an active member: it can no longer register, grant, be granted or use.
    /// @dev Requirements: caller is ADMIN; `member` is active.
    /// Emits a {MemberSuspended} event.
    function suspend(address member) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Member storage m = _existing(member);
        if (m.status == Status.SUSPENDED) revert MemberRegistryAlreadySuspended(member);
        m.status = Status.SUSPENDED;
        emit MemberSuspended(member, _msgSender());
    }

    /// @notice Lifts a suspension.
    /// @dev Requirements: caller is ADMIN; `member` is suspended.
    /// Emits a {MemberReinstated} event.
    function reinstate(address member) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Member storage m = _existing(member);
        if (m.status != Status.SUSPENDED) revert MemberRegistryNotSuspended(member);
        m.status = Status.ACTIVE;
        emit MemberReinstated(member, _msgSender());
    }

    /// @notice Replaces a member's encryption public key (new grants wrap to the new key).
    /// @dev Requirements: caller is the member itself or ADMIN; `member` is onboarded;
    /// the key is well formed.
    /// Emits an {EncryptionKeyRotated} event.
    function rotateKey(address member, uint16 keySuite, bytes calldata encryptionKey) external {
        address caller = _msgSender();
        if (caller != member && !hasRole(DEFAULT_ADMIN_ROLE, caller)) {
            revert MemberRegistryUnauthorizedKeyRotation(caller, member);
        }
        Member storage m = _existing(member);
        _checkKey(keySuite, encryptionKey);
        m.keySuite = keySuite;
        m.encryptionKey = encryptionKey;
        emit EncryptionKeyRotated(member, keySuite, encryptionKey);
    }

    /// @inheritdoc IMemberRegistry
    function memberOf(address member) external view returns (Member memory) {
        return _members[member];
    }

    /// @inheritdoc IMemberRegistry
    function standing(address member) external view returns (Kind kind, bool active) {
        Member storage m = _members[member];
        return (m.kind, m.status == Status.ACTIVE);
    }

    function _existing(address member) private view returns (Member storage m) {
        m = _members[member];
        if (m.status == Status.NONE) revert MemberRegistryUnknownMember(member);
    }

    function _checkKey(uint16 keySuite, bytes calldata encryptionKey) private pure {
        if (keySuite == 0 || encryptionKey.length == 0 || encryptionKey.length > 4096) {
            revert MemberRegistryInvalidKey(keySuite, encryptionKey.length);
        }
    }
}

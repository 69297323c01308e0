// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Member registry interface: who takes part, in which capacity, with which encryption key
interface IMemberRegistry {
    enum Kind {
        NONE,
        DEPARTMENT,
        ENTERPRISE,
        REGULATOR
    }

    enum Status {
        NONE,
        ACTIVE,
        SUSPENDED
    }

    /// @dev First slot packs kind, status, suite and time so standing checks cost one read.
    struct Member {
        Kind kind;
        Status status;
        uint16 keySuite;
        uint40 onboardedAt;
        bytes32 nameHash;
        bytes encryptionKey;
    }

    error MemberRegistryZeroAddress();
    error MemberRegistryInvalidKind(uint8 kind);
    error MemberRegistryInvalidKey(uint16 keySuite, uint256 keyLength);
    error MemberRegistryAlreadyOnboarded(address member);
    error MemberRegistryUnknownMember(address member);
    error MemberRegistryAlreadySuspended(address member);
    error MemberRegistryNotSuspended(address member);
    error MemberRegistryUnauthorizedKeyRotation(address caller, address member);

    event MemberOnboarded(
        address indexed member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes encryptionKey
    );
    event MemberSuspended(address indexed member, address indexed by);
    event MemberReinstated(address indexed member, address indexed by);
    event EncryptionKeyRotated(address indexed member, uint16 keySuite, bytes encryptionKey);

    function onboard(
        address member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes calldata encryptionKey
    ) external;

    function suspend(address member) external;

    function reinstate(address member) external;

    function rotateKey(address member, uint16 keySuite, bytes calldata encryptionKey) external;

    function memberOf(address member) external view returns (Member memory);

    function standing(address member) external view returns (Kind kind, bool active);
}

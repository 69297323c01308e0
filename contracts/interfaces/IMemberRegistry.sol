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
    error MemberRegistryExpiredSignature(uint256 deadline);
    error MemberRegistrySignatureReplayed(bytes32 digest);
    error MemberRegistryUnauthorizedSigner(address signer);
    error MemberRegistryInvalidSigner(address signer, address member);

    event MemberOnboarded(
        address indexed member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes encryptionKey
    );
    event MemberSuspended(address indexed member, address indexed by);
    event MemberReinstated(address indexed member, address indexed by);
    /// @dev `by` is the transaction sender: the member itself, or whoever relayed its signature.
    event EncryptionKeyRotated(
        address indexed member,
        uint16 keySuite,
        bytes encryptionKey,
        address by
    );

    function onboard(
        address member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes calldata encryptionKey
    ) external;

    function onboardFor(
        address member,
        Kind kind,
        string calldata name,
        uint16 keySuite,
        bytes calldata encryptionKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external;

    function suspend(address member) external;

    function suspendFor(
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external;

    function reinstate(address member) external;

    function reinstateFor(
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external;

    function rotateKey(uint16 keySuite, bytes calldata encryptionKey) external;

    function rotateKeyFor(
        address member,
        uint16 keySuite,
        bytes calldata encryptionKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata memberSignature
    ) external;

    /// @notice The member record (all zero for an unknown address).
    function memberOf(address member) external view returns (Member memory);

    /// @notice Kind and whether the member is active, in one storage read.
    function standing(address member) external view returns (Kind kind, bool active);

    /// @notice Whether a relayed signature (by its EIP-712 digest) was already used.
    function isDigestUsed(bytes32 digest) external view returns (bool);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Access ledger interface: grants of a dataset to a member, their uses and revocation
interface IAccessLedger {
    /// @dev The terms an owner grants (and signs when relayed; an ADMIN co-signs SENSITIVE
    /// datasets granted to enterprises).
    struct GrantTerms {
        uint256 datasetId;
        address grantee;
        bytes32 purposeHash;
        uint64 expiresAt;
        uint32 maxUses;
        bytes32 termsHash;
    }

    /// @dev One storage slot per (dataset, grantee). Purpose and terms hashes live in the
    /// {AccessGranted} event and the signed flow-log record: storage keeps what `recordUse` checks.
    struct Grant {
        uint40 grantedAt;
        uint40 expiresAt;
        uint32 maxUses;
        uint32 uses;
        uint32 generation;
        bool revoked;
    }

    error AccessLedgerNotDatasetOwner(uint256 datasetId, address caller);
    error AccessLedgerInactiveMember(address account);
    error AccessLedgerInvalidGrantee(address grantee);
    error AccessLedgerInvalidTerms();
    error AccessLedgerDatasetRetired(uint256 datasetId);
    error AccessLedgerAdminApprovalRequired(uint256 datasetId, address grantee);
    error AccessLedgerInvalidAdminApproval(address signer);
    error AccessLedgerExpiredSignature(uint256 deadline);
    error AccessLedgerInvalidSigner(address signer, address expected);
    error AccessLedgerNoGrant(uint256 datasetId, address grantee);
    error AccessLedgerGrantRevoked(uint256 datasetId, address grantee);
    error AccessLedgerGrantExpired(uint256 datasetId, address grantee, uint64 expiresAt);
    error AccessLedgerUsesExhausted(uint256 datasetId, address grantee, uint32 maxUses);

    event AccessGranted(
        uint256 indexed datasetId,
        address indexed grantee,
        address indexed grantor,
        uint32 generation,
        bytes32 purposeHash,
        bytes32 termsHash,
        uint64 expiresAt,
        uint32 maxUses
    );
    event AccessRevoked(uint256 indexed datasetId, address indexed grantee, address indexed by);
    event AccessUsed(uint256 indexed datasetId, address indexed grantee, uint32 uses);

    function grant(GrantTerms calldata terms, bytes calldata adminApproval) external;

    function grantFor(
        GrantTerms calldata terms,
        uint256 nonce,
        uint256 deadline,
        bytes calldata ownerSignature,
        bytes calldata adminApproval
    ) external;

    function revoke(uint256 datasetId, address grantee) external;

    function revokeFor(
        uint256 datasetId,
        address grantee,
        uint256 nonce,
        uint256 deadline,
        bytes calldata ownerSignature
    ) external;

    function recordUse(uint256 datasetId, address grantee) external returns (uint32 usesLeft);

    function grantOf(uint256 datasetId, address grantee) external view returns (Grant memory);

    function isUsable(uint256 datasetId, address grantee) external view returns (bool);
}

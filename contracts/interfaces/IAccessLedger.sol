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
    error AccessLedgerMalformedAdminApproval(uint256 length);
    error AccessLedgerAdminApprovalReplayed(bytes32 digest);
    error AccessLedgerApprovalGenerationMismatch(uint32 expected, uint256 signed);
    error AccessLedgerFetchAlreadyRecorded(address grantee, uint256 nonce);

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
    /// @dev `nonce` is the nonce of the grantee's signed Fetch this use records.
    event AccessUsed(
        uint256 indexed datasetId,
        address indexed grantee,
        uint32 uses,
        uint256 nonce
    );

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

    function recordUse(
        uint256 datasetId,
        address grantee,
        uint256 nonce,
        uint256 deadline,
        bytes calldata granteeSignature
    ) external returns (uint32 usesLeft);

    /// @notice The dataset whose use recorded the grantee's Fetch `nonce` (0 if none).
    function fetchRecorded(address grantee, uint256 nonce) external view returns (uint256);

    /// @notice Whether an ADMIN GrantApproval (by its EIP-712 digest) was already used.
    function isApprovalUsed(bytes32 digest) external view returns (bool);

    /// @notice The current grant of a dataset to a grantee (all zero if none).
    function grantOf(uint256 datasetId, address grantee) external view returns (Grant memory);

    /// @notice Whether a use could be recorded now (grant live, uses left, grantee active).
    function isUsable(uint256 datasetId, address grantee) external view returns (bool);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Data registry interface: datasets as ERC-721 data-rights certificates
interface IDataRegistry {
    enum Classification {
        PUBLIC,
        INTERNAL,
        SENSITIVE
    }

    /// @dev What an owner asks to register (and, when relayed, signs).
    struct Registration {
        bytes32 contentHash;
        bytes32 metadataHash;
        Classification classification;
        uint256[] parents;
        uint256 previousVersion;
    }

    /// @dev Stored record: two hash slots plus one packed slot.
    struct Dataset {
        bytes32 contentHash;
        bytes32 metadataHash;
        uint40 registeredAt;
        uint64 previousVersion;
        Classification classification;
        bool retired;
    }

    error DataRegistryInactiveMember(address account);
    error DataRegistryUnauthorizedKind(address account);
    error DataRegistryZeroContentHash();
    error DataRegistryAlreadyRegistered(bytes32 contentHash, uint256 datasetId);
    error DataRegistryUnknownDataset(uint256 datasetId);
    error DataRegistryTooManyParents(uint256 count);
    error DataRegistryClassificationBelowParent(uint256 parentId, Classification required);
    error DataRegistryPreviousVersionNotOwned(uint256 datasetId, address owner);
    error DataRegistryExpiredSignature(uint256 deadline);
    error DataRegistryInvalidSigner(address signer, address owner);
    error DataRegistryNotOwner(uint256 datasetId, address caller);
    error DataRegistryRetired(uint256 datasetId);
    error DataRegistryTransferNotApproved(uint256 datasetId, address to);
    error DataRegistrySignatureReplayed(bytes32 digest);
    error DataRegistryUnauthorizedSigner(address signer);

    event DatasetRegistered(
        uint256 indexed datasetId,
        address indexed owner,
        bytes32 indexed contentHash,
        bytes32 metadataHash,
        Classification classification,
        uint256[] parents,
        uint256 previousVersion
    );
    event DatasetRetired(uint256 indexed datasetId, address indexed by);
    event TransferApproved(uint256 indexed datasetId, address indexed to, address indexed by);
    /// @dev `by` is the ADMIN that decided (the signer when relayed).
    event DatasetReassigned(
        uint256 indexed datasetId,
        address indexed from,
        address indexed to,
        bytes32 reasonHash,
        address by
    );

    function register(Registration calldata registration) external returns (uint256 datasetId);

    function registerFor(
        address owner,
        Registration calldata registration,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 datasetId);

    function retire(uint256 datasetId) external;

    function approveTransfer(uint256 datasetId, address to) external;

    function reassign(uint256 datasetId, address to, bytes32 reasonHash) external;

    function reassignFor(
        uint256 datasetId,
        address to,
        bytes32 reasonHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external;

    /// @notice The stored record of a dataset (reverts for an unknown id).
    function datasetOf(uint256 datasetId) external view returns (Dataset memory);

    function parentsOf(uint256 datasetId) external view returns (uint256[] memory);

    function datasetIdOf(bytes32 contentHash) external view returns (uint256);

    /// @notice Owner and content hash in one call (reverts for an unknown id).
    function ownerAndContent(
        uint256 datasetId
    ) external view returns (address owner, bytes32 contentHash);

    /// @notice Whether a relayed ADMIN signature (by its EIP-712 digest) was already used.
    function isDigestUsed(bytes32 digest) external view returns (bool);

    /// @notice Number of datasets registered so far (ids run from 1).
    function datasetCount() external view returns (uint256);

    function accessInfo(
        uint256 datasetId
    ) external view returns (address owner, Classification classification, bool retired);
}

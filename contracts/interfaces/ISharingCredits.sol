// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Sharing credits interface: non-transferable rewards for datasets others consumed
interface ISharingCredits {
    /// @dev A consumer's EIP-712 DeliveryReceipt, as the broker relays it. `fetchNonce` is the
    /// nonce of the Fetch (recorded by the AccessLedger) the receipt acknowledges; the receipt
    /// id is the EIP-712 digest. The deadline is signed but not checked here: minting happens
    /// later, when the broker anchors.
    struct SignedReceipt {
        uint256 datasetId;
        address consumer;
        bytes32 contentHash;
        uint32 grantGeneration;
        uint256 fetchNonce;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
        /// @dev Not signed by the consumer: the dataset's quality score (0..100) when the
        /// receipt was logged, computed by the broker from signed, logged records and
        /// recomputed by every member's verify from the same records.
        uint8 quality;
    }

    /// @dev Credit amounts and caps, in one slot. The first credited delivery of an (owner,
    /// consumer) pair in an epoch earns `firstCredit`, later ones `repeatCredit`, clipped so
    /// that a pair earns at most `pairCap` and an owner at most `ownerCap` per epoch.
    struct CreditRules {
        uint64 epochLength;
        uint32 firstCredit;
        uint32 repeatCredit;
        uint32 pairCap;
        uint32 ownerCap;
    }

    /// @dev Why a batch entry earned nothing.
    enum Withheld {
        SELF_CONSUMPTION,
        ALREADY_CREDITED,
        CAP_REACHED,
        ZERO_AMOUNT,
        INVALID_SIGNATURE,
        FETCH_NOT_RECORDED,
        FETCH_OF_OTHER_DATASET,
        CONTENT_MISMATCH,
        LOW_QUALITY,
        QUALITY_OUT_OF_RANGE
    }

    error SharingCreditsNonTransferable();
    error SharingCreditsInvalidRules(
        uint64 epochLength,
        uint32 firstCredit,
        uint32 repeatCredit,
        uint32 pairCap,
        uint32 ownerCap
    );

    event CreditsMinted(
        address indexed owner,
        uint256 indexed datasetId,
        address indexed consumer,
        bytes32 receiptId,
        uint256 amount,
        uint64 epoch,
        uint8 quality
    );
    event CreditWithheld(bytes32 indexed receiptId, uint256 indexed datasetId, Withheld reason);
    event CreditRulesChanged(
        uint64 epochLength,
        uint32 firstCredit,
        uint32 repeatCredit,
        uint32 pairCap,
        uint32 ownerCap
    );

    function mintBatch(SignedReceipt[] calldata receipts) external returns (uint256 minted);

    function setCreditRules(CreditRules calldata rules) external;

    /// @notice The rules credits are minted under now.
    function creditRules() external view returns (CreditRules memory);

    /// @notice Whether a receipt (by its EIP-712 digest) was credited.
    function isCredited(bytes32 receiptId) external view returns (bool);

    /// @notice Whether the consumer's Fetch `fetchNonce` was credited (one credit per fetch).
    function isFetchCredited(address consumer, uint256 fetchNonce) external view returns (bool);

    /// @notice Credits `owner` earned from `consumer` in `epoch`.
    function mintedForPair(
        address owner,
        address consumer,
        uint64 epoch
    ) external view returns (uint256);

    /// @notice Credits `owner` earned in `epoch`.
    function mintedForOwner(address owner, uint64 epoch) external view returns (uint256);

    /// @notice The epoch credits are counted in now.
    function currentEpoch() external view returns (uint64);
}

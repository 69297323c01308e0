// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Sharing credits interface: non-transferable rewards for datasets others consumed
interface ISharingCredits {
    /// @dev One consumer-signed delivery to credit.
    struct Credit {
        uint256 datasetId;
        address consumer;
        uint256 amount;
        bytes32 receiptId;
    }

    /// @dev Why a batch entry earned nothing.
    enum Withheld {
        SELF_CONSUMPTION,
        ALREADY_CREDITED,
        CAP_REACHED,
        ZERO_AMOUNT
    }

    error SharingCreditsNonTransferable();
    error SharingCreditsSelfConsumption(uint256 datasetId, address consumer);
    error SharingCreditsReceiptAlreadyCredited(bytes32 receiptId);
    error SharingCreditsCapReached(uint256 datasetId, address consumer, uint64 epoch);
    error SharingCreditsZeroAmount();
    error SharingCreditsInvalidRules(uint256 capPerEpoch, uint64 epochLength);

    event CreditsMinted(
        address indexed owner,
        uint256 indexed datasetId,
        address indexed consumer,
        bytes32 receiptId,
        uint256 amount,
        uint64 epoch
    );
    event CreditWithheld(bytes32 indexed receiptId, uint256 indexed datasetId, Withheld reason);
    event CreditRulesChanged(uint256 capPerEpoch, uint64 epochLength);

    function mint(
        uint256 datasetId,
        address consumer,
        uint256 amount,
        bytes32 receiptId
    ) external returns (uint256 minted);

    function mintBatch(Credit[] calldata credits) external returns (uint256 minted);

    function setCreditRules(uint256 capPerEpoch, uint64 epochLength) external;

    function creditRules() external view returns (uint256 capPerEpoch, uint64 epochLength);

    function isCredited(bytes32 receiptId) external view returns (bool);

    function mintedInEpoch(
        uint256 datasetId,
        address consumer,
        uint64 epoch
    ) external view returns (uint256);
}

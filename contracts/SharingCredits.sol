// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {ISharingCredits} from "./interfaces/ISharingCredits.sol";
import {Roles} from "./Roles.sol";

/// @title SharingCredits
/// @notice Non-transferable credits earned by dataset owners when other members consume their
/// data. ERC-20 views let wallets show balances; every transfer path reverts. Anti-gaming: no
/// credit for an owner consuming its own dataset, each receipt credited once, and a cap per
/// (dataset, consumer, epoch) set by ADMIN.
contract SharingCredits is AccessControl, IERC20Metadata, ISharingCredits {
    IERC721 private immutable _datasets;
    uint256 private _totalSupply;
    uint256 private _capPerEpoch;
    uint64 private _epochLength;
    mapping(address account => uint256) private _balances;
    mapping(bytes32 receiptId => bool) private _credited;
    mapping(uint256 datasetId => mapping(address consumer => mapping(uint64 epoch => uint256)))
        private _minted;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    /// @param datasets The data registry (ERC-721) whose owners earn credits.
    /// @param capPerEpoch Initial cap per dataset, consumer and epoch.
    /// @param epochLength Initial epoch length in seconds.
    constructor(address admin, IERC721 datasets, uint256 capPerEpoch, uint64 epochLength) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _datasets = datasets;
        _setCreditRules(capPerEpoch, epochLength);
    }

    /// @notice Credits the owner of `datasetId` for one delivery to `consumer`; the amount is
    /// clipped to what the epoch cap leaves.
    /// @dev Requirements: caller has BROKER_ROLE; `amount` non-zero; the consumer is not the
    /// owner; `receiptId` not credited before; the cap is not reached.
    /// Emits {Transfer} and {CreditsMinted} events.
    function mint(
        uint256 datasetId,
        address consumer,
        uint256 amount,
        bytes32 receiptId
    ) external onlyRole(Roles.BROKER) returns (uint256 minted) {
        if (amount == 0) revert SharingCreditsZeroAmount();
        address owner = _datasets.ownerOf(datasetId);
        if (consumer == owner) revert SharingCreditsSelfConsumption(datasetId, consumer);
        if (_credited[receiptId]) revert SharingCreditsReceiptAlreadyCredited(receiptId);
        uint64 epoch = currentEpoch();
        uint256 room = _room(datasetId, consumer, epoch);
        if (room == 0) revert SharingCreditsCapReached(datasetId, consumer, epoch);
        minted = amount < room ? amount : room;
        _credit(owner, datasetId, consumer, minted, receiptId, epoch);
    }

    /// @notice Credits many deliveries in one transaction (the anchorer's batch); ineligible
    /// entries are skipped with a {CreditWithheld} event instead of failing the batch.
    /// @dev Requirements: caller has BROKER_ROLE; every dataset exists.
    /// Emits {Transfer} and {CreditsMinted}, or {CreditWithheld}, per entry.
    function mintBatch(
        Credit[] calldata credits
    ) external onlyRole(Roles.BROKER) returns (uint256 minted) {
        uint64 epoch = currentEpoch();
        for (uint256 i = 0; i < credits.length; ++i) {
            Credit calldata c = credits[i];
            address owner = _datasets.ownerOf(c.datasetId);
            Withheld reason;
            uint256 room;
            if (c.amount == 0) {
                reason = Withheld.ZERO_AMOUNT;
            } else if (c.consumer == owner) {
                reason = Withheld.SELF_CONSUMPTION;
            } else if (_credited[c.receiptId]) {
                reason = Withheld.ALREADY_CREDITED;
            } else {
                room = _room(c.datasetId, c.consumer, epoch);
                reason = Withheld.CAP_REACHED;
            }
            if (room == 0) {
                emit CreditWithheld(c.receiptId, c.datasetId, reason);
                continue;
            }
            uint256 amount = c.amount < room ? c.amount : room;
            _credit(owner, c.datasetId, c.consumer, amount, c.receiptId, epoch);
            minted += amount;
        }
    }

    /// @notice Sets the cap per (dataset, consumer, epoch) and the epoch length in seconds.
    /// @dev Requirements: caller is ADMIN; both values non-zero.
    /// Emits a {CreditRulesChanged} event.
    function setCreditRules(
        uint256 capPerEpoch,
        uint64 epochLength
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setCreditRules(capPerEpoch, epochLength);
    }

    /// @dev Credits cannot be moved: they measure what an owner shared, not a currency.
    function transfer(address, uint256) external pure returns (bool) {
        revert SharingCreditsNonTransferable();
    }

    /// @dev Credits cannot be moved.
    function approve(address, uint256) external pure returns (bool) {
        revert SharingCreditsNonTransferable();
    }

    /// @dev Credits cannot be moved.
    function transferFrom(address, address, uint256) external pure returns (bool) {
        revert SharingCreditsNonTransferable();
    }

    /// @inheritdoc ISharingCredits
    function creditRules() external view returns (uint256 capPerEpoch, uint64 epochLength) {
        return (_capPerEpoch, _epochLength);
    }

    /// @inheritdoc ISharingCredits
    function isCredited(bytes32 receiptId) external view returns (bool) {
        return _credited[receiptId];
    }

    /// @inheritdoc ISharingCredits
    function mintedInEpoch(
        uint256 datasetId,
        address consumer,
        uint64 epoch
    ) external view returns (uint256) {
        return _minted[datasetId][consumer][epoch];
    }

    /// @inheritdoc IERC20Metadata
    function name() external pure returns (string memory) {
        return "Data Sharing Credit";
    }

    /// @inheritdoc IERC20Metadata
    function symbol() external pure returns (string memory) {
        return "DSC";
    }

    /// @inheritdoc IERC20Metadata
    function decimals() external pure returns (uint8) {
        return 0;
    }

    /// @inheritdoc IERC20
    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    /// @inheritdoc IERC20
    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    /// @inheritdoc IERC20
    function allowance(address, address) external pure returns (uint256) {
        return 0;
    }

    /// @notice The epoch credits are counted in now.
    function currentEpoch() public view returns (uint64) {
        return uint64(block.timestamp / _epochLength);
    }

    function _credit(
        address owner,
        uint256 datasetId,
        address consumer,
        uint256 amount,
        bytes32 receiptId,
        uint64 epoch
    ) private {
        _credited[receiptId] = true;
        _minted[datasetId][consumer][epoch] += amount;
        _balances[owner] += amount;
        _totalSupply += amount;
        emit Transfer(address(0), owner, amount);
        emit CreditsMinted(owner, datasetId, consumer, receiptId, amount, epoch);
    }

    function _room(uint256 datasetId, address consumer, uint64 epoch) private view returns (uint256) {
        uint256 used = _minted[datasetId][consumer][epoch];
        return used >= _capPerEpoch ? 0 : _capPerEpoch - used;
    }

    function _setCreditRules(uint256 capPerEpoch, uint64 epochLength) private {
        if (capPerEpoch == 0 || epochLength == 0) {
            revert SharingCreditsInvalidRules(capPerEpoch, epochLength);
        }
        _capPerEpoch = capPerEpoch;
        _epochLength = epochLength;
        emit CreditRulesChanged(capPerEpoch, epochLength);
    }
}

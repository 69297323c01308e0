// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IAccessLedger} from "./interfaces/IAccessLedger.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {ISharingCredits} from "./interfaces/ISharingCredits.sol";
import {Roles} from "./Roles.sol";
import {SeparatedRoles} from "./SeparatedRoles.sol";

/// @title SharingCredits
/// @notice Non-transferable credits earned by dataset owners when other members consume their
/// data. ERC-20 views let wallets show balances; every transfer path reverts. A credit needs the
/// consumer's EIP-712 DeliveryReceipt for a fetch the AccessLedger recorded with the consumer's
/// signature, for that dataset and its registered content hash; each fetch is credited once;
/// owners earn nothing from themselves. The amount is set here by ADMIN's rules (not by the
/// broker or a rating): more for the first delivery to a consumer in an epoch than for repeats,
/// capped per (owner, consumer) and per owner each epoch, so collusion earns little. Each amount
/// is weighted by the dataset's quality score (0..100) the broker passes with the receipt; the
/// score is computed from signed, logged records, and every member's verify recomputes it and
/// compares it with the `quality` in the {CreditsMinted} event.
contract SharingCredits is SeparatedRoles, EIP712, IERC20Metadata, ISharingCredits {
    bytes32 private constant _RECEIPT_TYPEHASH =
        keccak256(
            "DeliveryReceipt(address consumer,uint256 datasetId,bytes32 contentHash,"
            "uint32 grantGeneration,uint256 fetchNonce,uint256 nonce,uint256 deadline)"
        );

    /// @dev The top quality score: a receipt of a dataset scored 100 earns the whole amount.
    uint256 private constant MAX_QUALITY = 100;

    IAccessLedger private immutable _accessLedger;
    IDataRegistry private immutable _datasets;
    CreditRules private _rules;
    uint256 private _totalSupply;
    mapping(address account => uint256) private _balances;
    /// @dev Credited receipt ids and credited fetches (keccak256(consumer, fetchNonce)).
    mapping(bytes32 key => bool) private _credited;
    mapping(address owner => mapping(address consumer => mapping(uint64 epoch => uint256)))
        private _pairMinted;
    mapping(address owner => mapping(uint64 epoch => uint256)) private _ownerMinted;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    /// @param broker The relayer key that receives BROKER_ROLE (not `admin`).
    /// @param accessLedger The access ledger whose recorded fetches receipts must acknowledge.
    /// @param datasets The data registry whose owners earn credits.
    /// @param rules Initial credit amounts, caps and epoch length.
    constructor(
        address admin,
        address broker,
        IAccessLedger accessLedger,
        IDataRegistry datasets,
        CreditRules memory rules
    ) SeparatedRoles(admin, broker) EIP712("DataRightsLedger", "1") {
        _accessLedger = accessLedger;
        _datasets = datasets;
        _setCreditRules(rules);
    }

    /// @notice Credits the owners of many consumer-signed deliveries in one transaction (the
    /// anchorer's batch). An entry that does not qualify is skipped with a {CreditWithheld}
    /// event naming the reason instead of failing the batch.
    /// @dev Requirements: caller has BROKER_ROLE. An entry qualifies when its signature recovers
    /// to the consumer; the AccessLedger recorded the consumer's fetch `fetchNonce` for this
    /// dataset; the content hash is the dataset's; that fetch was not credited before; the
    /// consumer is not the owner; its quality is at most 100 and weighs the amount above zero;
    /// and the epoch's caps leave room.
    /// Emits {Transfer} and {CreditsMinted}, or {CreditWithheld}, per entry.
    function mintBatch(
        SignedReceipt[] calldata receipts
    ) external onlyRole(Roles.BROKER) returns (uint256 minted) {
        CreditRules memory rules = _rules;
        uint64 epoch = uint64(block.timestamp / rules.epochLength);
        for (uint256 i = 0; i < receipts.length; ++i) {
            SignedReceipt calldata r = receipts[i];
            bytes32 receiptId = receiptIdOf(r);
            (address owner, uint256 amount, Withheld reason) = _assess(r, receiptId, rules, epoch);
            if (amount == 0) {
                emit CreditWithheld(receiptId, r.datasetId, reason);
                continue;
            }
            _credited[receiptId] = true;
            _credited[_fetchKey(r.consumer, r.fetchNonce)] = true;
            _pairMinted[owner][r.consumer][epoch] += amount;
            _ownerMinted[owner][epoch] += amount;
            _balances[owner] += amount;
            minted += amount;
            emit Transfer(address(0), owner, amount);
            emit CreditsMinted(owner, r.datasetId, r.consumer, receiptId, amount, epoch, r.quality);
        }
        _totalSupply += minted;
    }

    /// @notice Sets the credit amounts, caps and epoch length.
    /// @dev Requirements: caller is ADMIN; epoch length, first credit and both caps non-zero
    /// (a zero repeat credit means one credit per pair and epoch).
    /// Emits a {CreditRulesChanged} event.
    function setCreditRules(CreditRules calldata rules) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setCreditRules(rules);
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
    function creditRules() external view returns (CreditRules memory) {
        return _rules;
    }

    /// @inheritdoc ISharingCredits
    function isCredited(bytes32 receiptId) external view returns (bool) {
        return _credited[receiptId];
    }

    /// @inheritdoc ISharingCredits
    function isFetchCredited(address consumer, uint256 fetchNonce) external view returns (bool) {
        return _credited[_fetchKey(consumer, fetchNonce)];
    }

    /// @inheritdoc ISharingCredits
    function mintedForPair(
        address owner,
        address consumer,
        uint64 epoch
    ) external view returns (uint256) {
        return _pairMinted[owner][consumer][epoch];
    }

    /// @inheritdoc ISharingCredits
    function mintedForOwner(address owner, uint64 epoch) external view returns (uint256) {
        return _ownerMinted[owner][epoch];
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

    /// @inheritdoc ISharingCredits
    function currentEpoch() external view returns (uint64) {
        return uint64(block.timestamp / _rules.epochLength);
    }

    /// @notice The id of a receipt: its EIP-712 digest in this contract's domain.
    function receiptIdOf(SignedReceipt calldata r) public view returns (bytes32) {
        return
            _hashTypedDataV4(
                keccak256(
                    abi.encode(
                        _RECEIPT_TYPEHASH,
                        r.consumer,
                        r.datasetId,
                        r.contentHash,
                        r.grantGeneration,
                        r.fetchNonce,
                        r.nonce,
                        r.deadline
                    )
                )
            );
    }

    /// @dev What an entry earns (amount 0 with the reason when it earns nothing).
    function _assess(
        SignedReceipt calldata r,
        bytes32 receiptId,
        CreditRules memory rules,
        uint64 epoch
    ) private view returns (address owner, uint256 amount, Withheld reason) {
        (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecover(receiptId, r.signature);
        if (err != ECDSA.RecoverError.NoError || signer != r.consumer) {
            return (address(0), 0, Withheld.INVALID_SIGNATURE);
        }
        // A credited receipt always credited its fetch too: one check covers both.
        if (_credited[_fetchKey(r.consumer, r.fetchNonce)]) {
            return (address(0), 0, Withheld.ALREADY_CREDITED);
        }
        uint256 fetched = _accessLedger.fetchRecorded(r.consumer, r.fetchNonce);
        if (fetched == 0) return (address(0), 0, Withheld.FETCH_NOT_RECORDED);
        if (fetched != r.datasetId) return (address(0), 0, Withheld.FETCH_OF_OTHER_DATASET);
        bytes32 contentHash;
        (owner, contentHash) = _datasets.ownerAndContent(r.datasetId);
        if (contentHash != r.contentHash) return (owner, 0, Withheld.CONTENT_MISMATCH);
        if (owner == r.consumer) return (owner, 0, Withheld.SELF_CONSUMPTION);
        if (r.quality > MAX_QUALITY) return (owner, 0, Withheld.QUALITY_OUT_OF_RANGE);
        uint256 pairUsed = _pairMinted[owner][r.consumer][epoch];
        amount = pairUsed == 0 ? rules.firstCredit : rules.repeatCredit;
        if (amount == 0) return (owner, 0, Withheld.ZERO_AMOUNT);
        // Weighted by the dataset's quality score, rounded half up: 100 earns the full amount.
        amount = (amount * r.quality + MAX_QUALITY / 2) / MAX_QUALITY;
        if (amount == 0) return (owner, 0, Withheld.LOW_QUALITY);
        uint256 room = _room(pairUsed, rules.pairCap);
        uint256 ownerRoom = _room(_ownerMinted[owner][epoch], rules.ownerCap);
        if (ownerRoom < room) room = ownerRoom;
        if (room == 0) return (owner, 0, Withheld.CAP_REACHED);
        if (amount > room) amount = room;
        return (owner, amount, Withheld.SELF_CONSUMPTION); // reason unused when amount > 0
    }

    function _setCreditRules(CreditRules memory rules) private {
        if (
            rules.epochLength == 0 ||
            rules.firstCredit == 0 ||
            rules.pairCap == 0 ||
            rules.ownerCap == 0
        ) {
            revert SharingCreditsInvalidRules(
                rules.epochLength,
                rules.firstCredit,
                rules.repeatCredit,
                rules.pairCap,
                rules.ownerCap
            );
        }
        _rules = rules;
        emit CreditRulesChanged(
            rules.epochLength,
            rules.firstCredit,
            rules.repeatCredit,
            rules.pairCap,
            rules.ownerCap
        );
    }

    function _room(uint256 used, uint256 cap) private pure returns (uint256) {
        return used >= cap ? 0 : cap - used;
    }

    function _fetchKey(address consumer, uint256 fetchNonce) private pure returns (bytes32) {
        return keccak256(abi.encode(consumer, fetchNonce));
    }
}

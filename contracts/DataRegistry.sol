// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title DataRegistry
/// @notice Each dataset is an ERC-721 data-rights certificate. The first registrant of a content
/// hash holds the right (first registration proves uniqueness, not authorship); derivatives are
/// at least as classified as their parents; transfers need ADMIN approval; ADMIN can reassign a
/// disputed certificate with a signed, logged reason; retirement keeps the record.
contract DataRegistry is ERC721, AccessControl, EIP712, Nonces, IDataRegistry {
    bytes32 private constant _REGISTER_TYPEHASH =
        keccak256(
            "Register(address owner,bytes32 contentHash,bytes32 metadataHash,uint8 classification,"
            "uint256[] parents,uint256 previousVersion,uint256 nonce,uint256 deadline)"
        );
    bytes32 private constant _REASSIGN_TYPEHASH =
        keccak256(
            "Reassign(uint256 datasetId,address to,bytes32 reasonHash,uint256 nonce,uint256 deadline)"
        );
    uint256 private constant _MAX_PARENTS = 32;

    /// @dev Keyed by content hash so that the uniqueness check and the packed record share one
    /// slot: a registration writes three new slots (record, content hash, metadata hash) plus
    /// the ERC-721 owner, which keeps it under 150k gas.
    struct Record {
        uint64 datasetId;
        uint40 registeredAt;
        uint64 previousVersion;
        Classification classification;
        bool retired;
    }

    IMemberRegistry private immutable _members;
    uint256 private _count;
    mapping(bytes32 contentHash => Record) private _records;
    mapping(uint256 datasetId => bytes32 contentHash) private _contentOf;
    mapping(uint256 datasetId => bytes32 metadataHash) private _metadataOf;
    mapping(uint256 datasetId => uint256[]) private _parents;
    mapping(uint256 datasetId => address to) private _approvedTransfers;
    mapping(bytes32 digest => bool) private _usedDigests;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    /// @param members The member registry consulted for standing.
    constructor(
        address admin,
        IMemberRegistry members
    ) ERC721("Data Rights Certificate", "DRC") EIP712("DataRightsLedger", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _members = members;
    }

    /// @notice Registers a dataset owned by the caller.
    /// @dev Requirements: caller is an active department or enterprise; the content hash is
    /// non-zero and new; parents exist and none is more classified than the dataset; the previous
    /// version, if any, is owned by the caller.
    /// Emits {Transfer} and {DatasetRegistered} events.
    function register(Registration calldata registration) external returns (uint256 datasetId) {
        return _register(_msgSender(), registration);
    }

    /// @notice Registers a dataset for `owner`, relayed with the owner's EIP-712 signature.
    /// @dev Requirements: as {register} for `owner`; `block.timestamp <= deadline`; `nonce` is
    /// the owner's current nonce; `signature` is the owner's over the Register struct.
    /// Emits {Transfer} and {DatasetRegistered} events.
    function registerFor(
        address owner,
        Registration calldata registration,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 datasetId) {
        if (block.timestamp > deadline) revert DataRegistryExpiredSignature(deadline);
        _useCheckedNonce(owner, nonce);
        bytes32 structHash = keccak256(
            abi.encode(
                _REGISTER_TYPEHASH,
                owner,
                registration.contentHash,
                registration.metadataHash,
                registration.classification,
                keccak256(abi.encodePacked(registration.parents)),
                registration.previousVersion,
                nonce,
                deadline
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), signature);
        if (signer != owner) revert DataRegistryInvalidSigner(signer, owner);
        return _register(owner, registration);
    }

    /// @notice Retires a dataset: no new grants, the record and its history stay.
    /// @dev Requirements: caller is the owner or ADMIN; the dataset is not retired.
    /// Emits a {DatasetRetired} event.
    function retire(uint256 datasetId) external {
        address caller = _msgSender();
        if (caller != _requireKnown(datasetId) && !hasRole(DEFAULT_ADMIN_ROLE, caller)) {
            revert DataRegistryNotOwner(datasetId, caller);
        }
        Record storage rec = _records[_contentOf[datasetId]];
        if (rec.retired) revert DataRegistryRetired(datasetId);
        rec.retired = true;
        emit DatasetRetired(datasetId, caller);
    }

    /// @notice Approves the next transfer of `datasetId` to `to` (a change of data custodian).
    /// @dev Requirements: caller is ADMIN; the dataset exists.
    /// Emits a {TransferApproved} event.
    function approveTransfer(uint256 datasetId, address to) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireKnown(datasetId);
        _approvedTransfers[datasetId] = to;
        emit TransferApproved(datasetId, to, _msgSender());
    }

    /// @notice Moves a disputed certificate to `to` (the dispute path), with the reason's hash.
    /// @dev Requirements: caller is ADMIN; the dataset exists; `to` is an active department or
    /// enterprise.
    /// Emits {Transfer} and {DatasetReassigned} events.
    function reassign(
        uint256 datasetId,
        address to,
        bytes32 reasonHash
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _reassign(datasetId, to, reasonHash, _msgSender());
    }

    /// @notice As {reassign}, relayed with an ADMIN's EIP-712 Reassign signature.
    /// @dev Requirements: as {reassign}; `block.timestamp <= deadline`; the signature was not
    /// used before; its signer holds ADMIN.
    /// Emits {Transfer} and {DatasetReassigned} events naming the signer.
    function reassignFor(
        uint256 datasetId,
        address to,
        bytes32 reasonHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external {
        if (block.timestamp > deadline) revert DataRegistryExpiredSignature(deadline);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(_REASSIGN_TYPEHASH, datasetId, to, reasonHash, nonce, deadline))
        );
        if (_usedDigests[digest]) revert DataRegistrySignatureReplayed(digest);
        _usedDigests[digest] = true;
        address signer = ECDSA.recover(digest, adminSignature);
        if (!hasRole(DEFAULT_ADMIN_ROLE, signer)) revert DataRegistryUnauthorizedSigner(signer);
        _reassign(datasetId, to, reasonHash, signer);
    }

    /// @inheritdoc IDataRegistry
    function datasetOf(uint256 datasetId) external view returns (Dataset memory) {
        _requireKnown(datasetId);
        bytes32 contentHash = _contentOf[datasetId];
        Record memory rec = _records[contentHash];
        return
            Dataset({
                contentHash: contentHash,
                metadataHash: _metadataOf[datasetId],
                registeredAt: rec.registeredAt,
                previousVersion: rec.previousVersion,
                classification: rec.classification,
                retired: rec.retired
            });
    }

    /// @inheritdoc IDataRegistry
    function parentsOf(uint256 datasetId) external view returns (uint256[] memory) {
        _requireKnown(datasetId);
        return _parents[datasetId];
    }

    /// @inheritdoc IDataRegistry
    function datasetIdOf(bytes32 contentHash) external view returns (uint256) {
        return _records[contentHash].datasetId;
    }

    /// @inheritdoc IDataRegistry
    function ownerAndContent(
        uint256 datasetId
    ) external view returns (address owner, bytes32 contentHash) {
        return (_requireKnown(datasetId), _contentOf[datasetId]);
    }

    /// @inheritdoc IDataRegistry
    function isDigestUsed(bytes32 digest) external view returns (bool) {
        return _usedDigests[digest];
    }

    /// @inheritdoc IDataRegistry
    function datasetCount() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc IDataRegistry
    function accessInfo(
        uint256 datasetId
    ) external view returns (address owner, Classification classification, bool retired) {
        owner = _requireKnown(datasetId);
        Record storage rec = _records[_contentOf[datasetId]];
        return (owner, rec.classification, rec.retired);
    }

    /// @inheritdoc ERC721
    function supportsInterface(
        bytes4 interfaceId
    ) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    /// @dev Mints are free; transfers need an ADMIN approval naming the recipient, who must be an
    /// active department or enterprise; burning is refused (retire instead).
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        address from = _ownerOf(tokenId);
        if (from != address(0)) {
            if (to == address(0) || _approvedTransfers[tokenId] != to) {
                revert DataRegistryTransferNotApproved(tokenId, to);
            }
            delete _approvedTransfers[tokenId];
            _requireProducer(to);
        }
        return super._update(to, tokenId, auth);
    }

    function _register(address owner, Registration calldata r) private returns (uint256 datasetId) {
        _requireProducer(owner);
        if (r.contentHash == bytes32(0)) revert DataRegistryZeroContentHash();
        uint256 existing = _records[r.contentHash].datasetId;
        if (existing != 0) revert DataRegistryAlreadyRegistered(r.contentHash, existing);
        uint256 parentCount = r.parents.length;
        if (parentCount > _MAX_PARENTS) revert DataRegistryTooManyParents(parentCount);
        for (uint256 i = 0; i < parentCount; ++i) {
            uint256 parentId = r.parents[i];
            _requireKnown(parentId);
            Classification required = _records[_contentOf[parentId]].classification;
            if (r.classification < required) {
                revert DataRegistryClassificationBelowParent(parentId, required);
            }
        }
        if (r.previousVersion != 0 && _ownerOf(r.previousVersion) != owner) {
            revert DataRegistryPreviousVersionNotOwned(r.previousVersion, owner);
        }
        datasetId = ++_count;
        _records[r.contentHash] = Record({
            datasetId: uint64(datasetId),
            registeredAt: uint40(block.timestamp),
            previousVersion: uint64(r.previousVersion),
            classification: r.classification,
            retired: false
        });
        _contentOf[datasetId] = r.contentHash;
        _metadataOf[datasetId] = r.metadataHash;
        if (parentCount != 0) _parents[datasetId] = r.parents;
        _mint(owner, datasetId);
        emit DatasetRegistered(
            datasetId,
            owner,
            r.contentHash,
            r.metadataHash,
            r.classification,
            r.parents,
            r.previousVersion
        );
    }

    function _reassign(uint256 datasetId, address to, bytes32 reasonHash, address by) private {
        address from = _requireKnown(datasetId);
        _approvedTransfers[datasetId] = to; // consumed by {_update}, which checks `to`
        _transfer(from, to, datasetId);
        emit DatasetReassigned(datasetId, from, to, reasonHash, by);
    }

    function _requireProducer(address account) private view {
        (IMemberRegistry.Kind kind, bool active) = _members.standing(account);
        if (!active) revert DataRegistryInactiveMember(account);
        if (kind == IMemberRegistry.Kind.REGULATOR) revert DataRegistryUnauthorizedKind(account);
    }

    function _requireKnown(uint256 datasetId) private view returns (address owner) {
        owner = _ownerOf(datasetId);
        if (owner == address(0)) revert DataRegistryUnknownDataset(datasetId);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IAccessLedger} from "./interfaces/IAccessLedger.sol";
import {IDataRegistry} from "./interfaces/IDataRegistry.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {Roles} from "./Roles.sol";
import {SeparatedRoles} from "./SeparatedRoles.sol";

/// @title AccessLedger
/// @notice Who may use which dataset, for what purpose, until when and how often. One grant per
/// (dataset, grantee): a new grant replaces the previous one and bumps its generation. A use is
/// recorded only with the grantee's own EIP-712 Fetch signature, each at most once, so the
/// broker's key alone cannot make one up; an ADMIN co-signature is single-use and bound to the
/// grant generation it creates.
contract AccessLedger is SeparatedRoles, EIP712, Nonces, IAccessLedger {
    bytes32 private constant _GRANT_TYPEHASH =
        keccak256(
            "Grant(uint256 datasetId,address grantee,bytes32 purposeHash,uint64 expiresAt,"
            "uint32 maxUses,bytes32 termsHash,uint256 nonce,uint256 deadline)"
        );
    bytes32 private constant _APPROVAL_TYPEHASH =
        keccak256(
            "GrantApproval(uint256 datasetId,address grantee,bytes32 purposeHash,uint64 expiresAt,"
            "uint32 maxUses,bytes32 termsHash,uint32 generation,uint256 nonce,uint256 deadline)"
        );
    bytes32 private constant _FETCH_TYPEHASH =
        keccak256("Fetch(address grantee,uint256 datasetId,uint256 nonce,uint256 deadline)");
    /// @dev An ADMIN approval is `generation || nonce || deadline` (32 bytes each, big-endian)
    /// followed by the 65-byte signature.
    uint256 private constant _APPROVAL_LENGTH = 161;
    bytes32 private constant _REVOKE_TYPEHASH =
        keccak256("Revoke(uint256 datasetId,address grantee,uint256 nonce,uint256 deadline)");

    IMemberRegistry private immutable _members;
    IDataRegistry private immutable _datasets;
    mapping(uint256 datasetId => mapping(address grantee => Grant)) private _grants;
    mapping(bytes32 fetchKey => uint256 datasetId) private _fetches;
    mapping(bytes32 digest => bool) private _usedApprovals;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    /// @param broker The relayer key that receives BROKER_ROLE (not `admin`).
    /// @param members The member registry consulted for standing.
    /// @param datasets The data registry consulted for ownership and classification.
    constructor(
        address admin,
        address broker,
        IMemberRegistry members,
        IDataRegistry datasets
    ) SeparatedRoles(admin, broker) EIP712("DataRightsLedger", "1") {
        _members = members;
        _datasets = datasets;
    }

    /// @notice Grants `terms.grantee` use of a dataset the caller owns.
    /// @dev Requirements: caller owns the dataset and is active; the dataset is not retired; the
    /// grantee is another active member; `expiresAt` is in the future and `maxUses` non-zero; a
    /// SENSITIVE dataset granted to an ENTERPRISE carries an ADMIN's EIP-712 GrantApproval for
    /// the generation this grant creates, packed as `generation || nonce || deadline` (32 bytes
    /// each) `|| signature` (65 bytes), unexpired and not used before.
    /// Emits an {AccessGranted} event.
    function grant(GrantTerms calldata terms, bytes calldata adminApproval) external {
        _grant(_msgSender(), terms, adminApproval);
    }

    /// @notice As {grant}, relayed with the owner's EIP-712 Grant signature.
    /// @dev Requirements: as {grant} for the signer; `block.timestamp <= deadline`; `nonce` is the
    /// owner's current nonce.
    /// Emits an {AccessGranted} event.
    function grantFor(
        GrantTerms calldata terms,
        uint256 nonce,
        uint256 deadline,
        bytes calldata ownerSignature,
        bytes calldata adminApproval
    ) external {
        if (block.timestamp > deadline) revert AccessLedgerExpiredSignature(deadline);
        (address owner, , ) = _datasets.accessInfo(terms.datasetId);
        _useCheckedNonce(owner, nonce);
        bytes32 structHash = keccak256(
            abi.encode(
                _GRANT_TYPEHASH,
                terms.datasetId,
                terms.grantee,
                terms.purposeHash,
                terms.expiresAt,
                terms.maxUses,
                terms.termsHash,
                nonce,
                deadline
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), ownerSignature);
        if (signer != owner) revert AccessLedgerInvalidSigner(signer, owner);
        _grant(owner, terms, adminApproval);
    }

    /// @notice Revokes a grant of a dataset the caller owns (or, for ADMIN, any grant).
    /// @dev Requirements: caller is the owner or ADMIN; a grant exists and is not revoked.
    /// Emits an {AccessRevoked} event.
    function revoke(uint256 datasetId, address grantee) external {
        address caller = _msgSender();
        (address owner, , ) = _datasets.accessInfo(datasetId);
        if (caller != owner && !hasRole(DEFAULT_ADMIN_ROLE, caller)) {
            revert AccessLedgerNotDatasetOwner(datasetId, caller);
        }
        _revoke(datasetId, grantee, caller);
    }

    /// @notice As {revoke}, relayed with the owner's EIP-712 Revoke signature.
    /// @dev Requirements: `block.timestamp <= deadline`; `nonce` is the owner's current nonce;
    /// the signer owns the dataset; a grant exists and is not revoked.
    /// Emits an {AccessRevoked} event.
    function revokeFor(
        uint256 datasetId,
        address grantee,
        uint256 nonce,
        uint256 deadline,
        bytes calldata ownerSignature
    ) external {
        if (block.timestamp > deadline) revert AccessLedgerExpiredSignature(deadline);
        (address owner, , ) = _datasets.accessInfo(datasetId);
        _useCheckedNonce(owner, nonce);
        bytes32 structHash = keccak256(
            abi.encode(_REVOKE_TYPEHASH, datasetId, grantee, nonce, deadline)
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), ownerSignature);
        if (signer != owner) revert AccessLedgerInvalidSigner(signer, owner);
        _revoke(datasetId, grantee, owner);
    }

    /// @notice Records one use of a grant, carrying the grantee's EIP-712 Fetch signature (the
    /// broker calls this as it serves a download).
    /// @dev Requirements: caller has BROKER_ROLE; `block.timestamp <= deadline`; `signature` is
    /// the grantee's over Fetch(grantee, datasetId, nonce, deadline); (grantee, nonce) was not
    /// recorded before; the grant exists, is not revoked, not expired, has uses left, and the
    /// grantee is active.
    /// Emits an {AccessUsed} event.
    function recordUse(
        uint256 datasetId,
        address grantee,
        uint256 nonce,
        uint256 deadline,
        bytes calldata granteeSignature
    ) external onlyRole(Roles.BROKER) returns (uint32 usesLeft) {
        if (block.timestamp > deadline) revert AccessLedgerExpiredSignature(deadline);
        bytes32 structHash = keccak256(
            abi.encode(_FETCH_TYPEHASH, grantee, datasetId, nonce, deadline)
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), granteeSignature);
        if (signer != grantee) revert AccessLedgerInvalidSigner(signer, grantee);
        bytes32 key = _fetchKey(grantee, nonce);
        if (_fetches[key] != 0) revert AccessLedgerFetchAlreadyRecorded(grantee, nonce);
        _fetches[key] = datasetId;
        Grant storage g = _grants[datasetId][grantee];
        _requireUsable(datasetId, grantee, g);
        (, bool active) = _members.standing(grantee);
        if (!active) revert AccessLedgerInactiveMember(grantee);
        uint32 uses = g.uses + 1;
        g.uses = uses;
        emit AccessUsed(datasetId, grantee, uses, nonce);
        return g.maxUses - uses;
    }

    /// @inheritdoc IAccessLedger
    function fetchRecorded(address grantee, uint256 nonce) external view returns (uint256) {
        return _fetches[_fetchKey(grantee, nonce)];
    }

    /// @inheritdoc IAccessLedger
    function isApprovalUsed(bytes32 digest) external view returns (bool) {
        return _usedApprovals[digest];
    }

    /// @inheritdoc IAccessLedger
    function grantOf(uint256 datasetId, address grantee) external view returns (Grant memory) {
        return _grants[datasetId][grantee];
    }

    /// @inheritdoc IAccessLedger
    function isUsable(uint256 datasetId, address grantee) external view returns (bool) {
        Grant storage g = _grants[datasetId][grantee];
        if (g.grantedAt == 0 || g.revoked || block.timestamp >= g.expiresAt) return false;
        if (g.uses >= g.maxUses) return false;
        (, bool active) = _members.standing(grantee);
        return active;
    }

    function _grant(address grantor, GrantTerms calldata terms, bytes calldata approval) private {
        (address owner, IDataRegistry.Classification classification, bool retired) = _datasets
            .accessInfo(terms.datasetId);
        if (grantor != owner) revert AccessLedgerNotDatasetOwner(terms.datasetId, grantor);
        if (retired) revert AccessLedgerDatasetRetired(terms.datasetId);
        (, bool grantorActive) = _members.standing(grantor);
        if (!grantorActive) revert AccessLedgerInactiveMember(grantor);
        (IMemberRegistry.Kind kind, bool granteeActive) = _members.standing(terms.grantee);
        if (terms.grantee == owner || kind == IMemberRegistry.Kind.REGULATOR) {
            revert AccessLedgerInvalidGrantee(terms.grantee);
        }
        if (!granteeActive) revert AccessLedgerInactiveMember(terms.grantee);
        if (
            terms.expiresAt <= block.timestamp ||
            terms.expiresAt > type(uint40).max ||
            terms.maxUses == 0
        ) {
            revert AccessLedgerInvalidTerms();
        }
        if (
            classification == IDataRegistry.Classification.SENSITIVE &&
            kind == IMemberRegistry.Kind.ENTERPRISE
        ) {
            _requireAdminApproval(terms, approval);
        }
        _store(grantor, terms);
    }

    function _store(address grantor, GrantTerms calldata terms) private {
        Grant storage g = _grants[terms.datasetId][terms.grantee];
        uint32 generation = g.generation + 1;
        _grants[terms.datasetId][terms.grantee] = Grant({
            grantedAt: uint40(block.timestamp),
            expiresAt: uint40(terms.expiresAt),
            maxUses: terms.maxUses,
            uses: 0,
            generation: generation,
            revoked: false
        });
        emit AccessGranted(
            terms.datasetId,
            terms.grantee,
            grantor,
            generation,
            terms.purposeHash,
            terms.termsHash,
            terms.expiresAt,
            terms.maxUses
        );
    }

    function _revoke(uint256 datasetId, address grantee, address by) private {
        Grant storage g = _grants[datasetId][grantee];
        if (g.grantedAt == 0) revert AccessLedgerNoGrant(datasetId, grantee);
        if (g.revoked) revert AccessLedgerGrantRevoked(datasetId, grantee);
        g.revoked = true;
        emit AccessRevoked(datasetId, grantee, by);
    }

    function _requireUsable(uint256 datasetId, address grantee, Grant storage g) private view {
        if (g.grantedAt == 0) revert AccessLedgerNoGrant(datasetId, grantee);
        if (g.revoked) revert AccessLedgerGrantRevoked(datasetId, grantee);
        if (block.timestamp >= g.expiresAt) {
            revert AccessLedgerGrantExpired(datasetId, grantee, g.expiresAt);
        }
        if (g.uses >= g.maxUses) revert AccessLedgerUsesExhausted(datasetId, grantee, g.maxUses);
    }

    /// @dev Checks and consumes an ADMIN's GrantApproval for the generation the grant creates.
    function _requireAdminApproval(GrantTerms calldata terms, bytes calldata approval) private {
        if (approval.length == 0) {
            revert AccessLedgerAdminApprovalRequired(terms.datasetId, terms.grantee);
        }
        if (approval.length != _APPROVAL_LENGTH) {
            revert AccessLedgerMalformedAdminApproval(approval.length);
        }
        uint256 signed = uint256(bytes32(approval[0:32]));
        uint256 nonce = uint256(bytes32(approval[32:64]));
        uint256 deadline = uint256(bytes32(approval[64:96]));
        if (block.timestamp > deadline) revert AccessLedgerExpiredSignature(deadline);
        uint32 generation = _grants[terms.datasetId][terms.grantee].generation + 1;
        if (signed != generation) revert AccessLedgerApprovalGenerationMismatch(generation, signed);
        bytes32 digest = _hashTypedDataV4(
            keccak256(
                abi.encode(
                    _APPROVAL_TYPEHASH,
                    terms.datasetId,
                    terms.grantee,
                    terms.purposeHash,
                    terms.expiresAt,
                    terms.maxUses,
                    terms.termsHash,
                    generation,
                    nonce,
                    deadline
                )
            )
        );
        if (_usedApprovals[digest]) revert AccessLedgerAdminApprovalReplayed(digest);
        _usedApprovals[digest] = true;
        address signer = ECDSA.recover(digest, approval[96:]);
        if (!hasRole(DEFAULT_ADMIN_ROLE, signer)) revert AccessLedgerInvalidAdminApproval(signer);
    }

    function _fetchKey(address grantee, uint256 nonce) private pure returns (bytes32) {
        return keccak256(abi.encode(grantee, nonce));
    }
}

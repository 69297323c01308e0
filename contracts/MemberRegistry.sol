// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";

/// @title MemberRegistry
/// @notice Departments, enterprises and regulators with their HPKE encryption public keys.
/// Only ADMIN (the data bureau) onboards, suspends and reinstates, directly or by an EIP-712
/// signature anyone may relay. Only the member itself rotates its encryption key (directly or
/// by its signature): ADMIN cannot, so no operator key can substitute a member's key.
contract MemberRegistry is AccessControl, EIP712, IMemberRegistry {
    bytes32 private constant _ONBOARD_TYPEHASH =
        keccak256(
            "Onboard(address member,uint8 kind,string name,uint16 keySuite,bytes encryptionKey,"
            "uint256 nonce,uint256 deadline)"
        );
    bytes32 private constant _SUSPEND_TYPEHASH =
        keccak256("Suspend(address member,uint256 nonce,uint256 deadline)");
    bytes32 private constant _REINSTATE_TYPEHASH =
        keccak256("Reinstate(address member,uint256 nonce,uint256 deadline)");
    bytes32 private constant _ROTATE_KEY_TYPEHASH =
        keccak256(
            "RotateKey(address member,uint16 keySuite,bytes encryptionKey,uint256 nonce,"
            "uint256 deadline)"
        );

    mapping(address account => Member) private _members;
    mapping(bytes32 digest => bool) private _usedDigests;

    /// @param admin The operator key that receives DEFAULT_ADMIN_ROLE.
    constructor(address admin) EIP712("DataRightsLedger", "1") {
        if (admin == address(0)) revert MemberRegistryZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Adds a member with its kind, name hash and encryption public key.
    /// @dev Requirements: caller is ADMIN; `member` is new and non-zero; `kind` is not NONE;
    /// `keySuite` is non-zero and `encryptionKey` non-empty.
    /// Emits a {MemberOnboarded} event.
    function onboard(
        address member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes calldata encryptionKey
    ) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _onboard(member, kind, nameHash, keySuite, encryptionKey);
    }

    /// @notice As {onboard}, relayed with an ADMIN's EIP-712 Onboard signature; the name is
    /// signed in full and stored as its keccak-256 hash.
    /// @dev Requirements: as {onboard}; `block.timestamp <= deadline`; the signature was not
    /// used before; its signer holds ADMIN.
    /// Emits a {MemberOnboarded} event.
    function onboardFor(
        address member,
        Kind kind,
        string calldata name,
        uint16 keySuite,
        bytes calldata encryptionKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external {
        bytes32 nameHash = keccak256(bytes(name));
        bytes32 structHash = keccak256(
            abi.encode(
                _ONBOARD_TYPEHASH,
                member,
                kind,
                nameHash,
                keySuite,
                keccak256(encryptionKey),
                nonce,
                deadline
            )
        );
        _useAdminSignature(structHash, deadline, adminSignature);
        _onboard(member, kind, nameHash, keySuite, encryptionKey);
    }

    /// @notice Suspends an active member: it can no longer register, grant, be granted or use.
    /// @dev Requirements: caller is ADMIN; `member` is active.
    /// Emits a {MemberSuspended} event.
    function suspend(address member) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _suspend(member, _msgSender());
    }

    /// @notice As {suspend}, relayed with an ADMIN's EIP-712 Suspend signature.
    /// @dev Requirements: as {suspend}; `block.timestamp <= deadline`; the signature was not
    /// used before; its signer holds ADMIN.
    /// Emits a {MemberSuspended} event naming the signer.
    function suspendFor(
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external {
        bytes32 structHash = keccak256(abi.encode(_SUSPEND_TYPEHASH, member, nonce, deadline));
        _suspend(member, _useAdminSignature(structHash, deadline, adminSignature));
    }

    /// @notice Lifts a suspension.
    /// @dev Requirements: caller is ADMIN; `member` is suspended.
    /// Emits a {MemberReinstated} event.
    function reinstate(address member) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _reinstate(member, _msgSender());
    }

    /// @notice As {reinstate}, relayed with an ADMIN's EIP-712 Reinstate signature.
    /// @dev Requirements: as {reinstate}; `block.timestamp <= deadline`; the signature was not
    /// used before; its signer holds ADMIN.
    /// Emits a {MemberReinstated} event naming the signer.
    function reinstateFor(
        address member,
        uint256 nonce,
        uint256 deadline,
        bytes calldata adminSignature
    ) external {
        bytes32 structHash = keccak256(abi.encode(_REINSTATE_TYPEHASH, member, nonce, deadline));
        _reinstate(member, _useAdminSignature(structHash, deadline, adminSignature));
    }

    /// @notice Replaces the caller's own encryption public key (new grants wrap to the new key).
    /// @dev Requirements: caller is an onboarded member; the key is well formed.
    /// Emits an {EncryptionKeyRotated} event.
    function rotateKey(uint16 keySuite, bytes calldata encryptionKey) external {
        _rotateKey(_msgSender(), keySuite, encryptionKey);
    }

    /// @notice As {rotateKey}, relayed with the member's own EIP-712 RotateKey signature.
    /// @dev Requirements: `block.timestamp <= deadline`; the signature was not used before; it
    /// recovers to `member`; `member` is onboarded; the key is well formed.
    /// Emits an {EncryptionKeyRotated} event whose `by` is the relayer.
    function rotateKeyFor(
        address member,
        uint16 keySuite,
        bytes calldata encryptionKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata memberSignature
    ) external {
        bytes32 structHash = keccak256(
            abi.encode(
                _ROTATE_KEY_TYPEHASH,
                member,
                keySuite,
                keccak256(encryptionKey),
                nonce,
                deadline
            )
        );
        address signer = _useSignature(structHash, deadline, memberSignature);
        if (signer != member) revert MemberRegistryInvalidSigner(signer, member);
        _rotateKey(member, keySuite, encryptionKey);
    }

    /// @inheritdoc IMemberRegistry
    function memberOf(address member) external view returns (Member memory) {
        return _members[member];
    }

    /// @inheritdoc IMemberRegistry
    function standing(address member) external view returns (Kind kind, bool active) {
        Member storage m = _members[member];
        return (m.kind, m.status == Status.ACTIVE);
    }

    /// @inheritdoc IMemberRegistry
    function isDigestUsed(bytes32 digest) external view returns (bool) {
        return _usedDigests[digest];
    }

    function _onboard(
        address member,
        Kind kind,
        bytes32 nameHash,
        uint16 keySuite,
        bytes calldata encryptionKey
    ) private {
        if (member == address(0)) revert MemberRegistryZeroAddress();
        if (kind == Kind.NONE) revert MemberRegistryInvalidKind(uint8(kind));
        if (_members[member].status != Status.NONE) revert MemberRegistryAlreadyOnboarded(member);
        _checkKey(keySuite, encryptionKey);
        _members[member] = Member({
            kind: kind,
            status: Status.ACTIVE,
            keySuite: keySuite,
            onboardedAt: uint40(block.timestamp),
            nameHash: nameHash,
            encryptionKey: encryptionKey
        });
        emit MemberOnboarded(member, kind, nameHash, keySuite, encryptionKey);
    }

    function _suspend(address member, address by) private {
        Member storage m = _existing(member);
        if (m.status == Status.SUSPENDED) revert MemberRegistryAlreadySuspended(member);
        m.status = Status.SUSPENDED;
        emit MemberSuspended(member, by);
    }

    function _reinstate(address member, address by) private {
        Member storage m = _existing(member);
        if (m.status != Status.SUSPENDED) revert MemberRegistryNotSuspended(member);
        m.status = Status.ACTIVE;
        emit MemberReinstated(member, by);
    }

    function _rotateKey(address member, uint16 keySuite, bytes calldata encryptionKey) private {
        Member storage m = _existing(member);
        _checkKey(keySuite, encryptionKey);
        m.keySuite = keySuite;
        m.encryptionKey = encryptionKey;
        emit EncryptionKeyRotated(member, keySuite, encryptionKey, _msgSender());
    }

    /// @dev Checks the deadline, consumes the digest and returns the signer, who must be ADMIN.
    function _useAdminSignature(
        bytes32 structHash,
        uint256 deadline,
        bytes calldata signature
    ) private returns (address signer) {
        signer = _useSignature(structHash, deadline, signature);
        if (!hasRole(DEFAULT_ADMIN_ROLE, signer)) revert MemberRegistryUnauthorizedSigner(signer);
    }

    /// @dev Checks the deadline, consumes the digest (single use) and returns the signer.
    function _useSignature(
        bytes32 structHash,
        uint256 deadline,
        bytes calldata signature
    ) private returns (address) {
        if (block.timestamp > deadline) revert MemberRegistryExpiredSignature(deadline);
        bytes32 digest = _hashTypedDataV4(structHash);
        if (_usedDigests[digest]) revert MemberRegistrySignatureReplayed(digest);
        _usedDigests[digest] = true;
        return ECDSA.recover(digest, signature);
    }

    function _existing(address member) private view returns (Member storage m) {
        m = _members[member];
        if (m.status == Status.NONE) revert MemberRegistryUnknownMember(member);
    }

    function _checkKey(uint16 keySuite, bytes calldata encryptionKey) private pure {
        if (keySuite == 0 || encryptionKey.length == 0 || encryptionKey.length > 4096) {
            revert MemberRegistryInvalidKey(keySuite, encryptionKey.length);
        }
    }
}

"""Every error code of the protocol, with the HTTP status the broker answers it with.

An error travels as ``{"code": "...", "message": "..."}``; the code is stable, the message is
for people. Codes named ``<contract>_<error>`` (for example ``access_ledger_uses_exhausted``)
are the contracts' custom errors in snake case (:data:`CONTRACT_ERROR_STATUS`, unless the
broker wraps them as a refusal: then the status is that refusal's). Codes whose status is
``None`` never cross the wire: the member's own tools raise them. docs/protocol.md renders
this table (a test keeps the two equal).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ErrorCode(StrEnum):
    """Stable error codes; ``status`` and ``meaning`` come from :data:`ERRORS`."""

    # the member's own checks of the broker against the chain (never on the wire)
    DEPLOYMENT_CHANGED = "deployment_changed"
    NOT_ON_CHAIN = "not_on_chain"
    CHAIN_DISAGREES = "chain_disagrees"
    FETCH_NOT_RECORDED = "fetch_not_recorded"
    RECEIPT_EXISTS = "receipt_exists"
    AWAITING_APPROVAL = "awaiting_approval"

    # generic, one per error class
    LEDGER_ERROR = "ledger_error"
    CONFIGURATION_ERROR = "configuration_error"
    CHAIN_ERROR = "chain_error"
    CHAIN_UNAVAILABLE = "chain_unavailable"
    DEPLOYMENT_ERROR = "deployment_error"
    CRYPTO_ERROR = "crypto_error"
    UNSUPPORTED_FORMAT = "unsupported_format"
    INTEGRITY_ERROR = "integrity_error"
    NOT_FOUND = "not_found"
    INVALID_INPUT = "invalid_input"
    INVALID_SIGNATURE = "invalid_signature"
    DEADLINE_EXPIRED = "deadline_expired"
    NONCE_REPLAYED = "nonce_replayed"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    UNAUTHENTICATED = "unauthenticated"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INTEGRITY_ALARM = "integrity_alarm"
    STORAGE_ERROR = "storage_error"
    # request framing
    MALFORMED_BODY = "malformed_body"
    BODY_TOO_DEEP = "body_too_deep"
    INVALID_REQUEST = "invalid_request"
    NO_SUCH_ROUTE = "no_such_route"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HTTP_ERROR = "http_error"
    REQUEST_REPLAYED = "request_replayed"
    # signed actions
    MALFORMED_ACTION = "malformed_action"
    DEADLINE_TOO_FAR = "deadline_too_far"
    WEAK_NONCE = "weak_nonce"
    WRONG_ACTION = "wrong_action"
    INVALID_FIELD = "invalid_field"
    BAD_JSON = "bad_json"
    BAD_ADDRESS = "bad_address"
    BAD_HEX = "bad_hex"
    # standing and visibility
    NOT_A_MEMBER = "not_a_member"
    MEMBER_SUSPENDED = "member_suspended"
    REGULATOR_READ_ONLY = "regulator_read_only"
    WRONG_ROLE = "wrong_role"
    OPERATOR_ONLY = "operator_only"
    NOT_ACTOR = "not_actor"
    NOT_OWNER = "not_owner"
    NOT_VISIBLE = "not_visible"
    NO_GRANT = "no_grant"
    NOT_A_RECIPIENT = "not_a_recipient"
    # members
    ALREADY_MEMBER = "already_member"
    ALREADY_SUSPENDED = "already_suspended"
    NOT_SUSPENDED = "not_suspended"
    MEMBER_NOT_FOUND = "member_not_found"
    ADDRESS_MISMATCH = "address_mismatch"
    # datasets and uploads
    DATASET_NOT_FOUND = "dataset_not_found"
    DATASET_RETIRED = "dataset_retired"
    ALREADY_REGISTERED = "already_registered"
    METADATA_MISMATCH = "metadata_mismatch"
    CLASSIFICATION_BELOW_PARENT = "classification_below_parent"
    PREVIOUS_VERSION_NOT_OWNED = "previous_version_not_owned"
    UPLOAD_NOT_FOUND = "upload_not_found"
    UPLOAD_TOO_LARGE = "upload_too_large"
    UPLOAD_SIZE_MISMATCH = "upload_size_mismatch"
    UPLOAD_DIGEST_MISMATCH = "upload_digest_mismatch"
    CHUNKING_MISMATCH = "chunking_mismatch"
    UPLOAD_INTERRUPTED = "upload_interrupted"
    UPLOAD_PENDING = "upload_pending"
    UPLOAD_IN_PROGRESS = "upload_in_progress"
    TRANSFER_STALLED = "transfer_stalled"
    TOO_MANY_TRANSFERS = "too_many_transfers"
    TRANSFERS_BUSY = "transfers_busy"
    RATE_LIMITED = "rate_limited"
    OWNER_SUSPENDED = "owner_suspended"
    NO_DEPLOYMENT = "no_deployment"
    PORT_IN_USE = "port_in_use"
    WORKER_FAILED = "worker_failed"
    BACKUP_REFUSED = "backup_refused"
    BROKER_RUNNING = "broker_running"
    BLOB_MISSING = "blob_missing"
    BLOB_ALTERED = "blob_altered"
    CONTENT_HASH_MISMATCH = "content_hash_mismatch"
    # requests, grants, deliveries
    OWN_DATASET = "own_dataset"
    REQUEST_NOT_FOUND = "request_not_found"
    REQUEST_DECIDED = "request_decided"
    GRANT_NOT_FOUND = "grant_not_found"
    GRANT_REVOKED = "grant_revoked"
    GRANT_MISMATCH = "grant_mismatch"
    GRANT_NOT_LIVE = "grant_not_live"
    NOT_NEXT_VERSION = "not_next_version"
    CARRY_NEEDS_APPROVAL = "carry_needs_approval"
    ALREADY_GRANTED = "already_granted"
    DENY_MISMATCH = "deny_mismatch"
    FETCH_MISMATCH = "fetch_mismatch"
    UNKNOWN_GENERATION = "unknown_generation"
    NOTHING_TO_ACKNOWLEDGE = "nothing_to_acknowledge"
    ALREADY_RATED = "already_rated"
    # the flow log
    BAD_SEQ = "bad_seq"
    BAD_TREE_SIZE = "bad_tree_size"
    LOG_DIVERGED = "log_diverged"
    LOG_BEHIND_CHAIN = "log_behind_chain"
    DATABASE_BUSY = "database_busy"
    DATABASE_NOT_MIGRATED = "database_not_migrated"
    BLOB_DIGEST_MISMATCH = "blob_digest_mismatch"
    BLOB_TOO_LARGE = "blob_too_large"
    MERKLE_NODE_CONFLICT = "merkle_node_conflict"
    MERKLE_NODE_MISSING = "merkle_node_missing"
    # the member's own tools (never on the wire)
    BROKER_UNREACHABLE = "broker_unreachable"
    NO_IDENTITY = "no_identity"
    NO_PASSPHRASE = "no_passphrase"  # noqa: S105 (a code, not a secret)
    WRONG_PASSPHRASE = "wrong_passphrase"  # noqa: S105
    BAD_HANDLE = "bad_handle"
    HANDLE_TAKEN = "handle_taken"
    BAD_KEY_FILE = "bad_key_file"
    KEY_NOT_FOUND = "key_not_found"
    BAD_ARGUMENTS = "bad_arguments"
    BAD_SCHEMA = "bad_schema"
    QUALITY_CHECK_FAILED = "quality_check_failed"
    CHAIN_FILE_MISSING = "chain_file_missing"
    RESET_REFUSED = "reset_refused"
    OUTPUT_EXISTS = "output_exists"
    # member-side audit of the log (ledger.audit; never on the wire)
    CHECKPOINT_MALFORMED = "checkpoint_malformed"
    CHECKPOINT_BAD_SIGNATURE = "checkpoint_bad_signature"
    CHECKPOINT_WRONG_ORIGIN = "checkpoint_wrong_origin"
    CHECKPOINT_NOT_BROKER = "checkpoint_not_broker"
    LOG_INCONSISTENT = "log_inconsistent"
    RECORD_MALFORMED = "record_malformed"
    RECORD_MISSING = "record_missing"
    RECORD_OUT_OF_ORDER = "record_out_of_order"
    RECORD_MISMATCH = "record_mismatch"
    RECORD_NOT_INCLUDED = "record_not_included"
    ANCHOR_MISMATCH = "anchor_mismatch"
    CHAIN_EVENT_UNMATCHED = "chain_event_unmatched"
    RECORD_UNCONFIRMED = "record_unconfirmed"
    CREDIT_QUALITY_MISMATCH = "credit_quality_mismatch"
    # running several replicas on shared parts (the scale-out issue)
    DATABASE_DRIVER_MISSING = "database_driver_missing"
    DATABASE_UNAVAILABLE = "database_unavailable"
    BLOB_STORE_UNAVAILABLE = "blob_store_unavailable"
    CHAIN_REFUSED = "chain_refused"
    DEPLOYMENT_MISMATCH = "deployment_mismatch"
    ANCHOR_LEADER_UNAVAILABLE = "anchor_leader_unavailable"
    BROKER_KEY_UNFUNDED = "broker_key_unfunded"
    # data quality and the description standards (issue 12)
    DATA_FORMAT_UNSUPPORTED = "data_format_unsupported"
    LABEL_UNKNOWN = "label_unknown"
    LABEL_RULE_BROKEN = "label_rule_broken"
    REQUEST_FORM_INVALID = "request_form_invalid"
    ISSUE_NOT_FOUND = "issue_not_found"
    ISSUE_ANSWERED = "issue_answered"
    ANSWER_MISMATCH = "answer_mismatch"
    NOT_A_LATER_VERSION = "not_a_later_version"
    QUALITY_SCORE_MISMATCH = "quality_score_mismatch"
    # the member's web console (issue 11; never on the wire)
    CONSOLE_ASSETS_MISSING = "console_assets_missing"
    # early warnings (issue 11; the member's own tools)
    RULES_INVALID = "rules_invalid"

    @property
    def status(self) -> int | None:
        return ERRORS[self][0]

    @property
    def meaning(self) -> str:
        return ERRORS[self][1]


E = ErrorCode
#: Status of a contract custom error answered as is (the chain refused the transaction).
CONTRACT_ERROR_STATUS: Final = 409

ERRORS: Final[dict[ErrorCode, tuple[int | None, str]]] = {
    E.LEDGER_ERROR: (500, "an unexpected server-side failure"),
    E.CONFIGURATION_ERROR: (500, "the broker's settings or files cannot work"),
    E.CHAIN_ERROR: (502, "the chain node refused or failed the request"),
    E.CHAIN_UNAVAILABLE: (503, "the chain node is not reachable"),
    E.DEPLOYMENT_ERROR: (500, "the contracts are not deployed as expected"),
    E.CRYPTO_ERROR: (422, "a key or ciphertext that cannot be used"),
    E.UNSUPPORTED_FORMAT: (422, "unknown format version, HPKE suite or header"),
    E.INTEGRITY_ERROR: (422, "an authentication tag or hash does not match"),
    E.NOT_FOUND: (404, "an identifier that names nothing"),
    E.INVALID_INPUT: (422, "a request that can never succeed as given"),
    E.INVALID_SIGNATURE: (400, "the signature does not recover to the claimed signer"),
    E.DEADLINE_EXPIRED: (400, "the signed action's deadline has passed"),
    E.NONCE_REPLAYED: (409, "this signer already used this action nonce"),
    E.FORBIDDEN: (403, "the caller's role or standing does not allow this"),
    E.CONFLICT: (409, "the target is not in a state that allows this"),
    E.UNAUTHENTICATED: (401, "missing, stale or invalid request signature"),
    E.PAYLOAD_TOO_LARGE: (413, "the body exceeds the route's limit"),
    E.INTEGRITY_ALARM: (500, "the broker found its own state inconsistent (operator alarm)"),
    E.STORAGE_ERROR: (500, "the broker's storage failed"),
    E.MALFORMED_BODY: (400, "the body is not JSON"),
    E.BODY_TOO_DEEP: (400, "the JSON body nests arrays or objects more than 64 deep"),
    E.INVALID_REQUEST: (422, "the body or query does not match the route's schema"),
    E.NO_SUCH_ROUTE: (404, "no route at this path"),
    E.METHOD_NOT_ALLOWED: (405, "the route does not take this method"),
    E.HTTP_ERROR: (None, "the broker answered an error without a code (client side)"),
    E.REQUEST_REPLAYED: (401, "this request nonce was already used"),
    E.MALFORMED_ACTION: (400, "a signed action with missing, extra or mistyped fields"),
    E.DEADLINE_TOO_FAR: (400, "the deadline is more than 24 h (+1 h tolerance) ahead"),
    E.WEAK_NONCE: (400, "a broker-action nonce below 2**64 (not a random 256-bit value)"),
    E.WRONG_ACTION: (422, "the signed action is not the one this route takes"),
    E.INVALID_FIELD: (422, "a field outside its limits (see Limits)"),
    E.BAD_JSON: (422, "a value canonical JSON cannot hold"),
    E.BAD_ADDRESS: (422, "not a 20-byte 0x address"),
    E.BAD_HEX: (422, "not 0x-hex of the expected length"),
    E.NOT_A_MEMBER: (403, "the signer is not an onboarded member"),
    E.MEMBER_SUSPENDED: (403, "the member is suspended"),
    E.REGULATOR_READ_ONLY: (403, "regulators read everything and write nothing"),
    E.WRONG_ROLE: (403, "this needs another role"),
    E.OPERATOR_ONLY: (403, "only the operator may do this"),
    E.NOT_ACTOR: (403, "the signed action must be signed by the caller"),
    E.NOT_OWNER: (403, "only the dataset's owner may do this"),
    E.NOT_VISIBLE: (403, "the caller may not see this object"),
    E.NO_GRANT: (403, "no usable grant of this dataset to the caller"),
    E.NOT_A_RECIPIENT: (403, "only a member that received the dataset may rate it"),
    E.ALREADY_MEMBER: (409, "the address is already onboarded"),
    E.DEPLOYMENT_CHANGED: (None, "the broker names another deployment than the one pinned"),
    E.NOT_ON_CHAIN: (None, "what the broker says is not what the chain holds"),
    E.CHAIN_DISAGREES: (None, "the broker's answer disagrees with the chain"),
    E.FETCH_NOT_RECORDED: (409, "the receipt names no fetch of this consumer recorded on chain"),
    E.RECEIPT_EXISTS: (409, "this fetch already has its delivery receipt"),
    E.AWAITING_APPROVAL: (409, "the grant waits for the operator's co-signature"),
    E.ALREADY_SUSPENDED: (409, "the member is already suspended"),
    E.NOT_SUSPENDED: (409, "the member is not suspended"),
    E.MEMBER_NOT_FOUND: (404, "no such member"),
    E.ADDRESS_MISMATCH: (422, "the path's address differs from the signed one"),
    E.DATASET_NOT_FOUND: (404, "no such dataset"),
    E.DATASET_RETIRED: (409, "the dataset is retired"),
    E.ALREADY_REGISTERED: (409, "this content hash or upload is already registered"),
    E.METADATA_MISMATCH: (422, "the metadata document does not hash to the signed hash"),
    E.CLASSIFICATION_BELOW_PARENT: (422, "a derivative must be at least as classified"),
    E.PREVIOUS_VERSION_NOT_OWNED: (422, "the previous version belongs to someone else"),
    E.UPLOAD_NOT_FOUND: (404, "no such pending upload"),
    E.UPLOAD_TOO_LARGE: (422, "the declared ciphertext exceeds the broker's limit"),
    E.UPLOAD_SIZE_MISMATCH: (422, "the upload's size differs from the signed size"),
    E.UPLOAD_DIGEST_MISMATCH: (422, "the upload does not hash to the signed digest"),
    E.CHUNKING_MISMATCH: (422, "the upload's chunk size differs from the signed chunk_size"),
    E.UPLOAD_INTERRUPTED: (422, "the client stopped sending before the end"),
    E.UPLOAD_PENDING: (409, "another signed registration with this nonce awaits its upload"),
    E.UPLOAD_IN_PROGRESS: (409, "another upload of this intent is running"),
    E.TRANSFER_STALLED: (408, "the transfer paused too long or ran below the minimum rate"),
    E.TOO_MANY_TRANSFERS: (429, "this member already runs as many transfers as it may at once"),
    E.TRANSFERS_BUSY: (503, "the broker runs as many transfers as it takes at once; try again"),
    E.RATE_LIMITED: (429, "this member signs writes faster than the broker accepts; slow down"),
    E.OWNER_SUSPENDED: (403, "the dataset's owner is suspended: its datasets are frozen"),
    E.NO_DEPLOYMENT: (None, "DRL_HOME holds no broker deployment to inspect"),
    E.PORT_IN_USE: (None, "`drl serve` cannot listen on the address and port given"),
    E.WORKER_FAILED: (None, "a process of `drl serve --workers` could not start"),
    E.BACKUP_REFUSED: (None, "a backup or restore that would be wrong: damaged, not empty, ..."),
    E.BROKER_RUNNING: (None, "the broker is running: stop it before backing up its state"),
    E.BLOB_MISSING: (404, "the broker lost the dataset's ciphertext"),
    E.BLOB_ALTERED: (500, "the stored ciphertext no longer matches its digest"),
    E.CONTENT_HASH_MISMATCH: (422, "the receipt names another content hash"),
    E.OWN_DATASET: (422, "an owner neither requests nor fetches its own dataset"),
    E.REQUEST_NOT_FOUND: (404, "no such access request"),
    E.REQUEST_DECIDED: (409, "the request was already approved or denied"),
    E.GRANT_NOT_FOUND: (404, "no such grant"),
    E.GRANT_REVOKED: (409, "the grant is revoked"),
    E.GRANT_NOT_LIVE: (409, "the grant to carry over is revoked, expired or used up on chain"),
    E.NOT_NEXT_VERSION: (422, "the dataset is not the next version of the grant's dataset"),
    E.CARRY_NEEDS_APPROVAL: (
        409,
        "a grant needing the operator's co-signature is not carried over: the grantee requests "
        "the new version",
    ),
    E.ALREADY_GRANTED: (409, "the grantee already holds a grant of this dataset"),
    E.GRANT_MISMATCH: (422, "the signed grant differs from the request"),
    E.DENY_MISMATCH: (422, "the signed denial names another request"),
    E.FETCH_MISMATCH: (422, "the signed fetch names another dataset"),
    E.UNKNOWN_GENERATION: (422, "the receipt names a grant generation that never existed"),
    E.NOTHING_TO_ACKNOWLEDGE: (409, "every fetch of this grant already has its receipt"),
    E.ALREADY_RATED: (409, "this member already rated this dataset"),
    E.BAD_SEQ: (422, "a log sequence number out of range"),
    E.BAD_TREE_SIZE: (422, "a tree size out of range"),
    E.LOG_DIVERGED: (500, "the log's root differs from the one anchored (operator alarm)"),
    E.LOG_BEHIND_CHAIN: (500, "the chain holds a head the log cannot reach (operator alarm)"),
    E.DATABASE_BUSY: (503, "the database stayed locked; try again"),
    E.DATABASE_NOT_MIGRATED: (500, "the database schema is older than the code"),
    E.BLOB_DIGEST_MISMATCH: (422, "the bytes stored do not hash to the declared digest"),
    E.BLOB_TOO_LARGE: (413, "the ciphertext exceeds the broker's upload limit"),
    E.MERKLE_NODE_CONFLICT: (500, "a tree node was written twice with two values (alarm)"),
    E.MERKLE_NODE_MISSING: (500, "a tree node the log needs is missing (alarm)"),
    E.BROKER_UNREACHABLE: (None, "the broker could not be reached"),
    E.NO_IDENTITY: (None, "the command needs --as HANDLE"),
    E.NO_PASSPHRASE: (None, "no passphrase given (DRL_PASSPHRASE or prompt)"),
    E.WRONG_PASSPHRASE: (None, "the passphrase does not open the key file"),
    E.BAD_HANDLE: (
        None,
        "a handle is 1-63 of a-z, 0-9, ., - or _ (starting with a letter or digit)",
    ),
    E.HANDLE_TAKEN: (None, "a key with this handle exists"),
    E.BAD_KEY_FILE: (None, "a key file that cannot be read"),
    E.KEY_NOT_FOUND: (None, "no key file for this handle"),
    E.BAD_ARGUMENTS: (None, "command-line arguments that do not fit together"),
    E.BAD_SCHEMA: (None, "a Table Schema that cannot be used"),
    E.QUALITY_CHECK_FAILED: (None, "the file does not satisfy its schema"),
    E.CHAIN_FILE_MISSING: (None, "no chain at the broker's home"),
    E.RESET_REFUSED: (None, "the embedded chain cannot be reset"),
    E.OUTPUT_EXISTS: (None, "the output file exists (--force replaces it)"),
    E.CHECKPOINT_MALFORMED: (None, "a signed checkpoint that does not parse strictly"),
    E.CHECKPOINT_BAD_SIGNATURE: (None, "the checkpoint's signature is not its key name's"),
    E.CHECKPOINT_WRONG_ORIGIN: (None, "the checkpoint names another log than the one pinned"),
    E.CHECKPOINT_NOT_BROKER: (None, "the checkpoint's signer holds no BROKER role on chain"),
    E.LOG_INCONSISTENT: (None, "two signed heads that no append-only log can both have"),
    E.RECORD_MALFORMED: (None, "a log record that is not a canonical leaf"),
    E.RECORD_MISSING: (None, "the log served fewer records than its signed head holds"),
    E.RECORD_OUT_OF_ORDER: (None, "a log record served at another position than its own"),
    E.RECORD_MISMATCH: (None, "the records served do not make the signed head"),
    E.RECORD_NOT_INCLUDED: (None, "no valid proof that the record is in the signed head"),
    E.ANCHOR_MISMATCH: (None, "a head anchored on chain differs from the log's root"),
    E.CHAIN_EVENT_UNMATCHED: (None, "a chain event that no signed log record explains"),
    E.RECORD_UNCONFIRMED: (None, "a signed log record whose chain event is missing"),
    E.CREDIT_QUALITY_MISMATCH: (
        None,
        "credits minted with a quality score the log's signed records do not give",
    ),
    E.DATABASE_DRIVER_MISSING: (None, "the database URL needs a driver that is not installed"),
    E.DATABASE_UNAVAILABLE: (503, "the broker's database is not reachable"),
    E.BLOB_STORE_UNAVAILABLE: (503, "the broker's ciphertext store is not reachable"),
    E.CHAIN_REFUSED: (503, "the chain node refused the transaction for now; try again"),
    E.DEPLOYMENT_MISMATCH: (None, "a replica's deployment or key differs from the database's"),
    E.ANCHOR_LEADER_UNAVAILABLE: (503, "no anchoring leader answered in time; try again"),
    E.BROKER_KEY_UNFUNDED: (None, "the broker key holds too little ether to deploy"),
    E.DATA_FORMAT_UNSUPPORTED: (None, "a data file frictionless cannot read as a table here"),
    E.LABEL_UNKNOWN: (422, "a theme, frequency or label outside the controlled vocabularies"),
    E.LABEL_RULE_BROKEN: (
        422,
        "labels that break a rule: personal data is never PUBLIC; sensitive themes need SENSITIVE",
    ),
    E.REQUEST_FORM_INVALID: (
        422,
        "a request form field outside its list or limits (category, legal basis, retention, "
        "location)",
    ),
    E.ISSUE_NOT_FOUND: (404, "no such quality issue"),
    E.ISSUE_ANSWERED: (409, "the owner already answered this quality issue"),
    E.ANSWER_MISMATCH: (422, "the signed answer names another issue"),
    E.NOT_A_LATER_VERSION: (422, "fixedIn names no later version of the issue's dataset"),
    E.QUALITY_SCORE_MISMATCH: (
        None,
        "the broker's quality score differs from the one recomputed from the verified log",
    ),
    E.CONSOLE_ASSETS_MISSING: (
        None,
        "the console's bundled cytoscape.js is missing (scripts/bootstrap copies it from npm)",
    ),
    E.RULES_INVALID: (
        None,
        "an early-warning rules file that cannot be used (unknown rule or key, wrong type, "
        "negative threshold)",
    ),
}


def status_for(code: str) -> int | None:
    """HTTP status of a known code (``None`` if the code is not in the table)."""
    try:
        return ERRORS[ErrorCode(code)][0]
    except ValueError:
        return None

"""One settings object, read from the environment (``DRL_*``) or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where state lives and how to reach the chain."""

    model_config = SettingsConfigDict(env_prefix="DRL_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("~/.drl"), description="root of local state")
    # Both URLs may hold credentials (or an API key in the path): kept out of repr().
    chain_url: str | None = Field(
        default=None,
        description="JSON-RPC URL of an EVM node; unset means the embedded chain",
        repr=False,
    )
    passphrase: SecretStr | None = Field(
        default=None, description="unlocks keystores without a prompt"
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means SQLite under the broker directory",
        repr=False,
    )
    max_upload_bytes: int = Field(default=8 * 1024**3, ge=1)
    # -- hostile and slow clients (each replica's own limits; docs/threat-model.md) ------------
    transfer_idle_seconds: float = Field(
        default=30.0, gt=0, description="an upload or download that moves no byte this long ends"
    )
    transfer_min_bytes_per_second: int = Field(
        default=16 * 1024, ge=0, description="slower transfers end once the grace period is over"
    )
    transfer_grace_seconds: float = Field(
        default=30.0, ge=0, description="how long a transfer may run before its rate counts"
    )
    transfers_per_member: int = Field(
        default=4, ge=1, description="uploads and downloads one member may run at once"
    )
    transfers_total: int = Field(
        default=32, ge=1, description="uploads and downloads the replica runs at once"
    )
    writes_per_second: float = Field(
        default=50.0, gt=0, description="signed writes a member may send per second, sustained"
    )
    write_burst: int = Field(default=100, ge=1, description="signed writes a member may burst")
    anchor_every_records: int = Field(default=100, ge=1)
    anchor_every_seconds: float = Field(default=30.0, gt=0)
    credit_epoch_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    credit_first: int = Field(default=6, ge=1, description="first delivery to a consumer")
    credit_repeat: int = Field(default=2, ge=0, description="later deliveries, same consumer")
    credit_pair_cap: int = Field(default=12, ge=1, description="per owner, consumer and epoch")
    credit_owner_cap: int = Field(default=600, ge=1, description="per owner and epoch")
    admin_address: str | None = Field(
        default=None,
        description="the operator's ADMIN address (its key may live off this host)",
    )
    admin_key: Path | None = Field(
        default=None, description="the ADMIN keystore, for `drl admin` (default HOME/admin/)"
    )
    warning_rules: Path | None = Field(
        default=None,
        description="the early-warning rules file for `drl warnings` (default: the packaged rules)",
    )

    # -- several replicas (docs/deploy.md) --------------------------------------------------
    broker_key: Path | None = Field(
        default=None,
        description="the BROKER keystore (default HOME/broker/broker.key.json); replicas share it",
    )
    blob_store: str | None = Field(
        default=None,
        description="where ciphertext lives: a directory (a shared volume for replicas) or "
        "s3://bucket[/prefix] (credentials from the AWS_* environment); default HOME/broker/blobs",
        repr=False,
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="an S3-compatible endpoint (MinIO, Ceph, ...); unset means AWS",
        repr=False,
    )
    s3_region: str | None = Field(default=None, description="the object store's region")
    replica_id: str | None = Field(
        default=None, description="this replica's name in leases and health (default host-pid)"
    )
    anchor_lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="the anchoring leader's lease; a dead leader is replaced within it",
    )
    db_pool_size: int = Field(
        default=40, ge=1, description="PostgreSQL connections kept per replica (request threads)"
    )

    @property
    def admin_key_path(self) -> Path:
        """Where `drl admin` finds the ADMIN keystore (and a first start creates one)."""
        return (self.admin_key or self.home / "admin" / "admin.key.json").expanduser()

    @property
    def broker_dir(self) -> Path:
        return self.home.expanduser() / "broker"

    @property
    def members_dir(self) -> Path:
        return self.home.expanduser() / "members"

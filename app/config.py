"""Service settings, read from environment variables prefixed with SFTDESK_."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-secret-key"})
DEVELOPMENT_SECRET = "dev-secret-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SFTDESK_", extra="ignore")

    environment: str = Field("development", description="development, test or production")
    data_dir: Path = Field(Path("data"), description="SQLite file, snapshots and models live here")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in data_dir"
    )
    # Connections each process keeps open to PostgreSQL. A request beyond them opens a connection
    # that is closed afterwards, and each new connection starts a PostgreSQL backend process.
    # With 32 paced annotators (bench/annotators.py, 2 cores) the p99 was near 50 ms with 10 kept
    # and near 27 ms with 32 kept.
    database_pool_size: int = Field(32, ge=1, le=500, description="PostgreSQL connections kept per process")
    secret_key: str = DEVELOPMENT_SECRET
    session_max_age_s: int = 14 * 24 * 3600
    secure_cookies: bool = False

    max_text_chars: int = Field(100_000, ge=1, description="maximum characters of one message accepted on import")
    max_upload_bytes: int = Field(2 * 1024**3, ge=1, description="maximum size of one import body, in bytes")
    # Larger batches import faster (about 16,500 rows/s at 2,000 and 21,300 at 10,000 on SQLite,
    # bench/import_export.py on 2 cores) but hold the SQLite write lock longer: an estimated 0.3 to
    # 0.5 s per batch, during which annotators wait.
    import_batch_rows: int = Field(10_000, ge=1, le=100_000, description="rows written per transaction")
    default_page_size: int = Field(50, ge=1, le=500)
    max_page_size: int = Field(500, ge=1)

    lease_s: int = Field(30 * 60, ge=10, description="annotation lease length")
    job_lease_s: int = Field(60, ge=5, description="a worker must heartbeat within this time")
    job_max_attempts: int = Field(3, ge=1)
    worker_poll_s: float = Field(1.0, gt=0)
    suggest_endpoint_url: str | None = Field(
        None, description="OpenAI-compatible base URL that suggestion jobs may call"
    )
    suggest_endpoint_api_key: str | None = Field(
        None, description="bearer token sent to suggest_endpoint_url, if it needs one"
    )

    @model_validator(mode="after")
    def _reject_placeholder_secret(self) -> "Settings":
        if self.environment not in ("development", "test") and self.secret_key in PLACEHOLDER_SECRETS:
            raise ValueError(
                "SFTDESK_SECRET_KEY is missing or a placeholder, which is only allowed when "
                "SFTDESK_ENVIRONMENT is development or test. Set it to a long random value, "
                "for example the output of: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sftdesk.sqlite3').resolve()}"

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def model_dir(self) -> Path:
        return self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    return Settings()

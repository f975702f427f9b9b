"""Settings: the only place that reads environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'var' / 'clustermatch.db'}"
    data_dir: Path = PROJECT_ROOT / "data"
    model_dir: Path = PROJECT_ROOT / "var" / "models"

    max_body_bytes: int = 1024 * 1024
    # A request body not received in full within this many seconds is answered 408 (a client that
    # sends less than its Content-Length would otherwise hold the connection open for good).
    body_timeout_seconds: float = Field(30.0, gt=0)
    # PostgreSQL: a statement of the service that runs or waits on a lock longer is cancelled (503);
    # 0 turns it off.
    db_statement_timeout_seconds: float = Field(15.0, ge=0, allow_inf_nan=False)
    # A match whose assessment is not taken up for committing within this many seconds (SQLite:
    # another process holds the write lock) is answered 503, and nothing of it is stored.
    db_write_wait_seconds: float = Field(30.0, gt=0, allow_inf_nan=False)
    batch_max_items: int = 1000
    # Share of the classifier probability in a hybrid score; the rest is the rule score.
    hybrid_classifier_weight: float = Field(0.5, ge=0.0, le=1.0)
    robustness_samples: int = Field(1000, ge=1)
    robustness_concentration: float = Field(50.0, gt=0, allow_inf_nan=False)
    # How long a round of single matches may wait for the matches it expects before it is analysed
    # (app/services/rounds.py); 0: a round closes at the end of its event-loop turn.
    match_round_wait_ms: float = Field(3.0, ge=0, le=100, allow_inf_nan=False)

    require_api_keys: bool = False
    rate_limit_per_minute: int = 600
    cors_origins: list[str] = []
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        # The two databases the service is built and tested for; another URL would fail at the first
        # connection, deep in the driver, instead of here with its name.
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        return url


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""``RuntimeConfig``: every setting, each mirrored by a ``GRAPH_RUNTIME_*`` environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["RuntimeConfig"]


class RuntimeConfig(BaseSettings):
    """Settings of a runtime (and of the server around it).

    Every field reads ``GRAPH_RUNTIME_<NAME>`` from the environment; CLI flags override both.
    """

    model_config = SettingsConfigDict(env_prefix="GRAPH_RUNTIME_", extra="ignore")

    db: Path = Field(default=Path("graph_runtime.db"), description="SQLite database file.")
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the server listens on.")
    workflows: Path | None = Field(default=None, description="Folder of *.json workflows to load.")
    max_concurrent_runs: int = Field(default=16, ge=1, le=10_000, description="Runs at once.")
    recovery: Literal["resume", "mark"] = Field(
        default="resume", description="What start-up does with runs a dead process left running."
    )
    max_run_attempts: int = Field(
        default=3,
        ge=1,
        description="Processes a run may take down before start-up fails it instead of resuming.",
    )
    busy_timeout_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a write waits for another connection's database lock before it "
        "is refused (the run then waits for the database and resumes from its checkpoint).",
    )
    storage_retry_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Longest pause between checks while the database refuses writes.",
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0, description="SSE keep-alive period.")
    sse_queue_size: int = Field(default=1000, ge=10, description="Events a slow client may lag.")
    max_body_bytes: int = Field(default=2_000_000, ge=1024, description="Request body cap.")
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, description="Drain time on stop.")
    checkpointer: Literal["sqlite", "langgraph-sqlite"] = Field(
        default="sqlite", description="Checkpointer implementation."
    )
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = Field(
        default="NORMAL",
        description="PRAGMA synchronous of the database writer: NORMAL survives a killed "
        "process (WAL), FULL a power loss too, at about twice the cost per step.",
    )
    tools: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Tools to register: comma-separated `module:attribute` paths of a tool, "
        "a list of tools or a {name: tool} mapping (e.g. examples.support_tools:TOOLS).",
    )
    http_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (or `*.suffix` patterns) that http nodes may call although they "
        "resolve to private or loopback addresses: intranet APIs. Comma-separated. Cloud "
        "metadata addresses stay refused.",
    )
    http_only_allow_hosts: bool = Field(
        default=False,
        description="Refuse every host that is not in http_allow_hosts (an egress allow-list).",
    )

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("tools", "http_allow_hosts", mode="before")
    @classmethod
    def _split_tools(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

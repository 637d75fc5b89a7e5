"""Configuration, built once per entry point from the environment and passed in.

Every entry point (the CLI, ``create_app()``, the worker's ``main()``) calls
:meth:`Settings.from_env` once; nothing below reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import BadInput


def _bool(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Settings:
    """All settings, with their environment variable names (``AGGLO_`` + upper-case field name)."""

    database_url: str = "sqlite:///agglo.db"
    demo_password: str = "agglo-demo"  # noqa: S105 - the documented password of the demo data only
    secret_key: str = ""
    # argon2id cost; the defaults are OWASP's; tests lower them.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 1
    script_time_limit: float = 1.0
    base_url: str = "http://127.0.0.1:5000"
    # Outgoing mail (deadline reminders).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_tls: str = "none"  # none | starttls | ssl
    smtp_user: str = ""
    smtp_password: str = ""
    mail_from: str = "agglo@localhost"
    # Reminders
    quiet_hours_start: int = 20  # local hour (Asia/Yekaterinburg) when reminders stop
    quiet_hours_end: int = 8  # local hour when they resume
    # Worker
    worker_tick_seconds: float = 1.0
    worker_batch_size: int = 500
    worker_lease_seconds: float = 60.0
    # Live workflows kept per process between commands (0: deserialize every time).
    runtime_cache_size: int = 1000
    # Web
    max_upload_bytes: int = 10 * 1024 * 1024
    session_cookie_secure: bool = False
    login_rate_limit_per_minute: int = 10
    trusted_proxies: int = 0  # how many reverse proxies in front set X-Forwarded-* (0: trust none)
    # Webhooks
    webhook_allow_hosts: str = ""
    webhook_timeout_seconds: float = 5.0
    webhook_retry_horizon_seconds: float = 3 * 24 * 3600
    webhook_disable_after_failures: int = 50

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Read ``AGGLO_*`` variables; raise :class:`BadInput` naming a malformed one."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"AGGLO_{f.name.upper()}"
            if name not in environ:
                continue
            raw = environ[name]
            default = f.default
            try:
                if isinstance(default, bool):
                    values[f.name] = _bool(raw)
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise BadInput(f"environment variable {name}={raw!r} is malformed: {exc}", field=name) from exc
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

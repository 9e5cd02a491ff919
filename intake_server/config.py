"""Server configuration: one TOML file, every setting with a safe default.

`intake-server init` writes a commented copy of CONFIG_TEMPLATE; docs/server.md
documents each setting (a test checks that every field of Config is documented
there). Parsing is strict: an unknown section or key, or a value of the wrong
type, is an error at start-up rather than a silently ignored typo in a limit.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_TEMPLATE", "FREE_SPACE_CHECK_BYTES", "Config", "ConfigError", "SETTINGS"]

MiB = 1024 * 1024
GiB = 1024 * MiB
# An upload reads the free space again after every this many bytes of ciphertext
# (storage.pipeline). Between two readings, each upload in flight can write that
# much that no check saw, beyond what it reserved: the floor must cover one such
# stretch per upload slot.
FREE_SPACE_CHECK_BYTES = 8 * MiB


class ConfigError(Exception):
    """The configuration file is missing, malformed or out of bounds."""


@dataclasses.dataclass(frozen=True)
class Config:
    # [server]
    # The source app only ever listens on the loopback interface; Tor forwards
    # the onion service to it. There is deliberately no "host" setting.
    port: int = 8080
    # [staff] The staff app (transfer machines, behind its own onion with client
    # authorization) on a second loopback port; retention of unacknowledged data.
    staff_port: int = 8081
    retention_days: int = 30
    # [paths] (relative paths are relative to the config file's directory)
    data_dir: Path = Path("data")
    keyring: Path = Path("keyring.json")
    # [desks]
    default_desk: str = ""
    # [limits]
    max_field_bytes: int = 32 * 1024
    max_files: int = 20
    max_file_bytes: int = 500 * MiB
    max_submission_bytes: int = 500 * MiB
    max_concurrent_uploads: int = 8
    disk_quota_bytes: int = 50 * GiB
    min_free_bytes: int = 2 * GiB
    read_timeout_seconds: float = 120.0
    max_concurrent_derivations: int = 2
    codename_reserve: int = 2
    max_concurrent_logins: int = 1
    max_waiting_logins: int = 4
    logins_per_minute: int = 30
    login_burst: int = 10

    def __post_init__(self) -> None:
        for name in ("max_field_bytes", "max_files", "max_file_bytes",
                     "max_submission_bytes", "max_concurrent_uploads",
                     "max_concurrent_derivations", "max_concurrent_logins",
                     "logins_per_minute", "login_burst"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 0 <= self.codename_reserve <= 64:
            raise ConfigError("codename_reserve must be between 0 and 64")
        if not 0 <= self.max_waiting_logins <= 1000:
            raise ConfigError("max_waiting_logins must be between 0 and 1000")
        for name in ("disk_quota_bytes", "min_free_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        for name in ("port", "staff_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"{name} must be between 1 and 65535")
        if self.staff_port == self.port:
            raise ConfigError("staff_port must differ from port: the two apps are separate")
        if not 1 <= self.retention_days <= 3650:
            raise ConfigError("retention_days must be between 1 and 3650")
        if self.read_timeout_seconds <= 0:
            raise ConfigError("read_timeout_seconds must be positive")
        floor = self.max_concurrent_uploads * FREE_SPACE_CHECK_BYTES
        if 0 < self.min_free_bytes < floor:
            # Refused rather than raised quietly: the operator chose this number.
            raise ConfigError(
                f"min_free_bytes must be 0 (no floor) or at least {floor} "
                f"({FREE_SPACE_CHECK_BYTES // MiB} MiB per upload slot, "
                f"max_concurrent_uploads = {self.max_concurrent_uploads})")

    @property
    def incoming_dir(self) -> Path:
        return self.data_dir / "incoming"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "intake.db"

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"no config file at {path}") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from e
        values: dict[str, Any] = {}
        for section, body in raw.items():
            if section not in SETTINGS or not isinstance(body, dict):
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key, value in body.items():
                if key not in SETTINGS[section]:
                    raise ConfigError(f"{path}: unknown setting {section}.{key}")
                values[key] = _coerce(key, value, path)
        base = path.resolve().parent
        for key in ("data_dir", "keyring"):
            if key in values and not values[key].is_absolute():
                values[key] = base / values[key]
            elif key not in values:
                values[key] = base / getattr(cls, key)
        return cls(**values)


# section -> setting names, in the order the template and the docs list them.
SETTINGS: dict[str, tuple[str, ...]] = {
    "server": ("port",),
    "staff": ("staff_port", "retention_days"),
    "paths": ("data_dir", "keyring"),
    "desks": ("default_desk",),
    "limits": ("max_field_bytes", "max_files", "max_file_bytes", "max_submission_bytes",
               "max_concurrent_uploads", "disk_quota_bytes", "min_free_bytes",
               "read_timeout_seconds", "max_concurrent_derivations", "codename_reserve",
               "max_concurrent_logins", "max_waiting_logins", "logins_per_minute",
               "login_burst"),
}


def _coerce(key: str, value: Any, path: Path) -> Any:
    field = {f.name: f for f in dataclasses.fields(Config)}[key]
    kind = field.type
    if kind == "Path":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {key} must be a non-empty string")
        return Path(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a string")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: {key} must be a number")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}: {key} must be an integer")
    return value


CONFIG_TEMPLATE = """\
# Amana intake server configuration (TOML). Written by `intake-server init`.
# Every setting is optional: delete a line to get the default shown.
# docs/server.md explains each one.

[server]
# TCP port on 127.0.0.1. The server never listens on another interface: Tor
# (see deploy/) forwards the source onion service to this port.
port = {port}

[staff]
# TCP port on 127.0.0.1 of the staff app, which transfer machines use to fetch
# ciphertext and deliver acknowledgements and replies. Tor publishes it as a
# second onion service that only authorised clients can reach (deploy/).
staff_port = {staff_port}
# Days after which a report no desk has acknowledged, and a reply, are deleted
# from this server (counted in whole UTC days; run at start-up and daily).
retention_days = 30

[paths]
# Relative paths are relative to this file's directory.
# data_dir holds intake.db (metadata), store/ (age ciphertext) and incoming/
# (uploads in progress; emptied at every start).
data_dir = "data"
# The coalition keyring: desks, their age recipients and fingerprints.
keyring = "keyring.json"

[desks]
# Desk preselected on the form. Empty: the first desk in the keyring.
default_desk = "{default_desk}"

[limits]
# Largest single text field, in bytes of UTF-8.
max_field_bytes = 32768
# Most attachments in one submission.
max_files = 20
# Largest single attachment, in bytes (500 MiB).
max_file_bytes = 524288000
# Largest whole submission (all fields and files), in bytes (500 MiB).
max_submission_bytes = 524288000
# Uploads processed at once; more get "429 busy, try again".
max_concurrent_uploads = 8
# Total ciphertext kept in store/ before refusing with 503 (50 GiB).
disk_quota_bytes = 53687091200
# Free space left on the data disk below which uploads are refused (2 GiB).
min_free_bytes = 2147483648
# A client that sends nothing for this many seconds mid-upload is dropped.
# Tor circuits are slow: keep it generous.
read_timeout_seconds = 120
# Codename key derivations (Argon2id, ~1 s of CPU and 256 MiB each) at once.
max_concurrent_derivations = 2
# New codenames derived ahead of time and kept in memory only (lost at restart),
# so that a source sees theirs at once. 0 derives each on demand.
codename_reserve = 2
# Logins derived at once (Argon2id, ~1 s of CPU and 256 MiB each), in worker
# processes of their own: a flood of logins never takes the submissions' workers.
max_concurrent_logins = 1
# Logins allowed to wait for a worker; more are answered "busy, try later" at once.
max_waiting_logins = 4
# Login attempts the whole server accepts per minute, and in one burst. Every Tor
# client arrives from 127.0.0.1, so the limit is global; past it: "try later".
logins_per_minute = 30
login_burst = 10
"""

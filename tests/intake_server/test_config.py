"""Config: defaults are safe, the template parses to the defaults, typos are errors."""

from __future__ import annotations

import dataclasses

import pytest

from intake_server.config import CONFIG_TEMPLATE, SETTINGS, Config, ConfigError


def test_template_gives_the_defaults(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG_TEMPLATE.format(port=8080, staff_port=8081, default_desk=""))
    cfg = Config.load(path)
    default = Config()
    for f in dataclasses.fields(Config):
        if f.name in ("data_dir", "keyring"):
            continue
        assert getattr(cfg, f.name) == getattr(default, f.name), f.name
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.keyring == tmp_path / "keyring.json"
    assert cfg.max_submission_bytes == 500 * 1024 * 1024


def test_every_field_is_a_setting() -> None:
    listed = [k for keys in SETTINGS.values() for k in keys]
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(Config))


@pytest.mark.parametrize("text", [
    "[limits]\nmax_file = 3\n",              # typo
    "[nope]\nx = 1\n",                        # unknown section
    "[limits]\nmax_files = \"3\"\n",          # wrong type
    "[limits]\nmax_files = true\n",           # bool is not an int
    "[limits]\nmax_files = 0\n",              # out of bounds
    "[server]\nport = 70000\n",
    "[staff]\nstaff_port = 8080\n",         # the same port as the source app
    "[staff]\nretention_days = 0\n",
    "[server]\nhost = \"0.0.0.0\"\n",         # there is no host setting: loopback only
    "not toml at all [",
])
def test_bad_config_is_refused(tmp_path, text) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        Config.load(path)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError):
        Config.load(tmp_path / "absent.toml")


@pytest.mark.parametrize(("uploads", "floor", "ok"), [
    (8, 2 * 1024**3, True),        # the defaults
    (8, 0, True),                  # no floor: only the disk's end stops uploads
    (8, 64 * 1024**2, True),       # 8 MiB per slot, exactly
    (8, 64 * 1024**2 - 1, False),  # a byte short
    (64, 256 * 1024**2, False),    # what bench/upload.py used to configure
])
def test_a_floor_too_small_for_the_upload_slots_is_refused(tmp_path, uploads: int,
                                                           floor: int, ok: bool) -> None:
    # Each upload reads the free space again only every 8 MiB it writes: a floor
    # smaller than that per slot lets concurrent uploads reach a full disk between two
    # readings. Refused at start-up (Config.load), not quietly raised.
    path = tmp_path / "intake-server.toml"
    path.write_text(f"[limits]\nmax_concurrent_uploads = {uploads}\n"
                    f"min_free_bytes = {floor}\n")
    if ok:
        assert Config.load(path).min_free_bytes == floor
    else:
        with pytest.raises(ConfigError, match="min_free_bytes must be 0 .no floor. or at least"):
            Config.load(path)

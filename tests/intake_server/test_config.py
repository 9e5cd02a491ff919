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

"""The air-gapped install: `make wheelhouse` output installs with no index at all.

The wheelhouse is built beforehand (`make wheelhouse`, which needs the package index;
.ci/run runs it before the tests), because the tests themselves make no connection.
Here a fresh venv installs from that folder alone, with the hashes of its
requirements.txt required, as the guide tells a desk to do on its offline machine, and
the client's command runs from it. pip's own configuration
and PIP_* variables are set aside so that no other wheel source can fill a gap.
The wheelhouse is ./wheelhouse, or the folder named by AMANA_WHEELHOUSE.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.deploy import ROOT


def _wheelhouse() -> Path:
    path = Path(os.environ.get("AMANA_WHEELHOUSE", ROOT / "wheelhouse"))
    if not any(path.glob("amana-*.whl")):
        message = f"no wheelhouse at {path}: run `make wheelhouse` first"
        if os.environ.get("REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail(f"{message} (.ci/run must build it before the tests)")
        pytest.skip(message)
    return path


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def offline_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheelhouse = _wheelhouse()
    sums = wheelhouse / "SHA256SUMS"
    if sums.exists():
        # The guide has the desk check these before installing; so does the test.
        for line in sums.read_text().splitlines():
            digest, name = line.split(maxsplit=1)
            data = (wheelhouse / name.lstrip("*")).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, name
    venv = tmp_path_factory.mktemp("offline") / "venv"
    env = _clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env,
                   timeout=120)
    requirements = wheelhouse / "requirements.txt"
    assert requirements.exists(), f"{requirements} is missing: rebuild with `make wheelhouse`"
    # As deploy/README.md installs it: only these wheels, each with its recorded hash.
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-index", "--require-hashes",
         "--find-links", str(wheelhouse), "-r", str(requirements)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def test_intake_keys_runs_from_the_wheelhouse(offline_venv: Path) -> None:
    result = subprocess.run([str(offline_venv / "bin" / "intake-keys"), "--help"],
                            capture_output=True, text=True, env=_clean_env(), timeout=60,
                            check=False, cwd=offline_venv)
    assert result.returncode == 0, result.stderr
    assert "intake-keys" in result.stdout


def test_journalist_client_runs_from_the_wheelhouse(offline_venv: Path) -> None:
    python = offline_venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; "
         "print(u.find_spec('journalist_client.cli') is not None)"],
        capture_output=True, text=True, env=_clean_env(), timeout=60, check=True,
        cwd=offline_venv,
    )
    assert probe.stdout.strip() == "True", "journalist_client.cli is missing from the wheel"
    result = subprocess.run([str(offline_venv / "bin" / "journalist-client"), "--help"],
                            capture_output=True, text=True, env=_clean_env(), timeout=60,
                            check=False, cwd=offline_venv)
    assert result.returncode == 0, result.stderr
    assert "journalist-client" in result.stdout


def test_journalist_transfer_runs_from_the_wheelhouse(offline_venv: Path) -> None:
    # The transfer machine installs the same wheelhouse (deploy/README.md, section 5).
    result = subprocess.run([str(offline_venv / "bin" / "journalist-transfer"), "--help"],
                            capture_output=True, text=True, env=_clean_env(), timeout=60,
                            check=False, cwd=offline_venv)
    assert result.returncode == 0, result.stderr
    assert "fetch" in result.stdout


def test_the_wheel_carries_its_data_files(offline_venv: Path) -> None:
    # Templates, catalogues, CSS and the codename word list are data, not modules: a
    # packaging slip would leave them out of the wheel and only fail at run time.
    check = (
        "import importlib.resources as r\n"
        "server = r.files('intake_server')\n"
        "for name in ('templates/submit.html', 'templates/base.html', 'static/style.css',\n"
        "             'locales/ar/LC_MESSAGES/messages.po',\n"
        "             'locales/fr/LC_MESSAGES/messages.po'):\n"
        "    assert server.joinpath(name).is_file(), name\n"
        "from keys.codename import generate_codename\n"
        "print(len(generate_codename().split()))\n"
    )
    result = subprocess.run([str(offline_venv / "bin" / "python"), "-c", check],
                            capture_output=True, text=True, env=_clean_env(), timeout=60,
                            check=False, cwd=offline_venv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"

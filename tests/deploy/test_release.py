"""`make release` (docs/operations.md, "Releases"): the tag is the version in
pyproject.toml, made only from a committed tree whose CHANGELOG.md has that version's
section, and never twice. Run in a throwaway git repository holding the project's
Makefile, pyproject.toml and CHANGELOG.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.deploy import ROOT

VERSION = "99.0.0"


@pytest.fixture
def repo(tmp_path: Path, system_tool: Callable[[str], str]) -> Path:
    system_tool("git")
    for name in ("Makefile", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    # A version no real release has, so the check runs whatever the project's is.
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(
        re.sub(r'^version = "[^"]+"$', f'version = "{VERSION}"', pyproject, count=1,
               flags=re.M))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "release test")
    return tmp_path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    return env


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True, env=_env(), timeout=60).stdout


def _release(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "release", "TAG_SIGN=-a"],
                          cwd=repo, capture_output=True, text=True, env=_env(), timeout=60,
                          check=False)


def test_release_needs_the_changelog_section_then_tags_once(repo: Path) -> None:
    version = VERSION
    changelog = repo / "CHANGELOG.md"
    refused = _release(repo)
    assert refused.returncode != 0
    assert f"CHANGELOG.md has no '## [{version}]' section" in refused.stderr

    changelog.write_text(changelog.read_text().replace(
        "## [Unreleased]", f"## [Unreleased]\n\n## [{version}] - 2026-12-04", 1))
    dirty = _release(repo)
    assert dirty.returncode != 0
    assert "commit your changes first" in dirty.stderr

    _git(repo, "commit", "-qam", f"Release {version}")
    made = _release(repo)
    assert made.returncode == 0, made.stderr
    assert _git(repo, "tag", "--list").split() == [f"v{version}"]
    assert _git(repo, "cat-file", "-t", f"v{version}").strip() == "tag"  # annotated

    again = _release(repo)
    assert again.returncode != 0
    assert f"v{version} is already tagged" in again.stderr

"""The reply draft leaves nothing behind (issue 13, item 10).

Editors write side files: swap, backup and undo files and auto-saves beside the file
they edit, temporary files in $TMPDIR, histories in $HOME. A fake editor writes one of
each kind, as `journalist-client reply` starts it, and afterwards none of them exists
anywhere: not beside the draft, not in the caller's $TMPDIR, $HOME or working directory.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from journalist_client import draft

from .conftest import Run

FAKE_EDITOR = r"""
import json, os, sys
from pathlib import Path
draft = Path(sys.argv[-1])
here = draft.parent
written = [
    here / ".draft.txt.swp", here / "draft.txt~", here / "#draft.txt#",   # vim, emacs
    here / "draft.txt.save", here / ".draft.txt.un~",                       # nano, vim undo
    Path(os.environ["TMPDIR"]) / "editor-temp",
    Path(os.environ["HOME"]) / ".viminfo",
    Path(os.environ["HOME"]) / ".emacs.d" / "auto-save-list" / ".saves-1-host~",
    Path(os.getcwd()) / ".cwd-side-file",
]
for p in written:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("the secret reply, half written")
# A link to a file outside: removed, and its target left alone.
(here / "link").symlink_to(sys.argv[1])
draft.write_text("the secret reply, finished")
record = {"argv": sys.argv[2:], "written": [str(p) for p in written], "draft": str(draft),
          "mode": oct(os.stat(here).st_mode & 0o7777), "cwd": os.getcwd()}
Path(sys.argv[1]).with_suffix(".json").write_text(json.dumps(record))
"""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The caller's own TMPDIR, HOME and working directory, empty."""
    dirs = {name: tmp_path / name for name in ("tmp", "home", "cwd")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("TMPDIR", str(dirs["tmp"]))
    monkeypatch.setenv("HOME", str(dirs["home"]))
    monkeypatch.chdir(dirs["cwd"])
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    return dirs


def _fake_editor(tmp_path: Path, name: str) -> tuple[str, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / name
    script.write_text(f"#!{sys.executable}\n{FAKE_EDITOR}")
    script.chmod(0o700)
    keep = tmp_path / "keep.txt"  # the link's target: must survive untouched
    keep.write_text("not the editor's")
    return f"{script} {keep}", tmp_path / "keep.json"


@pytest.mark.skipif(not draft.SHM.is_dir(), reason="needs /dev/shm")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o277])
def test_no_side_file_survives_the_editor(run: Run, imported: dict[str, str], tmp_path: Path,
                                          outside: dict[str, Path], umask: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    editor, record_path = _fake_editor(tmp_path, "editor")
    monkeypatch.setenv("EDITOR", editor)
    old = os.umask(umask)
    try:
        code, _, err = run("reply", imported["a"][:8])
    finally:
        os.umask(old)
    assert code == 0, err
    record = json.loads(record_path.read_text())
    assert record["mode"] == "0o700"
    work = Path(record["draft"]).parent
    assert work.parent == draft.SHM
    assert record["cwd"] == str(work)
    assert [p for p in record["written"] if os.path.lexists(p)] == []
    assert not os.path.lexists(work)
    for d in outside.values():
        assert list(d.iterdir()) == []
    assert (tmp_path / "keep.txt").read_text() == "not the editor's"
    assert "the secret reply, finished" in run("show", imported["a"])[1]


def test_vim_is_told_to_write_no_side_files(run: Run, imported: dict[str, str],
                                            tmp_path: Path, outside: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    editor, record_path = _fake_editor(tmp_path, "vim")
    monkeypatch.setenv("EDITOR", editor)
    assert run("reply", imported["a"][:8])[0] == 0
    argv = json.loads(record_path.read_text())["argv"]
    assert argv[:3] == ["-n", "-i", "NONE"]
    assert "noundofile" in argv[4]
    assert "nobackup" in argv[4]


def test_a_failing_editor_queues_nothing_and_leaves_nothing(
        run: Run, imported: dict[str, str], tmp_path: Path, outside: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "bad-editor"
    record = tmp_path / "where"
    script.write_text(f"#!/bin/sh\necho \"$1\" > {record}\necho half > \"$1\"\n"
                      "echo swap > \"$(dirname \"$1\")/.swp\"\nexit 3\n")
    script.chmod(0o700)
    monkeypatch.setenv("EDITOR", str(script))
    code, _, err = run("reply", imported["a"][:8])
    assert code == 1
    assert "editor failed" in err
    assert not Path(record.read_text().strip()).parent.exists()
    assert "half" not in run("show", imported["a"])[1]
    assert stat.S_ISREG(script.stat().st_mode)

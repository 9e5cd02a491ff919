"""The reply draft: the one plaintext file the offline client writes, kept in RAM.

Everything else the client writes goes through keys.fs. A draft is different: it is
made for an external editor ($VISUAL, $EDITOR) to write into, so it must be an ordinary
file with a path, and what it holds is the triager's plaintext reply to a source.

An editor writes more than the file it edits: vim a swap file (``.draft.txt.swp``), a
backup (``draft.txt~``) and an undo file, nano ``draft.txt.save`` when killed, emacs an
auto-save file (``#draft.txt#``) and ``~/.emacs.d/auto-save-list/``; some write to
$TMPDIR, and histories (``~/.viminfo``, nano's search history) go to the home
directory. Each of these holds some or all of the reply. So the draft lives in a
private (0700) directory of its own in /dev/shm (a tmpfs: RAM), and the editor is
started with that directory as its working directory, its $TMPDIR and its $HOME (with
the XDG directories under it): every side file an editor writes beside the draft, in
its temporary directory or in its home lands in RAM, and the whole directory is
overwritten with zeros and removed when the editor exits, whatever it left there.
vim, vi and nvim are also told not to write swap, backup, undo and viminfo files at all
(an absolute ``directory`` or ``undodir`` in a system-wide vimrc would otherwise still
reach the disk).

The price: the editor does not read the triager's own configuration (~/.vimrc,
~/.emacs, ~/.nanorc), which lives in the real home directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from keys import fs

__all__ = ["MAX_DRAFT_BYTES", "edit_draft", "ram_workspace"]

SHM: Final = Path("/dev/shm")  # noqa: S108 - RAM-backed by design, see above
DRAFT_NAME: Final = "draft.txt"
#: More than a reply may hold (replies.MAX_REPLY_CHARS characters of UTF-8, four bytes each).
MAX_DRAFT_BYTES: Final = 4 * 64 * 1024 + 1

# Editors whose side files can be switched off on the command line: vim's swap (-n),
# viminfo (-i NONE), and backup, write-backup and undo files (after the vimrc, -c).
_VIM: Final = ("-n", "-i", "NONE", "-c", "set nobackup nowritebackup noundofile noswapfile")
_NO_SIDE_FILES: Final = {"vi": _VIM, "vim": _VIM, "nvim": _VIM, "gvim": _VIM}


@contextlib.contextmanager
def ram_workspace(prefix: str) -> Iterator[Path]:
    """A fresh private (0700) directory in /dev/shm, wiped and removed on leaving.

    Refused where there is no /dev/shm: the disk's temporary directory would keep the
    plaintext (zeroing it is not reliable on SSDs or journaling file systems).
    """
    if not SHM.is_dir():
        raise OSError(errno.ENOENT, "no RAM-backed /dev/shm for the draft; write the reply "
                      "with --file FILE (on encrypted storage) or on standard input")
    # mkdtemp creates it 0700 filtered by the umask; private_dir makes it exactly 0700.
    work = fs.private_dir(tempfile.mkdtemp(prefix=prefix, dir=SHM))
    try:
        yield work
    finally:
        _wipe(work)


def _editor_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TMPDIR", "TMP", "TEMP", "HOME"):
        env[name] = str(work)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)  # so that they default to directories under HOME
    return env


def edit_draft(editor: Sequence[str], prefix: str = "reply-") -> str:
    """Let ``editor`` (a command, as split from $EDITOR) write a draft; return its text.

    The editor runs in a RAM workspace (see the module docstring) that is wiped when it
    exits, whether it succeeded or not. ``subprocess.CalledProcessError`` if it failed;
    ``UnicodeDecodeError`` if the draft is not UTF-8; ``keys.fs.FsError`` if the editor
    replaced the draft by something other than a regular file, or made it too large.
    """
    argv = list(editor)
    if not argv:
        raise ValueError("no editor command: set $VISUAL or $EDITOR")
    options = _NO_SIDE_FILES.get(Path(argv[0]).name, ())
    with ram_workspace(prefix) as work:
        fs.create_exclusive(work, DRAFT_NAME).close()
        draft = work / DRAFT_NAME
        subprocess.run([*argv, *options, str(draft)], cwd=work,  # noqa: S603 - the user's editor
                       env=_editor_env(work), check=True)
        return fs.read_nofollow(draft, MAX_DRAFT_BYTES).decode("utf-8")


def _wipe(directory: Path) -> None:
    """Overwrite every regular file under ``directory`` with zeros, then remove it all.

    Never follows a link: a symbolic link the editor left is removed, not its target.
    """
    for root, dirs, files in os.walk(directory, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = Path(root, name)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    _zero(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(root).rmdir()


def _zero(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        zeros = bytes(min(size, 1024 * 1024))
        done = 0
        while done < size:
            done += os.write(fd, zeros[: size - done])
        os.fsync(fd)
    finally:
        os.close(fd)

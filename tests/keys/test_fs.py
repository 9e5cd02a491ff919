"""keys.fs: the one set of safe file operations every package builds on."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keys.fs import (
    DIR_MODE,
    FILE_MODE,
    AtomicWriter,
    FileExistsRefused,
    FsError,
    atomic_write_bytes,
    atomic_write_text,
    create_exclusive,
    day_timestamp,
    fsync_dir,
    is_stream_sink,
    list_names,
    lock_exclusive,
    move_durable,
    move_tree_into_place,
    open_resumable,
    open_stream_sink,
    private_dir,
    private_staging_dir,
    read_nofollow,
    read_quietly,
    remove_staging_dir,
    safe_join,
    safe_mkdir,
    safe_remove,
    safe_unlink,
    set_day,
    set_day_tree,
    write_unsynced,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- modes, whatever the umask --------------------------------------------------------


@pytest.fixture(params=[0o000, 0o022, 0o277, 0o777], ids=lambda u: f"umask{u:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Every creating function under a permissive, the usual, and restrictive umasks
    (0o277 takes the owner's write bit, 0o777 everything)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _create_everything(root: Path) -> tuple[list[Path], list[Path]]:
    """Create one of each thing keys.fs can create; (files, directories)."""
    dirs = [
        safe_mkdir(root / "plain"),
        safe_mkdir(root / "p1" / "p2" / "leaf", parents=True),
        root / "p1",
        root / "p1" / "p2",
        private_dir(root / "private"),
        private_dir(root / "q1" / "q2", parents=True),
        root / "q1",
    ]
    files = [atomic_write_bytes(root / "bytes", b"b"), atomic_write_text(root / "text", "t")]
    with AtomicWriter(root / "writer") as w:
        w.write(b"w")
    files.append(root / "writer")
    with create_exclusive(root, "exclusive") as f:
        f.write(b"e")
    files.append(root / "exclusive")
    write_unsynced(root / "unsynced", b"u")
    files.append(root / "unsynced")
    with open_resumable(root / "resumable", resume=True) as f:
        f.write(b"r")
    files.append(root / "resumable")
    fd = lock_exclusive(root / "lock")
    assert fd is not None
    os.close(fd)
    files.append(root / "lock")
    return files, dirs


def test_files_are_0600_and_directories_0700_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    files, dirs = _create_everything(tmp_path)
    os.umask(0o022)  # so that listing and reading below are not what is tested
    assert {p.name: _mode(p) for p in files} == {p.name: FILE_MODE for p in files}
    assert {p.name: _mode(p) for p in dirs} == {p.name: DIR_MODE for p in dirs}
    assert (tmp_path / "writer").read_bytes() == b"w"
    # Nothing else was left behind (no partial files).
    expected = {p.name for p in files} | {"plain", "p1", "private", "q1"}
    assert {p.name for p in tmp_path.iterdir()} == expected


# --- safe_join ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", ".hidden", "a/b", "/abs", "a..b", "a\0b", "a\n", "-rf", "_x", "é",
     "a" * 129, "a b", "a\\b"],
)  # fmt: skip
def test_safe_join_refuses(tmp_path: Path, name: str) -> None:
    with pytest.raises(FsError):
        safe_join(tmp_path, name)


def test_safe_join_accepts(tmp_path: Path) -> None:
    for name in ("abc123.age", "A-b_c.d", "a" * 128, "0"):
        assert safe_join(tmp_path, name) == tmp_path / name
    assert safe_join(str(tmp_path), "x") == tmp_path / "x"


# --- directories ----------------------------------------------------------------------


def test_safe_mkdir(tmp_path: Path) -> None:
    d = safe_mkdir(tmp_path / "d")
    assert _mode(d) == 0o700
    with pytest.raises(FileExistsRefused):
        safe_mkdir(d)
    assert isinstance(FileExistsRefused("x"), FileExistsError)
    # An existing directory (the user's own) is taken as it is.
    os.chmod(d, 0o750)  # noqa: S103 - the mode that must survive
    assert safe_mkdir(d, exist_ok=True) == d
    assert _mode(d) == 0o750
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        safe_mkdir(tmp_path / "file", exist_ok=True)
    with pytest.raises(FileNotFoundError):
        safe_mkdir(tmp_path / "missing" / "d")


def test_safe_mkdir_refuses_a_symlink_even_to_a_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.chmod(tmp_path / "real", 0o755)  # noqa: S103 - a mode to leave alone
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(NotADirectoryError, match="symbolic link"):
        safe_mkdir(tmp_path / "link", exist_ok=True)
    with pytest.raises(NotADirectoryError, match="symbolic link"):
        private_dir(tmp_path / "link")
    assert _mode(tmp_path / "real") == 0o755
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError):
        safe_mkdir(tmp_path / "dangling" / "d", parents=True)
    assert not (tmp_path / "nowhere").exists()


def test_parents_are_created_0700_and_existing_ones_left_alone(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)  # noqa: S103 - a mode to leave alone
    # A symlinked ancestor (a home directory on another disk) is used, not refused.
    (tmp_path / "real").mkdir()
    os.chmod(tmp_path / "real", 0o755)  # noqa: S103 - a mode to leave alone
    (tmp_path / "home").symlink_to(tmp_path / "real")
    leaf = safe_mkdir(tmp_path / "home" / "a" / "b", parents=True)
    assert leaf.is_dir()
    assert _mode(tmp_path / "real" / "a") == 0o700
    assert _mode(tmp_path / "real" / "a" / "b") == 0o700
    assert _mode(tmp_path / "real") == 0o755
    assert _mode(tmp_path) == 0o755


def test_private_dir_closes_an_existing_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o777)  # noqa: S103 - the mode private_dir must close
    (d / "kept").write_bytes(b"k")
    assert private_dir(d) == d
    assert _mode(d) == 0o700
    assert (d / "kept").read_bytes() == b"k"


# --- AtomicWriter and friends ---------------------------------------------------------


def test_atomic_writer_commits_with_0600(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with AtomicWriter(target) as w:
        w.write(b"data")
        assert not target.exists()
        assert w.partial_path.exists()
    assert target.read_bytes() == b"data"
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_atomic_writer_aborts_on_exception(tmp_path: Path) -> None:
    target = tmp_path / "f"

    def write_then_fail() -> None:
        with AtomicWriter(target) as w:
            w.write(b"half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_then_fail()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("write", "old", "new"),
    [(atomic_write_bytes, b"old", b"new"), (atomic_write_text, "أقدم", "جديد")],
)
def test_refuses_to_overwrite_unless_asked(
    tmp_path: Path, write: Callable[..., Path], old: str | bytes, new: str | bytes
) -> None:
    target = tmp_path / "f"
    write(target, old)
    with pytest.raises(FileExistsRefused):
        write(target, new)
    assert target.read_bytes() == (old if isinstance(old, bytes) else old.encode("utf-8"))
    assert write(target, new, overwrite=True) == target
    assert target.read_bytes() == (new if isinstance(new, bytes) else new.encode("utf-8"))


def test_race_at_commit_does_not_clobber(tmp_path: Path) -> None:
    target = tmp_path / "f"
    w = AtomicWriter(target)
    w.write(b"mine")
    target.write_bytes(b"theirs")  # appears between the check and the commit
    with pytest.raises(FileExistsRefused):
        w.commit()
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
def test_symlink_destination_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(FileExistsRefused):
        atomic_write_bytes(tmp_path / "link", b"x")
    assert victim.read_bytes() == b"keep"


def _device_node(path: Path) -> Path:
    """A private null device in a temporary directory (never the real /dev/null)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def test_overwrite_never_replaces_a_non_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    (tmp_path / "target").write_bytes(b"t")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    device = _device_node(tmp_path / "null")
    for node in (fifo, tmp_path / "dir", tmp_path / "link", device):
        with pytest.raises(FileExistsRefused, match="not a regular file"):
            atomic_write_bytes(node, b"x", overwrite=True)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo", "link", "null", "target"]


def test_stream_sinks(tmp_path: Path) -> None:
    device = _device_node(tmp_path / "null")
    assert is_stream_sink(device)
    assert not is_stream_sink(tmp_path)
    assert not is_stream_sink(tmp_path / "missing")
    (tmp_path / "f").write_bytes(b"")
    assert not is_stream_sink(tmp_path / "f")
    with open_stream_sink(device) as sink:
        sink.write(b"discarded")
    assert stat.S_ISCHR(device.lstat().st_mode)
    with pytest.raises(FileExistsRefused):
        open_stream_sink(tmp_path / "f")



# --- create_exclusive, write_unsynced -------------------------------------------------


def test_create_exclusive_never_replaces_or_follows(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"keep")
    (tmp_path / "victim").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    for name in ("taken", "link"):
        with pytest.raises(FileExistsRefused):
            create_exclusive(tmp_path, name)
    with pytest.raises(FsError):
        create_exclusive(tmp_path, "../escape")
    assert (tmp_path / "taken").read_bytes() == b"keep"
    assert (tmp_path / "victim").read_bytes() == b"keep"
    assert not (tmp_path.parent / "escape").exists()


def test_write_unsynced_truncates_but_never_follows(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_unsynced(target, b"long content")
    write_unsynced(target, b"short")
    assert target.read_bytes() == b"short"
    (tmp_path / "victim").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        write_unsynced(tmp_path / "link", b"x")
    assert (tmp_path / "victim").read_bytes() == b"keep"


def test_open_resumable_appends_or_starts_again(tmp_path: Path) -> None:
    target = tmp_path / "download.partial"
    with open_resumable(target, resume=False) as f:
        f.write(b"first ")
    with open_resumable(target, resume=True) as f:
        f.write(b"second")
    assert target.read_bytes() == b"first second"
    with open_resumable(target, resume=False) as f:
        f.write(b"again")
    assert target.read_bytes() == b"again"
    (tmp_path / "victim").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    for resume in (False, True):
        with pytest.raises(OSError, match="Too many levels of symbolic links"):
            open_resumable(tmp_path / "link", resume=resume)
    assert (tmp_path / "victim").read_bytes() == b"keep"


# --- moving and removing --------------------------------------------------------------


def test_move_durable(tmp_path: Path) -> None:
    src_dir, dst_dir = safe_mkdir(tmp_path / "src"), safe_mkdir(tmp_path / "dst")
    (src_dir / "a").write_bytes(b"a")
    assert move_durable(src_dir / "a", dst_dir, "b") == dst_dir / "b"
    assert list_names(src_dir) == []
    assert (dst_dir / "b").read_bytes() == b"a"


def test_move_durable_never_replaces_and_never_moves_a_link(tmp_path: Path) -> None:
    (tmp_path / "new").write_bytes(b"new")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "x").write_bytes(b"old")
    with pytest.raises(FileExistsRefused):
        move_durable(tmp_path / "new", tmp_path / "dst", "x")
    assert (tmp_path / "dst" / "x").read_bytes() == b"old"
    assert (tmp_path / "new").read_bytes() == b"new"
    (tmp_path / "link").symlink_to(tmp_path / "new")
    with pytest.raises(FsError, match="not a regular file"):
        move_durable(tmp_path / "link", tmp_path / "dst", "y")
    with pytest.raises(FsError):
        move_durable(tmp_path / "new", tmp_path / "dst", "../y")
    assert sorted(list_names(tmp_path / "dst")) == ["x"]


@pytest.mark.parametrize("remove", ["safe_unlink", "safe_remove"])
def test_removal(tmp_path: Path, remove: str) -> None:
    def rm(name: str) -> bool:
        if remove == "safe_unlink":
            return safe_unlink(tmp_path, name)
        return safe_remove(tmp_path / name)

    (tmp_path / "f").write_bytes(b"")
    assert rm("f") is True
    assert rm("f") is False  # missing is fine
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        rm("d")
    (tmp_path / "victim").write_bytes(b"keep")
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    assert rm("link") is True  # the link goes, its target stays
    assert (tmp_path / "victim").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "victim"]


def test_safe_unlink_refuses_a_name_that_climbs(tmp_path: Path) -> None:
    (tmp_path / "outside").write_bytes(b"keep")
    inner = safe_mkdir(tmp_path / "inner")
    with pytest.raises(FsError):
        safe_unlink(inner, "../outside")
    assert (tmp_path / "outside").exists()


def test_list_names_lists_regular_files_only(tmp_path: Path) -> None:
    for name in ("b", "a", "c"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert list_names(tmp_path) == ["a", "b", "c"]


# --- time, locks, reading -------------------------------------------------------------


def test_set_day_sets_midnight_utc_without_following(tmp_path: Path) -> None:
    day = dt.date(2024, 2, 29)
    assert day_timestamp(day) == dt.datetime(2024, 2, 29, tzinfo=dt.UTC).timestamp()
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "target").write_bytes(b"")
    before = (tmp_path / "target").stat().st_mtime
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for name in ("f", "link"):
        set_day(tmp_path / name, day)
        assert (tmp_path / name).lstat().st_mtime == day_timestamp(day)
        assert (tmp_path / name).lstat().st_atime == day_timestamp(day)
    assert (tmp_path / "target").stat().st_mtime == before
    set_day(tmp_path, day)
    fsync_dir(tmp_path)
    assert tmp_path.stat().st_mtime == day_timestamp(day)


def test_set_day_tree_dates_everything_below_but_no_link_target(tmp_path: Path) -> None:
    day = dt.date(2025, 1, 2)
    outside = tmp_path / "outside"
    outside.write_bytes(b"")
    before = outside.lstat().st_mtime_ns
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"x")
    (root / "g").write_bytes(b"y")
    (root / "link").symlink_to(outside)
    set_day_tree(root, day)
    for p in (root, root / "a", root / "a" / "b", root / "a" / "b" / "f", root / "g"):
        assert p.lstat().st_mtime == day_timestamp(day), p
    assert outside.lstat().st_mtime_ns == before
    assert (root / "link").lstat().st_mtime != day_timestamp(day)


def test_lock_is_exclusive_until_closed(tmp_path: Path) -> None:
    first = lock_exclusive(tmp_path / "lock")
    assert first is not None
    assert lock_exclusive(tmp_path / "lock") is None  # flock: per open file description
    os.close(first)
    again = lock_exclusive(tmp_path / "lock")
    assert again is not None
    os.close(again)
    (tmp_path / "link").symlink_to(tmp_path / "lock")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        lock_exclusive(tmp_path / "link")


@pytest.mark.parametrize("read", [read_nofollow, read_quietly])
def test_reading_is_bounded_and_refuses_links_and_fifos(
    tmp_path: Path, read: Callable[[Path, int], bytes]
) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    assert read(tmp_path / "f", 5) == b"12345"
    with pytest.raises(FsError, match="larger than 4 bytes"):
        read(tmp_path / "f", 4)
    (tmp_path / "link").symlink_to(tmp_path / "f")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        read(tmp_path / "link", 5)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FsError, match="not a regular file"):  # and does not block
        read(tmp_path / "fifo", 5)
    assert read_nofollow(tmp_path / "f") == b"12345"


def test_read_quietly_leaves_the_access_time(tmp_path: Path) -> None:
    path = tmp_path / "reply.age"
    path.write_bytes(b"ciphertext")
    old = day_timestamp(dt.date(2000, 1, 1))
    os.utime(path, (old, old))
    read_nofollow(path)
    if path.stat().st_atime == old:
        pytest.skip("this file system does not update access times (noatime)")
    os.utime(path, (old, old))
    assert read_quietly(path, 100) == b"ciphertext"
    assert path.stat().st_atime == old


def test_a_tree_is_built_in_staging_and_moved_into_place_whole(tmp_path: Path) -> None:
    final = tmp_path / "vault"
    staging = private_staging_dir(final)
    assert staging.parent == tmp_path
    assert staging.name.startswith(".vault.")
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    atomic_write_bytes(staging / "a", b"x")
    assert move_tree_into_place(staging, final) == final
    assert (final / "a").read_bytes() == b"x"
    assert not staging.exists()


def test_a_tree_never_replaces_anything_but_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    move_tree_into_place(private_staging_dir(tmp_path / "empty"), tmp_path / "empty")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_bytes(b"mine")
    staging = private_staging_dir(full)
    with pytest.raises(FileExistsRefused, match="not empty"):
        move_tree_into_place(staging, full)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileExistsRefused, match="not a directory"):
        move_tree_into_place(staging, tmp_path / "file")
    assert (full / "keep").read_bytes() == b"mine"
    remove_staging_dir(staging)
    assert not staging.exists()


def test_only_a_staging_directory_is_ever_removed(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    with pytest.raises(FsError, match="not a staging directory"):
        remove_staging_dir(precious)
    assert precious.is_dir()
    # A symlink inside a staging tree is removed, its target is not.
    staging = private_staging_dir(tmp_path / "x")
    (staging / "link").symlink_to(precious)
    remove_staging_dir(staging)
    assert precious.is_dir()
    assert not staging.exists()

"""`intake-keys` end to end, as a user runs it, including interop with the reference `age`."""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keys.age import Encryptor, X25519Identity, decrypt, encrypt, parse_recipient
from keys.keyring import Keyring

BIN = Path(sys.executable).parent / "intake-keys"
PASS = "correct horse battery staple"  # noqa: S105 - a test passphrase
CLASSES = ("armor failure", "header failure", "no match", "HMAC failure", "payload failure")


def run(
    *args: str | Path, stdin: bytes = b"", cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    assert BIN.exists(), f"{BIN} is missing: pip install -e ."
    proc = subprocess.run(
        [str(BIN), *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=120,
        # No controlling terminal: a prompt must fail clearly instead of hanging the suite.
        start_new_session=True,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"intake-keys {args} failed: {proc.stderr.decode()}")
    return proc


def last_err(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode().rstrip("\n").split("\n")[-1]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("desk")
    (root / "pw").write_text(PASS + "\n")
    run(
        "generate", "--desk", "smex", "--out", root / "smex", "--passphrase-file", root / "pw",
        "--names-en", "SMEX", "--names-ar", "سمكس", "--names-fr", "SMEX",
    )  # fmt: skip
    return root


def recipient(desk: Path) -> str:
    return str(json.loads((desk / "smex" / "desk.json").read_text())["age_recipient"])


def plain_identity_file(desk: Path, tmp_path: Path) -> Path:
    out = tmp_path / "plain-identity.txt"
    run("decrypt", "--passphrase-file", desk / "pw", "-o", out, desk / "smex" / "identity.age")
    return out


def test_generate_output_and_files(desk: Path) -> None:
    entry = json.loads((desk / "smex" / "desk.json").read_text())
    assert entry["names"] == {"en": "SMEX", "ar": "سمكس", "fr": "SMEX"}
    assert sorted(p.name for p in (desk / "smex").iterdir()) == [
        "desk.json", "identity.age", "signing.age",
    ]  # fmt: skip
    again = run(
        "generate", "--desk", "smex", "--out", desk / "smex", "--passphrase-file", desk / "pw",
        check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert "refusing to overwrite" in last_err(again)


def test_generate_without_terminal_or_passphrase_file_fails_clearly(tmp_path: Path) -> None:
    proc = run("generate", "--desk", "x", "--out", tmp_path / "x", check=False)
    assert proc.returncode == 1
    assert "use --passphrase-file" in last_err(proc)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("armor", [False, True])
@pytest.mark.parametrize("size", [0, 1, 65536, 65537])
def test_round_trip_files(desk: Path, tmp_path: Path, armor: bool, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "in").write_bytes(data)
    flags = ["-a"] if armor else []
    run("encrypt", "-r", recipient(desk), *flags, "-o", tmp_path / "c.age", tmp_path / "in")
    ct = (tmp_path / "c.age").read_bytes()
    assert ct.startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1\n")
    run(
        "decrypt", "-i", desk / "smex" / "identity.age", "--passphrase-file", desk / "pw",
        "-o", tmp_path / "out", tmp_path / "c.age",
    )  # fmt: skip
    assert (tmp_path / "out").read_bytes() == data
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o600


def test_stdin_to_stdout_and_recipients_file(desk: Path, tmp_path: Path) -> None:
    other = X25519Identity.generate()
    (tmp_path / "recipients.txt").write_text(
        f"# two desks\n{recipient(desk)}\n\n{other.recipient()}\n"
    )
    ct = run("encrypt", "-R", tmp_path / "recipients.txt", stdin=b"report body").stdout
    assert decrypt(ct, [other]) == b"report body"
    out = run(
        "decrypt", "-i", desk / "smex" / "identity.age", "--passphrase-file", desk / "pw", stdin=ct
    ).stdout
    assert out == b"report body"


def test_passphrase_mode(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("another long passphrase\n")
    ct = run("encrypt", "--passphrase-file", tmp_path / "pw", "-a", stdin=b"secret").stdout
    assert b"-----BEGIN AGE ENCRYPTED FILE-----" in ct
    assert run("decrypt", "--passphrase-file", tmp_path / "pw", stdin=ct).stdout == b"secret"
    other = str(X25519Identity.generate().recipient())
    both = run("encrypt", "-p", "-r", other, "--passphrase-file", tmp_path / "pw", check=False)
    assert both.returncode == 2  # a usage error
    assert "cannot be combined" in last_err(both)


def test_decrypt_without_identity_on_a_key_encrypted_file(desk: Path, tmp_path: Path) -> None:
    # No -i and no terminal: a file for a key, not a passphrase, is reported as such,
    # without asking for a passphrase first.
    ct = encrypt(b"x", [parse_recipient(recipient(desk))])
    proc = run("decrypt", stdin=ct, check=False)
    assert proc.returncode == 1
    assert last_err(proc) == (
        "no match: no identity file was given, and this file is not encrypted to a passphrase; "
        "use -i IDENTITY_FILE"
    )


def test_usage_errors_exit_2_and_name_the_problem(tmp_path: Path) -> None:
    # Exit 2 means the command line itself is wrong (docs/cli.md, "Exit status"),
    # whether argparse or the command finds it; nothing is read or written first.
    cases = {
        ("no-such-command",): "invalid choice: 'no-such-command'",
        ("encrypt",): "error: no recipients: give -r RECIPIENT, -R FILE or -p",
        ("encrypt", "-r", "age1notakey"): "argument -r/--recipient: 'age1notakey'",
        ("encrypt", "-p", "-R", "r.txt"): "error: -p/--passphrase-file cannot be combined",
        ("generate", "--desk", "SMEX", "--out", "k"): "argument --desk: 'SMEX' is not a desk id",
    }
    for argv, message in cases.items():
        proc = run(*argv, cwd=tmp_path, check=False)
        assert (proc.returncode, message in last_err(proc)) == (2, True), (argv, proc.stderr)
    assert list(tmp_path.iterdir()) == []
    # A failure while running is 1.
    missing = run("encrypt", "-R", tmp_path / "missing.txt", check=False)
    assert missing.returncode == 1
    assert last_err(missing).startswith("error: recipients file")


def _failing_decrypt(desk: Path, ct: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "bad.age").write_bytes(ct)
    return run(
        "decrypt", "-i", desk / "smex" / "identity.age", "--passphrase-file", desk / "pw",
        "-o", tmp_path / "out", tmp_path / "bad.age", check=False,
    )  # fmt: skip


def test_each_failure_class_is_the_last_stderr_line(desk: Path, tmp_path: Path) -> None:
    rcpt = [parse_recipient(recipient(desk))]
    good = encrypt(b"r" * 100_000, rcpt)
    armored = encrypt(b"r" * 100, rcpt, armor=True)
    header_end = good.index(b"\n---")
    mac_at = header_end + len(b"\n--- ")
    flipped_mac = bytearray(good)
    flipped_mac[mac_at] = ord("A") if good[mac_at] != ord("A") else ord("B")
    cases = {
        "armor failure": armored.replace(b"\n", b"\n ", 2),
        "header failure": b"this is not an age file\n",
        "no match": encrypt(b"x", [X25519Identity.generate().recipient()]),
        "HMAC failure": bytes(flipped_mac),
        "payload failure": good[:-10],
    }
    for kind, ct in cases.items():
        proc = _failing_decrypt(desk, ct, tmp_path)
        assert proc.returncode == 1, kind
        line = last_err(proc)
        assert line.startswith(kind + ": "), (kind, line)
        assert "; " in line  # then the human explanation
        # A failed -o leaves neither OUT nor a partial file behind.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.age"], kind


def test_decrypt_does_not_replace_existing_output_on_failure(desk: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"previous result")
    proc = _failing_decrypt(desk, b"garbage", tmp_path)
    assert proc.returncode == 1
    assert (tmp_path / "out").read_bytes() == b"previous result"
    (tmp_path / "ok.age").write_bytes(encrypt(b"new", [parse_recipient(recipient(desk))]))
    args = ["-i", desk / "smex" / "identity.age", "--passphrase-file", desk / "pw", "-o"]
    refused = run("decrypt", *args, tmp_path / "out", tmp_path / "ok.age", check=False)
    assert "pass --force" in last_err(refused)
    run("decrypt", *args, tmp_path / "out", "--force", tmp_path / "ok.age")
    assert (tmp_path / "out").read_bytes() == b"new"


def test_output_to_a_device_or_pipe_writes_through_it(desk: Path, tmp_path: Path) -> None:
    # `-o /dev/null` must write to the device, not rename a file over it. Tested on a
    # private device node and a named pipe, never on the real /dev/null.
    ct = encrypt(b"to a pipe", [parse_recipient(recipient(desk))])
    (tmp_path / "c.age").write_bytes(ct)
    args = ["-i", desk / "smex" / "identity.age", "--passphrase-file", desk / "pw"]
    try:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pass
    else:
        for force in ([], ["--force"]):
            run("decrypt", *args, *force, "-o", tmp_path / "null", tmp_path / "c.age")
            assert stat.S_ISCHR((tmp_path / "null").lstat().st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    run("decrypt", *args, "-o", fifo, tmp_path / "c.age")
    reader.join(timeout=30)
    assert received == [b"to a pipe"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    (tmp_path / "link").symlink_to(tmp_path / "c.age")
    refused = run(
        "decrypt", *args, "--force", "-o", tmp_path / "link", tmp_path / "c.age", check=False
    )
    assert "not a regular file" in last_err(refused)
    assert (tmp_path / "c.age").read_bytes() == ct


def test_wrong_identity_passphrase(desk: Path, tmp_path: Path) -> None:
    (tmp_path / "wrong").write_text("not the passphrase\n")
    proc = run(
        "decrypt", "-i", desk / "smex" / "identity.age", "--passphrase-file", tmp_path / "wrong",
        stdin=b"", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "wrong passphrase" in last_err(proc)


def test_fingerprint_and_qr(desk: Path, tmp_path: Path) -> None:
    entry = json.loads((desk / "smex" / "desk.json").read_text())
    fp = run("fingerprint", desk / "smex" / "desk.json").stdout.decode().strip()
    assert fp == entry["fingerprint"]
    rfp = run("fingerprint", entry["age_recipient"]).stdout.decode().strip()
    assert len(rfp) == 39
    assert rfp != fp
    term = run("qr", desk / "smex" / "desk.json").stdout.decode()
    assert "█" in term
    svg = run("qr", "--format", "svg", entry["age_recipient"]).stdout
    assert svg.startswith(b"<svg ")
    run("qr", "--format", "png", "-o", tmp_path / "q.png", desk / "smex" / "desk.json")
    assert (tmp_path / "q.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    bad = run("fingerprint", "neither", check=False)
    assert bad.returncode == 1
    assert "neither a desk.json file nor an age recipient" in last_err(bad)


def test_keyring_add_and_check(desk: Path, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASS)
    run(
        "generate",
        "--desk",
        "gchr",
        "--out",
        tmp_path / "gchr",
        "--passphrase-file",
        tmp_path / "pw",
    )
    kr = tmp_path / "keyring.json"
    run("keyring", "add", kr, desk / "smex" / "desk.json")
    run("keyring", "add", kr, tmp_path / "gchr" / "desk.json")
    assert [d.id for d in Keyring.load(kr)] == ["smex", "gchr"]
    out = run("keyring", "check", kr).stdout.decode()
    assert "2 desk(s)" in out
    assert "smex" in out
    dup = run("keyring", "add", kr, desk / "smex" / "desk.json", check=False)
    assert dup.returncode == 1
    assert "desk 'smex': field 'id' is used twice" in last_err(dup)
    doc = json.loads(kr.read_text())
    doc["desks"][1]["verify_key"] = doc["desks"][0]["verify_key"]
    kr.write_text(json.dumps(doc))
    bad = run("keyring", "check", kr, check=False)
    assert bad.returncode == 1
    assert last_err(bad).startswith("error: desk 'gchr': field 'fingerprint'")


def test_help_has_an_example_for_every_command() -> None:
    for cmd in (
        ["generate"], ["encrypt"], ["decrypt"], ["fingerprint"], ["qr"],
        ["keyring"], ["keyring", "check"], ["keyring", "add"], ["demo"],
    ):  # fmt: skip
        text = run(*cmd, "--help").stdout.decode()
        assert "example:" in text
        assert "intake-keys " + cmd[0] in text


@pytest.mark.slow
def test_demo_runs_end_to_end() -> None:
    proc = run("demo")
    out = proc.stdout.decode()
    assert "identical to the original" in out
    assert "Demo complete" in out
    assert "█" in out


# --- interop with the reference implementation ----------------------------------------


def test_intake_keys_encrypt_then_age_decrypt(desk: Path, tmp_path: Path, age_binary: str) -> None:
    identity = plain_identity_file(desk, tmp_path)
    data = os.urandom(200_000)
    for flags in ([], ["-a"]):
        ct = run("encrypt", "-r", recipient(desk), *flags, stdin=data).stdout
        out = subprocess.run(
            [age_binary, "-d", "-i", str(identity)], input=ct, capture_output=True, check=True
        )
        assert out.stdout == data


def test_age_encrypt_then_intake_keys_decrypt(desk: Path, tmp_path: Path, age_binary: str) -> None:
    data = os.urandom(200_000)
    for flags in ([], ["-a"]):
        ct = subprocess.run(
            [age_binary, "-r", recipient(desk), *flags], input=data, capture_output=True, check=True
        ).stdout
        out = run(
            "decrypt", "-i", desk / "smex" / "identity.age", "--passphrase-file", desk / "pw",
            stdin=ct,
        )  # fmt: skip
        assert out.stdout == data


def _with_tty(argv: list[str], answers: list[str], timeout: float = 60) -> tuple[int, bytes]:
    """Run a program with a pseudo-terminal as its controlling terminal, typing one
    answer at each passphrase prompt; return its exit status and what it printed.

    age reads passphrases from /dev/tty only, never from a pipe (and intake-keys does
    the same), so this is how a test plays the person at the keyboard.
    """
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is now its controlling terminal
        os.execv(argv[0], argv)  # noqa: S606 - fixed argv: the system age, or intake-keys
    output = b""
    pending = list(answers)
    seen = 0  # prompts are searched for after the last one answered
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            at = output.lower().find(b"passphrase", seen)
            if pending and at >= 0:
                os.write(fd, pending.pop(0).encode() + b"\n")
                seen = at + len(b"passphrase")
        else:
            os.kill(pid, 9)
            pytest.fail(f"{argv[0]} did not finish: {output!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert not pending, f"{argv[0]} asked fewer questions than expected: {output!r}"
    return os.waitstatus_to_exitcode(status), output


def _age_with_tty_passphrase(argv: list[str], passphrase: str) -> int:
    return _with_tty(argv, [passphrase])[0]


def test_generate_prompts_twice_on_the_terminal(tmp_path: Path) -> None:
    argv = [str(BIN), "generate", "--desk", "tty", "--out", str(tmp_path / "d")]
    status, output = _with_tty(argv, [PASS, PASS])
    assert status == 0, output
    assert PASS.encode() not in output  # not echoed
    assert (tmp_path / "d" / "identity.age").exists()
    status, output = _with_tty(
        [str(BIN), "generate", "--desk", "tty", "--out", str(tmp_path / "e")], [PASS, PASS + "x"]
    )
    assert status == 1
    assert b"the two passphrases differ" in output
    assert not (tmp_path / "e" / "identity.age").exists()


def test_intake_keys_passphrase_file_opens_with_age(tmp_path: Path, age_binary: str) -> None:
    (tmp_path / "pw").write_text(PASS + "\n")
    ct = run("encrypt", "--passphrase-file", tmp_path / "pw", stdin=b"for age").stdout
    (tmp_path / "p.age").write_bytes(ct)
    argv = [age_binary, "-d", "-o", str(tmp_path / "out"), str(tmp_path / "p.age")]
    assert _age_with_tty_passphrase(argv, PASS) == 0
    assert (tmp_path / "out").read_bytes() == b"for age"


def test_age_opens_the_generated_identity_with_its_passphrase(
    desk: Path, tmp_path: Path, age_binary: str
) -> None:
    (tmp_path / "r.age").write_bytes(encrypt(b"evidence", [parse_recipient(recipient(desk))]))
    out = tmp_path / "out"
    argv = [age_binary, "-d", "-i", str(desk / "smex" / "identity.age"), "-o", str(out)]
    assert _age_with_tty_passphrase([*argv, str(tmp_path / "r.age")], PASS) == 0
    assert out.read_bytes() == b"evidence"
    # The identity file itself, opened as a passphrase-encrypted age file.
    argv = [age_binary, "-d", "-o", str(tmp_path / "id.txt"), str(desk / "smex" / "identity.age")]
    assert _age_with_tty_passphrase(argv, PASS) == 0
    text = (tmp_path / "id.txt").read_text()
    assert f"# public key: {recipient(desk)}" in text
    assert X25519Identity.parse(text.strip().splitlines()[-1]).recipient() is not None


@pytest.mark.slow
def test_decrypt_memory_is_bounded(desk: Path, tmp_path: Path) -> None:
    """64 MiB through decrypt via pipes: the process stays far below the file size."""
    identity = plain_identity_file(desk, tmp_path)
    size = 64 * 1024 * 1024
    ct_path = tmp_path / "big.age"
    block = os.urandom(1024 * 1024)
    with open(ct_path, "wb") as f, Encryptor(f, [parse_recipient(recipient(desk))]) as enc:
        for _ in range(size // len(block)):
            enc.write(block)
    probe = (
        "import resource, subprocess, sys\n"
        "with open(sys.argv[2], 'rb') as src:\n"
        "    subprocess.run([sys.argv[1], 'decrypt', '-i', sys.argv[3]], stdin=src,\n"
        "                   stdout=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(BIN), str(ct_path), str(identity)],
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    peak_kib = int(proc.stdout)
    assert peak_kib < 64 * 1024, f"peak RSS {peak_kib} KiB for a 64 MiB file"

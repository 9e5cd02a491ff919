"""Stand-ins for the system commands deploy/README.md uses that a test cannot run for
real, so that test_guide.py can run the guide's own commands in a temporary root.

    python guide_shims.py COMMAND [ARG...]      (ROOT in $AMANA_GUIDE_ROOT)

test_guide.py puts one small wrapper per command first on PATH. Each stand-in says
what it replaces and how the real thing is checked instead:

- ``runuser -u amana -- CMD``: runs CMD as the test's own user. The test machine has
  no ``amana`` user, and the test must not create one.
- ``install -o U -g G ...`` and ``chown``: the owner is dropped (no ``amana`` or
  ``debian-tor`` to give files to); modes are kept, done by the real install(1).
- ``sudo CMD``: runs CMD.
- ``systemctl``: systemd is not PID 1 in a container. ``start``/``stop`` of
  intake-server run the installed unit's own ``ExecStart`` (paths moved under ROOT),
  under the MemoryDenyWriteExecute seccomp rule of mdwe_exec.py, in the unit's
  ``WorkingDirectory``, and stop it with SIGTERM as systemd does. ``restart
  tor@default`` starts the real tor on the installed torrc, offline (DisableNetwork,
  no SocksPort, keys under ROOT/var/lib/tor); ``reload`` sends it SIGHUP.
- ``journalctl -u UNIT``: the log of that process. For tor, the two warnings that only
  say how the test runs it (as root, logging at info) are left out, as in
  tests/support/deploy.py.
- ``systemd-analyze verify|security``: the real systemd-analyze on a copy of the
  installed unit with its paths moved under ROOT (``security`` offline, on the file).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.deploy import BENIGN_WARNINGS, offline_torrc, rooted  # noqa: E402

MDWE_EXEC = Path(__file__).with_name("mdwe_exec.py")
UNIT_NAME = "intake-server.service"
def _root() -> Path:
    return Path(os.environ["AMANA_GUIDE_ROOT"])


def _run_dir() -> Path:
    path = _root() / "run"
    path.mkdir(exist_ok=True)
    return path


def _pid(name: str) -> int | None:
    pidfile = _run_dir() / f"{name}.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pidfile.unlink()
        return None
    return pid


def _unit_directive(key: str) -> str:
    unit = (_root() / "etc/systemd/system" / UNIT_NAME).read_text()
    match = re.search(rf"^{key}=(.*)$", unit, re.M)
    if not match:
        sys.exit(f"systemctl (test): no {key}= in the installed unit")
    return rooted(match.group(1), _root())


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes] | None,
              timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text(errors="replace")):
        if proc is not None and proc.poll() is not None:
            sys.exit(f"exited with {proc.returncode} before logging {text!r}:\n"
                     + (path.read_text(errors="replace") if path.exists() else ""))
        if time.monotonic() > deadline:
            sys.exit(f"no {text!r} in {path} within {timeout} s")
        time.sleep(0.1)


def _start_server() -> None:
    if _pid("intake-server") is not None:
        return
    command = _unit_directive("ExecStart").split()
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        command = [sys.executable, str(MDWE_EXEC), "--", *command]
    log = _root() / "var/log/intake-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    mark = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                cwd=_unit_directive("WorkingDirectory"),
                                start_new_session=True)
    (_run_dir() / "intake-server.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 60
    while b"staff app listening" not in log.read_bytes()[mark:]:
        if proc.poll() is not None:
            sys.exit(f"intake-server exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            sys.exit("intake-server did not start within 60 s")
        time.sleep(0.1)


def _stop(name: str) -> None:
    pid = _pid(name)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    # Not this process's child (each shim call is a new process): poll /proc.
    while Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    (_run_dir() / f"{name}.pid").unlink(missing_ok=True)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _start_tor() -> None:
    _stop("tor")
    root = _root()
    tor_dir = root / "var/lib/tor"
    tor_dir.mkdir(parents=True, exist_ok=True)
    tor_dir.chmod(0o700)
    (tor_dir / "data").mkdir(mode=0o700, exist_ok=True)
    torrc = root / "run/torrc.offline"
    torrc.write_text(offline_torrc((root / "etc/tor/torrc").read_text(), tor_dir))
    empty = root / "run/empty-defaults-torrc"
    empty.write_text("")
    log = tor_dir / "tor.log"
    log.unlink(missing_ok=True)
    proc = subprocess.Popen([shutil.which("tor") or "tor", "--defaults-torrc", str(empty),
                             "-f", str(torrc)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    (_run_dir() / "tor.pid").write_text(str(proc.pid))
    # Signal handlers are in place once the main loop runs (tests/deploy/test_tor.py).
    _wait_for(log, "Delaying directory fetches", proc)
    for name in ("amana-source", "amana-staff"):
        hostname = tor_dir / name / "hostname"
        deadline = time.monotonic() + 30
        while not (hostname.exists() and hostname.stat().st_size):
            if time.monotonic() > deadline:
                sys.exit(f"tor wrote no {hostname}")
            time.sleep(0.1)


def systemctl(args: list[str]) -> None:
    args = [a for a in args if a not in ("--now", "--no-pager")]
    if args == ["daemon-reload"]:
        return
    action, units = args[0], args[1:]
    for unit in units:
        if unit in ("intake-server", UNIT_NAME):
            if action in ("start", "enable"):
                _start_server()
            elif action == "stop":
                _stop("intake-server")
            elif action == "restart":
                _stop("intake-server")
                _start_server()
            elif action == "status":
                pid = _pid("intake-server")
                state = f"active (running), pid {pid}" if pid else "inactive"
                print(f"intake-server.service: {state}")
                if pid is None:
                    sys.exit(3)
            else:
                sys.exit(f"systemctl (test): {action} {unit} is not simulated")
        elif unit == "tor@default":
            if action == "restart":
                _start_tor()
            elif action == "reload":
                pid = _pid("tor")
                if pid is None:
                    sys.exit("systemctl (test): tor is not running")
                log = _root() / "var/lib/tor/tor.log"
                mark = log.read_text().count("Received reload signal")
                os.kill(pid, signal.SIGHUP)
                deadline = time.monotonic() + 20
                while log.read_text().count("Received reload signal") == mark:
                    if time.monotonic() > deadline:
                        sys.exit("tor did not reload")
                    time.sleep(0.1)
                time.sleep(0.5)  # it logs what it loaded right after
            elif action == "stop":
                _stop("tor")
            else:
                sys.exit(f"systemctl (test): {action} {unit} is not simulated")
        else:
            sys.exit(f"systemctl (test): unit {unit} is not simulated")


def journalctl(args: list[str]) -> None:
    unit = args[args.index("-u") + 1]
    if unit == "intake-server":
        log = _root() / "var/log/intake-server.log"
        sys.stdout.write(log.read_text(errors="replace") if log.exists() else "")
    elif unit == "tor@default":
        log = _root() / "var/lib/tor/tor.log"
        for line in log.read_text(errors="replace").splitlines():
            if not any(b in line for b in BENIGN_WARNINGS):
                print(line)
    else:
        sys.exit(f"journalctl (test): unit {unit} is not simulated")


def systemd_analyze(args: list[str]) -> None:
    real = shutil.which("systemd-analyze", path="/usr/bin:/bin")
    if real is None:
        sys.exit("systemd-analyze is not installed")
    copy_dir = _root() / "run/unit-check"
    copy_dir.mkdir(parents=True, exist_ok=True)
    copy = copy_dir / UNIT_NAME
    copy.write_text(rooted((_root() / "etc/systemd/system" / UNIT_NAME).read_text(), _root()))
    if args[0] == "verify":
        result = subprocess.run([real, "verify", str(copy)], check=False, cwd=copy_dir)
    elif args[0] == "security":
        result = subprocess.run([real, "security", "--offline=yes", "--no-pager", str(copy)],
                                check=False, cwd=copy_dir)
    else:
        sys.exit(f"systemd-analyze (test): {args[0]} is not simulated")
    sys.exit(result.returncode)


def runuser(args: list[str]) -> None:
    command = args[args.index("--") + 1:]
    os.execvp(command[0], command)  # noqa: S606 (the guide's command, as runuser runs it)


def install(args: list[str]) -> None:
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-o", "-g"):
            skip = True
        else:
            kept.append(arg)
    os.execv("/usr/bin/install", ["install", *kept])  # noqa: S606 (the real install)


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "systemctl":
        systemctl(args)
    elif command == "journalctl":
        journalctl(args)
    elif command == "systemd-analyze":
        systemd_analyze(args)
    elif command == "runuser":
        runuser(args)
    elif command == "install":
        install(args)
    elif command == "sudo":
        os.execvp(args[0], args)  # noqa: S606 (the guide's command)
    elif command == "chown":
        return  # no amana or debian-tor user on the test machine (see the docstring)
    else:
        sys.exit(f"guide_shims: unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])

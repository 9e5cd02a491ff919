"""journalist-transfer: the transfer machine's commands (init, fetch, push).

Runs on the online transfer machine, never on the air-gapped one: it is a separate
entry point so that journalist-client, the offline program, cannot load aiohttp.
Each command parses its arguments, calls one function of this package and prints
the result; what the server says reaches the terminal only through
journalist_client.display.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from journalist_client._cli import CLIError, add_command, run_command
from journalist_client.online.credential import TransferError, init_transfer, load_settings
from journalist_client.online.fetch import DEFAULT_MAX_BUNDLE_BYTES, fetch
from journalist_client.online.push import push
from keys import fs, process

__all__ = ["CLIError", "main", "parser"]

PROG: Final = "journalist-transfer"
_MIB: Final = 1024 * 1024


def _mebibytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of MiB") from None
    if not 1 <= value <= 1024 * 1024:
        raise argparse.ArgumentTypeError("must be between 1 and 1048576 (1 TiB)")
    return value


def cmd_init(args: argparse.Namespace) -> None:
    public = init_transfer(Path(args.dir), desk=args.desk, server_key=args.server_key,
                           keyring_path=Path(args.keyring))
    fs.set_day_tree(args.dir, fs.today())
    print(f"Transfer credential for desk {args.desk} written to {args.dir}.")
    print(f"Register its public key on the server: {public}")


def cmd_fetch(args: argparse.Namespace) -> None:
    settings = load_settings(Path(args.dir))
    path = asyncio.run(fetch(settings, server=args.server, out_dir=Path(args.out),
                             tor_socks=args.tor_socks, max_bytes=args.max_mib * _MIB,
                             show_progress=None,
                             on_note=lambda note: print(f"keyring: {note}")))
    # What this machine keeps is dated to the day: the transfer directory (cursor.json)
    # and, on the stick, the bundle and the directory it was renamed into.
    fs.set_day_tree(settings.directory, fs.today())
    fs.set_day(args.out, fs.today())
    if path is not None:
        fs.set_day(path, fs.today())
    if path is None:
        print(f"Nothing new for desk {settings.desk}.")
    elif re.fullmatch(r"export-.+-([0-9]+)-\1\.bundle", path.name):
        print(f"Nothing new for desk {settings.desk}, but the server lists items this desk "
              "should hold already and has not acknowledged, or items it deleted before "
              f"they were acknowledged: carry {path} to the offline machine and run "
              "import, which checks them; push the acks it writes.")
    else:
        print(f"Verified bundle: {path}. Carry it to the offline machine and run import.")


def cmd_push(args: argparse.Namespace) -> None:
    settings = load_settings(Path(args.dir))
    outcomes = asyncio.run(push(settings, [Path(f) for f in args.files],
                                server=args.server, tor_socks=args.tor_socks,
                                show_progress=None))
    for o in outcomes:
        if o.accepted:
            print(f"{o.file}: accepted by the server{_summary(o.summary)}")
        else:
            print(f"{o.file}: {o.problem}", file=sys.stderr)
    refused = sum(not o.accepted for o in outcomes)
    if refused:
        raise CLIError(f"{refused} of {len(outcomes)} file(s) not accepted; see above. "
                       "The accepted ones need not be pushed again.")


def _summary(summary: dict[str, object]) -> str:
    # The server's own counts (an ack: how many items it deleted); numbers only, so
    # nothing the server says can reach the terminal but digits and fixed words.
    counts = [f"{k} {v}" for k, v in sorted(summary.items())
              if isinstance(v, int) and not isinstance(v, bool)
              and re.fullmatch(r"[a-z_]{1,32}", k)]
    return f" ({', '.join(counts)})" if counts else ""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="The transfer machine's side of a desk: fetch the desk's ciphertext "
                    "from the server's staff onion and push back what the air-gapped "
                    "machine signed. Holds no decryption key.",
        epilog="Example: journalist-transfer fetch --dir ~/transfer --server "
               "http://xyz.onion --tor-socks 127.0.0.1:9050 --out /media/usb\n"
               "Every command has its own --help with an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sp = add_command(sub, "init", cmd_init, "create the transfer credential for a desk",
                     "journalist-transfer init --dir ~/transfer --desk smex "
                     "--server-key /media/usb/server-verify.key --keyring keyring.json")
    sp.add_argument("--dir", required=True, help="the transfer directory to create")
    sp.add_argument("--desk", required=True, help="the desk id, as in the keyring")
    sp.add_argument("--server-key", required=True, metavar="KEY",
                    help="the server's verify key: the path of server-verify.key (as "
                         "`intake-server init` wrote it), its content, or ed25519:…")
    sp.add_argument("--keyring", required=True, help="the coalition keyring (JSON)")

    sp = add_command(sub, "fetch", cmd_fetch, "download the desk's new reports as a bundle",
                     "journalist-transfer fetch --dir ~/transfer --server http://xyz.onion "
                     "--tor-socks 127.0.0.1:9050 --out /media/usb")
    sp.add_argument("--dir", required=True, help="the transfer directory (init)")
    sp.add_argument("--server", required=True, help="the staff onion's URL")
    sp.add_argument("--out", required=True, help="directory for the bundle")
    sp.add_argument("--tor-socks", metavar="HOST:PORT")
    sp.add_argument("--max-mib", type=_mebibytes, metavar="N",
                    default=DEFAULT_MAX_BUNDLE_BYTES // _MIB,
                    help="refuse a bundle larger than N MiB (default: %(default)s)")

    sp = add_command(sub, "push", cmd_push, "upload ack and outbox bundles",
                     "journalist-transfer push --dir ~/transfer --server http://xyz.onion "
                     "--tor-socks 127.0.0.1:9050 /media/usb/ack-8c1d0a2b9e3f.bundle")
    sp.add_argument("files", nargs="+", metavar="BUNDLE")
    sp.add_argument("--dir", required=True, help="the transfer directory (init)")
    sp.add_argument("--server", required=True, help="the staff onion's URL")
    sp.add_argument("--tor-socks", metavar="HOST:PORT")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    process.harden_process()  # the transfer credential is in memory: no core dumps
    return run_command(parser().parse_args(argv), (TransferError,))


if __name__ == "__main__":
    sys.exit(main())

"""``intake-keys``: the command line over keys/ (docs/cli.md).

Each command is a thin layer over a library function, dispatched from one parser
(``set_defaults(func=...)``). Exit status, as for every Amana command (docs/cli.md): 0 on
success, 1 on a failure while running (the last line on stderr says why), 2 on a usage
error (the command line itself is wrong: argparse's refusals and :class:`UsageError`).
``encrypt`` and ``decrypt`` follow age's flags and stream: memory stays bounded whatever
the file size.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from keys import fs, ids, process
from keys.age import (
    AgeError,
    ArmorError,
    Encryptor,
    HeaderError,
    HMACError,
    Identity,
    NoMatchError,
    PayloadError,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    decrypt_stream,
    parse_recipient,
    parse_recipients_file,
)
from keys.bundle import open_bundle, write_bundle_file
from keys.codename import derive_source, generate_codename
from keys.fingerprint import fingerprint_qr_payload, recipient_fingerprint
from keys.identity import (
    TRANSITION_FILE,
    DeskError,
    generate_desk,
    load_desk,
    read_identities,
    rotate_desk,
)
from keys.keyring import Desk, Keyring, KeyringError, load_desk_entry
from keys.onion import generate_client_auth, transfer_torrc, write_client_auth
from keys.qr import qr_png, qr_svg, qr_terminal
from keys.transition import TransitionError, verify_transition

__all__ = ["main"]

_CHUNK = 64 * 1024
_READ_SIZE = 1024 * 1024
_MAX_TEXT_FILE = 1024 * 1024


# The last stderr line of a failed decrypt: the class (from the exception) and what it
# most likely means for the person holding the file.
class _NoIdentityGiven(NoMatchError):
    """No -i, and the file is not passphrase-encrypted."""


_HINTS: dict[type[AgeError], str] = {
    _NoIdentityGiven: "use -i IDENTITY_FILE",  # before NoMatchError: the first match wins
    ArmorError: "the armored text is damaged (re-wrapped, cut or edited when copied)",
    HeaderError: "this is not an age file, or its header is damaged",
    NoMatchError: "this file was not encrypted to the given identities or passphrase",
    HMACError: "the header was altered after encryption; do not trust this file",
    PayloadError: "any output already written is incomplete: do not use it",
}


class CLIError(Exception):
    """A failure to report on one line and exit 1."""


class UsageError(CLIError):
    """A command line that cannot work whatever the files say (options that exclude each
    other, a required choice not made): reported on one line, exit 2 as argparse does."""


# --- small helpers -------------------------------------------------------------------


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_TEXT_FILE + 1)
    except OSError as e:
        raise CLIError(f"{what} {path}: {e.strerror}") from None
    if len(data) > _MAX_TEXT_FILE:
        raise CLIError(f"{what} {path}: too large")
    return data


def _read_text_file(path: str, what: str) -> str:
    data = _read_file(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"{what} {path}: not UTF-8 text") from None


def _passphrase_from_file(path: str) -> str:
    # The first line, without its line ending: `echo pass > f` must work as expected.
    text = _read_text_file(path, "passphrase file")
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise CLIError(f"passphrase file {path}: first line is empty")
    return line


def _prompt(prompt: str, *, confirm: bool) -> str:
    # getpass falls back to reading stdin when there is no terminal; stdin may be the
    # very data being encrypted, so insist on a terminal or --passphrase-file.
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)  # a device (fs audit ALLOWED)
    except OSError:
        raise CLIError("no terminal to ask for a passphrase on: use --passphrase-file") from None
    os.close(fd)
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Confirm passphrase: ") != first:
        raise CLIError("the two passphrases differ")
    if not first:
        raise CLIError("empty passphrase")
    return first


def _passphrase_getter(args: argparse.Namespace, *, confirm: bool) -> Callable[[], str]:
    cache: list[str] = []

    def get() -> str:
        if not cache:
            if args.passphrase_file:
                cache.append(_passphrase_from_file(args.passphrase_file))
            else:
                cache.append(_prompt("Passphrase: ", confirm=confirm))
        return cache[0]

    return get


@contextlib.contextmanager
def _input(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the context manager below
    except OSError as e:
        raise CLIError(f"input {path}: {e.strerror}") from None
    with f:
        yield f


@contextlib.contextmanager
def _output(path: str | None, *, force: bool, binary_to_tty_ok: bool) -> Iterator[BinaryIO]:
    """stdout, or a file that takes its name only if the block succeeds.

    With ``-o OUT`` the data goes to a hidden ``.OUT.<random>.partial`` beside OUT,
    renamed onto OUT on success and removed on failure: a failed run never leaves a
    file named OUT that looks complete.
    """
    if path is None or path == "-":
        if not binary_to_tty_ok and sys.stdout.isatty():
            raise CLIError("refusing to write binary data to a terminal: use -o or -a")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if fs.is_stream_sink(path):
        # /dev/null, /dev/stdout on a pipe, a named pipe: a stream, written as it comes.
        try:
            sink = fs.open_stream_sink(path)
        except OSError as e:
            raise CLIError(f"output {path}: {e.strerror or e}") from None
        with sink:
            yield sink
        return
    try:
        writer = fs.AtomicWriter(path, overwrite=force)
    except fs.FileExistsRefused as e:
        hint = "" if force else ": pass --force to replace it"
        raise CLIError(f"{e}{hint}") from None
    except OSError as e:
        raise CLIError(f"output {path}: {e.strerror}") from None
    with writer:
        yield writer.file


def _load_desk_or_recipient(arg: str) -> tuple[Desk | None, str]:
    if os.path.isfile(arg):
        desk = load_desk_entry(arg)
        return desk, desk.recipient
    try:
        return None, str(parse_recipient(arg))
    except (AgeError, ValueError) as e:
        raise CLIError(f"{arg!r} is neither a desk.json file nor an age recipient: {e}") from None


# --- commands --------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> None:
    passphrase = _passphrase_getter(args, confirm=True)()
    names = {"en": args.names_en or args.desk, "ar": args.names_ar or args.desk}
    names["fr"] = args.names_fr or args.desk
    desk = generate_desk(args.desk, names, args.out, passphrase, pq=args.pq)
    print(f"desk {desk.id}: keys written to {args.out}/ (identity.age, signing.age, desk.json)")
    print(f"age recipient: {desk.recipient}")
    print(f"verify key:    {desk.verify_key}")
    print(f"fingerprint:   {desk.fingerprint}")


def _recipients(args: argparse.Namespace) -> list[Recipient]:
    if args.passphrase or args.passphrase_file:
        if args.recipient or args.recipients:
            # age's rule: a passphrase (scrypt) stanza must be alone in a header.
            raise UsageError("-p/--passphrase-file cannot be combined with -r or -R")
        return [ScryptRecipient(_passphrase_getter(args, confirm=True)())]
    recipients: list[Recipient] = list(args.recipient)  # parsed by _recipient_arg
    for path in args.recipients:
        try:
            recipients.extend(parse_recipients_file(_read_text_file(path, "recipients file")))
        except (AgeError, ValueError) as e:
            raise CLIError(f"recipients file {path}: {e}") from None
    if not recipients:
        raise UsageError("no recipients: give -r RECIPIENT, -R FILE or -p")
    return recipients


def cmd_encrypt(args: argparse.Namespace) -> None:
    recipients = _recipients(args)
    with (
        _input(args.input) as src,
        _output(args.output, force=args.force, binary_to_tty_ok=args.armor) as out,
    ):
        try:
            enc = Encryptor(out, recipients, armor=args.armor)
        except ValueError as e:
            raise CLIError(str(e)) from None
        # Large reads into one reused buffer: the encryptor cuts them into 64 KiB
        # chunks itself, and fewer, bigger reads keep the per-call cost down.
        buffer = memoryview(bytearray(_READ_SIZE))
        while n := src.readinto(buffer):  # type: ignore[attr-defined]
            enc.write(buffer[:n])
        enc.close()


def cmd_decrypt(args: argparse.Namespace) -> None:
    passphrase = _passphrase_getter(args, confirm=False)
    identities: list[Identity] = []
    for path in args.identity:
        data = _read_file(path, "identity file")
        try:
            identities.extend(read_identities(data, passphrase))
        except DeskError as e:
            raise CLIError(f"{path}: {e}") from None
    prompt = _AskPassphraseIfNeeded(passphrase)
    with (
        _input(args.input) as src,
        _output(args.output, force=args.force, binary_to_tty_ok=True) as out,
    ):
        try:
            for chunk in decrypt_stream(src, identities or [prompt]):
                out.write(chunk)
        except NoMatchError:
            if not identities and not prompt.asked:
                raise _NoIdentityGiven(
                    "no identity file was given, and this file is not encrypted to a passphrase"
                ) from None
            raise


class _AskPassphraseIfNeeded:
    """An age identity that asks for a passphrase only when the header has a passphrase
    (scrypt) stanza, so that a forgotten ``-i`` is reported instead of prompted for."""

    def __init__(self, passphrase: Callable[[], str]) -> None:
        self._passphrase = passphrase
        self.asked = False

    def unwrap(self, stanzas: Sequence[Any]) -> bytes | None:
        if not any(s.type == "scrypt" for s in stanzas):
            return None
        self.asked = True
        return ScryptIdentity(self._passphrase()).unwrap(stanzas)


def cmd_fingerprint(args: argparse.Namespace) -> None:
    desk, recipient = _load_desk_or_recipient(args.key)
    print(desk.fingerprint if desk is not None else recipient_fingerprint(recipient))


def cmd_qr(args: argparse.Namespace) -> None:
    desk, recipient = _load_desk_or_recipient(args.key)
    # A desk's code carries its fingerprint (small, easy to scan and compare); a bare
    # recipient's carries the recipient itself, ready to paste into `age -r`.
    payload = fingerprint_qr_payload(desk.fingerprint, desk.id) if desk else recipient
    data: bytes
    if args.format == "svg":
        data = qr_svg(payload).encode("ascii") + b"\n"
    elif args.format == "png":
        data = qr_png(payload)
    else:
        data = qr_terminal(payload, invert=args.invert).encode("utf-8")
    with _output(args.output, force=args.force, binary_to_tty_ok=args.format != "png") as out:
        out.write(data)


def cmd_keyring_check(args: argparse.Namespace) -> None:
    keyring = Keyring.load(args.file)
    print(f"{args.file}: valid keyring, {len(keyring)} desk(s)")
    for desk in keyring:
        print(f"  {desk.id:<20} {desk.fingerprint}  {desk.name('en')}")
        for prev in desk.previous:
            how = "LOST KEY" if prev.lost_key else "transition signed by old and new key"
            print(f"  {'':<20} previous key until {prev.replaced}: {how}")


def cmd_keyring_add(args: argparse.Namespace) -> None:
    keyring = Keyring.load(args.file) if os.path.exists(args.file) else Keyring(())
    for path in args.desk_json:
        keyring = keyring.with_desk(load_desk_entry(path))
    keyring.save(args.file, overwrite=True)
    print(f"{args.file}: {len(keyring)} desk(s): {', '.join(d.id for d in keyring)}")


def _utc_day() -> str:
    return fs.today().isoformat()


def cmd_rotate(args: argparse.Namespace) -> None:
    passphrase = _passphrase_getter(args, confirm=False)()
    new_passphrase = (
        _passphrase_from_file(args.new_passphrase_file) if args.new_passphrase_file else None
    )
    pq = True if args.pq else None
    desk, _ = rotate_desk(args.desk, args.out, passphrase, new_passphrase=new_passphrase, pq=pq)
    print(
        f"desk {desk.id}: new keys written to {args.out}/ "
        f"(identity.age, signing.age, desk.json, {TRANSITION_FILE})"
    )
    print(f"new fingerprint: {desk.fingerprint}")
    print("The old keys are unchanged: keep them until everything encrypted to them is")
    print("imported (docs/key-rotation.md). Next, on the server's keyring:")
    print(
        f"  intake-keys keyring replace keyring.json {args.out}/desk.json "
        f"--transition {args.out}/{TRANSITION_FILE}"
    )


def cmd_keyring_replace(args: argparse.Namespace) -> None:
    if (args.transition is None) == (not args.lost_key):
        raise UsageError(
            "give --transition FILE (signed by the old and new keys) or --lost-key, exactly one"
        )
    keyring = Keyring.load(args.file)
    new = load_desk_entry(args.desk_json)
    old = keyring.get(new.id)
    if old is None:
        raise CLIError(f"desk {new.id!r} is not in {args.file}: use `keyring add`")
    if old.same_keys(new):
        raise CLIError(f"desk {new.id!r} already has these keys in {args.file}")
    transition = None
    if args.transition is not None:
        text = _read_text_file(args.transition, "transition statement")
        try:
            transition = verify_transition(text, old_verify_key=old.verify_key, desk=old.id)
        except TransitionError as e:
            raise CLIError(f"{args.transition}: {e}") from None
        if transition.old_recipient != old.recipient:
            raise CLIError(f"{args.transition}: names another old age key than the keyring's")
        if (transition.new_recipient, transition.new_verify_key) != (new.recipient, new.verify_key):
            raise CLIError(f"{args.transition}: is about other new keys than {args.desk_json}")
    keyring = keyring.replacing(old.replaced_by(new, day=_utc_day(), transition=transition))
    keyring.save(args.file, overwrite=True)
    print(f"{args.file}: desk {new.id} now has keys {new.fingerprint} (was {old.fingerprint})")
    if transition is not None:
        print("The old key stays trusted for acks and replies about items encrypted to it,")
        print("until the desk has acknowledged them. Restart the server to use the keyring.")
    else:
        print("The old key is recorded as LOST and never trusted again. Items the server")
        print("holds for this desk from today or earlier were encrypted to it and no one can")
        print("decrypt them: after the restart the server's log says how many, and")
        print("`intake-server desk drop-lost-key-items` releases them (docs/key-rotation.md).")


def cmd_keyring_remove(args: argparse.Namespace) -> None:
    keyring = Keyring.load(args.file)
    for desk_id in args.desk:
        keyring = keyring.without(desk_id)
    keyring.save(args.file, overwrite=True)
    left = ", ".join(d.id for d in keyring) or "none"
    print(f"{args.file}: {len(keyring)} desk(s) left: {left}")


_SAMPLE_REPORT = {
    "schema": "amana-report/1",
    "incident": {
        "category": "spyware",
        "country": "LB",
        "date": "2026-11-02",
        "description": "رسالة نصية مشبوهة تحتوي على رابط — suspicious SMS with a link",
        "indicators": {"links": ["hxxps://example[.]invalid/track"], "senders": ["+000000"]},
    },
    "desks": ["demo"],
    "consent": {"share_within_coalition": True, "publish_anonymised": False},
}


def cmd_onion_auth(args: argparse.Namespace) -> None:
    key = generate_client_auth(args.name)
    # A bad name or address is an OnionError (a ValueError), an existing file a
    # FileExistsRefused (an OSError): main() reports either on one line, exit 1.
    paths = write_client_auth(key, args.out, args.onion)
    print(f"onion client key {key.name}: written to {args.out}/")
    for path in paths:
        print(f"  {path.name}")
    print(f"\nOn the server (public, safe to copy): put {key.name}.auth in")
    print("  /var/lib/tor/amana-staff/authorized_clients/ (owner debian-tor, mode 0600),")
    print("  then: systemctl reload tor@default")
    if args.onion:
        print(f"On this transfer machine (secret, never copy it): put {key.name}.auth_private")
        print("  in /var/lib/tor/onion_auth/ (owner debian-tor, directory 0700, file 0600)")
    else:
        print(f"No --onion: the private key is alone in {key.name}.x25519. Once you know the")
        print(f"staff onion's address, make {key.name}.auth_private from it:")
        print(
            f"  printf '%s:descriptor:x25519:%s\\n' ADDRESS_WITHOUT_.onion "
            f'"$(cat {key.name}.x25519)" > {key.name}.auth_private'
        )
    print(f"and add to this machine's /etc/tor/torrc (also in {key.name}.torrc):")
    print(textwrap.indent(transfer_torrc(key.name), "  "), end="")


def cmd_demo(args: argparse.Namespace) -> None:
    def step(text: str) -> None:
        print(f"\n== {text}")

    # A 0700 directory for throw-away keys, removed at the end (tests/test_fs_audit.py).
    with tempfile.TemporaryDirectory(prefix="amana-demo-") as tmp:
        root = Path(tmp)
        passphrase = generate_codename()  # 7 diceware words: a good desk passphrase
        step("1. Generate a desk (age X25519 identity + Ed25519 signing key)")
        names = {"en": "Demo desk", "ar": "مكتب تجريبي", "fr": "Bureau de démonstration"}
        desk = generate_desk("demo", names, root / "desk", passphrase)
        print(f"   keys in {root / 'desk'} (identity.age and signing.age are passphrase-encrypted)")
        print(f"   recipient:   {desk.recipient}")
        print(f"   fingerprint: {desk.fingerprint}")

        step("2. Encrypt a sample incident report to the desk, streaming")
        report = json.dumps(_SAMPLE_REPORT, ensure_ascii=False, indent=2).encode("utf-8")
        with (
            fs.AtomicWriter(root / "report.age") as out,
            Encryptor(out.file, [parse_recipient(desk.recipient)]) as enc,
        ):
            for i in range(0, len(report), 100):
                enc.write(report[i : i + 100])
        size = (root / "report.age").stat().st_size
        print(f"   {len(report)} bytes of JSON -> report.age, {size} bytes")

        step("3. Unlock the desk with its passphrase and decrypt the report back")
        keys = load_desk(root / "desk", passphrase)
        with open(root / "report.age", "rb") as src:
            back = b"".join(decrypt_stream(src, [keys.identity]))
        if back != report:
            raise CLIError("demo: the decrypted report differs from the original")
        print(f"   decrypted {len(back)} bytes: identical to the original")

        step("4. Sign a bundle with the desk key and verify it")
        bundle = root / "demo.bundle"
        write_bundle_file(
            bundle, "demo", "demo", [("report.age", root / "report.age")], keys.signing_key
        )
        with open_bundle(bundle, {"demo": keys.signing_key.verify_key}) as verified:
            print(f"   bundle {verified.id}: signature and SHA-256 of {verified.names} verified")

        step("5. A source codename and what the server derives from it (Argon2id)")
        codename = generate_codename()
        source = derive_source(codename)
        print(f"   codename:        {codename}")
        print(f"   source id:       {source.source_id[:16]}…")
        print(f"   reply recipient: {source.reply_identity.recipient()}")

        step("6. The desk fingerprint as a QR code, for out-of-band checking")
        print(f"   {desk.fingerprint}")
        print(qr_terminal(fingerprint_qr_payload(desk.fingerprint, desk.id)))
    print("Demo complete: every step ran for real; the temporary keys are deleted.")


# --- argument parsing ------------------------------------------------------------------


# Values checked while parsing, so that a malformed one is a usage error (exit 2) that
# names its option, before any passphrase is asked or any file is opened.
def _desk_id_arg(text: str) -> str:
    if not ids.is_desk_id(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a desk id ({ids.DESK_ID_PATTERN})")
    return text


def _recipient_arg(text: str) -> Recipient:
    try:
        return parse_recipient(text)
    except (AgeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="intake-keys",
        description="Amana key tools: desk keys, age encryption, fingerprints, keyring.",
        epilog="See docs/cli.md. Example: intake-keys generate --desk smex --out ./smex-keys",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog="example:\n" + textwrap.indent(example, "  "),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    g = command(
        "generate",
        "create a desk's keys (passphrase-encrypted) and its public desk.json",
        "intake-keys generate --desk smex --out ./smex-keys --names-ar 'سمكس'",
    )
    g.add_argument(
        "--desk",
        required=True,
        type=_desk_id_arg,
        metavar="ID",
        help=f"desk id, {ids.DESK_ID_PATTERN}",
    )
    g.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory to create (or one without desk keys in it)",
    )
    g.add_argument("--names-en", metavar="NAME", help="English display name (default: the id)")
    g.add_argument("--names-ar", metavar="NAME", help="Arabic display name (default: the id)")
    g.add_argument("--names-fr", metavar="NAME", help="French display name (default: the id)")
    g.add_argument("--pq", action="store_true", help="post-quantum hybrid identity (age1pq1…)")
    g.add_argument(
        "--passphrase-file", metavar="FILE", help="read the passphrase from this file's first line"
    )
    g.set_defaults(func=cmd_generate)

    e = command(
        "encrypt",
        "encrypt to age recipients or a passphrase (stdin to stdout by default)",
        "intake-keys encrypt -r age1qyq… -r age1zx8… -a -o report.age report.json\n"
        "intake-keys encrypt -R desks.txt < evidence.zip > evidence.zip.age",
    )
    e.add_argument(
        "-r", "--recipient", action="append", default=[], metavar="RECIPIENT",
        type=_recipient_arg,
        help="age1… or age1pq1… (repeatable)",
    )  # fmt: skip
    e.add_argument(
        "-R", "--recipients-file", dest="recipients", action="append", default=[],
        metavar="FILE",
        help="file of recipients, one per line (repeatable)",
    )  # fmt: skip
    e.add_argument("-p", "--passphrase", action="store_true", help="encrypt to a passphrase")
    e.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="passphrase from this file's first line (implies -p)",
    )
    e.add_argument("-a", "--armor", action="store_true", help="ASCII-armored output")
    e.add_argument("-o", "--output", metavar="OUT", help="output file (created only on success)")
    e.add_argument("-f", "--force", action="store_true", help="replace an existing output file")
    e.add_argument("input", nargs="?", metavar="INPUT", help="input file (default: stdin)")
    e.set_defaults(func=cmd_encrypt)

    d = command(
        "decrypt",
        "decrypt an age file with identity files or a passphrase",
        "intake-keys decrypt -i smex-keys/identity.age -o report.json report.age",
    )
    d.add_argument(
        "-i", "--identity", action="append", default=[],
        metavar="IDENTITY_FILE",
        help="identity file, plain or passphrase-encrypted (repeatable)",
    )  # fmt: skip
    d.add_argument(
        "--passphrase-file", metavar="FILE", help="passphrase (for the file or the identity file)"
    )
    d.add_argument("-o", "--output", metavar="OUT", help="output file (created only on success)")
    d.add_argument("-f", "--force", action="store_true", help="replace an existing output file")
    d.add_argument("input", nargs="?", metavar="INPUT", help="input file (default: stdin)")
    d.set_defaults(func=cmd_decrypt)

    f = command(
        "fingerprint",
        "print the fingerprint of a desk entry or an age recipient",
        "intake-keys fingerprint smex-keys/desk.json",
    )
    f.add_argument("key", metavar="DESK_JSON|RECIPIENT")
    f.set_defaults(func=cmd_fingerprint)

    q = command(
        "qr",
        "a QR code of a desk's fingerprint or of a recipient",
        "intake-keys qr smex-keys/desk.json\nintake-keys qr --format svg -o smex.svg desk.json",
    )
    q.add_argument("key", metavar="DESK_JSON|RECIPIENT")
    q.add_argument("--format", choices=("terminal", "svg", "png"), default="terminal")
    q.add_argument("--invert", action="store_true", help="terminal: for dark-on-light terminals")
    q.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout)")
    q.add_argument("-f", "--force", action="store_true", help="replace an existing output file")
    q.set_defaults(func=cmd_qr)

    k = command(
        "keyring",
        "check or build the coalition keyring",
        "intake-keys keyring check keyring.json\nintake-keys keyring add keyring.json desk.json\n"
        "intake-keys keyring replace keyring.json new/desk.json --transition new/transition.txt\n"
        "intake-keys keyring remove keyring.json old-desk",
    )
    ksub = k.add_subparsers(dest="keyring_command", required=True, metavar="ACTION")
    kc = ksub.add_parser(
        "check",
        help="validate a keyring file",
        epilog="example:\n  intake-keys keyring check keyring.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kc.add_argument("file")
    kc.set_defaults(func=cmd_keyring_check)
    ka = ksub.add_parser(
        "add",
        help="add desk entries to a keyring (created if missing)",
        epilog="example:\n  intake-keys keyring add keyring.json smex/desk.json gchr/desk.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ka.add_argument("file")
    ka.add_argument("desk_json", nargs="+", metavar="DESK_JSON")
    ka.set_defaults(func=cmd_keyring_add)
    kr = ksub.add_parser(
        "replace",
        help="give a desk of the keyring its new keys (after `intake-keys rotate`)",
        description="Replace a desk's keys. The new entry is accepted only with the "
        "transition statement its old and new keys signed, or with --lost-key for a desk "
        "whose old key is gone (recorded as such; the old key is never trusted again).",
        epilog="example:\n  intake-keys keyring replace keyring.json smex-new/desk.json "
        "--transition smex-new/transition.txt\n"
        "  intake-keys keyring replace keyring.json smex-new/desk.json --lost-key",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kr.add_argument("file")
    kr.add_argument("desk_json", metavar="DESK_JSON", help="the new desk.json")
    kr.add_argument("--transition", metavar="FILE", help="transition.txt from `rotate`")
    kr.add_argument(
        "--lost-key",
        action="store_true",
        help="the old key is gone: no statement; nothing encrypted to it can be read any more",
    )
    kr.set_defaults(func=cmd_keyring_replace)
    kd = ksub.add_parser(
        "remove",
        help="remove desks from a keyring",
        epilog="example:\n  intake-keys keyring remove keyring.json old-desk",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kd.add_argument("file")
    kd.add_argument("desk", nargs="+", type=_desk_id_arg, metavar="DESK_ID")
    kd.set_defaults(func=cmd_keyring_remove)

    r = command(
        "rotate",
        "make a desk's next keys and a transition statement signed by old and new keys",
        "intake-keys rotate --desk ./smex-keys --out ./smex-keys-2027",
    )
    r.add_argument("--desk", required=True, metavar="DIR", help="the desk's current keys")
    r.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="directory for the new keys (created; must not hold keys)",
    )
    r.add_argument(
        "--pq",
        action="store_true",
        help="make the new identity post-quantum (default: same kind as the old)",
    )
    r.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="the current passphrase, from this file's first line",
    )
    r.add_argument(
        "--new-passphrase-file",
        metavar="FILE",
        help="encrypt the new keys to this passphrase (default: the current one)",
    )
    r.set_defaults(func=cmd_rotate)

    o = command(
        "onion-auth",
        "make a client-authorization key for the staff onion (tor's x25519 formats)",
        "intake-keys onion-auth --name transfer-1 \\\n"
        "    --onion 25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion \\\n"
        "    --out ./onion-keys\n"
        "Run it on the transfer machine; copy only NAME.auth to the server.",
    )
    o.add_argument(
        "--name", required=True, help="client name, 1-64 of A-Z a-z 0-9 - _ (becomes NAME.auth)"
    )
    o.add_argument(
        "--onion",
        metavar="ADDRESS",
        help="the staff onion's address (checked): writes NAME.auth_private",
    )
    o.add_argument("--out", default=".", help="directory for the files (default: .)")
    o.set_defaults(func=cmd_onion_auth)

    m = command(
        "demo",
        "end-to-end demonstration in a temporary directory (what `make run` runs)",
        "intake-keys demo",
    )
    m.set_defaults(func=cmd_demo)
    return p


def _fail(message: str, status: int = 1) -> NoReturn:
    sys.stdout.flush()
    print(message, file=sys.stderr)
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> None:
    process.harden_process()  # it generates and holds desk keys: no core dumps
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except AgeError as e:
        hint = next((h for cls, h in _HINTS.items() if isinstance(e, cls)), "")
        # str(e) begins with the failure class ("HMAC failure: ..."); keep it first.
        _fail(f"{e}; {hint}" if hint else str(e))
    except UsageError as e:
        _fail(f"error: {e}", 2)
    except (CLIError, DeskError, KeyringError, TransitionError) as e:
        _fail(f"error: {e}")
    except ValueError as e:
        # The library's refusals of bad arguments (a malformed key, an invalid desk id).
        _fail(f"error: {e}")
    except BrokenPipeError:
        # The reader went away (`| head`). Point stdout at /dev/null so that the final
        # flush at exit does not raise a second time, and report nothing: no one listens.
        devnull = os.open(os.devnull, os.O_WRONLY)  # a device (fs audit ALLOWED)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except KeyboardInterrupt:
        _fail("error: interrupted")
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _fail(f"error: {where}{e.strerror or e}")

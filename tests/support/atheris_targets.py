"""Coverage-guided fuzzing of the parsers with atheris (libFuzzer), run by
tests/test_atheris.py as ``python atheris_targets.py TARGET -runs=N -max_total_time=S``.

Each target feeds the fuzzer's bytes to one parser and lets only that parser's
documented error classes through (the same contracts as tests/test_parser_fuzz.py);
anything else escapes, and atheris reports it as a crash with the input that caused
it (saved as ``crash-*`` in the working directory, replayable by passing that file
instead of the flags). libFuzzer's ``-rss_limit_mb`` bounds the whole process's memory.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import atheris

# Only this project's code is instrumented: instrumenting the libraries it imports
# (the ANTLR runtime, email, cryptography's Python layer) took longer than the run.
with atheris.instrument_imports(include=["keys", "journalist_client"]):
    from journalist_client.iocs.attachments import (
        Limits,
        ZipFormatError,
        ZipLimitError,
        read_zip,
        scan_attachment,
    )
    from journalist_client.iocs.match import IndicatorIndex, Location
    from journalist_client.iocs.stix import BundleError as StixBundleError
    from journalist_client.iocs.stix import load_bundle, parse_pattern
    from journalist_client.schema import DocumentError, parse_document
    from keys.age import AgeError, X25519Identity, decrypt, encrypt

IDENTITY = X25519Identity(b"\x07" * 32)
LIMITS = Limits(max_total_bytes=16 << 20, max_entry_bytes=8 << 20)
INDEX = IndicatorIndex.build(())


def _age(data: bytes) -> None:
    with contextlib.suppress(AgeError):
        decrypt(data, [IDENTITY])


def _zip(data: bytes) -> None:
    with contextlib.suppress(ZipLimitError, ZipFormatError):
        read_zip(data, LIMITS)


def _attachment(data: bytes) -> None:
    for name in ("mail.eml", "processes.json", "output.zip", "notes"):
        scan_attachment(INDEX, name, data, Location("attachment", name), LIMITS)


def _stix(data: bytes) -> None:
    with contextlib.suppress(StixBundleError):
        load_bundle(data, "desk.json")


def _pattern(data: bytes) -> None:
    result = parse_pattern(data.decode("utf-8", "replace"))
    if not isinstance(result, (str, tuple)):
        raise TypeError(f"parse_pattern returned {type(result).__name__}")


def _document(data: bytes) -> None:
    with contextlib.suppress(DocumentError):
        parse_document(data, expected_type="report")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "age": _age, "zip": _zip, "attachment": _attachment, "stix": _stix,
    "pattern": _pattern, "document": _document,
}
# A seed each, so the fuzzer starts from a valid input and mutates inwards.
SEEDS: dict[str, bytes] = {
    "age": encrypt(b"a report", [IDENTITY.recipient()]),
    "zip": bytes.fromhex("504b0506") + bytes(18),
    "attachment": b"Content-Type: text/plain\r\n\r\nevil.example\r\n",
    "stix": b'{"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator", '
            b'"id": "indicator--1", "pattern": "[domain-name:value = \'a.example\']"}]}',
    "pattern": b"[file:hashes.'SHA-256' = 'aa'] AND [url:value = 'http://x/']",
    "document": b'{"schema": "amana.report", "version": 1}',
}


def main() -> None:
    target, args = sys.argv[1], sys.argv[2:]
    corpus = args[-1] if args and not args[-1].startswith("-") else None
    if corpus is not None:
        import pathlib

        pathlib.Path(corpus).mkdir(exist_ok=True)
        seed = pathlib.Path(corpus) / "seed"
        if not seed.exists():
            seed.write_bytes(SEEDS[target])
    atheris.Setup([sys.argv[0], *args], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""server-verify.key as `intake-server init` writes it, read by one parser (issue 17,
item 2): a comment line, then the key. Accepted as the file's path or its content;
anything else is refused with one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intake_server.install import SIGNING_KEY_NAME, VERIFY_KEY_NAME, init_install
from keys.signing import (
    KeyFormatError,
    SigningKey,
    parse_verify_key_file,
    read_verify_key,
)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `intake-server init` directory: the file exactly as operators get it."""
    directory = tmp_path_factory.mktemp("server")
    init_install(directory, port=8080)
    return directory


def _expected(install: Path) -> str:
    signing = (install / SIGNING_KEY_NAME).read_text().splitlines()[-1]
    return str(SigningKey.from_text(signing).verify_key)


def test_the_file_init_writes_starts_with_a_comment(install: Path) -> None:
    # The reason for this parser: the file is not just the key.
    assert (install / VERIFY_KEY_NAME).read_text().startswith("#")


def test_the_file_content_parses(install: Path) -> None:
    text = (install / VERIFY_KEY_NAME).read_text()
    assert str(parse_verify_key_file(text)) == _expected(install)
    assert str(read_verify_key(text)) == _expected(install)


def test_the_file_path_reads(install: Path) -> None:
    assert str(read_verify_key(str(install / VERIFY_KEY_NAME))) == _expected(install)


def test_the_bare_key_still_works(install: Path) -> None:
    assert str(read_verify_key(_expected(install))) == _expected(install)
    assert str(read_verify_key(f"  {_expected(install)}\n")) == _expected(install)


def test_crlf_and_blank_lines_are_tolerated(install: Path) -> None:
    # A file that went through a Windows machine or an editor on its way to a desk.
    text = (install / VERIFY_KEY_NAME).read_text().replace("\n", "\r\n")
    assert str(parse_verify_key_file("\n" + text + "\n\n")) == _expected(install)
    assert str(parse_verify_key_file("\ufeff" + text)) == _expected(install)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no ed25519: key"),
    ("# only a comment\n", "no ed25519: key"),
    ("ed25519:AAAA\n", "43 base64url"),
    ("# x\ned25519:{k}\ned25519:{k}\n", "more than one line"),
    ("# x\ned25519:{k} trailing\n", "43 base64url"),
    ("hello\n", "expected text starting with 'ed25519:'"),
])
def test_anything_else_is_refused_with_one_line(text: str, message: str) -> None:
    key = str(SigningKey.generate().verify_key).removeprefix("ed25519:")
    with pytest.raises(KeyFormatError, match=message) as exc:
        parse_verify_key_file(text.format(k=key))
    assert "\n" not in str(exc.value)


def test_the_secret_key_is_refused_without_being_repeated(install: Path) -> None:
    # The easy mistake: handing the desks server-signing.key. Refused, and the error
    # (which may end up in a terminal log or a screenshot) does not echo the seed.
    secret = (install / SIGNING_KEY_NAME).read_text()
    for given in (secret, str(install / SIGNING_KEY_NAME)):
        with pytest.raises(KeyFormatError, match="server-signing.key") as exc:
            read_verify_key(given)
        assert secret.splitlines()[-1].split(":")[1] not in str(exc.value)


def test_a_missing_path_or_a_non_key_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFormatError, match="neither an ed25519: key nor a readable file"):
        read_verify_key(str(tmp_path / "absent.key"))
    big = tmp_path / "big.key"
    big.write_bytes(b"#" * 100_000)
    with pytest.raises(KeyFormatError, match="larger than"):
        read_verify_key(str(big))


def test_a_fifo_in_place_of_the_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "server-verify.key"
    os.mkfifo(fifo)
    with pytest.raises(KeyFormatError):
        read_verify_key(str(fifo))

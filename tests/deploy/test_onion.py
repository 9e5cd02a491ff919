"""keys.onion: v3 addresses and tor's client-authorization formats, by known answers.

The live check against tor itself (hostname files, key files tor loads) is in
test_tor.py; these pin the formats without tor.
"""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest

from keys.onion import (
    HS_PUBLIC_KEY_HEADER,
    ClientAuthKey,
    OnionError,
    client_auth_files,
    generate_client_auth,
    onion_address,
    onion_public_key,
    parse_auth_line,
    parse_auth_private_line,
    public_key_from_hs_file,
    write_client_auth,
)

# RFC 8032 test 1 public key; its v3 address as tor's ADD_ONION reports it (and as
# several independent implementations compute it).
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_ONION = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
# RFC 7748 section 6.1: Alice's X25519 private key and its public key.
RFC7748_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
B32_KEY = re.compile(r"[A-Z2-7]{52}")


def test_address_of_a_known_key() -> None:
    assert onion_address(RFC8032_PUBLIC) == RFC8032_ONION
    assert onion_public_key(RFC8032_ONION) == RFC8032_PUBLIC
    # Without the suffix, in capitals, with surrounding whitespace: the same key.
    assert onion_public_key("  " + RFC8032_ONION.upper().removesuffix(".ONION") + "\n") \
        == RFC8032_PUBLIC


@pytest.mark.parametrize(
    ("address", "why"),
    [
        (RFC8032_ONION.replace("25nj", "25nk"), "checksum"),  # one letter off
        (RFC8032_ONION[:-7] + ".onion", "not a v3"),  # truncated
        ("facebookcorewwwi.onion", "not a v3"),  # a v2 address
        (RFC8032_ONION.replace("25nj", "25n1"), "not a v3"),  # 1 is not base32
        ("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sia.onion", "version 3"),
    ],
)
def test_bad_addresses_are_refused(address: str, why: str) -> None:
    with pytest.raises(OnionError, match=why):
        onion_public_key(address)


def test_a_different_version_byte_is_refused() -> None:
    raw = RFC8032_PUBLIC + b"\x00\x00" + b"\x04"
    address = base64.b32encode(raw).decode().lower() + ".onion"
    with pytest.raises(OnionError, match="version 3"):
        onion_public_key(address)


def test_hs_public_key_file() -> None:
    data = HS_PUBLIC_KEY_HEADER + RFC8032_PUBLIC
    assert len(HS_PUBLIC_KEY_HEADER) == 32
    assert public_key_from_hs_file(data) == RFC8032_PUBLIC
    secret_header = b"== ed25519v1-secret: type0 ==\x00\x00\x00"
    for bad in (data[:-1], data + b"\x00", secret_header + data[32:]):
        with pytest.raises(OnionError):
            public_key_from_hs_file(bad)


def test_client_auth_known_answer() -> None:
    key = ClientAuthKey.from_private("transfer-1", RFC7748_PRIVATE)
    assert key.public_key == RFC7748_PUBLIC
    expected_pub = base64.b32encode(RFC7748_PUBLIC).decode().rstrip("=")
    assert key.auth_line() == f"descriptor:x25519:{expected_pub}"
    line = key.auth_private_line(RFC8032_ONION)
    label, rest = line.split(":", 1)
    assert label == RFC8032_ONION.removesuffix(".onion")
    assert rest.startswith("descriptor:x25519:")
    # The stored private key is the RFC 7748 clamped scalar; x25519 gives the same
    # public key for it, and tor generates its own keys clamped the same way.
    private = parse_auth_private_line(line)[1]
    assert private[0] & 7 == 0
    assert private[31] & 0xC0 == 0x40
    assert ClientAuthKey.from_private("t", private).public_key == RFC7748_PUBLIC


def test_generated_pairs_round_trip_through_the_formats() -> None:
    key = generate_client_auth("desk-laptop_2")
    pub_text = key.auth_line().split(":")[2]
    assert B32_KEY.fullmatch(pub_text)
    assert parse_auth_line(key.auth_line()) == key.public_key
    address, private = parse_auth_private_line(key.auth_private_line(RFC8032_ONION))
    assert address == RFC8032_ONION
    assert private == key.private_key
    assert generate_client_auth("x").private_key != generate_client_auth("x").private_key


def test_the_private_key_does_not_leak_into_repr() -> None:
    key = ClientAuthKey.from_private("t", RFC7748_PRIVATE)
    private_b32 = parse_auth_private_line(key.auth_private_line(RFC8032_ONION))[1]
    text = repr(key) + str(key)
    assert base64.b32encode(private_b32).decode().rstrip("=") not in text
    assert RFC7748_PRIVATE.hex() not in text
    assert key.public_b32 in text


@pytest.mark.parametrize("name", ["", "-x", "a/b", "../x", "a b", "a.auth", "x" * 65, "é"])
def test_unsafe_client_names_are_refused(name: str) -> None:
    with pytest.raises(OnionError, match="client name"):
        generate_client_auth(name)


@pytest.mark.parametrize(
    "line",
    [
        "descriptor:x25519:",
        "descriptor:ed25519:" + "A" * 52,
        "x25519:" + "A" * 52,
        "descriptor:x25519:" + "A" * 51,
        "descriptor:x25519:" + "A" * 53,
        "descriptor:x25519:" + "A" * 51 + "B",  # non-canonical: spare bits set
        "descriptor:x25519:" + "A" * 51 + "1",
    ],
)
def test_malformed_auth_lines_are_refused(line: str) -> None:
    with pytest.raises(OnionError):
        parse_auth_line(line)


def test_files_written_with_the_address(tmp_path: Path) -> None:
    key = generate_client_auth("transfer-1")
    out = tmp_path / "keys"
    paths = write_client_auth(key, out, RFC8032_ONION)
    names = sorted(p.name for p in paths)
    assert names == ["transfer-1.auth", "transfer-1.auth_private", "transfer-1.torrc"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert (out / "transfer-1.auth").read_text() == key.auth_line() + "\n"
    assert (out / "transfer-1.auth_private").read_text() == \
        key.auth_private_line(RFC8032_ONION) + "\n"
    assert "ClientOnionAuthDir /var/lib/tor/onion_auth\n" in (out / "transfer-1.torrc").read_text()
    # A second key under the same name would lock out the first machine: refused.
    with pytest.raises(OnionError, match="already exists"):
        write_client_auth(generate_client_auth("transfer-1"), out, RFC8032_ONION)
    assert (out / "transfer-1.auth").read_text() == key.auth_line() + "\n"


def test_files_without_the_address_keep_the_private_key(tmp_path: Path) -> None:
    key = generate_client_auth("t")
    files = client_auth_files(key, None)
    assert sorted(files) == ["t.auth", "t.torrc", "t.x25519"]
    private_text = files["t.x25519"].decode().strip()
    assert B32_KEY.fullmatch(private_text)
    line = f"{RFC8032_ONION.removesuffix('.onion')}:descriptor:x25519:{private_text}"
    assert parse_auth_private_line(line)[1] == key.private_key


def test_a_bad_address_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(OnionError, match="checksum"):
        write_client_auth(generate_client_auth("t"), tmp_path / "o", "3" + RFC8032_ONION[1:])
    assert not (tmp_path / "o").exists()

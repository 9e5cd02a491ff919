"""Source codenames and what is derived from them.

A codename is 7 words drawn uniformly with :mod:`secrets` from the EFF large word list
(7,776 words): 7 × log2(7776) ≈ 90.47 bits. It is the source's only credential; the
server keeps nothing from which it can be recovered except these Argon2id outputs:

* ``source_id``: Argon2id(codename, salt ``SALT_SOURCE_ID``) as 64 hex digits, the
  source's stable, unlinkable identifier;
* ``reply_identity``: Argon2id(codename, salt ``SALT_REPLY_KEY``) taken as an X25519
  secret; its public half is the recipient that classic desks encrypt replies to, and
  the source's stable reply address (the server files replies under it);
* ``reply_pq_identity``: Argon2id(codename, salt ``SALT_REPLY_PQ_KEY``) taken as the
  32-byte seed of an mlkem768x25519 identity; post-quantum desks encrypt replies to its
  public half. Derived only where the keyring is post-quantum (a third Argon2id run).

The salts differ, so the server's copy of a source id says nothing about either reply
key. The post-quantum seed has its own Argon2id run rather than a hash of the X25519
secret: the X25519 reply recipient is stored on the server in the clear, and an
adversary with a quantum computer recovers its secret from it; a seed computed from
that secret would fall with it.
Parameters, salts and the attacker model are in docs/codenames.md.

Error messages never quote a word of the codename: they may reach a log.
"""

from __future__ import annotations

import functools
import math
import secrets
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Final

from nacl.pwhash import argon2id as _nacl_argon2id

from keys.age import HybridIdentity, X25519Identity

__all__ = [
    "ARGON2_MEMLIMIT",
    "ARGON2_OPSLIMIT",
    "CODENAME_BITS",
    "CODENAME_WORDS",
    "DEFAULT_PARAMS",
    "SALT_REPLY_KEY",
    "SALT_REPLY_PQ_KEY",
    "SALT_SOURCE_ID",
    "Argon2Params",
    "InvalidCodename",
    "SourceKeys",
    "derive_reply_identity",
    "derive_reply_pq_identity",
    "derive_source",
    "derive_source_id",
    "generate_codename",
    "normalize_codename",
    "wordlist",
]

CODENAME_WORDS: Final = 7
_WORDLIST_SIZE: Final = 7776
CODENAME_BITS: Final = CODENAME_WORDS * math.log2(_WORDLIST_SIZE)

#: libsodium's "moderate" Argon2id level: 3 passes over 256 MiB. One derivation takes
#: about 0.5 s on one core of a 2020s server; a login needs two (id and reply key), three
#: with a post-quantum keyring, so a server should run at most (free memory / 256 MiB)
#: derivations at once.
ARGON2_OPSLIMIT: Final = 3
ARGON2_MEMLIMIT: Final = 256 * 1024 * 1024

#: Fixed, per-purpose, 16-byte salts (libsodium's Argon2id salt size). They are public
#: and the same for everyone: the codename's 90 bits, not the salt, are the secret.
SALT_SOURCE_ID: Final = b"AmanaSourceID-v1"
SALT_REPLY_KEY: Final = b"AmanaReplyKey-v1"
SALT_REPLY_PQ_KEY: Final = b"AmanaReplyPQK-v1"

_OUTPUT_BYTES: Final = 32

# Characters that carry no letter but arrive when a codename is pasted from a
# right-to-left context or a rich-text editor: all of Unicode category Cf (LRM, RLM,
# ALM, the bidi embeddings and isolates, ZWSP, ZWNJ, ZWJ, word joiner, BOM, soft hyphen).
_HYPHENS: Final = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d"), "-")


class InvalidCodename(ValueError):
    """The text is not 7 words of the codename word list."""


@dataclass(frozen=True)
class Argon2Params:
    opslimit: int
    memlimit: int


DEFAULT_PARAMS: Final = Argon2Params(ARGON2_OPSLIMIT, ARGON2_MEMLIMIT)


@dataclass(frozen=True, repr=False)
class SourceKeys:
    source_id: str
    reply_identity: X25519Identity
    #: None unless derive_source() was asked for it (``post_quantum=True``).
    reply_pq_identity: HybridIdentity | None = None

    def __repr__(self) -> str:
        return f"SourceKeys(source_id={self.source_id!r}, reply_identity=<secret>)"


@functools.cache
def wordlist() -> tuple[str, ...]:
    """The EFF large word list, checked to be exactly what docs/codenames.md describes."""
    text = (
        resources.files("keys")
        .joinpath("wordlist/eff_large_wordlist.txt")
        .read_text(encoding="ascii")
    )
    words: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        dice, sep, word = line.partition("\t")
        if (
            not sep
            or len(dice) != 5
            or not set(dice) <= set("123456")
            or not word
            or not all(c.islower() or c == "-" for c in word)
        ):
            raise RuntimeError(f"codename word list: malformed line {lineno}")
        words.append(word)
    if len(words) != _WORDLIST_SIZE or len(set(words)) != _WORDLIST_SIZE:
        raise RuntimeError("codename word list: expected 7776 distinct words")
    return tuple(words)


@functools.cache
def _wordset() -> frozenset[str]:
    return frozenset(wordlist())


def generate_codename() -> str:
    """A fresh codename: 7 words, single spaces, lower case."""
    words = wordlist()
    return " ".join(secrets.choice(words) for _ in range(CODENAME_WORDS))


def normalize_codename(text: str) -> str:
    """Return the canonical form (7 lower-case words, single spaces) or raise.

    Tolerates what people do when they copy a codename from paper, a phone or a
    right-to-left page: any case, full-width letters (NFKC), any run of Unicode white
    space or line breaks, typographic hyphens, and invisible formatting characters.
    """
    if not isinstance(text, str):
        raise InvalidCodename("codename must be text")
    if len(text) > 1024:
        raise InvalidCodename("codename is far too long")
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    words = text.translate(_HYPHENS).lower().split()
    if len(words) != CODENAME_WORDS:
        raise InvalidCodename(
            f"a codename has exactly {CODENAME_WORDS} words; this text has {len(words)}"
        )
    known = _wordset()
    for position, word in enumerate(words, 1):
        if word not in known:
            raise InvalidCodename(
                f"word {position} of {CODENAME_WORDS} is not a codename word; check its spelling"
            )
    return " ".join(words)


def _argon2id(codename: str, salt: bytes, params: Argon2Params) -> bytes:
    password = normalize_codename(codename).encode("ascii")
    out: bytes = _nacl_argon2id.kdf(
        _OUTPUT_BYTES,
        password,
        salt,
        opslimit=params.opslimit,
        memlimit=params.memlimit,
    )
    return out


def derive_source_id(codename: str, *, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """The source id (64 lower-case hex digits) for a codename."""
    return _argon2id(codename, SALT_SOURCE_ID, params).hex()


def derive_reply_identity(
    codename: str, *, params: Argon2Params = DEFAULT_PARAMS
) -> X25519Identity:
    """The source's reply identity; ``.recipient()`` is what desks encrypt replies to."""
    return X25519Identity.from_bytes(_argon2id(codename, SALT_REPLY_KEY, params))


def derive_reply_pq_identity(
    codename: str, *, params: Argon2Params = DEFAULT_PARAMS
) -> HybridIdentity:
    """The source's post-quantum reply identity (mlkem768x25519), for post-quantum desks."""
    return HybridIdentity(_argon2id(codename, SALT_REPLY_PQ_KEY, params))


def derive_source(
    codename: str, *, post_quantum: bool = False, params: Argon2Params = DEFAULT_PARAMS
) -> SourceKeys:
    """The source id and reply identities: Argon2id runs one after the other (same memory).

    ``post_quantum`` adds the third run, for the post-quantum reply identity; a server
    asks for it for every source or for none (its keyring decides), so the time a
    derivation takes says nothing about the source.
    """
    return SourceKeys(
        source_id=derive_source_id(codename, params=params),
        reply_identity=derive_reply_identity(codename, params=params),
        reply_pq_identity=(
            derive_reply_pq_identity(codename, params=params) if post_quantum else None
        ),
    )

"""Codenames: generation, entropy, normalisation, and the Argon2id derivations."""

from __future__ import annotations

import hashlib
import math
import time
from importlib import resources

import pytest

from keys.age import HybridIdentity, HybridRecipient, X25519Identity, _bech32, decrypt, encrypt
from keys.codename import (
    ARGON2_MEMLIMIT,
    ARGON2_OPSLIMIT,
    CODENAME_BITS,
    DEFAULT_PARAMS,
    SALT_REPLY_KEY,
    SALT_REPLY_PQ_KEY,
    SALT_SOURCE_ID,
    Argon2Params,
    InvalidCodename,
    derive_reply_identity,
    derive_reply_pq_identity,
    derive_source,
    derive_source_id,
    generate_codename,
    normalize_codename,
    wordlist,
)

# libsodium's minimum cost: the derivations' structure is tested cheaply; the real
# parameters are exercised by the known-answer test below.
FAST = Argon2Params(opslimit=1, memlimit=8192)
CODENAME = "abacus abdomen abdominal abide abiding ability ablaze"


def test_wordlist_is_the_pinned_eff_large_list() -> None:
    data = resources.files("keys").joinpath("wordlist/eff_large_wordlist.txt").read_bytes()
    assert (
        hashlib.sha256(data).hexdigest()
        == "addd35536511597a02fa0a9ff1e5284677b8883b83e986e43f15a3db996b903e"
    )
    words = wordlist()
    assert len(words) == len(set(words)) == 7776
    assert words[0] == "abacus"
    assert words[-1] == "zoom"


def test_entropy_figure() -> None:
    assert math.isclose(CODENAME_BITS, 7 * math.log2(7776))
    assert 90.4 < CODENAME_BITS < 90.5


def test_generated_codenames_are_seven_known_words_and_vary() -> None:
    known = set(wordlist())
    seen = set()
    for _ in range(200):
        c = generate_codename()
        words = c.split(" ")
        assert len(words) == 7
        assert set(words) <= known
        assert normalize_codename(c) == c
        seen.add(c)
    assert len(seen) == 200


def test_generation_uses_the_whole_list() -> None:
    # 7,000 draws of a uniform choice over 7,776 words hit about 4,100 distinct words;
    # a generator stuck on part of the list (say the first half) cannot reach 3,000.
    drawn = [w for _ in range(1000) for w in generate_codename().split()]
    assert len(set(drawn)) > 3000
    index = {w: i for i, w in enumerate(wordlist())}
    upper_half = sum(index[w] >= 3888 for w in drawn)
    assert 3000 < upper_half < 4000


@pytest.mark.parametrize(
    "typed",
    [
        CODENAME,
        "  ABACUS Abdomen  abdominal\nabide\tabiding\r\nability ablaze  ",
        # pasted from a right-to-left page: RLM, LRM, ALM, bidi isolates, zero-width joiners
        "\u200fabacus\u200e abdomen\u061c abdominal \u2067abide\u2069 "
        "abi\u200bding ability\u200d ablaze",
        "\ufeffabacus\u00a0abdomen\u3000abdominal abide abiding ability ablaze",
        # full-width Latin (an Arabic or CJK keyboard in full-width mode), folded by NFKC
        "ａｂａｃｕｓ abdomen abdominal abide abiding ability ablaze",
    ],
)
def test_normalisation_accepts_what_people_paste(typed: str) -> None:
    assert normalize_codename(typed) == CODENAME


def test_typographic_hyphens_in_hyphenated_words() -> None:
    c = "drop-down felt-tip t-shirt yo-yo abacus abide ablaze"
    assert normalize_codename(c.replace("-", "\u2011").upper()) == c


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("abacus abdomen abdominal abide abiding ability", "has 6"),
        (CODENAME + " abacus", "has 8"),
        ("", "has 0"),
        ("abacus abdomen abdominal abide abidingg ability ablaze", "word 5 of 7"),
        ("abacus-abdomen abdominal abide abiding ability ablaze x", "word 1 of 7"),
        ("abacus abdomen abdominal abide abiding ability ablaze".replace("a", "а"), "word 1"),
        ("x" * 2000, "too long"),
    ],
)
def test_normalisation_rejects_with_a_clear_message(typed: str, message: str) -> None:
    with pytest.raises(InvalidCodename, match=message):
        normalize_codename(typed)


def test_error_messages_never_quote_the_codename() -> None:
    with pytest.raises(InvalidCodename) as info:
        normalize_codename("abacus abdomen abdominal abide abiding ability zzzsecret")
    assert "zzzsecret" not in str(info.value)
    assert "abacus" not in str(info.value)


def test_derivation_is_deterministic_and_normalised() -> None:
    a = derive_source(CODENAME, params=FAST)
    b = derive_source("  " + CODENAME.upper().replace(" ", "\n"), params=FAST)
    assert a.source_id == b.source_id
    assert str(a.reply_identity) == str(b.reply_identity)
    assert len(a.source_id) == 64
    int(a.source_id, 16)
    assert CODENAME not in repr(a)
    assert str(a.reply_identity) not in repr(a)


def test_derivations_are_separated() -> None:
    keys = derive_source(CODENAME, params=FAST)
    # The id and the reply key come from different salts: the id reveals nothing of the key.
    private = str(keys.reply_identity)
    reply_from_id = X25519Identity.from_bytes(bytes.fromhex(keys.source_id))
    assert str(reply_from_id) != private
    assert SALT_SOURCE_ID != SALT_REPLY_KEY
    assert len(SALT_SOURCE_ID) == len(SALT_REPLY_KEY) == 16
    other = derive_source(generate_codename(), params=FAST)
    assert other.source_id != keys.source_id
    assert str(other.reply_identity.recipient()) != str(keys.reply_identity.recipient())


def test_reply_identity_decrypts_what_is_sent_to_its_recipient() -> None:
    identity = derive_reply_identity(CODENAME, params=FAST)
    ciphertext = encrypt(b"a reply from the desk", [identity.recipient()])
    again = derive_reply_identity(CODENAME, params=FAST)
    assert decrypt(ciphertext, [again]) == b"a reply from the desk"


def test_post_quantum_reply_identity_only_when_asked_and_separated() -> None:
    classic = derive_source(CODENAME, params=FAST)
    assert classic.reply_pq_identity is None
    keys = derive_source(CODENAME, post_quantum=True, params=FAST)
    assert keys.reply_pq_identity is not None
    assert (keys.source_id, str(keys.reply_identity)) == (
        classic.source_id, str(classic.reply_identity))
    assert isinstance(keys.reply_pq_identity.recipient(), HybridRecipient)
    assert str(keys.reply_pq_identity) not in repr(keys)
    # Its own salt: the seed is neither the source id's bytes nor the X25519 secret's.
    assert len(SALT_REPLY_PQ_KEY) == 16
    assert len({SALT_SOURCE_ID, SALT_REPLY_KEY, SALT_REPLY_PQ_KEY}) == 3
    x25519_secret = _bech32.decode_key(str(keys.reply_identity), "age-secret-key-", upper=True,
                                       kind="identity", expected="an X25519 identity")
    for seed in (bytes.fromhex(keys.source_id), x25519_secret):
        assert str(HybridIdentity(seed)) != str(keys.reply_pq_identity)
    ciphertext = encrypt(b"a reply from a post-quantum desk",
                         [derive_reply_pq_identity(CODENAME, params=FAST).recipient()])
    assert decrypt(ciphertext, [keys.reply_pq_identity]) == b"a reply from a post-quantum desk"
    other = derive_reply_pq_identity(generate_codename(), params=FAST)
    assert str(other.recipient()) != str(keys.reply_pq_identity.recipient())


@pytest.mark.slow
def test_real_parameters_known_answer_and_cost() -> None:
    assert (ARGON2_OPSLIMIT, ARGON2_MEMLIMIT) == (3, 256 * 1024 * 1024)
    assert Argon2Params(3, 256 * 1024 * 1024) == DEFAULT_PARAMS
    # Expected values computed independently with OpenSSL's Argon2id (through the
    # `cryptography` package: lanes=1, iterations=3, memory_cost=262144 KiB, 32 bytes).
    start = time.perf_counter()
    source_id = derive_source_id(CODENAME)
    elapsed = time.perf_counter() - start
    assert source_id == "e84c41dcca7a5971f51516e3552442bd27e792dab67c168441c2eb8e9812ada5"
    reply = derive_reply_identity(CODENAME)
    expected = X25519Identity.from_bytes(
        bytes.fromhex("2f6d81ce4fae5a1da54501234de4d05a4c0059ec11d6e04a6b81ebf3c21ed3ba")
    )
    assert str(reply.recipient()) == str(expected.recipient())
    # The same independent computation with salt SALT_REPLY_PQ_KEY, as the hybrid seed.
    pq = derive_reply_pq_identity(CODENAME)
    expected_pq = HybridIdentity(
        bytes.fromhex("20b972e82195b5837a69ecf20bee399944e97ed12fab10089789afa0f89948fa")
    )
    assert str(pq) == str(expected_pq)
    # Cost is a design parameter (docs/codenames.md); a generous bound, since CI is shared.
    assert 0.05 < elapsed < 10

"""Load STIX 2.1 indicator bundles: the published spyware indicators, as MVT reads them.

Scope: bytes of one bundle file in, an :class:`IndicatorFile` out. Nothing here touches
the vault, the disk or the network; the caller reads the file (bounded) and stores
the result. The bundle is hostile input as far as this module is concerned: it is
strict JSON (no NaN, no duplicate keys, UTF-8 only), bounded in size, and every shape
problem raises :class:`BundleError` with a message a desk can act on, never another
exception.

Family mapping follows MVT (``mvt/common/indicators.py``, see
``shared/data/mvt_formats.md``): an indicator belongs to the ``report`` whose
``object_refs`` name it; otherwise to the ``malware`` a ``relationship`` points to from
it; otherwise to :data:`DEFAULT_FAMILY`.

Patterns are parsed with the OASIS ``stix2-patterns`` grammar. The published files
hold a million-scale mass of patterns of one shape, ``[key = 'value']``; the ANTLR
parser takes ~0.2 ms each, so a strict recogniser (:data:`_SIMPLE`) accepts exactly
that shape as the grammar defines it (object type, path, one ``=``, one string literal
with its two escapes ``\\'`` and ``\\\\``) and hands everything else to the parser.
The tests check the two agree on every pattern of the shared files and on generated
values. A pattern the matcher cannot evaluate (AND/OR, observation operators,
qualifiers, comparisons other than ``=``, keys MVT does not know, unparseable text)
is kept in :attr:`IndicatorFile.unsupported` with the reason, never dropped.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from journalist_client.iocs.normalise import normalise_domain, normalise_url

__all__ = [
    "DEFAULT_FAMILY",
    "MAX_BUNDLE_BYTES",
    "BundleError",
    "Indicator",
    "IndicatorFile",
    "Kind",
    "Unsupported",
    "load_bundle",
    "parse_pattern",
]

# The largest published bundle (mvt-indicators' stalkerware set) is under 8 MiB; a
# desk that builds bigger files passes max_bytes explicitly.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
# Longer patterns are not what MVT publishes and would make the ANTLR parse slow.
MAX_PATTERN_CHARS = 8192
DEFAULT_FAMILY = "Default collection"


class Kind(StrEnum):
    """What an indicator value is; one per MVT bucket (IPv4 kept apart from domains)."""

    DOMAIN = "domain"
    IPV4 = "ipv4"
    URL = "url"
    EMAIL = "email"
    PROCESS = "process"
    FILE_NAME = "file_name"
    FILE_PATH = "file_path"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    APP_ID = "app_id"
    APP_CERT = "app_cert"
    PROFILE_ID = "profile_id"
    ANDROID_PROPERTY = "android_property"


class BundleError(ValueError):
    """The file is not a STIX 2.1 bundle this loader accepts; the message says why."""


class Indicator(NamedTuple):
    """One evaluable indicator: ``kind`` and normalised ``value``, with its provenance.

    A named tuple rather than a frozen dataclass: a million are made per import, and
    a tuple is built several times faster; it is just as immutable.
    """

    kind: Kind
    value: str
    family: str
    source_file: str
    indicator_id: str
    # The pattern key as published, e.g. "file:hashes.'SHA-256'", for display and export.
    stix_key: str
    # Report references (URLs, or "source: id"), from the indicator then its collection.
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Unsupported:
    """An indicator whose pattern the matcher cannot evaluate, and why."""

    indicator_id: str
    pattern: str
    reason: str
    family: str
    source_file: str


@dataclass(frozen=True, slots=True)
class IndicatorFile:
    """Everything one bundle gave: evaluable indicators and the ones set aside."""

    source_file: str
    indicators: tuple[Indicator, ...]
    unsupported: tuple[Unsupported, ...]

    def families(self) -> dict[str, int]:
        """Indicator count per malware family (for ``iocs list``)."""
        counts: dict[str, int] = {}
        for indicator in self.indicators:
            counts[indicator.family] = counts.get(indicator.family, 0) + 1
        return counts


# (object type, property path) -> Kind, for every key MVT understands. Hash algorithm
# names are normalised first (lower case, no quotes or hyphens) as MVT does.
_KEYS: dict[tuple[str, tuple[str, ...]], Kind] = {
    ("domain-name", ("value",)): Kind.DOMAIN,
    ("ipv4-addr", ("value",)): Kind.IPV4,
    ("url", ("value",)): Kind.URL,
    ("email-addr", ("value",)): Kind.EMAIL,
    ("process", ("name",)): Kind.PROCESS,
    ("file", ("name",)): Kind.FILE_NAME,
    ("file", ("path",)): Kind.FILE_PATH,
    ("file", ("hashes", "md5")): Kind.MD5,
    ("file", ("hashes", "sha1")): Kind.SHA1,
    ("file", ("hashes", "sha256")): Kind.SHA256,
    ("app", ("id",)): Kind.APP_ID,
    ("app", ("cert", "md5")): Kind.APP_CERT,
    ("app", ("cert", "sha1")): Kind.APP_CERT,
    ("app", ("cert", "sha256")): Kind.APP_CERT,
    ("configuration-profile", ("id",)): Kind.PROFILE_ID,
    ("android-property", ("name",)): Kind.ANDROID_PROPERTY,
}

# The grammar's identifiers and string literal (STIXPattern.g4): a path step is an
# identifier or a quoted string; a string literal escapes only ' and \.
_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_STRING = r"'(?:[^'\\]|\\['\\])*'"
_SIMPLE = re.compile(
    rf"\[\s*({_IDENT}):((?:{_IDENT}|{_STRING})(?:\.(?:{_IDENT}|{_STRING}))*)\s*=\s*({_STRING})\s*\]"
)
_COMMON = re.compile(r"\[([a-z][a-z0-9-]*):([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?) = ('[^'\\]*')\]")
_PATH_STEP = re.compile(rf"{_IDENT}|{_STRING}")
_UNESCAPE = re.compile(r"\\(['\\])")


def _unquote(literal: str) -> str:
    """The value of a grammar string literal (quotes removed, the two escapes undone)."""
    inner = literal[1:-1]
    return _UNESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def _normalise_step(step: str) -> str:
    if step.startswith("'"):
        step = _unquote(step)
    return step


def _key_of(object_type: str, path: tuple[str, ...]) -> Kind | None:
    if len(path) == 2 and path[0] in ("hashes", "cert"):
        path = (path[0], path[1].lower().replace("-", ""))
    return _KEYS.get((object_type, path))


def parse_pattern(pattern: str) -> tuple[Kind, str, str] | str:
    """``(kind, raw value, key)`` for a single evaluable equality, else the reason it is not.

    The raw value is the string literal's content (escapes undone), not yet
    normalised; ``key`` is the pattern's own spelling (``file:hashes.'SHA-256'``).
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"pattern longer than {MAX_PATTERN_CHARS} characters"
    # The shape of nearly every published pattern, checked with a cheaper expression
    # first: plain key, canonical spacing, no escapes in the value.
    simple = _COMMON.fullmatch(pattern) or _SIMPLE.fullmatch(pattern.strip())
    if simple is not None:
        object_type, path_text, literal = simple.groups()
        kind = _simple_key(object_type, path_text)
        if kind is not None:
            return kind, _unquote(literal), f"{object_type}:{path_text}"
    return _parse_with_grammar(pattern)


@functools.lru_cache(maxsize=256)
def _simple_key(object_type: str, path_text: str) -> Kind | None:
    # A file repeats a handful of keys a million times: work each one out once.
    path = tuple(_normalise_step(s) for s in _PATH_STEP.findall(path_text))
    return _key_of(object_type, path)


def _parse_with_grammar(pattern: str) -> tuple[Kind, str, str] | str:
    # Imported here: the ANTLR runtime costs ~0.1 s to load and most files never need it.
    from stix2patterns.v21.pattern import Pattern

    try:
        data = Pattern(pattern).inspect()
    except Exception as exc:  # noqa: BLE001 - a third-party parser on hostile text
        # The parser raises ParseException for bad syntax, but ANTLR can also raise
        # RecursionError or its own errors on odd input; all mean "cannot evaluate".
        return f"not a valid STIX 2.1 pattern ({type(exc).__name__})"
    if data.observation_ops:
        return "observation operator " + "/".join(sorted(data.observation_ops))
    if data.qualifiers:
        return "qualifier " + "/".join(sorted(data.qualifiers))
    comparisons = [(t, c) for t, cs in data.comparisons.items() for c in cs]
    if len(comparisons) != 1:
        return f"{len(comparisons)} comparisons (AND/OR): only one equality is evaluated"
    object_type, (path_list, operator, literal) = comparisons[0]
    key = f"{object_type}:{'.'.join(str(p) for p in path_list)}"
    if operator != "=":
        return f"comparison {operator!r} on {key}: only '=' is evaluated"
    if not (isinstance(literal, str) and literal.startswith("'")):
        return f"non-string value on {key}"
    kind = _key_of(object_type, tuple(str(p) for p in path_list))
    if kind is None:
        return f"key {key} is not one MVT understands"
    return kind, _unquote(literal), key


def _normalise_value(kind: Kind, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if kind is Kind.DOMAIN:
        # Some bundles put "host/path" under domain-name (SOURCE.md): match the host.
        return normalise_domain(value.split("/", 1)[0])
    if kind is Kind.URL:
        return normalise_url(value)
    if kind is Kind.EMAIL:
        local, at, domain = value.rpartition("@")
        if not at:
            return value.lower()
        host = normalise_domain(domain)
        return f"{local.lower()}@{host}" if host else None
    if kind in (Kind.MD5, Kind.SHA1, Kind.SHA256, Kind.APP_CERT):
        return value.lower()
    # App ids, properties and profile ids keep the published spelling for display; the
    # index compares them ignoring case, as MVT does.
    return value


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BundleError("duplicate key in a JSON object")
    return obj


def _reject_constant(name: str) -> None:
    raise BundleError(f"{name} is not JSON")


def _references(obj: Mapping[str, Any]) -> tuple[str, ...]:
    refs = obj.get("external_references")
    if not isinstance(refs, list):
        return ()
    out: list[str] = []
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        url, source, ext_id = ref.get("url"), ref.get("source_name"), ref.get("external_id")
        if isinstance(url, str) and url:
            out.append(url)
        elif isinstance(source, str) and isinstance(ext_id, str):
            out.append(f"{source}: {ext_id}")
    return tuple(out)


def _objects(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("type") != "bundle":
        raise BundleError("not a STIX bundle (no top-level object of type 'bundle')")
    objects = document.get("objects")
    if not isinstance(objects, list):
        raise BundleError("the bundle has no 'objects' list")
    return objects


def _sort(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The objects by type, each checked to be a STIX object with a string id."""
    by_type: dict[str, list[dict[str, Any]]] = {
        "indicator": [], "malware": [], "report": [], "relationship": []}
    for position, obj in enumerate(objects):
        if type(obj) is not dict:
            raise BundleError(f"objects[{position}] is not a STIX object")
        kind, ident = obj.get("type"), obj.get("id")
        if type(kind) is not str:
            raise BundleError(f"objects[{position}] is not a STIX object")
        if type(ident) is not str:
            raise BundleError(f"objects[{position}] has no string 'id'")
        group = by_type.get(kind)
        if group is not None:
            group.append(obj)
    return by_type


def _collections(
    by_type: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Indicator id -> family name, and family name -> its references, MVT's way."""
    names: dict[str, str] = {}
    refs: dict[str, tuple[str, ...]] = {}
    for obj in by_type["malware"] + by_type["report"]:
        name = obj.get("name")
        names[obj["id"]] = name if isinstance(name, str) and name else obj["id"]
        refs.setdefault(names[obj["id"]], _references(obj))
    family_of: dict[str, str] = {}
    for obj in by_type["relationship"]:
        source, target = obj.get("source_ref"), obj.get("target_ref")
        if (isinstance(source, str) and source.startswith("indicator--")
                and isinstance(target, str) and target.startswith("malware--")
                and target in names):
            family_of.setdefault(source, names[target])
    # A report's object_refs win over relationships (MVT checks reports first).
    for obj in by_type["report"]:
        members = obj.get("object_refs")
        if isinstance(members, list):
            for member in members:
                if isinstance(member, str):
                    family_of[member] = names[obj["id"]]
    return family_of, refs


@contextlib.contextmanager
def pause_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of dicts are made.

    JSON decoding allocates only acyclic containers, but each allocation burst makes
    the collector walk every live object again: on a million-indicator bundle that
    walk, not the parsing, took most of the time. Reference counting still frees
    everything; the collector is restored (if it was on) whatever happens.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_bundle(data: bytes, source_file: str, *,
                max_bytes: int = MAX_BUNDLE_BYTES) -> IndicatorFile:
    """Parse one STIX 2.1 bundle held in memory.

    ``source_file`` is the name the desk knows the file by (kept on every indicator).
    Raises :class:`BundleError` for anything that is not a usable bundle.
    """
    if len(data) > max_bytes:
        raise BundleError(f"{len(data)} bytes: larger than the {max_bytes}-byte limit")
    with pause_cyclic_gc():
        return _load(_decode(data), source_file)


def _decode(data: bytes) -> Any:
    """The JSON document, decoded strictly: UTF-8, no NaN, no duplicate keys.

    The standard library's decoder with a duplicate-key hook. orjson was tried (with
    a colon count to prove no key was dropped, since it keeps the last of duplicate
    keys silently): faster on 200,000 indicators, slower and 600 MiB bigger on a
    million, where allocating the decoded objects, not scanning, is the cost.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_strict_object,
                          parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BundleError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise BundleError("JSON nested too deeply") from None


def _load(document: Any, source_file: str) -> IndicatorFile:
    by_type = _sort(_objects(document))
    family_of, family_refs = _collections(by_type)
    indicators: list[Indicator] = []
    unsupported: list[Unsupported] = []
    seen: set[tuple[Kind, str, str]] = set()
    # The loop runs a million times per large file: the common shape (a plain key, a
    # value without escapes, a domain in ASCII) is handled inline, with the names it
    # uses bound locally; everything else goes through parse_pattern and
    # _normalise_value, which give the same result for that shape (the tests compare).
    common, simple_key, new = _COMMON.fullmatch, _simple_key, tuple.__new__
    domain = Kind.DOMAIN
    for obj in by_type["indicator"]:
        indicator_id = obj["id"]
        family = family_of.get(indicator_id, DEFAULT_FAMILY)
        pattern = obj.get("pattern")
        pattern_type = obj.get("pattern_type", "stix")
        if type(pattern) is not str:
            unsupported.append(Unsupported(indicator_id, "", "no string 'pattern'",
                                           family, source_file))
            continue
        if pattern_type != "stix":
            unsupported.append(Unsupported(indicator_id, pattern,
                                           f"pattern_type {pattern_type!r} is not 'stix'",
                                           family, source_file))
            continue
        value: str | None = None
        simple = common(pattern) if len(pattern) <= MAX_PATTERN_CHARS else None
        kind = simple_key(simple[1], simple[2]) if simple is not None else None
        if kind is domain:
            # _normalise_value for an ASCII domain without a path, spelled out.
            raw = simple[3][1:-1].strip()  # type: ignore[index]
            if raw and raw.isascii() and "/" not in raw:
                host = raw.rstrip(".").lower()
                value = host if host and len(host) <= 253 and ".." not in host else None
                key = f"{simple[1]}:{simple[2]}"  # type: ignore[index]
            else:
                kind = None
        if kind is None or kind is not domain:
            parsed = parse_pattern(pattern)
            if isinstance(parsed, str):
                unsupported.append(Unsupported(indicator_id, pattern, parsed, family,
                                               source_file))
                continue
            kind, raw, key = parsed
            value = _normalise_value(kind, raw)
        if value is None:
            unsupported.append(Unsupported(indicator_id, pattern, f"empty or invalid {kind}",
                                           family, source_file))
            continue
        # MVT de-duplicates values within a collection; so do we.
        marker = (kind, value, family)
        if marker in seen:
            continue
        seen.add(marker)
        own = obj.get("external_references")
        references = (_references(obj) if own is not None else ()) + family_refs.get(family, ())
        # tuple.__new__ skips the named tuple's Python-level __new__ (same object).
        indicators.append(new(Indicator, (kind, value, family, source_file, indicator_id,
                                          key, references)))
    return IndicatorFile(source_file, tuple(indicators), tuple(unsupported))

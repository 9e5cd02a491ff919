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
import io
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import compress, repeat
from typing import Any, NamedTuple

from journalist_client.iocs._json import ArrayStream, Readable, StrictJsonError
from journalist_client.iocs.normalise import normalise_domain, normalise_url

__all__ = [
    "DEFAULT_FAMILY",
    "MAX_BUNDLE_BYTES",
    "BundleError",
    "Indicator",
    "IndicatorColumns",
    "IndicatorFile",
    "Kind",
    "Unsupported",
    "load_bundle",
    "load_stream",
    "normalise_value",
    "parse_pattern",
]

# Published bundles reach ~312 MB (a year of one vendor's domains); the synthetic
# million of the benchmark is 552 MiB. The file is read in chunks and never held
# whole, so the limit does not bound memory (what is kept is ~0.3 KB per indicator,
# whatever the file's size): it refuses a file no publisher makes (a runaway export,
# a wrong file), before minutes are spent on it. 1 GiB: three times the largest
# published file, under two million indicators of the usual shape.
MAX_BUNDLE_BYTES = 1024 * 1024 * 1024
# One STIX object, decoded at a time: an indicator is under a kilobyte; a report
# object listing every indicator of a large file by id (object_refs) is the largest
# real one, ~50 bytes per indicator.
MAX_OBJECT_CHARS = 128 * 1024 * 1024
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


class IndicatorColumns(NamedTuple):
    """The indicators of one file as equal-length lists: position n of each is a field
    of indicator n (the fields of :class:`Indicator` but the file's name).

    The loader reads columns and the vault stores columns (journalist_client.iocs.stored):
    an import of a million goes from one to the other without making the million
    tuples that only the index needs (:attr:`IndicatorFile.indicators` makes them).
    """

    kinds: list[Kind]
    values: list[str]
    families: list[str]
    ids: list[str]
    keys: list[str]
    references: list[tuple[str, ...]]

    @classmethod
    def of(cls, indicators: Iterable[Indicator]) -> IndicatorColumns:
        """The columns of indicators (their file names are not kept)."""
        rows = list(indicators)

        def column(field: str) -> list[Any]:
            return list(map(operator.attrgetter(field), rows))

        return cls(column("kind"), column("value"), column("family"), column("indicator_id"),
                   column("stix_key"), column("references"))

    def kept(self, keep: Iterable[bool]) -> IndicatorColumns:
        """The indicators whose ``keep`` is true, in order."""
        keep = list(keep)

        def pick(column: list[Any]) -> list[Any]:
            return list(compress(column, keep))

        return IndicatorColumns(pick(self.kinds), pick(self.values), pick(self.families),
                                pick(self.ids), pick(self.keys), pick(self.references))

    def indicators(self, source_file: str) -> list[Indicator]:
        """The indicators, in order, each naming ``source_file``."""
        # tuple.__new__ skips the named tuple's Python-level __new__ (the same object).
        return list(map(tuple.__new__, repeat(Indicator), zip(
            self.kinds, self.values, self.families, repeat(source_file), self.ids,
            self.keys, self.references, strict=False)))


@dataclass(frozen=True)
class IndicatorFile:
    """Everything one bundle gave: evaluable indicators and the ones set aside."""

    source_file: str
    columns: IndicatorColumns
    unsupported: tuple[Unsupported, ...]

    def __len__(self) -> int:
        """How many evaluable indicators."""
        return len(self.columns.values)

    @functools.cached_property
    def indicators(self) -> tuple[Indicator, ...]:
        """The evaluable indicators, made from :attr:`columns` when first asked for."""
        return tuple(self.columns.indicators(self.source_file))

    def families(self) -> dict[str, int]:
        """Indicator count per malware family (for ``iocs list``), in first-seen order."""
        return dict(Counter(self.columns.families))


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


def normalise_value(kind: Kind, raw: str) -> str | None:
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
    """Parse one STIX 2.1 bundle held in memory (see :func:`load_stream`)."""
    if len(data) > max_bytes:
        raise BundleError(f"{len(data)} bytes: larger than the {max_bytes}-byte limit")
    return load_stream(io.BytesIO(data), source_file, max_bytes=max_bytes)


def load_stream(stream: Readable, source_file: str, *, max_bytes: int = MAX_BUNDLE_BYTES,
                on_read: Callable[[int], None] | None = None) -> IndicatorFile:
    """Parse one STIX 2.1 bundle from a binary stream, a chunk at a time.

    ``source_file`` is the name the desk knows the file by (kept on every indicator);
    ``on_read`` is told the size of each chunk read (for a progress bar). Memory holds
    one chunk, one object and what is kept of each indicator, never the decoded
    document. Raises :class:`BundleError` for anything that is not a usable bundle.
    """
    reader = ArrayStream(stream, "objects", max_bytes=max_bytes,
                         max_value_chars=MAX_OBJECT_CHARS, on_read=on_read)
    loader = _Loader(source_file)
    with pause_cyclic_gc():
        try:
            loader.read(reader)
        except StrictJsonError as exc:
            raise BundleError(str(exc)) from None
        top = reader.top
        if not isinstance(top, dict) or top.get("type") != "bundle":
            raise BundleError("not a STIX bundle (no top-level object of type 'bundle')")
        if not reader.found_array:
            raise BundleError("the bundle has no 'objects' list")
        return loader.finish()


def _first_of_each(keys: Iterable[tuple[Kind, str, str]]) -> list[bool]:
    """For each key, whether it is the first of its value (the ones to keep)."""
    seen: set[tuple[Kind, str, str]] = set()
    first: list[bool] = []
    for key in keys:
        first.append(key not in seen)
        seen.add(key)
    return first


# The one shape a million-indicator file is made of, recognised for a whole batch at once
# (see _batch_hosts): a domain-name equality, canonical spacing, whose value has only
# ASCII host characters, does not end in a dot, has no "..", and is at most 253
# characters. For such a value the grammar gives (DOMAIN, value, "domain-name:value")
# (it is a case of _COMMON) and normalise_value gives value.lower() (no space to strip,
# no "/", no trailing dot, ASCII). tests/…/test_stix.py compares this path with
# parse_pattern, the OASIS parser and normalise_value.
_BATCH_PREFIX = "[domain-name:value = '"
_BATCH_SUFFIX = "']"
_BATCH_SEPARATOR = _BATCH_SUFFIX + "\n" + _BATCH_PREFIX
_HOST_LINES = re.compile(r"[A-Za-z0-9_.\n-]*")
_MAX_HOST = 253


def _batch_hosts(patterns: list[str]) -> list[str] | None:
    """The lower-cased value of each pattern if every one has the batch shape, else None.

    A handful of C-speed string operations on the patterns joined by newlines, rather
    than an expression matched line by line (which cost three times as much). The
    hosts are what lies between the separators; the result is accepted only if putting
    prefix, separators and suffix back around them gives the joined text exactly, and
    that text has one newline per pattern boundary: then each pattern is prefix + its
    host + suffix, since no host holds a newline. Raises TypeError if a pattern is not
    a str.
    """
    joined = "\n".join(patterns)
    if not patterns:
        return []
    if not (joined.startswith(_BATCH_PREFIX) and joined.endswith(_BATCH_SUFFIX)
            and joined.count("\n") == len(patterns) - 1):
        return None
    hosts = joined[len(_BATCH_PREFIX):-len(_BATCH_SUFFIX)].replace(_BATCH_SEPARATOR, "\n")
    if (not hosts or _HOST_LINES.fullmatch(hosts) is None
            or hosts.startswith("\n") or hosts.endswith(("\n", "."))
            or "\n\n" in hosts or ".\n" in hosts or ".." in hosts
            or _BATCH_PREFIX + hosts.replace("\n", _BATCH_SEPARATOR) + _BATCH_SUFFIX != joined):
        return None
    values = hosts.lower().split("\n")
    if len(values) != len(patterns) or max(map(len, values)) > _MAX_HOST:
        return None
    return values


_DOMAIN_KEY = "domain-name:value"
# Below this many objects the per-object loop is as quick as the batch path.
_MIN_BATCH = 32

_Kept = tuple[Kind, str, str, str, tuple[str, ...]]


class _Loader:
    """What a bundle's objects leave behind, one batch of objects at a time, then the file.

    An indicator's family can be named by a relationship or report further down the
    file, so each indicator is kept as (kind, value, key, id, own references), in five
    columns, until the end, and the family and de-duplication are worked out then.
    """

    def __init__(self, source_file: str) -> None:
        self.source_file = source_file
        self.kinds: list[Kind] = []
        self.values: list[str] = []
        self.keys: list[str] = []
        self.ids: list[str] = []
        self.refs: list[tuple[str, ...]] = []
        self.set_aside: list[tuple[str, str, str]] = []  # id, pattern, reason
        self.collections: list[dict[str, Any]] = []  # malware, then report objects
        self.reports: list[dict[str, Any]] = []
        # Every relationship from an indicator to a malware, in file order, as two
        # columns: which one names an indicator's family is decided in finish().
        self.sources: list[str] = []
        self.targets: list[str] = []

    def read(self, batches: Iterable[list[Any]]) -> None:
        position = 0
        for batch in batches:
            if not self._read_batch(batch):
                self._read_objects(batch, position)
            position += len(batch)

    def _read_batch(self, batch: list[Any]) -> bool:
        """Take a batch whole, without a Python step per object, if it is of the
        common shape; else change nothing and say False (then :meth:`_read_objects`).

        The common shape: dicts with a string type and id; indicators whose pattern is
        a plain domain equality (:func:`_batch_hosts`), of pattern_type stix, without
        external references; relationships from an indicator to a malware; any other
        objects. The result is what the per-object loop gives for the same batch (the
        tests compare the two).
        """
        if len(batch) < _MIN_BATCH:
            return False
        get: Callable[..., Any] = dict.get
        eq = operator.eq
        # Each step is a C loop (map, compress, join, one regular expression); the type
        # checks are joins, which raise TypeError on anything but a str. Anything
        # unusual gives the batch to the per-object loop, which says what is wrong.
        try:
            types = list(map(get, batch, repeat("type")))  # TypeError: not a dict
            ids = list(map(get, batch, repeat("id")))
            "".join(types)
            "".join(ids)
            is_indicator = list(map(eq, types, repeat("indicator")))
            indicators = list(compress(batch, is_indicator))
            hosts = _batch_hosts(list(map(get, indicators, repeat("pattern"))))
            relationships = list(compress(batch, map(eq, types, repeat("relationship"))))
            source_refs = list(map(get, relationships, repeat("source_ref")))
            target_refs = list(map(get, relationships, repeat("target_ref")))
            sources = "\n".join(source_refs)
            targets = "\n".join(target_refs)
        except TypeError:
            return False
        if hosts is None:
            return False
        count, lines = len(hosts), len(relationships) - 1
        if (not all(map(eq, map(get, indicators, repeat("pattern_type"), repeat("stix")),
                        repeat("stix")))
                or any(map(get, indicators, repeat("external_references")))):
            return False
        # Every line of each (one per relationship) starts with its prefix.
        if lines >= 0 and not (
                sources.count("\n") == lines == targets.count("\n")
                and sources.startswith("indicator--") and targets.startswith("malware--")
                and sources.count("\nindicator--") == lines
                and targets.count("\nmalware--") == lines):
            return False

        self.sources.extend(source_refs)
        self.targets.extend(target_refs)
        if len(indicators) + len(relationships) != len(batch):
            for obj, kind_of in zip(batch, types, strict=True):
                if kind_of == "malware":
                    self.collections.append(obj)
                elif kind_of == "report":
                    self.reports.append(obj)
        if count:
            self.kinds.extend(repeat(Kind.DOMAIN, count))
            self.values.extend(hosts)
            self.keys.extend(repeat(_DOMAIN_KEY, count))
            self.ids.extend(compress(ids, is_indicator))
            self.refs.extend(repeat((), count))
        return True

    def _read_objects(self, batch: list[Any], position: int) -> None:
        # One object at a time. The common shape (a plain key, a value without escapes,
        # a domain in ASCII) is handled inline, with the names it uses bound locally;
        # everything else goes through parse_pattern and normalise_value, which give
        # the same result for that shape (the tests compare).
        common, simple_key = _COMMON.fullmatch, _simple_key
        domain = Kind.DOMAIN
        # The key of the last simple pattern, and its text made once: a file repeats
        # one key a million times, and each copy would be 70 bytes kept per indicator.
        last_key: tuple[str, str] = ("", "")
        key_text = ""
        rows: list[_Kept] = []
        kept, set_aside = rows.append, self.set_aside.append
        position -= 1
        for obj in batch:
            position += 1
            if type(obj) is not dict:
                raise BundleError(f"objects[{position}] is not a STIX object")
            kind_of, indicator_id = obj.get("type"), obj.get("id")
            if type(kind_of) is not str:
                raise BundleError(f"objects[{position}] is not a STIX object")
            if type(indicator_id) is not str:
                raise BundleError(f"objects[{position}] has no string 'id'")
            if kind_of == "relationship":
                source, target = obj.get("source_ref"), obj.get("target_ref")
                if (type(source) is str and type(target) is str
                        and source.startswith("indicator--")
                        and target.startswith("malware--")):
                    self.sources.append(source)
                    self.targets.append(target)
                continue
            if kind_of != "indicator":
                if kind_of == "malware":
                    self.collections.append(obj)
                elif kind_of == "report":
                    self.reports.append(obj)
                continue
            pattern = obj.get("pattern")
            pattern_type = obj.get("pattern_type", "stix")
            if type(pattern) is not str:
                set_aside((indicator_id, "", "no string 'pattern'"))
                continue
            if pattern_type != "stix":
                set_aside((indicator_id, pattern,
                           f"pattern_type {pattern_type!r} is not 'stix'"))
                continue
            value: str | None = None
            simple = common(pattern) if len(pattern) <= MAX_PATTERN_CHARS else None
            kind = None
            if simple is not None:
                object_type, path_text, literal = simple.groups()
                kind = simple_key(object_type, path_text)
            if kind is domain:
                # normalise_value for an ASCII domain without a path, spelled out.
                raw = literal[1:-1].strip()
                if raw and raw.isascii() and "/" not in raw:
                    host = raw.rstrip(".").lower()
                    value = host if host and len(host) <= 253 and ".." not in host else None
                    if (object_type, path_text) != last_key:
                        last_key = (object_type, path_text)
                        key_text = f"{object_type}:{path_text}"
                    key = key_text
                else:
                    kind = None
            if kind is None or kind is not domain:
                parsed = parse_pattern(pattern)
                if isinstance(parsed, str):
                    set_aside((indicator_id, pattern, parsed))
                    continue
                kind, raw, key = parsed
                value = normalise_value(kind, raw)
            if value is None:
                set_aside((indicator_id, pattern, f"empty or invalid {kind}"))
                continue
            own = obj.get("external_references")
            kept((kind, value, key, indicator_id, _references(obj) if own is not None else ()))
        if rows:
            for column, cells in zip((self.kinds, self.values, self.keys, self.ids, self.refs),
                                     zip(*rows, strict=True), strict=True):
                column.extend(cells)  # type: ignore[attr-defined]

    def _families(self) -> tuple[Callable[[list[str]], list[str]],
                                 dict[str, tuple[str, ...]]]:
        """The family of each of a list of indicator ids, and family name -> its
        references, MVT's way: a report naming the indicator in its object_refs, else
        the first malware with a name that a relationship from the indicator points to,
        else :data:`DEFAULT_FAMILY`."""
        names: dict[str, str] = {}
        refs: dict[str, tuple[str, ...]] = {}
        for obj in self.collections + self.reports:
            name = obj.get("name")
            names[obj["id"]] = name if isinstance(name, str) and name else obj["id"]
            refs.setdefault(names[obj["id"]], _references(obj))
        sources, targets = self.sources, self.targets
        distinct_targets = set(targets)
        if not self.reports and len(distinct_targets) <= 1:
            # The usual file: every relationship points to its one malware, so an
            # indicator's family is that malware's name if a relationship names the
            # indicator at all. The files are written an indicator then its
            # relationship, so the two id columns are most often equal (one C
            # comparison) and no table of a million ids is made.
            target = next(iter(distinct_targets), "")
            family = names.get(target, DEFAULT_FAMILY)

            def one_malware(ids: list[str]) -> list[str]:
                if ids == sources:
                    return [family] * len(ids)
                linked = set(sources)
                return [family if i in linked else DEFAULT_FAMILY for i in ids]
            return one_malware, refs
        # Reversed, so that the first relationship to a named malware is the one kept.
        family_of = {source: names[target]
                     for source, target in zip(reversed(sources), reversed(targets), strict=True)
                     if target in names}
        # A report's object_refs win over relationships (MVT checks reports first).
        for obj in self.reports:
            members = obj.get("object_refs")
            if isinstance(members, list):
                for member in members:
                    if isinstance(member, str):
                        family_of[member] = names[obj["id"]]

        def from_table(ids: list[str]) -> list[str]:
            return list(map(family_of.get, ids, repeat(DEFAULT_FAMILY)))
        return from_table, refs

    def finish(self) -> IndicatorFile:
        families_of, family_refs = self._families()
        source_file = self.source_file
        kinds, values, keys, ids, refs = self.kinds, self.values, self.keys, self.ids, self.refs
        families = families_of(ids)
        set_aside = self.set_aside
        unsupported = tuple(map(Unsupported, *zip(*set_aside, strict=True),
                                families_of([i for i, _, _ in set_aside]),
                                repeat(source_file))) if set_aside else ()
        self.sources.clear()
        self.targets.clear()
        # MVT de-duplicates values within a collection (kind and family); so do we,
        # keeping the first. Without a duplicate (the usual case, checked at C speed)
        # the loader's lists are the file's columns as they are.
        if len(set(kinds)) <= 1 and len(set(families)) <= 1:
            distinct = len(set(values))
        else:
            distinct = len(set(zip(kinds, families, values, strict=True)))
        references: list[tuple[str, ...]] = [()] * len(values)  # none: the usual file
        if any(family_refs.values()):
            references = list(map(family_refs.get, families, repeat(())))
        if any(refs):
            references = list(map(operator.add, refs, references))
        refs.clear()
        columns = IndicatorColumns(kinds, values, families, ids, keys, references)
        if distinct != len(values):
            first = _first_of_each(zip(kinds, families, values, strict=True))
            columns = columns.kept(first)
        return IndicatorFile(source_file, columns, unsupported)

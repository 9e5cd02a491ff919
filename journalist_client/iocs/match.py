"""Match candidates against the indicators: hashed sets, suffix walks, one automaton.

Scope: an :class:`IndicatorIndex` built once from :class:`Indicator` values (all the
desk's bundles), then asked many times. Every lookup is a dict probe; nothing loops
over the indicators.

* **Domains and IPv4** (one bucket, as MVT: some bundles put IPs under
  ``domain-name``): the candidate host and each parent down to its registrable domain
  (eTLD+1, from the Public Suffix List shipped in ``publicsuffixlist``) are probed. So
  ``a.pegasus-domain.com`` matches ``pegasus-domain.com``; ``notpegasus-domain.com``
  and ``pegasus-domain.com.evil.net`` do not (different labels; different registrable
  domain). An indicator that is itself a public suffix (``duckdns.org``) matches only
  exactly, never every name under it. Unlike MVT, which checks only the full host and
  the eTLD+1, an indicator ``sub.example.com`` also matches ``x.sub.example.com``.
* **URLs**: exact, on the normalised form (scheme and host case, A-label), then the
  host as a domain.
* **Emails, app ids, certificate hashes, profile ids, Android properties, file
  hashes**: exact, ignoring case (hashes by length: 32 md5, 40 sha1, 64 sha256).
* **Processes**: exact; a name of exactly 16 characters also matches an indicator it
  begins (systems cut process names to 16; MVT does the same). Such a match is
  marked ``how="process-prefix16"``, weaker evidence.
* **File paths**: exact, or under an indicator path (component boundary, so
  ``/data/local/tmp/wd/`` covers ``/data/local/tmp/wd/x`` but ``/a/b`` not ``/a/bc``);
  the basename is also checked against file names and process names.
* **Free text**: one Aho-Corasick automaton over the device-artefact values (paths,
  process and file names, app ids, properties, profile ids), hits kept only on token
  boundaries, plus :func:`~journalist_client.iocs.extract.extract` for the rest.

Every :class:`Match` carries the indicator (value, kind, family, source file) and the
caller's :class:`Location`: where in the report the candidate was.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import itemgetter
from typing import Literal

import ahocorasick
from publicsuffixlist import PublicSuffixList

from journalist_client.iocs.extract import Candidate, CandidateKind, extract
from journalist_client.iocs.normalise import normalise_domain, normalise_url, url_host
from journalist_client.iocs.stix import Indicator, Kind, pause_cyclic_gc

__all__ = ["DEVICE_KINDS", "IndicatorIndex", "Location", "Match", "MatchHow"]

MatchHow = Literal["exact", "subdomain", "url-host", "path-prefix", "basename",
                   "process-prefix16", "in-text", "marked"]

# Kinds that only exist on a device: a match on one is device evidence (taxonomy S2).
DEVICE_KINDS = frozenset({Kind.PROCESS, Kind.FILE_NAME, Kind.FILE_PATH, Kind.APP_ID,
                          Kind.APP_CERT, Kind.PROFILE_ID, Kind.ANDROID_PROPERTY})

_HOST_KINDS = frozenset({Kind.DOMAIN, Kind.IPV4})
# Indicators searched as substrings of free text; shorter ones ("bh") only as tokens.
_TEXT_KINDS = DEVICE_KINDS - {Kind.APP_CERT}
# A hit in free text must not continue a longer token on either side.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")
_PROCESS_CUT = 16
# MVT compares process and file names exactly, everything else ignoring case.
_CASE_SENSITIVE = frozenset({Kind.PROCESS, Kind.FILE_NAME})


@dataclass(frozen=True, slots=True)
class Location:
    """Where a candidate was found, as the caller names it.

    ``field`` is the report field ("description", "links", "attachment"...);
    ``attachment`` the attachment's name; ``path`` the names inside it, outermost first
    (a zip entry, a zip inside it, a MIME part, a JSON pointer); ``device_output`` says
    the text came from forensic output of a device (MVT records), not from a message.
    """

    field: str
    attachment: str | None = None
    path: tuple[str, ...] = ()
    device_output: bool = False

    def inside(self, *more: str, device_output: bool | None = None) -> Location:
        """This location, one or more steps further in."""
        return Location(self.field, self.attachment, self.path + more,
                        self.device_output if device_output is None else device_output)

    def __str__(self) -> str:
        parts = [self.field] + ([self.attachment] if self.attachment else []) + list(self.path)
        return " › ".join(parts)


@dataclass(frozen=True, slots=True)
class Match:
    """One indicator found at one place."""

    indicator: Indicator
    candidate: str
    location: Location
    how: MatchHow = "exact"

    @property
    def key(self) -> tuple[str, str, Location]:
        """Identity for de-duplication: one indicator once per location."""
        return (self.indicator.source_file, self.indicator.indicator_id, self.location)


@functools.cache
def _psl() -> PublicSuffixList:
    # The list bundled in the wheel; publicsuffixlist.update (which fetches) is never used.
    return PublicSuffixList()


def _add(table: dict[str, tuple[Indicator, ...]], key: str, indicator: Indicator) -> None:
    table[key] = table.get(key, ()) + (indicator,)


@dataclass
class IndicatorIndex:
    """All indicators, arranged for lookups. Build with :meth:`build`."""

    hosts: dict[str, tuple[Indicator, ...]] = field(default_factory=dict)
    urls: dict[str, tuple[Indicator, ...]] = field(default_factory=dict)
    exact: dict[Kind, dict[str, tuple[Indicator, ...]]] = field(default_factory=dict)
    paths: dict[str, tuple[Indicator, ...]] = field(default_factory=dict)
    process_prefixes: dict[str, tuple[Indicator, ...]] = field(default_factory=dict)
    _automaton: ahocorasick.Automaton | None = None
    # Every exact-kind value, as published and lower-cased, plus 16-character process
    # prefixes: the pre-check of match_value.
    _whole_values: set[str] = field(default_factory=set)
    _digest_lengths: frozenset[int] | None = None
    size: int = 0

    @classmethod
    def build(cls, indicators: Iterable[Indicator]) -> IndicatorIndex:
        index = cls()
        with pause_cyclic_gc():
            every = list(indicators)
            # Domains are nearly all of a large file's indicators: when no two share a
            # value (checked), their table is made in one C loop, each value with its
            # one indicator, as add() would make it; everything else goes through add().
            is_host = list(map(operator.contains, repeat(_HOST_KINDS),
                               map(itemgetter(0), every)))
            hosts = list(compress(every, is_host))
            table = dict(zip(map(itemgetter(1), hosts), zip(hosts), strict=True))
            if len(table) == len(hosts):
                index.hosts = table
                index.size = len(hosts)
                every = list(compress(every, map(operator.not_, is_host)))
            for indicator in every:
                index.add(indicator)
        return index

    def is_empty(self) -> bool:
        """Whether no indicator was added: then nothing can match."""
        return self.size == 0

    def add(self, indicator: Indicator) -> None:
        self.size += 1
        self._automaton = None
        self._digest_lengths = None
        kind, value = indicator.kind, indicator.value
        if kind is Kind.DOMAIN or kind is Kind.IPV4:
            _add(self.hosts, value, indicator)
        elif kind is Kind.URL:
            _add(self.urls, value, indicator)
        elif kind is Kind.FILE_PATH:
            _add(self.paths, value.rstrip("/") or "/", indicator)
        else:
            key = value if kind in _CASE_SENSITIVE else value.lower()
            _add(self.exact.setdefault(kind, {}), key, indicator)
            self._whole_values.add(key)
            if kind is Kind.PROCESS and len(value) > _PROCESS_CUT:
                _add(self.process_prefixes, value[:_PROCESS_CUT], indicator)
                self._whole_values.add(value[:_PROCESS_CUT])

    # --- one kind at a time ------------------------------------------------------

    def match_host(self, host: str, where: Location) -> list[Match]:
        """A domain or IPv4 address, and its parents down to the registrable domain."""
        name = normalise_domain(host)
        if name is None or not self.hosts:
            return []
        return self._match_name(name, name, where, "exact")

    def _match_name(self, name: str, candidate: str, where: Location,
                    how: MatchHow) -> list[Match]:
        hits = self.hosts.get(name)
        found = [Match(i, candidate, where, how) for i in hits] if hits else []
        if name.count(".") < 2:
            return found  # no parent below the top-level domain to probe
        labels = name.split(".")
        registrable: str | None = None
        for start in range(1, len(labels) - 1):
            parent = ".".join(labels[start:])
            hits = self.hosts.get(parent)
            if not hits:
                continue
            # Only now ask the PSL (hits on parents are rare): a parent at or above the
            # public suffix ("co.uk", "duckdns.org") is not this name's owner.
            registrable = registrable or _psl().privatesuffix(name) or name
            if len(parent) < len(registrable):
                break
            found.extend(Match(i, candidate, where, "subdomain" if how == "exact" else how)
                         for i in hits)
        return found

    def match_url(self, url: str, where: Location) -> list[Match]:
        normalised = normalise_url(url)
        return [] if normalised is None else self._match_url(normalised, where)

    def _match_url(self, normalised: str, where: Location,
                   host: str | None = None) -> list[Match]:
        hits = self.urls.get(normalised)
        found = [Match(i, normalised, where) for i in hits] if hits else []
        if host is None:
            host = url_host(normalised)
        if host is not None and self.hosts:
            found += self._match_name(host, normalised, where, "url-host")
        return found

    def match_exact(self, kind: Kind, value: str, where: Location) -> list[Match]:
        """Emails, hashes, app ids, certificates, profiles, properties, file and process names."""
        table = self.exact.get(kind)
        if not table:
            return []
        key = value.strip()
        if kind not in _CASE_SENSITIVE:
            key = key.lower()
        return [Match(i, key, where) for i in table.get(key, ())]

    def match_hash(self, digest: str, where: Location) -> list[Match]:
        digest = digest.strip().lower()
        kind = {32: Kind.MD5, 40: Kind.SHA1, 64: Kind.SHA256}.get(len(digest))
        if kind is None:
            return []
        return (self.match_exact(kind, digest, where)
                + self.match_exact(Kind.APP_CERT, digest, where))

    def digest_lengths(self) -> frozenset[int]:
        """The hex lengths (32 md5, 40 sha1, 64 sha256) of the digests some file-hash or
        certificate indicator has: the only digests worth computing."""
        if self._digest_lengths is None:
            lengths = {length for kind, length in ((Kind.MD5, 32), (Kind.SHA1, 40),
                                                   (Kind.SHA256, 64)) if self.exact.get(kind)}
            lengths.update(len(v) for v in self.exact.get(Kind.APP_CERT, {}))
            self._digest_lengths = frozenset(lengths & {32, 40, 64})
        return self._digest_lengths

    def match_process(self, name: str, where: Location) -> list[Match]:
        name = name.strip()
        found = self.match_exact(Kind.PROCESS, name, where)
        if len(name) == _PROCESS_CUT:
            found.extend(Match(i, name, where, "process-prefix16")
                         for i in self.process_prefixes.get(name, ()))
        return found

    def match_path(self, path: str, where: Location) -> list[Match]:
        """An absolute file path: the path and its parents, then its basename."""
        path = path.strip()
        found = [Match(i, path, where) for i in self.paths.get(path.rstrip("/") or "/", ())]
        for cut in _parent_cuts(path):
            found.extend(Match(i, path, where, "path-prefix")
                         for i in self.paths.get(path[:cut], ()))
        basename = path.rstrip("/").rpartition("/")[2]
        if basename:
            found.extend(Match(m.indicator, path, where, "basename")
                         for m in self.match_exact(Kind.FILE_NAME, basename, where)
                         + self.match_process(basename, where))
        return found

    # --- candidates and text -----------------------------------------------------

    def match_candidate(self, candidate: Candidate, where: Location) -> list[Match]:
        kind = candidate.kind
        # Candidate values are already normalised (extract.py).
        if kind is CandidateKind.URL:
            return self._match_url(candidate.value, where, candidate.host)
        if kind is CandidateKind.DOMAIN or kind is CandidateKind.IPV4:
            return self._match_name(candidate.value, candidate.value, where, "exact")
        if kind is CandidateKind.EMAIL:
            return self.match_exact(Kind.EMAIL, candidate.value, where)
        if kind is CandidateKind.HASH:
            return self.match_hash(candidate.value, where)
        return []  # phone numbers: no indicator kind holds them

    def could_match_value(self, value: str) -> bool:
        """Whether :meth:`match_value` can find anything for ``value`` (stripped).

        Most values of a record (dates, counters, message text) match nothing: one set
        probe says so, before the caller even builds the value's location.
        """
        return bool(value) and len(value) <= 4096 and (
            value[0] == "/" or value in self._whole_values
            or value.lower() in self._whole_values)

    def match_value(self, value: str, where: Location) -> list[Match]:
        """A whole field value from structured data (an MVT record): every exact kind."""
        value = value.strip()
        if not self.could_match_value(value):
            return []
        found: list[Match] = []
        if value.startswith("/"):
            found += self.match_path(value, where)
        else:
            found += self.match_process(value, where)
            found += self.match_exact(Kind.FILE_NAME, value, where)
        for kind in (Kind.APP_ID, Kind.PROFILE_ID, Kind.ANDROID_PROPERTY, Kind.EMAIL):
            found += self.match_exact(kind, value, where)
        found += self.match_hash(value, where)
        return found

    def scan_text(self, text: str, where: Location) -> list[Match]:
        """Every indicator in free text, each once per location.

        Raises :class:`~journalist_client.iocs.extract.ExtractError` past the size limit.
        """
        found: list[Match] = []
        # Phone numbers are left out: no indicator kind holds one (match_candidate).
        for candidate in extract(text, phones=False):
            found += self.match_candidate(candidate, where)
        found += self._automaton_hits(text, where)
        return dedupe(found)

    def _automaton_hits(self, text: str, where: Location) -> Iterator[Match]:
        automaton = self._text_automaton()
        if automaton is None:
            return
        lowered = text.lower()
        for end, (needle, indicators) in automaton.iter(lowered):
            start = end - len(needle) + 1
            before = lowered[start - 1] if start > 0 else " "
            after = lowered[end + 1:end + 3]
            if after[:1] == "." and after[1:] in _TOKEN_CHARS - {""}:
                continue  # "com.app.id.more": a longer dotted name, not this one
            if (needle[0] != "/" and before in _TOKEN_CHARS) or after[:1] in _TOKEN_CHARS - {"."}:
                continue
            if needle[0] != "/" and before == "/":
                continue  # a basename inside a path: the path itself is matched instead
            for indicator in indicators:
                yield Match(indicator, text[start:end + 1], where, "in-text")

    def _text_automaton(self) -> ahocorasick.Automaton | None:
        if self._automaton is None:
            needles: dict[str, tuple[Indicator, ...]] = {}
            tables = [self.exact.get(kind, {}) for kind in _TEXT_KINDS - {Kind.FILE_PATH}]
            for table in (*tables, self.paths):
                for value, indicators in table.items():
                    needle = value.lower()
                    needles[needle] = needles.get(needle, ()) + indicators
            if not needles:
                return None
            automaton = ahocorasick.Automaton()
            for needle, indicators in needles.items():
                automaton.add_word(needle, (needle, indicators))
            automaton.make_automaton()
            self._automaton = automaton
        return self._automaton


def _parent_cuts(path: str) -> Iterator[int]:
    position = path.find("/", 1)
    while position != -1:
        yield position
        position = path.find("/", position + 1)


def dedupe(matches: Iterable[Match]) -> list[Match]:
    """One match per indicator and location, the first (most specific) kept."""
    seen: dict[tuple[str, str, Location], Match] = {}
    for m in matches:
        seen.setdefault(m.key, m)
    return list(seen.values())

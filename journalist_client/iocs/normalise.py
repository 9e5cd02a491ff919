"""One spelling for hosts and URLs, shared by the indicator loader and the extractor.

Both sides of every comparison go through these functions, so an indicator and a
candidate meet on the same form: lower case, no trailing dot, and internationalised
labels as their A-label (``xn--…``, Python's ``idna`` codec: IDNA 2003 with nameprep,
which also folds full-width forms). A Cyrillic look-alike of a Latin domain therefore
has its own A-label and matches only an indicator for that A-label.
"""

from __future__ import annotations

import re

__all__ = ["normalise_domain", "normalise_url", "normalise_url_and_host", "url_host"]

_MAX_HOST = 253


def normalise_domain(host: str) -> str | None:
    """The A-label form of ``host`` in lower case, or None if it is not a usable name."""
    host = host.strip().rstrip(".").lower()
    if not host or len(host) > 4 * _MAX_HOST:
        return None
    if host.isascii():
        return host if len(host) <= _MAX_HOST and ".." not in host else None
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return encoded if len(encoded) <= _MAX_HOST else None


# scheme://authority then the rest. urllib.parse would do, but the offline client
# imports nothing from urllib (tests/journalist_client/test_offline.py).
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_AUTHORITY = re.compile(r"(?:(.*)@)?(\[[0-9A-Fa-f:.]+\]|[^:@]*)(?::([0-9]{1,5}))?")


def _split(url: str) -> tuple[str, str | None, str, str | None, str] | None:
    """(scheme, userinfo, host, port, rest) of an absolute URL, or None."""
    whole = _URL.fullmatch(url)
    if whole is None:
        return None
    scheme, authority, rest = whole.groups()
    parts = _AUTHORITY.fullmatch(authority)
    if parts is None:
        return None
    userinfo, host, port = parts.groups()
    return scheme, userinfo, host, port, rest


def normalise_url(url: str) -> str | None:
    """``url`` with scheme and host normalised (case, A-label); the rest as given."""
    both = normalise_url_and_host(url)
    return None if both is None else both[0]


# A URL already in normal form, as nearly every link in a report or a device record is:
# lower-case http(s) scheme, a lower-case ASCII host of dot-separated labels (no empty
# label, no trailing dot, so normalise_domain returns it unchanged), no userinfo, no
# port, then nothing or a path, query or fragment. Its normal form is itself and its
# host the second group; the tests compare this with the general path.
_NORMAL_URL = re.compile(r"https?://([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?:[/?#].*)?", re.DOTALL)


def normalise_url_and_host(url: str) -> tuple[str, str] | None:
    """:func:`normalise_url` and the :func:`url_host` of its result, in one parse."""
    url = url.strip()
    normal = _NORMAL_URL.fullmatch(url)
    if normal is not None and len(normal.group(1)) <= _MAX_HOST:
        return url, normal.group(1)
    return _normalise_url_and_host(url)


def _normalise_url_and_host(url: str) -> tuple[str, str] | None:
    # Any URL (stripped): parsed, host normalised, put back together.
    parts = _split(url)
    if parts is None:
        return None
    scheme, userinfo, raw_host, port, rest = parts
    host = raw_host.lower() if raw_host.startswith("[") else normalise_domain(raw_host)
    if not host:
        return None
    netloc = host if port is None else f"{host}:{port}"
    if userinfo is not None:
        netloc = f"{userinfo}@{netloc}"
    return f"{scheme.lower()}://{netloc}{rest}", host


def url_host(url: str) -> str | None:
    """The normalised host of a URL."""
    parts = _split(url.strip())
    if parts is None:
        return None
    host = parts[2]
    return host.lower() if host.startswith("[") else normalise_domain(host)

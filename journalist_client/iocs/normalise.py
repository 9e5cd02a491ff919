"""One spelling for hosts and URLs, shared by the indicator loader and the extractor.

Both sides of every comparison go through these functions, so an indicator and a
candidate meet on the same form: lower case, no trailing dot, and internationalised
labels as their A-label (``xn--…``, Python's ``idna`` codec: IDNA 2003 with nameprep,
which also folds full-width forms). A Cyrillic look-alike of a Latin domain therefore
has its own A-label and matches only an indicator for that A-label.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["normalise_domain", "normalise_url"]

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


def normalise_url(url: str) -> str | None:
    """``url`` with scheme and host normalised (case, A-label); the rest as given."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = normalise_domain(parts.hostname)
    if host is None:
        return None
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = host if port is None else f"{host}:{port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))


def url_host(url: str) -> str | None:
    """The normalised host of a normalised URL."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return normalise_domain(host) if host else None

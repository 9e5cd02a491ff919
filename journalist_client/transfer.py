"""The online side of the client: the transfer machine's fetch and push.

The transfer machine is online and holds no decryption key. It holds a *transfer
credential* (an Ed25519 key registered on the server for one desk) that lets it
download that desk's ciphertext and upload bundles the air-gapped machine has
signed. It can forge nothing: bundles are verified by the air-gapped client (exports,
against the server key) and by the server (acks and outboxes, against the desk's
signing key), and the transfer machine checks both too, so a bad USB stick or a
dropped connection is caught here rather than carried across the air gap.

Nothing in this module is imported by the offline commands: they open no socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tqdm import tqdm

from journalist_client.display import inert
from keys._fs import safe_write_bytes
from keys.bundle import BundleError, open_bundle
from keys.keyring import Keyring
from keys.request_auth import sign_request
from keys.signing import SigningKey, VerifyKey

__all__ = [
    "DEFAULT_MAX_BUNDLE_BYTES",
    "TransferError",
    "TransferSettings",
    "fetch",
    "init_transfer",
    "load_settings",
    "push",
]

CREDENTIAL = "transfer.key"
SETTINGS = "transfer.json"
_DESK_RE = re.compile(r"[a-z0-9-]{1,32}")
_CURSOR_RE = re.compile(r"(0|[1-9][0-9]{0,17})")
_CHUNK = 256 * 1024
_ATTEMPTS = 4
_MAX_SETTINGS = 4 * 1024 * 1024
_MAX_ANSWER = 4096
# The largest export bundle fetch accepts: the server is the other side, and a
# hostile or broken one must not be able to fill the transfer machine's disk. The
# server caps a bundle at 1 GiB of ciphertext unless one submission is larger by
# itself (intake_server.staff.store.EXPORT_MAX_BYTES); raise this with --max-mib
# for a server that accepts submissions that large.
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024 * 1024 * 1024


class TransferError(Exception):
    """A fetch or push failed; the message says what to do."""


@dataclass(frozen=True)
class TransferSettings:
    directory: Path
    desk: str
    credential: SigningKey
    server_key: VerifyKey
    keyring: Keyring

    @property
    def state_path(self) -> Path:
        return self.directory / "cursor.json"


def init_transfer(directory: Path, *, desk: str, server_key: str, keyring_path: Path) -> VerifyKey:
    """Create a transfer credential for ``desk`` in ``directory``; returns its public key.

    The operator registers the public key on the server
    (``intake-server desk add-transfer-key``). The credential is stored unencrypted
    (mode 0600): it only ever unlocks ciphertext, and the transfer machine must be able
    to run unattended.
    """
    if not _DESK_RE.fullmatch(desk):
        raise TransferError(f"desk id {desk!r} must be lower-case letters, digits or '-'")
    try:
        verify = VerifyKey.from_text(server_key.strip())
        keyring = Keyring.load(keyring_path)
    except (ValueError, OSError) as exc:
        raise TransferError(str(exc)) from None
    if keyring.get(desk) is None:
        raise TransferError(f"desk {desk!r} is not in the keyring {keyring_path}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (directory / CREDENTIAL).exists():
        raise TransferError(f"{directory / CREDENTIAL} exists; refusing to replace a credential")
    key = SigningKey.generate()
    settings = {
        "format": "amana-transfer",
        "version": 1,
        "desk": desk,
        "server_key": str(verify),
        "keyring": json.loads(keyring.to_json()),
    }
    safe_write_bytes(directory / SETTINGS, json.dumps(settings, indent=2).encode())
    safe_write_bytes(directory / CREDENTIAL, (key.to_text() + "\n").encode())
    return key.verify_key


def load_settings(directory: Path) -> TransferSettings:
    try:
        raw = (directory / SETTINGS).read_bytes()[:_MAX_SETTINGS]
        doc = json.loads(raw)
        credential = SigningKey.from_text((directory / CREDENTIAL).read_text().strip())
        if doc.get("format") != "amana-transfer" or doc.get("version") != 1:
            raise ValueError("not an Amana transfer settings file")
        desk = doc["desk"]
        if not isinstance(desk, str) or not _DESK_RE.fullmatch(desk):
            raise ValueError("malformed desk id")
        return TransferSettings(
            directory=directory,
            desk=desk,
            credential=credential,
            server_key=VerifyKey.from_text(doc["server_key"]),
            keyring=Keyring.from_json(json.dumps(doc["keyring"]).encode()),
        )
    except FileNotFoundError as exc:
        raise TransferError(
            f"{exc.filename} is missing: run `journalist-client transfer init` first"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TransferError(f"{directory}: transfer settings are damaged ({exc})") from None


async def _said(resp: aiohttp.ClientResponse) -> str:
    """What the server said, bounded and made inert: it is shown on a terminal, and a
    compromised server could otherwise rewrite the screen with escape sequences."""
    raw = await resp.content.read(_MAX_ANSWER)
    return inert(raw.decode("utf-8", "replace"))


def _connector(tor_socks: str | None) -> aiohttp.BaseConnector | None:
    if not tor_socks:
        return None
    from aiohttp_socks import ProxyConnector

    host, _, port = tor_socks.rpartition(":")
    if not host or not port.isdigit():
        raise TransferError("--tor-socks takes HOST:PORT, for example 127.0.0.1:9050")
    # rdns: the .onion name is resolved by Tor, never by the local resolver.
    return ProxyConnector.from_url(f"socks5://{host}:{port}", rdns=True)


def _base(server: str, tor_socks: str | None) -> str:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise TransferError(f"--server must look like http://HOST:PORT, not {server!r}")
    if (parts.hostname or "").endswith(".onion") and not tor_socks:
        # Without Tor the system resolver would be asked for the onion name: a leak of
        # the staff onion's address, and no connection anyway.
        raise TransferError(
            "an .onion server needs --tor-socks (Tor's SOCKS port, for example 127.0.0.1:9050)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _read_cursor(settings: TransferSettings) -> str:
    try:
        cursor = json.loads(settings.state_path.read_text())["after"]
    except FileNotFoundError:
        return "0"
    except (ValueError, KeyError, TypeError):
        raise TransferError(
            f"{settings.state_path} is damaged; delete it to fetch everything"
        ) from None
    if not isinstance(cursor, str) or not _CURSOR_RE.fullmatch(cursor):
        raise TransferError(f"{settings.state_path} is damaged; delete it to fetch everything")
    return cursor


def _verify_export(path: Path, settings: TransferSettings) -> int:
    with open_bundle(path, {"server": settings.server_key}, kind="desk-export") as bundle:
        return len(bundle.files)


class _TooLarge(TransferError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"the server's bundle is larger than {max_bytes // (1024 * 1024)} MiB, the most "
            "this machine accepts; nothing was kept. If the server really accepts "
            "submissions that large, fetch again with a larger --max-mib."
        )


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    settings: TransferSettings,
    partial: Path,
    progress: Callable[[int], None],
    max_bytes: int,
) -> str:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = sign_request(settings.credential, method="GET", path=path, desk=settings.desk)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    # No redirects, here or in push: the server is the other side, and must not be
    # able to send this machine, its credential's signatures or its IP elsewhere.
    async with session.get(url, headers=headers, allow_redirects=False) as resp:
        if resp.status in (401, 403):
            raise TransferError(
                "the server refused this transfer credential: is it registered for this desk "
                "(intake-server desk add-transfer-key), and is this machine's clock right?"
            )
        if resp.status == 416:
            if not offset:
                raise TransferError("the server refused a range this machine never asked for")
            partial.unlink(missing_ok=True)
            raise ConnectionError("stale partial download")
        if resp.status not in (200, 206):
            raise TransferError(f"the server answered {resp.status}: {await _said(resp)}")
        cursor = resp.headers.get("Amana-Cursor", "")
        if not _CURSOR_RE.fullmatch(cursor):
            raise TransferError("the server sent no valid cursor")
        mode = "ab" if resp.status == 206 else "wb"
        if mode == "wb":
            progress(-offset)
            offset = 0
        if resp.content_length is not None and offset + resp.content_length > max_bytes:
            raise _TooLarge(max_bytes)
        with partial.open(mode) as out:
            async for chunk in resp.content.iter_chunked(_CHUNK):
                # Counted as it arrives: a declared length can be absent or a lie.
                offset += len(chunk)
                if offset > max_bytes:
                    raise _TooLarge(max_bytes)
                out.write(chunk)
                progress(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    return cursor


async def fetch(
    settings: TransferSettings,
    *,
    server: str,
    out_dir: Path,
    tor_socks: str | None = None,
    show_progress: bool = True,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> Path | None:
    """Download every new item for the desk into one verified bundle in ``out_dir``.

    A dropped connection is retried, resuming where it stopped; running the command
    again later also resumes. A bundle larger than ``max_bytes`` is refused and
    nothing of it kept. Returns the bundle's path, or None if nothing was new.
    """
    after = _read_cursor(settings)
    path = f"/v1/desks/{settings.desk}/bundle?after={after}"
    url = _base(server, tor_socks) + path
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = out_dir / f".export-{settings.desk}-{after}.partial"
    bar = tqdm(
        total=None,
        unit="B",
        unit_scale=True,
        desc="fetch",
        disable=not show_progress,
        initial=partial.stat().st_size if partial.exists() else 0,
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=120)
    cursor = after
    try:
        async with aiohttp.ClientSession(
            connector=_connector(tor_socks), timeout=timeout, auto_decompress=False
        ) as session:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    cursor = await _download(session, url, path, settings, partial,
                                             bar.update, max_bytes)
                    _verify_export(partial, settings)
                    break
                except _TooLarge:
                    partial.unlink(missing_ok=True)
                    raise
                except BundleError:
                    # A resumed download that does not verify (the server rebuilt the
                    # bundle meanwhile, or bytes were damaged): start again from zero.
                    partial.unlink(missing_ok=True)
                    if attempt == _ATTEMPTS:
                        raise TransferError("the downloaded bundle does not verify") from None
                except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                    if attempt == _ATTEMPTS:
                        raise TransferError(
                            f"connection failed ({exc.__class__.__name__}); run the same "
                            "command again to resume"
                        ) from None
                    await asyncio.sleep(2**attempt)
    finally:
        bar.close()
    if cursor == after:
        partial.unlink(missing_ok=True)
        return None
    final = out_dir / f"export-{settings.desk}-{after}-{cursor}.bundle"
    partial.rename(final)
    safe_write_bytes(settings.state_path, json.dumps({"after": cursor}).encode(), overwrite=True)
    return final


_ROUTES = {"ack": "acks", "outbox": "outbox"}


def _route(bundle_path: Path, settings: TransferSettings) -> str:
    desk = settings.keyring.get(settings.desk)
    if desk is None:
        raise TransferError(f"desk {settings.desk!r} is not in the stored keyring")
    try:
        with open_bundle(bundle_path, {settings.desk: desk.verify_key_obj()}) as bundle:
            kind = bundle.kind
    except BundleError as exc:
        raise TransferError(f"{bundle_path}: not a bundle signed by this desk ({exc})") from None
    if kind not in _ROUTES:
        raise TransferError(f"{bundle_path}: a {kind!r} bundle is not for the server")
    return _ROUTES[kind]


async def push(
    settings: TransferSettings,
    files: list[Path],
    *,
    server: str,
    tor_socks: str | None = None,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Upload ack and outbox bundles made on the air-gapped machine. Each is verified
    against the desk's signing key first, so a wrong or damaged file is caught here."""
    base = _base(server, tor_socks)
    routes = [(f, _route(f, settings)) for f in files]
    results = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=300)
    async with aiohttp.ClientSession(connector=_connector(tor_socks), timeout=timeout) as session:
        for file, route in routes:
            body = file.read_bytes()
            path = f"/v1/desks/{settings.desk}/{route}"
            headers = sign_request(
                settings.credential,
                method="POST",
                path=path,
                desk=settings.desk,
                body_sha256=hashlib.sha256(body).hexdigest(),
            )
            with tqdm(
                total=len(body),
                unit="B",
                unit_scale=True,
                desc=file.name,
                disable=not show_progress,
            ) as bar:
                async with session.post(base + path, data=body, headers=headers,
                                        allow_redirects=False) as resp:
                    bar.update(len(body))
                    answer = await _said(resp)
            if resp.status != 200:
                raise TransferError(f"{file}: the server refused it ({resp.status}): {answer}")
            try:
                result = json.loads(answer)
            except ValueError:
                result = None
            if not isinstance(result, dict):
                raise TransferError(f"{file}: the server's answer is not a JSON object: {answer}")
            results.append({"file": str(file), **result})
    return results

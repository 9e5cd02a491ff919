"""push: upload the ack and outbox bundles the air-gapped machine signed.

Each file is checked against the desk's signing key (from the keyring stored at
``init``) before anything is sent, so a wrong or damaged file is caught on this
machine; its kind decides where it goes on the server.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

import aiohttp
from tqdm import tqdm  # type: ignore[import-untyped]

from journalist_client.online._http import base_url, connector, server_said
from journalist_client.online.credential import TransferError, TransferSettings
from keys.bundle import BundleError, open_bundle
from keys.request_auth import sign_request

__all__ = ["push"]

_ROUTES: Final = {"ack": "acks", "outbox": "outbox"}


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
    base = base_url(server, tor_socks)
    routes = [(f, _route(f, settings)) for f in files]
    results = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=300)
    async with aiohttp.ClientSession(connector=connector(tor_socks), timeout=timeout) as session:
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
                    answer = await server_said(resp)
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

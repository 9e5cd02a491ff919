"""push: upload the ack and outbox bundles the air-gapped machine signed.

Each file is checked against the desk's signing key (from the keyring stored at
``init``) before anything is sent, so a wrong or damaged file is caught on this
machine; its kind decides where it goes on the server.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from tqdm import tqdm  # type: ignore[import-untyped]

from journalist_client.online._http import base_url, connector, server_said
from journalist_client.online.credential import TransferError, TransferSettings
from keys import fs
from keys.bundle import BundleError, open_bundle
from keys.request_auth import sign_request

__all__ = ["PushOutcome", "push"]

_ROUTES: Final = {"ack": "acks", "outbox": "outbox"}


@dataclass(frozen=True)
class PushOutcome:
    """What became of one file: accepted (with the server's summary, such as how many
    items it deleted) or not, with the reason as a sentence."""

    file: str
    accepted: bool
    summary: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def _route(bundle_path: Path, settings: TransferSettings) -> str:
    desk = settings.keyring.get(settings.desk)
    if desk is None:
        raise TransferError(f"desk {settings.desk!r} is not in the stored keyring")
    # The desk's current key, or a previous one (not a lost one): a vault not yet moved
    # to the new keys signs with the old, which the server accepts while items encrypted
    # to it wait (ADR 0011) and refuses after.
    keys = [desk.verify_key_obj(), *(p.verify_key_obj() for p in desk.previous
                                     if not p.lost_key)]
    try:
        for n, key in enumerate(keys):
            try:
                with open_bundle(bundle_path, {settings.desk: key}) as bundle:
                    kind = bundle.kind
                break
            except BundleError:
                if n == len(keys) - 1:
                    raise
    except BundleError as exc:
        raise TransferError(f"not a bundle signed by this desk ({exc})") from None
    except OSError as exc:
        raise TransferError(f"cannot be read ({exc.strerror or exc})") from None
    if kind not in _ROUTES:
        raise TransferError(f"a {kind!r} bundle is not for the server")
    return _ROUTES[kind]


def _refusal(status: int, answer: str) -> str:
    """The server's refusal as a sentence: its JSON ``error`` when there is one (already
    made inert by server_said), else the status alone."""
    try:
        said = json.loads(answer)
    except ValueError:
        said = None
    reason = said.get("error") if isinstance(said, dict) else None
    if isinstance(reason, str) and reason:
        return f"the server refused it: {reason} (HTTP {status})"
    return f"the server refused it (HTTP {status})"


async def _send(session: aiohttp.ClientSession, base: str, file: Path, route: str,
                settings: TransferSettings, show_progress: bool | None) -> PushOutcome:
    body = fs.read_quietly(file)  # the stick's bundle keeps its day-only atime
    path = f"/v1/desks/{settings.desk}/{route}"
    headers = sign_request(
        settings.credential,
        method="POST",
        path=path,
        desk=settings.desk,
        body_sha256=hashlib.sha256(body).hexdigest(),
    )
    # show_progress None: tqdm draws only on a terminal, never into a file or a pipe.
    with tqdm(total=len(body), unit="B", unit_scale=True, desc=file.name,
              disable=None if show_progress is None else not show_progress) as bar:
        async with session.post(base + path, data=body, headers=headers,
                                allow_redirects=False) as resp:
            bar.update(len(body))
            answer = await server_said(resp)
    if resp.status != 200:
        return PushOutcome(str(file), False, problem=_refusal(resp.status, answer))
    try:
        summary = json.loads(answer)
    except ValueError:
        summary = None
    if not isinstance(summary, dict):
        return PushOutcome(str(file), False,
                           problem="the server's answer was not understood; push it again")
    return PushOutcome(str(file), True, summary=summary)


async def push(
    settings: TransferSettings,
    files: list[Path],
    *,
    server: str,
    tor_socks: str | None = None,
    show_progress: bool | None = True,
) -> list[PushOutcome]:
    """Upload ack and outbox bundles made on the air-gapped machine, one outcome per file.

    Each is verified against the desk's signing key first, so a wrong or damaged file is
    caught here and never sent; a file the server refuses does not stop the others. A
    lost connection does: the files not yet sent say so, and pushing again is safe (acks
    and outbox bundles are idempotent on the server). ``show_progress=None`` draws bars
    only on a terminal.
    """
    base = base_url(server, tor_socks)
    if settings.keyring.get(settings.desk) is None:
        raise TransferError(f"desk {settings.desk!r} is not in the stored keyring")
    outcomes: list[PushOutcome] = []
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=300)
    async with aiohttp.ClientSession(connector=connector(tor_socks), timeout=timeout) as session:
        for n, file in enumerate(files):
            try:
                route = _route(file, settings)
            except TransferError as exc:
                outcomes.append(PushOutcome(str(file), False, problem=f"not sent: {exc}"))
                continue
            try:
                outcomes.append(await _send(session, base, file, route, settings,
                                            show_progress))
            except (TimeoutError, aiohttp.ClientError) as exc:
                lost = f"not sent: the connection failed ({exc.__class__.__name__})"
                outcomes += [PushOutcome(str(f), False, problem=lost) for f in files[n:]]
                break
    return outcomes

"""The local triage UI: ``journalist-client ui`` (docs/ui.md).

A small aiohttp application on 127.0.0.1 that shows the unlocked vault in the
triager's browser and calls the same library functions as the CLI. It is the only
part of the offline client that listens on a socket, and only on the loopback
interface; nothing in it connects anywhere. Loaded only by the ``ui`` command, so
the other commands never import aiohttp.
"""

from __future__ import annotations

from journalist_client.ui.app import create_app, serve

__all__ = ["create_app", "serve"]

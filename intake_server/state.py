"""The source app's state: one typed AppKey per object create_app puts in it.

Route modules read the state through these keys and nothing else; they never import
app.py, which only assembles the application (create_app). Each key is set once, in
create_app, before start-up; resources that need opening are opened in its cleanup_ctx.
"""

from __future__ import annotations

import jinja2
from aiohttp import web

from keys.keyring import Keyring

from .config import Config
from .ratelimit import TokenBucket, UploadSlots
from .sessions import SessionStore
from .sources import LoginDeriver, SourceFactory
from .staff.store import StaffStore
from .storage import Storage

__all__ = [
    "CONFIG",
    "CSS",
    "JINJA",
    "KEYRING",
    "LOGINS",
    "LOGIN_BUCKET",
    "REPLIES",
    "SESSIONS",
    "SOURCES",
    "STORAGE",
    "UPLOADS",
]

CONFIG = web.AppKey("config", Config)
STORAGE = web.AppKey("storage", Storage)
KEYRING = web.AppKey("keyring", Keyring)
# One Jinja2 environment per page language (i18n.load_environments).
JINJA = web.AppKey("jinja", dict[str, jinja2.Environment])
SOURCES = web.AppKey("sources", SourceFactory)
CSS = web.AppKey("css", bytes)
SESSIONS = web.AppKey("sessions", SessionStore)
LOGINS = web.AppKey("logins", LoginDeriver)
LOGIN_BUCKET = web.AppKey("login_bucket", TokenBucket)
UPLOADS = web.AppKey("uploads", UploadSlots)
# The replies table and directory, owned by the staff side, read (and deleted
# from) by the source's inbox.
REPLIES = web.AppKey("replies", StaffStore)

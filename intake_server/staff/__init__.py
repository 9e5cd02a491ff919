"""The staff side of the intake server: what transfer machines talk to.

A second aiohttp application on its own port (127.0.0.1:8081 by default), which in
production sits behind its own onion service with client authorization. It hands out
ciphertext as signed bundles, takes acknowledgements (deleting what every addressed
desk has imported) and outbox bundles (replies for sources), and applies retention.
It never decrypts anything: it holds no desk identity.
"""

from .app import create_staff_app
from .store import StaffStore

__all__ = ["StaffStore", "create_staff_app"]

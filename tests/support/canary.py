"""A canary's every plausible encoding, and a search for them under a directory.

Used by the tests that prove no plaintext reaches the server's disk, temp files or output
(tests/integration/test_canary.py and test_canary_checkback.py); the search is
support.files_at_rest.search, the one walk of a seized disk.
"""

from __future__ import annotations

import base64
import codecs
import urllib.parse


def encodings(canary: str) -> dict[str, bytes]:
    raw = canary.encode("utf-8")
    forms = {
        "utf-8": raw,
        "utf-16-le": canary.encode("utf-16-le"),
        "utf-16-be": canary.encode("utf-16-be"),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "url": urllib.parse.quote(canary).encode(),
        "url-plus": urllib.parse.quote_plus(canary).encode(),
        "rot13": codecs.encode(canary, "rot13").encode(),
    }
    for shift in range(3):
        # base64 of the canary at each alignment; drop the edge characters that
        # depend on the neighbouring bytes.
        enc = base64.b64encode(b"\x00" * shift + raw)
        forms[f"base64+{shift}"] = enc[4:-4]
        forms[f"base64url+{shift}"] = base64.urlsafe_b64encode(b"\x00" * shift + raw)[4:-4]
    return forms

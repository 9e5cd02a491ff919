"""Ack and outbox bundles signed by a desk's own key but written by a hostile or broken
client (issue 18, "Malformed input"): apply_bundle refuses them with BundleRefused,
the one error the staff app and `intake-server import` turn into a 400 and a message;
never another exception (a 500, a traceback), and nothing changes on a refusal.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake_server.staff.bundles import BundleRefused, apply_bundle
from intake_server.staff.store import StaffStore
from keys.keyring import Keyring
from support.staff import Site, bundle_bytes, make_site, outbox_bundle

EXAMPLES = int(os.environ.get("AMANA_FUZZ_EXAMPLES", "100"))
IID = "ab" * 16

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**64, 2**64)
                    | st.text(max_size=20) | st.sampled_from(["age1", "triage", IID, "reply"]),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=10)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@st.composite
def desk_bundles(draw: st.DrawFn, site: Site) -> bytes:
    if draw(st.booleans()):
        doc: dict[str, Any] = {"format": "amana-ack", "version": 1, "desk": "triage",
                               "ids": [IID]}
        for _ in range(draw(st.integers(1, 3))):
            doc[draw(st.sampled_from([*doc, "x"]))] = draw(JSON)
        return bundle_bytes("ack", "triage", {"ack.json": json.dumps(doc).encode()},
                            site.signing["triage"])
    item: dict[str, Any] = draw(st.sampled_from([
        {"type": "reply", "id": IID, "to": str(site.identities["triage"].recipient()),
         "file": f"{IID}.reply.age"},
        {"type": "referral", "id": IID, "to_desk": "forensics", "files": [f"{IID}.json.age"]},
    ]))
    item = dict(item)
    for _ in range(draw(st.integers(1, 3))):
        item[draw(st.sampled_from([*item, "x"]))] = draw(JSON)
    items: Any = [item] if draw(st.integers(0, 4)) else draw(JSON)
    files = {f"{IID}.reply.age": b"x", f"{IID}.json.age": b"y"}
    return outbox_bundle(site, items, {n: d for n, d in files.items() if draw(st.booleans())})


def test_a_reply_to_a_recipient_that_is_not_text_is_refused(site: Site, tmp_path: Path
                                                             ) -> None:
    """Found while writing the test below: a number as a reply's recipient reached parse_recipient,
    whose ``text.strip()`` raised AttributeError, not the BundleRefused the staff app
    answers with 400."""
    path = tmp_path / "outbox.bundle"
    path.write_bytes(outbox_bundle(site, [
        {"type": "reply", "id": IID, "to": 5, "file": f"{IID}.reply.age"}],
        {f"{IID}.reply.age": b"x"}))
    with pytest.raises(BundleRefused, match="recipient"):
        apply_bundle(StaffStore(site.storage), path, Keyring.load(site.config.keyring))


def test_signed_hostile_desk_bundles_only_raise_bundle_refused(site: Site, tmp_path: Path
                                                               ) -> None:
    store = StaffStore(site.storage)
    keyring = Keyring.load(site.config.keyring)
    path = tmp_path / "desk.bundle"

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(raw=desk_bundles(site))
    def one(raw: bytes) -> None:
        path.write_bytes(raw)
        with contextlib.suppress(BundleRefused):
            apply_bundle(store, path, keyring)

    one()

"""The actions that write outside the browser, over HTTP against the real process:
attachment export to a typed path, the outbox bundle for USB, indicator files, the
triager's language; and the refusals a typed path can get."""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
from pathlib import Path

from .conftest import UI

IOCS = Path(__file__).resolve().parents[2] / "data" / "iocs"


def _post(ui: UI, session: str, url: str, **fields: str) -> tuple[int, str]:
    csrf = ui.csrf(session)
    body = urllib.parse.urlencode({"csrf": csrf, **fields})
    resp = ui.request("POST", url, headers={"Cookie": session, "Origin": ui.origin},
                      body=body)
    assert resp.status == 303, resp.body  # type: ignore[attr-defined]
    location = resp.getheader("Location") or "/"
    page = ui.request("GET", location.split("#")[0], headers={"Cookie": session})
    return page.status, page.body.decode()  # type: ignore[attr-defined]


def test_an_attachment_is_exported_to_the_path_typed(ui: UI, imported: dict[str, str],
                                                     tmp_path: Path) -> None:
    session = ui.login()
    out = tmp_path / "usb" / "evidence-1.bin"
    out.parent.mkdir()
    _, page = _post(ui, session, f"/item/{imported['a']}/export", n="1", path=str(out))
    assert f"Wrote {out.stat().st_size} bytes to {out}." in page
    assert "WARNING: this file was sent by a stranger" in page
    assert out.read_bytes() == bytes.fromhex(imported["data"])
    # Never replaced; a relative path is refused; nothing written either time.
    _, page = _post(ui, session, f"/item/{imported['a']}/export", n="1", path=str(out))
    assert "already exists" in page
    _, page = _post(ui, session, f"/item/{imported['a']}/export", n="1", path="evidence.bin")
    assert "give a full path, starting with /" in page
    assert not Path("evidence.bin").exists()
    assert hashlib.sha256(out.read_bytes()).hexdigest() in page


def test_reply_then_write_the_outbox_bundle(ui: UI, imported: dict[str, str],
                                            tmp_path: Path) -> None:
    session = ui.login()
    _, page = _post(ui, session, f"/item/{imported['a']}/reply", text="نحن نعمل على بلاغك")
    assert "is in the outbox" in page
    out = tmp_path / "outbox.bundle"
    _, page = _post(ui, session, "/outbox/bundle", path=str(out))
    assert f"Wrote 1 item(s) to {out}" in page
    assert out.stat().st_size > 0
    # Bundled: listed only with "all".
    page = ui.request("GET", "/outbox", headers={"Cookie": session}).body.decode()  # type: ignore[attr-defined]
    assert "The outbox is empty." in page
    page = ui.request("GET", "/outbox?all=1", headers={"Cookie": session}).body.decode()  # type: ignore[attr-defined]
    assert imported["a"][:12] in page


def test_indicator_files_import_rescan_remove(ui: UI) -> None:
    session = ui.login()
    _, page = _post(ui, session, "/iocs/import", path=str(IOCS / "candiru.stix2"))
    assert re.search(r"candiru\.stix2: \d+ indicator\(s\)", page)
    assert "<td><bdi>candiru.stix2</bdi></td>" in page
    _, page = _post(ui, session, "/iocs/rescan")
    assert re.search(r"Rescanned \d+ item\(s\)", page)
    _, page = _post(ui, session, "/iocs/remove", name="candiru.stix2")
    assert "Removed candiru.stix2" in page
    assert "No indicator files yet." in page


def test_the_language_is_kept_per_triager(ui: UI, imported: dict[str, str]) -> None:
    session = ui.login()
    _, page = _post(ui, session, "/language", lang="fr", next=f"/item/{imported['a']}")
    assert '<html lang="fr" dir="ltr">' in page
    assert "Répondre à la source" in page
    for elsewhere in ("//evil.example/", "/\\evil.example/", "http://evil.example/"):
        csrf = ui.csrf(session)
        resp = ui.request("POST", "/language", headers={"Cookie": session, "Origin": ui.origin},
                          body=urllib.parse.urlencode({"csrf": csrf, "lang": "ar",
                                                       "next": elsewhere}))
        assert resp.getheader("Location") == "/", elsewhere
    page = ui.request("GET", "/", headers={"Cookie": session}).body.decode()  # type: ignore[attr-defined]
    assert '<html lang="ar" dir="rtl">' in page
    assert "الوارد" in page
    # Refusals speak the triager's language too.
    refused = ui.request("GET", "/").body.decode()  # type: ignore[attr-defined]
    assert "افتح العنوان المطبوع في الطرفية" in refused
    # Kept in the vault: a new UI process starts in Arabic whatever --lang says.
    assert ui.stop() == 0
    from .conftest import start_ui

    again = start_ui(ui.vault, ui.passfile, "--lang", "en")
    try:
        page = again.request("GET", "/", headers={"Cookie": again.login()}).body.decode()  # type: ignore[attr-defined]
        assert '<html lang="ar" dir="rtl">' in page
    finally:
        again.stop()


def test_the_statistics_page(ui: UI) -> None:
    session = ui.login()
    resp = ui.request("GET", "/stats", headers={"Cookie": session})
    page = resp.body.decode()  # type: ignore[attr-defined]
    assert resp.status == 200, page
    assert "<th>Total</th>" in page


def test_an_import_that_fails_says_why_and_the_ui_goes_on(ui: UI, tmp_path: Path) -> None:
    session = ui.login()
    missing = tmp_path / "no-such.bundle"
    not_a_bundle = tmp_path / "notes.txt"
    not_a_bundle.write_text("hello")
    for path, reason in ((missing, "cannot read"), (not_a_bundle, "Nothing was imported")):
        _post(ui, session, "/import", path=str(path))
        for _ in range(100):  # the page the browser would reload every second
            page = ui.request("GET", "/import", headers={"Cookie": session}).body.decode()  # type: ignore[attr-defined]
            if 'id="result"' in page:
                break
            time.sleep(0.1)
        assert "Import failed." in page
        assert reason in page
        assert '<meta http-equiv="refresh"' not in page
    assert ui.request("GET", "/", headers={"Cookie": session}).status == 200

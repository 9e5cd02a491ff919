"""Who may talk to the UI: the one-time token, the session cookie, Host and Origin
checks, CSRF, and the headers every response carries. Against the real process."""

from __future__ import annotations

import urllib.parse

from .conftest import UI


def _body(resp: object) -> bytes:
    return resp.body  # type: ignore[attr-defined,no-any-return]


def test_first_line_is_the_url_with_a_token_and_only_loopback(ui: UI) -> None:
    parts = urllib.parse.urlsplit(ui.url)
    assert parts.hostname == "127.0.0.1"
    assert parts.path == "/login"
    assert len(ui.token) >= 43


def test_without_the_token_nothing_is_shown(ui: UI, imported: dict[str, str]) -> None:
    for path in ("/", f"/item/{imported['a']}", "/search?q=pegasus", "/outbox"):
        resp = ui.request("GET", path)
        assert resp.status == 403
        assert b"Pegasus" not in _body(resp)
        assert imported["a"].encode() not in _body(resp)
    assert ui.request("GET", "/login?token=wrong").status == 403
    assert ui.request("GET", "/login").status == 403


def test_the_token_is_single_use_and_gives_a_strict_httponly_cookie(ui: UI) -> None:
    resp = ui.request("GET", "/login?token=" + ui.token)
    assert resp.status == 303
    cookie = resp.getheader("Set-Cookie") or ""
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs
    assert "samesite=strict" in attrs
    assert "path=/" in attrs
    session = cookie.split(";", 1)[0]
    assert ui.request("GET", "/", headers={"Cookie": session}).status == 200
    # The same link again (a second browser, or someone who read it): refused.
    assert ui.request("GET", "/login?token=" + ui.token).status == 403
    assert ui.request("GET", "/", headers={"Cookie": f"amana_ui_{ui.port}=forged"}).status == 403


def test_a_rebound_host_name_is_refused(ui: UI) -> None:
    session = ui.login()
    for host in ("evil.example", f"evil.example:{ui.port}", f"localhost:{ui.port}",
                 "127.0.0.1", f"127.0.0.1:{ui.port + 1}"):
        resp = ui.request("GET", "/", headers={"Host": host, "Cookie": session})
        assert resp.status == 403, host
        assert b"Wrong Host" in _body(resp)


def test_a_token_sent_under_a_rebound_host_is_not_used_up(ui: UI) -> None:
    resp = ui.request("GET", "/login?token=" + ui.token, headers={"Host": "evil.example"})
    assert resp.status == 403
    assert ui.login()  # still valid for the triager's own browser


def test_posts_from_another_origin_or_without_csrf_are_refused(
        ui: UI, imported: dict[str, str]) -> None:
    session = ui.login()
    csrf = ui.csrf(session)
    path = f"/item/{imported['a']}/set"
    body = urllib.parse.urlencode({"csrf": csrf, "status": "closed"})
    for headers in ({"Origin": "http://127.0.0.1:1"}, {"Origin": "http://evil.example"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
                    {"Sec-Fetch-Site": "same-site"}, {}):
        resp = ui.request("POST", path, headers={"Cookie": session, **headers}, body=body)
        assert resp.status == 403, headers
    bad = urllib.parse.urlencode({"csrf": "x" * 43, "status": "closed"})
    resp = ui.request("POST", path, headers={"Cookie": session, "Origin": ui.origin}, body=bad)
    assert resp.status == 403
    page = _body(ui.request("GET", f"/item/{imported['a']}", headers={"Cookie": session}))
    assert b'status-closed' not in page  # none of the refused posts changed anything
    resp = ui.request("POST", path, headers={"Cookie": session, "Origin": ui.origin}, body=body)
    assert resp.status == 303
    page = _body(ui.request("GET", f"/item/{imported['a']}", headers={"Cookie": session}))
    assert b'status-closed' in page


def test_every_response_carries_the_security_headers(ui: UI) -> None:
    session = ui.login()
    for path, cookie in (("/", session), ("/static/ui.css", ""), ("/nowhere", session),
                         ("/", "")):
        resp = ui.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        csp = resp.getheader("Content-Security-Policy") or ""
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert resp.getheader("X-Content-Type-Options") == "nosniff"
        assert resp.getheader("Referrer-Policy") == "no-referrer"
        assert resp.getheader("Cache-Control") == "no-store"
        assert resp.getheader("X-Frame-Options") == "DENY"
        assert resp.getheader("Cross-Origin-Opener-Policy") == "same-origin"


def test_the_cli_is_refused_while_the_ui_holds_the_vault(ui: UI) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(ui.vault),
         "--passphrase-file", str(ui.passfile), "list"],
        capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: another journalist-client is using this vault; "
                                   "wait for it to finish (or close the other window) and "
                                   "try again")
    assert ui.stop() == 0
    done = subprocess.run(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(ui.vault),
         "--passphrase-file", str(ui.passfile), "list"],
        capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_wrong_passphrase_is_one_line_and_nothing_listens(
        imported: dict[str, str], vault_dir: object, tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    wrong = Path(str(tmp_path)) / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    done = subprocess.run(
        [sys.executable, "-m", "journalist_client.cli", "--vault", str(vault_dir),
         "--passphrase-file", str(wrong), "ui", "--no-browser"],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stdout == ""  # no URL: nothing was served
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1

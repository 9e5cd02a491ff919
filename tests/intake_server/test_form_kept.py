"""A refused report or follow-up gives the form back, answers kept (issue 14, item 3).

No desk or no category ticked, a file or the whole report too large, too many files,
a text too long: the answer is the form again, at the refusal's status (400 or 413),
with every answer read before the problem back in its field, the problem next to the
field it is about (aria-invalid, aria-describedby), a fresh CSRF token, a note that
files must be chosen again, and the real limits from the configuration. What is put
back is escaped, and nothing of it is stored or logged.
"""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from typing import Any

import pytest

from intake_server.state import STORAGE
from support.intake import (
    CSRF_RE,
    LANGS,
    assert_nothing_stored,
    form,
    get_csrf,
    make_install,
)
from support.source import login, page_csrf, submit_report

CANARY = "canary-7f3a9c"
KEPT_NOTE = {"en": "Files are not kept when a form is given back",
             "ar": "لا تُحفظ الملفات عند إعادة النموذج إليك",
             "fr": "Les fichiers ne sont pas conservés quand un formulaire vous est renvoyé"}
MIB = {"en": "1 MiB", "ar": "1 ميغابايت", "fr": "1 Mio"}


class FormState(HTMLParser):
    """What a browser would send from the page's forms: the state of each control."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[str, str]] = []
        self.invalid: dict[str, str] = {}  # name -> aria-describedby
        self.ids: set[str] = set()
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        name = a.get("name", "")
        if a.get("aria-invalid") == "true":
            self.invalid[name] = a.get("aria-describedby", "")
        if tag == "input" and a.get("type") in ("radio", "checkbox"):
            if "checked" in a:
                self.values.append((name, a["value"]))
        elif tag == "input" and a.get("type", "text") == "text" and name:
            if a.get("value"):
                self.values.append((name, a["value"]))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values.append((self._select, a["value"]))
        elif tag == "textarea":
            self._textarea, self._text = name, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # A browser drops one line break right after <textarea>.
            text = self._text.removeprefix("\n")
            if text:
                self.values.append((self._textarea, text))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data


def form_state(html: str) -> FormState:
    parser = FormState()
    parser.feed(html)
    return parser


def answers(**overrides: str) -> list[tuple[str, str]]:
    """Every question of the form answered, in the form's order, desks excepted."""
    fields = [
        ("category", "msg"), ("secondary", "acct"), ("secondary", "spyware"),
        ("country", "LB"), ("incident_date", "early March"),
        ("description", f"{CANARY} نص عربي\nline two <b>bold</b> & \"quoted\""),
        ("links", "hxxp://evil.example/x"), ("senders", "+961 1 234 567"),
        ("messages", "</textarea><script>alert(1)</script>"),
        ("target", "self"), ("profession", "journalist"), ("platforms", "ios"),
        ("platforms", "web"), ("device_details", "iPhone 13"),
    ]
    return [(n, overrides.get(n, v)) for n, v in fields]


CONSENT = [("consent_share", "yes"), ("consent_publish", "yes")]


def assert_kept(html: str, sent: list[tuple[str, str]], *, problem: str) -> FormState:
    state = form_state(html)
    kept = [(n, v) for n, v in state.values if n != "csrf"]
    assert sorted(kept) == sorted(sent)
    # The problem beside its field, the field's controls pointing at it.
    assert f"problem-{problem}" in state.ids
    assert state.invalid
    assert set(state.invalid.values()) == {f"problem-{problem}"}
    # Escaped, never markup.
    assert "<script>alert(1)" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;" in html
    return state


@pytest.mark.parametrize("lang", LANGS)
async def test_no_desk_ticked_gives_the_form_back_with_every_answer(
        client: Any, install: Any, lang: str, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    csrf = await get_csrf(client, lang)
    sent = answers() + CONSENT
    resp = await client.post(f"/{lang}/submit",
                             data=form([("csrf", csrf), *sent], [("a.txt", b"evidence")]))
    assert resp.status == 400
    html = await resp.text()
    assert f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}"' in html
    state = assert_kept(html, sent, problem="desks")
    assert "desks" in state.invalid
    assert KEPT_NOTE[lang] in html
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert resp.headers.get("Connection", "").lower() == "close"
    assert_nothing_stored(install)
    assert CANARY not in caplog.text

    # Sent again from the page given back, with a desk ticked: received.
    again = [("csrf", _csrf(html)), *answers(), ("desks", "forensics"), *CONSENT]
    resp = await client.post(f"/{lang}/submit", data=form(again))
    assert resp.status == 200
    assert len(install.stored_names()) == 1


async def test_no_category_keeps_the_desks_the_source_ticked(client: Any, install: Any) -> None:
    csrf = await get_csrf(client)
    sent = [(n, v) for n, v in answers() if n != "category"] + [("desks", "forensics")]
    resp = await client.post("/en/submit", data=form([("csrf", csrf), *sent]))
    assert resp.status == 400
    html = await resp.text()
    state = assert_kept(html, sent, problem="category")
    assert "category" in state.invalid
    assert "Please choose what happened." in html
    assert_nothing_stored(install)


@pytest.mark.parametrize("lang", LANGS)
async def test_a_file_over_its_limit_gives_the_form_back_naming_the_limit(
        tmp_path: Any, make_client: Any, lang: str) -> None:
    inst = make_install(tmp_path, max_file_bytes=1024 * 1024)
    client = await make_client(inst)
    # The form states the configured limit, not the default 500 MiB.
    resp = await client.get(f"/{lang}/submit")
    assert MIB[lang] in await resp.text()
    csrf = await get_csrf(client, lang)
    sent = [*answers(), ("desks", "triage"), *CONSENT]
    resp = await client.post(f"/{lang}/submit", data=form(
        [("csrf", csrf), *sent], [("ok.bin", b"a" * 1000), ("big.bin", b"b" * (1024 * 1024 + 1))]))
    assert resp.status == 413
    html = await resp.text()
    state = assert_kept(html, sent, problem="files")
    assert "files" in state.invalid
    assert MIB[lang] in html.split('id="problem-files"')[1].split("</p>")[0]
    assert KEPT_NOTE[lang] in html
    assert_nothing_stored(inst)


async def test_a_report_declared_too_large_keeps_the_answers_read_before_its_files(
        tmp_path: Any, make_client: Any) -> None:
    inst = make_install(tmp_path, max_submission_bytes=512 * 1024)
    client = await make_client(inst)
    csrf = await get_csrf(client)
    sent = [*answers(), ("desks", "triage")]
    resp = await client.post("/en/submit", data=form(
        [("csrf", csrf), *sent], [("a.bin", b"x" * 300_000), ("b.bin", b"y" * 300_000)]))
    assert resp.status == 413
    html = await resp.text()
    assert_kept(html, sent, problem="files")
    assert "at most 512 KiB in all" in html
    assert_nothing_stored(inst)


async def test_a_text_over_its_limit_keeps_its_beginning_and_says_what_did_not_arrive(
        tmp_path: Any, make_client: Any) -> None:
    inst = make_install(tmp_path, max_field_bytes=1000)
    client = await make_client(inst)
    csrf = await get_csrf(client)
    # 999 bytes, then a two-byte character across the limit.
    long_text = "x" * 999 + "é" * 10
    resp = await client.post("/en/submit", data=form(
        [("csrf", csrf), ("category", "msg"), ("description", long_text),
         ("links", "never read"), ("desks", "triage")]))
    assert resp.status == 413
    html = await resp.text()
    state = form_state(html)
    assert ("description", "x" * 999) in state.values
    assert ("category", "msg") in state.values
    assert all(n != "links" for n, _ in state.values)
    assert state.invalid == {"description": "problem-description"}
    assert "the answers after it did not arrive" in html
    assert_nothing_stored(inst)


async def test_a_foreign_form_is_never_given_back(client: Any, install: Any) -> None:
    # The right token without its cookie (another site's post): an error page that
    # shows nothing of what was sent.
    csrf = await get_csrf(client)
    client.session.cookie_jar.clear()
    resp = await client.post("/en/submit", data=form([("csrf", csrf), *answers()]))
    assert resp.status == 403
    assert CANARY not in await resp.text()
    assert_nothing_stored(install)


async def test_a_malformed_choice_is_an_error_page_not_the_form(client: Any) -> None:
    csrf = await get_csrf(client)
    resp = await client.post("/en/submit", data=form(
        [("csrf", csrf), ("description", CANARY), ("category", "no-such")]))
    assert resp.status == 400
    html = await resp.text()
    assert "not one of the choices" in html
    assert CANARY not in html


async def test_a_refused_followup_gives_the_inbox_back_with_the_message(
        tmp_path: Any, make_client: Any) -> None:
    inst = make_install(tmp_path, max_file_bytes=1024 * 1024)
    client = await make_client(inst)
    codename = await submit_report(client)
    assert (await login(client, codename)).status == 303
    resp = await client.get("/ar/inbox")
    assert MIB["ar"] in await resp.text()
    csrf = await page_csrf(client)
    message = f"{CANARY}\nرسالة <i>للمكتب</i>"
    resp = await client.post("/ar/followup", data=form(
        [("csrf", csrf), ("message", message)], [("big.bin", b"z" * (1024 * 1024 + 1))]))
    assert resp.status == 413
    html = await resp.text()
    state = form_state(html)
    assert ("message", message) in state.values
    assert state.invalid == {"files": "problem-files"}
    assert MIB["ar"] in html.split('id="problem-files"')[1].split("</p>")[0]
    assert KEPT_NOTE["ar"] in html
    assert "&lt;i&gt;" in html
    # An empty follow-up: the problem next to the message.
    resp = await client.post("/ar/followup", data=form([("csrf", csrf), ("message", " ")]))
    assert resp.status == 400
    assert form_state(await resp.text()).invalid == {"message": "problem-message"}
    # Only the first report was stored: neither follow-up.
    assert [s["type"] for s in client.server.app[STORAGE].submissions()] == ["report"]


def _csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match
    return match.group(1)

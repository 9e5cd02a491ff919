"""Every GET route, in every language; headers on every response; no JavaScript."""

from __future__ import annotations

import re

import pytest

from support.intake import LANGS, assert_security_headers


async def test_language_choice_offers_all_three(client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    html = await resp.text()
    # The name once per spelling (English and French share one).
    assert re.search(r"<title>(.*?)</title>", html).group(1) == "أمانة · Amana"
    for code in LANGS:
        assert f'href="/{code}/"' in html
    assert 'lang="ar" dir="rtl"' in html


@pytest.mark.parametrize("lang", LANGS)
async def test_index_has_advice_fingerprints_and_qr(client, install, lang) -> None:
    resp = await client.get(f"/{lang}/")
    assert resp.status == 200
    html = await resp.text()
    direction = "rtl" if lang == "ar" else "ltr"
    assert f'<html lang="{lang}" dir="{direction}">' in html
    assert "Tor Browser" in html or "تور" in html or "Tor" in html
    for desk in install.keyring.desks:
        assert desk.fingerprint in html
        assert desk.name(lang) in html
    assert html.count("<svg") == len(install.keyring.desks)
    assert f'href="/{lang}/submit"' in html


@pytest.mark.parametrize("lang", LANGS)
async def test_submit_form_in_each_language(client, install, lang) -> None:
    resp = await client.get(f"/{lang}/submit")
    assert resp.status == 200
    html = await resp.text()
    assert f'action="/{lang}/submit"' in html
    assert 'enctype="multipart/form-data"' in html
    # The server relies on this order: csrf first, desks before the files.
    assert html.index('name="csrf"') < html.index('name="category"')
    assert html.index('name="desks"') < html.index('name="files"')
    assert 'value="triage" checked' in html
    for code in ("spyware", "msg", "acct", "device", "seized", "harass", "impersonation",
                 "exposure", "web", "network", "legal", "advice", "other"):
        assert f'name="category" value="{code}"' in html
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie


async def test_taxonomy_prompts_are_translated(client) -> None:
    ar = await (await client.get("/ar/submit")).text()
    fr = await (await client.get("/fr/submit")).text()
    assert "أعتقد أن حكومة أو شركة برامج تجسس" in ar
    assert "logiciels espions" in fr
    assert "المغرب" in ar  # country names from CLDR, in the page's language
    assert "Maroc" in fr


@pytest.mark.parametrize("lang", LANGS)
async def test_submit_page_weight_under_30_kb(client, lang) -> None:
    html = await (await client.get(f"/{lang}/submit")).read()
    css = await (await client.get("/static/style.css")).read()
    # Everything the browser fetches for this page: it references nothing else.
    assert re.findall(rb'(?:src|href)="(/[^"]*)"', html)
    assert all(
        ref.startswith(b"/static/style.css") or not ref.startswith(b"/static")
        for ref in re.findall(rb'src="([^"]*)"', html))
    assert len(html) + len(css) <= 30 * 1024, (len(html), len(css))


PAGES = ["/", "/en/", "/ar/", "/fr/", "/en/submit", "/ar/submit", "/fr/submit"]


@pytest.mark.parametrize("path", PAGES)
async def test_no_javascript_and_no_third_party(client, path) -> None:
    html = (await (await client.get(path)).text()).lower()
    assert "<script" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "javascript:" not in html
    assert not re.search(r'(?:src|href|action)="(?:https?:)?//', html)
    assert "<iframe" not in html
    assert "<object" not in html
    assert "<embed" not in html


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 200), ("GET", "/en/", 200), ("GET", "/ar/submit", 200),
    ("GET", "/static/style.css", 200), ("HEAD", "/fr/", 200),
    ("GET", "/en", 302), ("GET", "/nope", 404), ("GET", "/de/submit", 404),
    ("GET", "/static/../intake.db", 404), ("GET", "/ar/nope", 404),
    ("POST", "/", 405), ("PUT", "/en/submit", 405), ("DELETE", "/fr/", 405),
    ("POST", "/en/submit", 400),
])
async def test_headers_on_every_response(client, method, path, status) -> None:
    resp = await client.request(method, path, allow_redirects=False)
    assert resp.status == status
    assert_security_headers(resp)


@pytest.mark.parametrize(("lang", "title"), [
    ("en", "Page not found"), ("ar", "الصفحة غير موجودة"), ("fr", "Page introuvable")])
async def test_404_is_translated(client, lang, title) -> None:
    resp = await client.get(f"/{lang}/does-not-exist")
    assert resp.status == 404
    html = await resp.text()
    assert title in html
    assert f'lang="{lang}"' in html


@pytest.mark.parametrize(("lang", "title"), [
    ("en", "This page cannot be used like that"), ("ar", "لا يمكن استخدام هذه الصفحة"),
    ("fr", "Cette page ne peut pas être utilisée ainsi")])
async def test_405_is_translated(client, lang, title) -> None:
    resp = await client.delete(f"/{lang}/submit")
    assert resp.status == 405
    assert title in await resp.text()
    assert "Allow" in resp.headers


async def test_stylesheet_uses_logical_properties(client) -> None:
    css = await (await client.get("/static/style.css")).text()
    assert "margin-inline" in css
    assert "text-align:start" in css
    assert "margin-left" not in css
    assert "margin-right" not in css
    assert "@import" not in css
    assert "url(" not in css


async def test_language_choice_speaks_each_language(client, install) -> None:
    html = await (await client.get("/")).text()
    # Safety advice and the desks' fingerprints with QR codes, before any choice.
    assert "Safest" in html
    assert "«\u00a0Le plus sûr\u00a0»" in html
    assert "الأكثر أمانًا" in html
    for desk in install.keyring.desks:
        assert desk.fingerprint in html
        for code in LANGS:
            assert desk.name(code) in html
    assert html.count("<svg") == len(install.keyring.desks)
    assert "أبلغ عن المراقبة الرقمية بأمان" in html
    assert "Signalez une surveillance numérique en toute sécurité" in html
    assert "Report digital surveillance safely" in html


@pytest.mark.parametrize(("lang", "title"), [
    ("en", "Something went wrong on the server"), ("ar", "حدث خطأ في الخادم"),
    ("fr", "Une erreur s'est produite sur le serveur")])
async def test_unexpected_error_is_a_500_page_that_logs_no_message(
        install, make_client, caplog, monkeypatch, lang, title) -> None:
    from intake_server.routes import pages

    def boom(*_a, **_k):
        raise ValueError("SECRET-SOURCE-TEXT")

    monkeypatch.setattr(pages, "qr_svg", boom)
    client = await make_client(install)
    resp = await client.get(f"/{lang}/")
    assert resp.status == 500
    assert title in await resp.text()
    assert_security_headers(resp)
    assert "ValueError" in caplog.text
    assert "SECRET-SOURCE-TEXT" not in caplog.text

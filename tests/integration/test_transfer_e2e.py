"""Issue 5 end to end, with every real part: the intake server as a process on
loopback, the transfer machine's `journalist-transfer init/fetch/push`, two desks' offline
vaults (`journalist-client init/import/reply/outbox`), and the operator's
`intake-server desk add-transfer-key`.

A source submits one report with two attachments to two desks. Each desk fetches
and imports it; the first desk's ack leaves the ciphertext on the server, the second
one's removes it. The first desk replies; the reply reaches the server, stored for
the source, opens with the key derived from the source's codename, and shows in the
source's inbox after a login with that codename. Last, the first desk refers the report
to the second, which fetches and imports it with the referring note.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.age import decrypt
from keys.codename import derive_source
from keys.identity import generate_desk
from support.e2e import PASSPHRASE, run, serving
from support.server_process import CSRF_RE

DESKS = {"triage": "Triage", "forensics": "Forensics"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    # Desks make their keys on their own machines; the operator gets only desk.json.
    (tmp_path / "desks").mkdir()
    desks = [generate_desk(d, {"en": n, "ar": n, "fr": n}, tmp_path / "desks" / d, PASSPHRASE,
                           work_factor=10) for d, n in DESKS.items()]
    with serving(tmp_path, desks) as site:
        yield site


async def submit(port: int) -> str:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
        async with http.get("/en/submit") as resp:
            csrf = CSRF_RE.search(await resp.text()).group(1)
        form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                            ("desks", "forensics"), ("consent_share", "yes"),
                            ("description", "A link arrived by WhatsApp from an unknown number.")):
            form.add_field(name, value)
        form.add_field("files", b"screenshot bytes", filename="shot.png",
                       content_type="image/png")
        form.add_field("files", b"mvt output", filename="mvt.json",
                       content_type="application/json")
        async with http.post("/en/submit", data=form) as resp:
            assert resp.status == 200
            page = await resp.text()
    words = re.findall(r"<span>([a-z-]+)</span>", page.split('class="codename"', 1)[1])
    return " ".join(words[:7])


async def test_two_desks_fetch_ack_and_reply(site: dict) -> None:
    root, config = site["root"], site["config"]
    codename = await submit(site["port"])
    store = config.parent / "data" / "store"
    assert len(list(store.iterdir())) == 3  # the report and two attachments
    server_key = (config.parent / "server-verify.key").read_text().split()[-1]
    keyring = str(config.parent / "keyring.json")
    staff_url = f"http://127.0.0.1:{site['staff']}"

    report_ids = {}
    for desk in DESKS:
        transfer = root / f"transfer-{desk}"
        printed = run("journalist-transfer", "init", "--dir", str(transfer),
                      "--desk", desk, "--server-key", server_key, "--keyring", keyring, cwd=root)
        key = re.search(r"ed25519:[A-Za-z0-9_-]{43}", printed).group(0)
        run("intake-server", "desk", "add-transfer-key", "--config", str(config),
            "--desk", desk, key, cwd=root)
        run("journalist-transfer", "fetch", "--dir", str(transfer), "--server", staff_url,
            "--out", str(root / f"usb-{desk}"), cwd=root)
        (bundle,) = (root / f"usb-{desk}").glob("export-*.bundle")

        vault = ["journalist-client", "--vault", str(root / f"vault-{desk}"),
                 "--passphrase-file", str(root / "pw")]
        run(*vault, "init", "--import-keys", str(root / "desks" / desk), "--keyring", keyring,
            "--server-key", server_key, cwd=root)
        ack = root / f"usb-{desk}" / "ack.bundle"
        run(*vault, "import", "--no-progress", "--ack-out", str(ack), str(bundle), cwd=root)
        listing = run(*vault, "list", cwd=root)
        report_ids[desk] = re.search(r"\b([0-9a-f]{8,32})\b", listing).group(1)
        shown = run(*vault, "show", report_ids[desk], cwd=root)
        assert "A link arrived by WhatsApp" in shown
        assert "shot.png" in shown

        run("journalist-transfer", "push", "--dir", str(transfer), "--server", staff_url,
            str(ack), cwd=root)
        remaining = list(store.iterdir())
        # Deleted only once both desks it was addressed to have imported it.
        assert len(remaining) == (3 if desk == "triage" else 0)

    # The triage desk answers the source; the reply travels back through the outbox.
    vault = ["journalist-client", "--vault", str(root / "vault-triage"),
             "--passphrase-file", str(root / "pw")]
    (root / "reply.txt").write_text("Thank you. Which phone model is it?\n")
    run(*vault, "reply", report_ids["triage"], "--file", str(root / "reply.txt"), cwd=root)
    outbox = root / "usb-triage" / "outbox.bundle"
    run(*vault, "outbox", "bundle", "--out", str(outbox), cwd=root)
    run("journalist-transfer", "push", "--dir", str(root / "transfer-triage"), "--server",
        staff_url, str(outbox), cwd=root)
    replies = list((config.parent / "data" / "replies").iterdir())
    assert len(replies) == 1
    source = derive_source(codename)
    document = json.loads(decrypt(replies[0].read_bytes(), [source.reply_identity]))
    assert document["body"].startswith("Thank you. Which phone model is it?")
    assert document["desk"] == "triage"
    # ...and the source reads it in the inbox, after logging in with the codename.
    assert "Which phone model is it?" in await read_inbox(site["port"], codename)

    # Triage refers the report to the forensics desk: re-encrypted offline, filed by the
    # server as a new item for forensics, fetched and imported there with the note.
    run(*vault, "refer", report_ids["triage"], "--to", "forensics",
        "--note", "Please check the MVT output.", cwd=root)
    referral = root / "usb-triage" / "referral.bundle"
    run(*vault, "outbox", "bundle", "--out", str(referral), cwd=root)
    run("journalist-transfer", "push", "--dir", str(root / "transfer-triage"), "--server",
        staff_url, str(referral), cwd=root)
    assert len(list(store.iterdir())) == 3  # the document and both attachments, for forensics
    run("journalist-transfer", "fetch", "--dir", str(root / "transfer-forensics"), "--server",
        staff_url, "--out", str(root / "usb-forensics-2"), cwd=root)
    (bundle,) = (root / "usb-forensics-2").glob("export-*.bundle")
    forensics = ["journalist-client", "--vault", str(root / "vault-forensics"),
                 "--passphrase-file", str(root / "pw")]
    run(*forensics, "import", "--no-progress", "--ack-out",
        str(root / "usb-forensics-2" / "ack.bundle"), str(bundle), cwd=root)
    listing = run(*forensics, "list", cwd=root)  # newest first: the referral
    referred = re.search(r"\b([0-9a-f]{8,32})\b", listing).group(1)
    assert referred != report_ids["forensics"]
    shown = run(*forensics, "show", referred, cwd=root)
    assert "Please check the MVT output." in shown
    assert "A link arrived by WhatsApp" in shown


async def read_inbox(port: int, codename: str) -> str:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
        async with http.get("/en/login") as resp:
            csrf = CSRF_RE.search(await resp.text()).group(1)
        async with http.post("/en/login", data={"csrf": csrf, "codename": codename}) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.url.path == "/en/inbox"
            return await resp.text()

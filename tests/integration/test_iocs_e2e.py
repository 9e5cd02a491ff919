"""Issue 15 through the real path: a source submits a report to the intake server (a
real process on loopback) with a Pegasus domain in its text, defanged, and a zipped MVT
results folder attached; the transfer machine fetches it with `journalist-transfer`;
the desk imports the published indicators and then the bundle with `journalist-client`.
`list --matched` shows the report, and its matches name the right family, in the text
and inside the MVT output (re-matched, not taken from the reporter's claims).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from journalist_client.iocs import Kind, load_bundle
from keys.identity import generate_desk
from support.e2e import PASSPHRASE, run, serving
from support.server_process import CSRF_RE

DATA = Path(__file__).resolve().parents[1] / "data" / "iocs"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    (tmp_path / "desks").mkdir()
    desk = generate_desk("triage", {"en": "Triage", "ar": "Triage", "fr": "Triage"},
                         tmp_path / "desks" / "triage", PASSPHRASE, work_factor=10)
    with serving(tmp_path, [desk]) as site:
        yield site


def mvt_output(process: str) -> bytes:
    """A zipped MVT v3 results folder whose datausage module saw ``process``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mvt-results/info.json", json.dumps(
            {"target_path": "/tmp/backup", "mvt_version": "2026.7.29",
             "date": "2024-05-02 10:00:00", "ioc_files": [], "hashes": []}))
        archive.writestr("mvt-results/datausage.json", json.dumps(
            [{"isodate": "2024-05-01 10:00:00.000000", "proc_name": process,
              "wwan_in": 10}]))
    return buffer.getvalue()


async def submit(port: int, description: str, attachment: bytes) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=jar) as http:
        async with http.get("/en/submit") as resp:
            csrf = CSRF_RE.search(await resp.text()).group(1)  # type: ignore[union-attr]
        form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
        for name, value in (("csrf", csrf), ("category", "spyware"), ("desks", "triage"),
                            ("description", description)):
            form.add_field(name, value)
        form.add_field("files", attachment, filename="mvt-results.zip",
                       content_type="application/zip")
        async with http.post("/en/submit", data=form) as resp:
            assert resp.status == 200, await resp.text()


async def test_a_submitted_report_is_matched_on_the_desk(site: dict[str, Any]) -> None:
    root, config = site["root"], site["config"]
    pegasus = load_bundle((DATA / "pegasus.stix2").read_bytes(), "pegasus.stix2")
    domain = next(i.value for i in pegasus.indicators if i.kind is Kind.DOMAIN)
    process = next(i.value for i in pegasus.indicators if i.kind is Kind.PROCESS)
    await submit(site["port"],
                 f"A message said to open hxxps://{domain.replace('.', '[.]')}/track today.",
                 mvt_output(process))

    server_key = (config.parent / "server-verify.key").read_text().split()[-1]
    keyring = str(config.parent / "keyring.json")
    transfer = root / "transfer"
    printed = run("journalist-transfer", "init", "--dir", str(transfer), "--desk", "triage",
                  "--server-key", server_key, "--keyring", keyring, cwd=root)
    key = re.search(r"ed25519:[A-Za-z0-9_-]{43}", printed).group(0)  # type: ignore[union-attr]
    run("intake-server", "desk", "add-transfer-key", "--config", str(config),
        "--desk", "triage", key, cwd=root)
    run("journalist-transfer", "fetch", "--dir", str(transfer),
        "--server", f"http://127.0.0.1:{site['staff']}", "--out", str(root / "usb"), cwd=root)
    (bundle,) = (root / "usb").glob("export-*.bundle")

    vault = ["journalist-client", "--vault", str(root / "vault"),
             "--passphrase-file", str(root / "pw")]
    run(*vault, "init", "--import-keys", str(root / "desks" / "triage"), "--keyring", keyring,
        "--server-key", server_key, cwd=root)
    run(*vault, "iocs", "import", str(DATA / "pegasus.stix2"), str(DATA / "rcs.stix2"),
        cwd=root)
    run(*vault, "import", "--no-progress", str(bundle), cwd=root)

    listing = run(*vault, "list", "--matched", cwd=root)
    (line,) = [row for row in listing.splitlines() if re.match(r"[0-9a-f]{12}  ", row)]
    assert re.search(r"\s2\s", line), line  # the iocs column: two matches
    (summary,) = json.loads(run(*vault, "list", "--matched", "--json", cwd=root))
    assert summary["matches"] == 2
    shown = json.loads(run(*vault, "show", summary["id"], "--json", cwd=root))
    found = {(m["value"], m["field"], m["family"], m["device_output"]) for m in shown["matches"]}
    assert found == {(domain, "description", "Pegasus", False),
                     (process, "attachment", "Pegasus", True)}
    assert shown["suggestion"]["level"] == "S2"
    assert shown["claims"] == []  # this output held no detections of the reporter's
    text = run(*vault, "show", summary["id"], cwd=root)
    assert f"Pegasus: domain {domain}" in text
    assert "mvt-results.zip › mvt-results/datausage.json" in text

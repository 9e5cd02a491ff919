"""A report sent to the real server decrypts with the reference `age` binary."""

from __future__ import annotations

import hashlib
import os
import subprocess

import aiohttp

from support.server_process import report_document


async def test_reference_age_decrypts_the_stored_files(server, age_binary) -> None:
    files = {"evidence.eml": b"From: phisher@example\r\n\r\nclick " * 500,
             "mvt-output.json": os.urandom(150_000) + b"\x00\xff"}
    async with server.session() as s:
        csrf = await server.csrf(s, "fr")
        data = aiohttp.FormData(quote_fields=False)
        for name, value in [("csrf", csrf), ("category", "spyware"),
                            ("description", "Un lien reçu par SMS"),
                            ("desks", "triage"), ("desks", "forensics")]:
            data.add_field(name, value)
        for name, content in files.items():
            data.add_field("files", content, filename=name,
                           content_type="application/octet-stream")
        async with s.post("/fr/submit", data=data) as resp:
            assert resp.status == 200
            assert "Votre nom de code" in await resp.text()

    stored = sorted(server.store_dir.iterdir())
    assert len(stored) == 3
    for desk in ("triage", "forensics"):
        plain = {
            p.name.removesuffix(".age"): subprocess.run(
                [age_binary, "-d", "-i", str(server.identity(desk)), str(p)],
                capture_output=True, check=True).stdout
            for p in stored
        }
        report = report_document(plain)
        assert report["answers"]["description"] == "Un lien reçu par SMS"
        assert report["desks"] == ["triage", "forensics"]
        for att in report["attachments"]:
            content = files[att["name"]]
            assert plain[att["file_id"]] == content  # byte for byte
            assert att["sha256"] == hashlib.sha256(content).hexdigest()

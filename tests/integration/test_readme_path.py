"""The README's "Try the whole path locally" runs as written (issue 14).

The commands come from the README's ```sh walkthrough blocks (support.walkthrough reads
them with a Markdown parser); nothing here retypes them. They run in one bash, from a
directory laid out like the checkout (`.venv/bin`, and `demo/` served by a real
`intake-server demo` on free loopback ports), after a source has sent a report through
the real form in Chromium with JavaScript off. Then every step's effect is checked where
it lands: the vaults, the attachment written, the server's files, and the reply the
source reads after logging in with the codename.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from keys.age import decrypt
from keys.codename import derive_source
from support import walkthrough
from support.e2e import BIN
from support.server_process import ServerProcess

# What the test changes in the README's commands, all in this one table: the demo's
# staff app listens on a free port here, not on `make run`'s 8081.
STAFF_URL = "http://127.0.0.1:8081"
DESCRIPTION = "A link to weather4free.com arrived by WhatsApp, then my phone ran hot."
ATTACHMENT = b"\x89PNG screenshot of the message " * 300


def submit_in_browser(page: Any, url: str, attachment: Path) -> str:
    """Step 1 of the README, as a source does it: the codename shown."""
    page.goto(f"{url}/en/submit")
    assert page.is_checked('input[name="desks"][value="triage"]')
    page.check('input[name="category"][value="spyware"]')
    page.check('input[name="consent_share"]')
    page.fill("#description", DESCRIPTION)
    page.set_input_files("#files", str(attachment))
    page.click('button:has-text("Send encrypted report")')
    page.wait_for_load_state()
    words = page.locator(".codename span").all_inner_texts()
    assert len(words) == 7
    return " ".join(words)


def read_replies_in_browser(page: Any, url: str, codename: str) -> str:
    """Step 7: the source logs in with the codename and reads the inbox."""
    page.goto(f"{url}/en/login")
    page.fill("#codename", codename)
    page.click('button:has-text("Log in")')
    page.wait_for_load_state()
    assert page.url.endswith("/en/inbox")
    return str(page.locator(".reply-body").inner_text())


def run_walkthrough(root: Path, staff_url: str) -> tuple[str, Path]:
    """Run the README's blocks in ROOT; their output and the scratch directory $W."""
    text = walkthrough.script(walkthrough.blocks(walkthrough.README.read_text()))
    assert STAFF_URL in text, "the README no longer uses the demo's staff app URL"
    script = root / "walkthrough.sh"
    script.write_text(text.replace(STAFF_URL, staff_url))
    scratch = root / "scratch"  # $TMPDIR, where the README's `mktemp -d` makes $W
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "AMANA_VAULT"}
    env["TMPDIR"] = str(scratch)
    result = subprocess.run(["bash", str(script)], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    if result.returncode != 0:
        failed = max(walkthrough.split_output(result.stderr), default=0)
        pytest.fail(f"README walk-through block {failed} failed (exit {result.returncode}):\n"
                    f"{walkthrough.split_output(result.stdout).get(failed, '')}\n"
                    f"{walkthrough.split_output(result.stderr).get(failed, '')}")
    # Only $W: none of the commands left a temporary file of its own behind.
    left = list(scratch.iterdir())
    assert len(left) == 1, left
    return result.stdout, left[0]


def client(vault: Path, desk: str, root: Path, *args: str) -> Any:
    """`journalist-client ... --json` on a vault the walk-through made, parsed."""
    result = subprocess.run(
        [str(BIN / "journalist-client"), "--vault", str(vault), "--passphrase-file",
         str(root / "demo" / "desks" / desk / "passphrase.txt"), *args, "--json"],
        capture_output=True, text=True, timeout=60, check=False, cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(server: ServerProcess, new_page: Any,
                                                tmp_path: Path) -> None:
    # The checkout, as the README's commands see it: .venv/bin and demo/ (served).
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(BIN)
    attachment = tmp_path / "screenshot.png"
    attachment.write_bytes(ATTACHMENT)
    page = new_page("en-US")
    codename = submit_in_browser(page, server.url, attachment)
    readme = walkthrough.README.read_text()

    out, work = run_walkthrough(tmp_path, f"http://127.0.0.1:{server.staff_port}")

    # 2. Both transfer machines were registered and fetched a verified bundle.
    for desk in ("triage", "forensics"):
        assert f"transfer key registered for desk {desk}" in out
    assert out.count("Verified bundle:") == 2
    # 3. The triage vault holds the one report the source sent, with its attachment.
    (report,) = client(work / "vault-triage", "triage", tmp_path, "list")
    rid = report["id"]
    shown = client(work / "vault-triage", "triage", tmp_path, "show", rid)
    assert shown["answers"]["description"] == DESCRIPTION
    assert [a["name"] for a in shown["attachments"]] == ["screenshot.png"]
    assert f"{rid[:12]}  " in out  # list printed it
    # 4. set, note, search, export-attachment did what the README says.
    changes = {(h["field"], h["new"]) for h in shown["history"]}
    assert {("status", "triaged"), ("severity", "S2"),
            ("triage_category", "spyware.exploit_link")} <= changes, shown["history"]
    assert shown["tags"] == ["whatsapp"]
    (note,) = shown["notes"]
    assert note["text"] in readme
    # search found the report by the words of the note (not in the source's text).
    assert "unknown" not in DESCRIPTION
    assert re.search(rf"^{rid[:12]} .*\n\s+note: .*\[unknown\] \[number\]", out, re.MULTILINE)
    written = re.search(r"^Wrote (\d+) bytes to (.+)\.$", out, re.MULTILINE)
    assert written
    assert Path(written.group(2)) == work / "attachment-1.bin"
    assert Path(written.group(2)).read_bytes() == ATTACHMENT
    # 5 and 6. The reply and the referral left the vault and the server took them; the
    # ack deleted the report (sent to triage only), the referral is filed for forensics.
    assert shown["status"] == "referred"
    assert "accepted by the server (acknowledged 1, deleted 1)" in out
    assert "accepted by the server (referrals 1, replies 1)" in out
    (reply_file,) = (server.demo_dir / "data" / "replies").iterdir()
    reply = json.loads(decrypt(reply_file.read_bytes(), [derive_source(codename).reply_identity]))
    assert reply["desk"] == "triage"
    assert reply["body"].strip() in readme
    # 7. The source reads that reply with the codename, in the browser.
    assert read_replies_in_browser(page, server.url, codename).strip() == reply["body"].strip()
    assert all(u.startswith(server.url) for u in page.requests), page.requests
    # 8. The forensics desk imported the referral, with the triage desk's note.
    (referred,) = client(work / "vault-forensics", "forensics", tmp_path, "list")
    assert referred["id"] != rid
    shown = client(work / "vault-forensics", "forensics", tmp_path, "show", referred["id"])
    assert shown["referral"]["from_desk"] == "triage"
    assert shown["referral"]["note"] in readme
    assert shown["answers"]["description"] == DESCRIPTION
    assert shown["referral"]["note"] in out  # `show` printed it


def test_the_walkthrough_has_every_step_of_the_path() -> None:
    parts = walkthrough.blocks(walkthrough.README.read_text())
    assert parts, "no ```sh walkthrough block in the README"
    assert walkthrough.missing("\n".join(parts)) == []


def test_a_step_deleted_from_the_readme_is_missed() -> None:
    """The check above cannot pass on a README that lost a step: take out, in turn,
    every block that runs a required command, and that command is reported missing."""
    readme = walkthrough.README.read_text()
    parts = walkthrough.blocks(readme)
    for program, command in walkthrough.REQUIRED:
        kept = [p for p in parts if (program, command) not in walkthrough.commands(p)]
        assert len(kept) < len(parts), f"{program} {command}"
        assert f"{program} {command}" in walkthrough.missing("\n".join(kept))
    # ...and a block whose fence lost its "walkthrough" marker is not run at all.
    unmarked = readme.replace("```sh walkthrough", "```sh", 1)
    assert len(walkthrough.blocks(unmarked)) == len(parts) - 1

"""Referral and the source's consent (issue 13, item 8).

A source who declined "share within the coalition" must not have their report, their
attachments and their reply key re-encrypted to another desk by a plain ``refer``: it
is refused, and goes through only with ``--override-consent REASON``, which is recorded
in the history and shown by ``show`` (text and JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

from journalist_client.vault import Vault

from .conftest import Run, Server, attachment_meta, report_doc


def _declined(run: Run, server: Server) -> str:
    data = b"evidence the source did not want shared"
    doc = report_doc(consent={"share_within_coalition": False, "publish_anonymised": False})
    doc["attachments"] = [attachment_meta(data)]
    it = server.item(doc, [data])
    code, _, err = run("import", str(server.bundle([it])))
    assert code == 0, err
    return it.id


def test_refer_is_refused_when_the_source_declined_sharing(
        run: Run, server: Server, desk_vault: Vault) -> None:
    item = _declined(run, server)
    code, _, err = run("refer", item[:8], "--to", "lawyers", "--note", "needs a lawyer")
    assert code == 1
    assert "declined sharing" in err
    assert "--override-consent" in err
    assert run("outbox", "--json")[1].strip() == "[]"
    assert list((desk_vault.path / "outbox").iterdir()) == []
    assert "referred" not in run("show", item[:8])[1]


def test_an_override_is_recorded_and_shown(run: Run, server: Server, desk_vault: Vault) -> None:
    item = _declined(run, server)
    reason = "source asked by phone on 2026-11-30 for the lawyers' help"
    code, _, err = run("refer", item[:8], "--to", "lawyers", "--note", "n",
                       "--override-consent", reason)
    assert code == 0, err
    assert len(list((desk_vault.path / "outbox").iterdir())) == 2
    text = run("show", item[:8])[1]  # without --history: an override is always shown
    assert "consent overridden" in text
    assert reason in text
    assert "lawyers" in text
    shown = json.loads(run("show", item[:8], "--json")[1])
    (override,) = shown["consent_overrides"]
    assert override["who"] == "rania"
    assert override["field"] == "consent_override"
    assert override["new"] == f"lawyers: {reason}"
    assert override in shown["history"]


def test_an_empty_or_oversized_reason_is_refused(run: Run, server: Server) -> None:
    item = _declined(run, server)
    for reason in ("", "   ", "x" * 1001, "two\nlines"):
        code, _, err = run("refer", item[:8], "--to", "lawyers", "--note", "n",
                           "--override-consent", reason)
        assert code == 1, reason
        assert "reason" in err


def test_consent_given_needs_no_override(run: Run, imported: dict[str, str],
                                         tmp_path: Path) -> None:
    code, _, err = run("refer", imported["a"][:8], "--to", "lawyers", "--note", "n")
    assert code == 0, err
    assert json.loads(run("show", imported["a"][:8], "--json")[1])["consent_overrides"] == []

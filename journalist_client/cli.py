"""journalist-client: the thin command-line layer over the offline triage library.

Each command parses its arguments, unlocks the vault, calls one library function and
prints the records it returns (journalist_client.records): as text, where every string
that came from a source goes through journalist_client.display first, or with --json as
one JSON document. No command here opens a network socket, and this
module imports nothing that does (the transfer machine's fetch and push are another
program, journalist-transfer, in journalist_client.online).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import getpass
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from journalist_client import (
    attachments,
    continuity,
    importer,
    indicators,
    records,
    replies,
    shell,
    stats,
    triage,
    vault,
)
from journalist_client._cli import CLIError, Command, add_command, run_command
from journalist_client.display import inert, inert_block
from journalist_client.draft import edit_draft
from journalist_client.search import SearchError
from journalist_client.taxonomy import SEVERITIES, STATUSES
from keys import fs, ids, process
from keys.identity import MIN_PASSPHRASE_CHARS

__all__ = ["CLIError", "main", "parser"]

PROG: Final = "journalist-client"
MAX_PASSPHRASE_FILE: Final = 4096
# Tries at a terminal before a wrong vault passphrase ends the command.
PASSPHRASE_TRIES: Final = 3


# Vaults unlocked by the running command, closed (and unlocked for others) when it ends.
_OPENED: list[vault.Vault] = []
# In `shell`, the one vault every command works on (unlocked once, never closed by them).
_SESSION: list[vault.Vault] = []
# Commands that change many rows at once: in a session their changes are saved whole.
_BULK: Final = frozenset({"import", "iocs", "quarantine"})
# Commands that make no sense inside a session.
_NOT_IN_SHELL: Final = frozenset({"init", "shell", "ui", "rotate-keys"})


def _read_passphrase(args: argparse.Namespace, *, confirm: bool = False,
                     min_chars: int = 0) -> str:
    if args.passphrase_file:
        with open(args.passphrase_file, "rb") as f:
            raw = f.read(MAX_PASSPHRASE_FILE + 1)
        if len(raw) > MAX_PASSPHRASE_FILE:
            raise CLIError("the passphrase file is too large")
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise CLIError("the passphrase file is not UTF-8 text") from None
        if not lines or not lines[0]:
            raise CLIError("the passphrase file is empty")
        return lines[0]
    if not sys.stdin.isatty():
        raise CLIError("no terminal to ask for the passphrase: use --passphrase-file FILE")
    first = getpass.getpass("Vault passphrase: ")
    if len(first) < min_chars:
        # Said before the second prompt: typing a refused passphrase twice helps nobody.
        raise CLIError(f"the passphrase is too short: use at least {min_chars} characters "
                       "(six or more diceware words)")
    if confirm and getpass.getpass("Same passphrase again: ") != first:
        raise CLIError("the two passphrases differ")
    return first


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of minutes") from None
    if not 0.01 <= value <= 24 * 60:
        raise argparse.ArgumentTypeError("must be between 0.01 and 1440 minutes")
    return value


def _open(args: argparse.Namespace) -> vault.Vault:
    if _SESSION:
        return _SESSION[0]
    if not args.vault:
        raise CLIError("which vault? give --vault DIR (or set AMANA_VAULT)")
    for attempt in range(1, PASSPHRASE_TRIES + 1):
        try:
            v = vault.unlock(args.vault, _read_passphrase(args), user=args.user)
            break
        except vault.WrongVaultPassphrase:
            # At a terminal a typo deserves another go; a passphrase file will not change.
            if args.passphrase_file or attempt == PASSPHRASE_TRIES:
                raise
            print("Wrong passphrase, try again.", file=sys.stderr)
    _OPENED.append(v)
    if v.notice:
        print(f"note: {v.notice}", file=sys.stderr)
    if triage.refresh_search_index(v):
        v.save()
    return v


def _short(item_id: str) -> str:
    return item_id[:12]


def _out(line: str = "") -> None:
    print(line)


# --- commands -------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> None:
    if not args.vault:
        raise CLIError("give --vault DIR: the new vault's directory")
    # New keys need a long passphrase; imported keys open with the one they have.
    passphrase = _read_passphrase(args, confirm=True,
                                  min_chars=MIN_PASSPHRASE_CHARS if args.desk else 0)
    v = vault.create_vault(
        args.vault, passphrase, desk_id=args.desk, import_keys=args.import_keys,
        keyring_path=args.keyring, server_key=args.server_key, user=args.user,
        names={"en": args.name_en or args.desk, "ar": args.name_ar or args.desk,
               "fr": args.name_fr or args.desk} if args.desk else None,
    )
    _OPENED.append(v)
    d = v.keys.desk
    _out(f"Vault created in {v.path} for desk {d.id}.")
    _out(f"  age recipient: {d.recipient}")
    _out(f"  verify key:    {d.verify_key}")
    _out(f"  fingerprint:   {d.fingerprint}")
    _out("Compare the fingerprint with the coalition's published keyring before use.")
    if v.meta("server_key") is None:
        _out("No server key yet: run `journalist-client trust-server KEY` before importing.")


def cmd_rotate_keys(args: argparse.Namespace) -> None:
    if not args.vault:
        raise CLIError("which vault? give --vault DIR (or set AMANA_VAULT)")
    # The passphrase opens the vault and the new keys (made with the same one).
    passphrase = _read_passphrase(args)
    v = vault.unlock(args.vault, passphrase, user=args.user)
    _OPENED.append(v)
    old = v.keys.desk.fingerprint
    kept = vault.rotate_keys(v, args.import_keys, passphrase)
    _out(f"Desk {v.desk_id} now uses its new keys: {v.keys.desk.fingerprint} (was {old}).")
    _out(f"The old identity is kept in {kept} to open what was encrypted to it.")
    _out("Acks and replies are now signed with the new key: the server's keyring must "
         "have it (intake-keys keyring replace).")


def cmd_trust_server(args: argparse.Namespace) -> None:
    v = _open(args)
    key = v.trust_server(args.key)
    v.save()
    _out(f"Bundles signed by {key} are now trusted as the server's.")


def cmd_import(args: argparse.Namespace) -> None:
    if args.ack_out and len(args.bundles) > 1:
        raise CLIError("--ack-out takes one bundle at a time")
    v = _open(args)
    failed = 0
    held = quarantined = 0  # items this vault now has in the clear, and items set aside
    for path in args.bundles:
        try:
            r = importer.import_bundle(v, path, progress=None if args.progress else False,
                                       ack_out=Path(args.ack_out) if args.ack_out else None)
        except importer.ImportRefused as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            continue
        if r.repeated_bundle:
            _out(f"{path}: already imported; nothing changed. Its ack is {r.ack_path}")
            held += 1
            continue
        held += len(r.imported) + len(r.already)
        quarantined += len(r.quarantined)
        _out(f"{path}: {len(r.imported)} imported, {len(r.already)} already here, "
             f"{len(r.quarantined)} quarantined.")
        for item_id, reason in r.quarantined:
            _out(f"  quarantined {_short(item_id)}: {inert(reason)}")
        _out(f"  ack for the server: {r.ack_path}")
        if r.ack_path is not None and r.ack_path.exists():
            fs.set_day(r.ack_path, fs.today())  # it may be outside the vault (--ack-out)
        if not r.checked:
            _warn(f"{path}: an export of index version 1 states nothing about what the "
                  "server holds for this desk, so its continuity cannot be checked: "
                  "whether the transfer machine kept anything from this vault is unknown.")
        if r.losses:
            _warn(_losses_line(r.losses, "this bundle says that "))
        for note in r.keyring_notes:
            _out(f"  keyring: {note}")
    # Checked once every bundle given is in: bundles fetched in turn may come in any order.
    state = continuity.check(v)
    if failed:
        if state.missing:
            print(f"error: {_missing_line(v.desk_id, state.missing)}", file=sys.stderr)
        raise CLIError(f"{failed} bundle(s) refused; see above")
    if state.missing:
        raise CLIError(_missing_line(v.desk_id, state.missing))
    if quarantined and not held:
        # Every item set aside: most often the wrong desk's vault, or a server keyring
        # with other keys for this desk. The acks were written all the same (the items
        # are safe in quarantine/), but a triager must not take this for a success.
        raise CLIError(f"nothing could be imported: all {quarantined} item(s) were "
                       "quarantined (see the reasons above and `journalist-client "
                       "quarantine`); is this the vault of the desk they were sent to?")


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def _missing_line(desk: str, missing: Sequence[str]) -> str:
    shown = ", ".join(_short(i) for i in missing[:5]) + (" …" if len(missing) > 5 else "")
    return (f"ALARM: the server holds {len(missing)} item(s) for desk {desk} that never "
            f"reached this vault ({shown}), although the transfer machine's cursor says "
            "they were fetched. Import every export bundle fetched; if they still do not "
            "arrive, the transfer machine or its cursor.json may have been tampered with: "
            "tell the coalition, then delete cursor.json on a trusted transfer machine and "
            "fetch again (the server keeps them until they are acknowledged or retention "
            "deletes them).")


def _losses_line(losses: Sequence[continuity.Loss], lead: str = "") -> str:
    received = ", ".join(sorted({loss.received_day for loss in losses})[:5])
    return (f"{lead}{len(losses)} item(s) for this desk were deleted on the server "
            f"(retention, or its operator) before they ever reached this vault: received "
            f"on {received}. Their content is lost; if exports were fetched regularly, the "
            "transfer machine may have kept them from this desk.")


def _severity(s: str) -> str:
    return f"{s} {SEVERITIES[s]}" if s in SEVERITIES else "-"


def _print_json(value: object) -> None:
    _print_document(records.to_json(value))


def _print_document(text: str) -> None:
    # UTF-8 whatever the locale says: the document is for programs, not for the terminal.
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")
    sys.stdout.buffer.flush()


def cmd_list(args: argparse.Namespace) -> None:
    v = _open(args)
    # On stderr, so that --json stays one document; shown on every listing until settled.
    state = continuity.check(v)
    if state.missing:
        print(_missing_line(v.desk_id, state.missing), file=sys.stderr)
    if state.losses:
        _warn(_losses_line(state.losses))
    filters = triage.Filters(
        status=args.status, severity=args.severity, category=args.category,
        country=args.country, desk=args.desk, since=args.since, until=args.until,
        tag=args.tag, indicator=args.indicator, matched=args.matched,
        include_followups=args.followups,
    )
    rows = triage.list_items(v, filters, limit=args.limit)
    if len(rows) == args.limit:
        _say_if_cut(len(rows), triage.count_items(v, filters))
    if args.json:
        _print_json(rows)
        return
    if not rows:
        _out("No reports match.")
        return
    _out(f"{'id':12}  {'received':10}  {'status':11}  {'sev':3}  {'iocs':>4}  "
         f"{'category':22}  country")
    for r in rows:
        kind = "" if r.type == "report" else "  (follow-up)"
        _out(f"{_short(r.id):12}  {r.received_day:10}  {r.status or '-':11}  "
             f"{r.severity or '-':3}  {r.matches or '-':>4}  {inert(r.category):22}  "
             f"{inert(r.country) or '-'}{kind}")


def _show_report(r: records.Report) -> None:
    a = r.answers
    _out(f"Report {r.id}")
    _out(f"  received {r.received_day}, language {r.language}, desks {', '.join(r.desks)}")
    _out(f"  status: {r.status}   severity: {_severity(r.severity)}   "
         f"category: {r.triage_category or '-'}   assignee: {inert(r.assignee) or '-'}")
    _out(f"  tags: {inert(' '.join(r.tags)) or '-'}")
    if r.referral is not None:
        _out(f"  referred by desk {r.referral.from_desk} on {r.referral.day}:")
        _out(inert_block(r.referral.note, "      "))
    for o in r.consent_overrides:
        _out(f"  consent overridden: referred {o.at} by {inert(o.who)} to {inert(o.new)}")
    _out("Answers")
    secondary = ", ".join(a.secondary_categories) or "-"
    _out(f"  category (reporter): {a.category}   also: {secondary}")
    for label, value in (
        ("country", a.country), ("target", a.target), ("profession", a.profession),
        ("platforms", ", ".join(a.platforms)),
        ("consent to share in coalition", "yes" if a.consent.share_within_coalition else "no"),
        ("consent to publish anonymised", "yes" if a.consent.publish_anonymised else "no"),
    ):
        _out(f"  {label}: {inert(value) or '-'}")
    for label, value in (
        ("incident date", a.incident_date), ("description", a.description),
        ("links", a.indicators.links), ("senders", a.indicators.senders),
        ("messages", a.indicators.messages), ("device details", a.device_details),
    ):
        _out(f"  {label}:")
        _out(inert_block(value, "      ") if value else "      -")


def _show_attachments(attachments: Sequence[records.Attachment]) -> None:
    if not attachments:
        return
    _out("  attachments (export with `export-attachment ID N --out FILE`; never opened here):")
    for att in attachments:
        _out(f"    {att.n}. {inert(att.name)}  [{inert(att.media_type)}, {att.size} bytes]")
        _out(f"       sha256 {att.sha256}")


def _where(field: str, attachment: str | None, path: Sequence[str]) -> str:
    return inert(" › ".join([field, *([attachment] if attachment else []), *path]))


def _show_indicators(matches: Sequence[records.IndicatorMatch],
                     claims: Sequence[records.MvtClaim], problems: Sequence[str],
                     suggestion: records.SeveritySuggestion | None = None,
                     item_id: str = "") -> None:
    if not (matches or claims or problems or suggestion):
        return
    _out("Spyware indicators (published indicators found by this client)")
    if not matches:
        _out("  none matched")
    for m in matches:
        evidence = "device output" if m.device_output else "as sent"
        if m.how == indicators.MARKED:
            _out(f"  {inert(m.family)}: {m.kind} {inert(m.value)}  [candidate marked by the "
                 f"desk: `iocs unmark` to withdraw]")
            continue
        _out(f"  {inert(m.family)}: {m.kind} {inert(m.value)}  [{inert(m.source_file)}, "
             f"{inert(m.stix_key)}]")
        _out(f"      found in {_where(m.field, m.attachment, m.path)} ({evidence}, {m.how}): "
             f"{inert(m.candidate)}")
    if suggestion is not None:
        state = {"confirmed": "confirmed by the desk", "overridden": "overridden by the desk"}
        _out(f"  suggested severity: {_severity(suggestion.level)} ({suggestion.confidence}): "
             f"{inert(suggestion.reason)}")
        _out("      " + state.get(suggestion.decision,
                                  f"confirm with `set {_short(item_id)} --confirm-suggestion`, "
                                  "or set another severity"))
    if claims:
        _out("The reporter's own MVT detections (their run and indicators, not re-checked)")
        for c in claims:
            level = f"{inert(c.level)} " if c.level else ""
            _out(f"  {level}{inert(c.module)}: {inert(c.indicator_type)} "
                 f"{inert(c.indicator_value)}  [{inert(c.family) or '-'}, "
                 f"{inert(c.stix2_file_name) or '-'}, MVT {inert(c.mvt_format)}]")
            _out(f"      in {_where(c.field, c.attachment, c.path)}")
    for problem in problems:
        _out(f"  not scanned: {inert(problem)}")


def cmd_show(args: argparse.Namespace) -> None:
    v = _open(args)
    item = triage.show_item(v, args.id)
    if args.json:
        _print_json(item)
        return
    if isinstance(item, records.FollowUp):
        _out(f"Follow-up {item.id} received {item.received_day}")
        _out(f"  part of report: {item.report_id or '(report not in this vault)'}")
        _out(inert_block(item.message, "    "))
        _show_attachments(item.attachments)
        _show_indicators(item.matches, item.claims, item.scan_problems)
        return
    _show_report(item)
    _show_attachments(item.attachments)
    _show_indicators(item.matches, item.claims, item.scan_problems, item.suggestion, item.id)
    if item.thread:
        _out("Thread")
        for t in item.thread:
            who = (f"follow-up {_short(t.id)} from the source" if t.kind == "followup"
                   else f"reply by {inert(t.author)}")
            _out(f"  {t.at} {who}:")
            _out(inert_block(t.body, "      "))
            _show_attachments(t.attachments)
            if t.matches:
                _out(f"    {t.matches} spyware indicator match(es): `show {_short(t.id)}`")
    if item.notes:
        _out("Notes")
        for note in item.notes:
            _out(f"  {note.at} {inert(note.author)}:")
            _out(inert_block(note.text, "      "))
    if args.history:
        _print_history(item.history)


def _print_history(entries: Sequence[records.HistoryEntry]) -> None:
    _out("History")
    for h in entries:
        _out(f"  {h.at} {inert(h.who)}: {h.field} {inert(h.old) or '-'} → {inert(h.new) or '-'}")


def cmd_history(args: argparse.Namespace) -> None:
    v = _open(args)
    entries = triage.history(v, args.id)
    if args.json:
        _print_json(entries)
        return
    _print_history(entries)


def cmd_set(args: argparse.Namespace) -> None:
    v = _open(args)
    changes = triage.set_fields(v, args.id, status=args.status, severity=args.severity,
                                category=args.category, assign=args.assign,
                                tags=args.tag or (), untags=args.untag or (),
                                confirm_suggestion=args.confirm_suggestion)
    if not changes:
        _out("Nothing changed.")
        return
    v.save()
    for c in changes:
        _out(inert(c))


def cmd_note(args: argparse.Namespace) -> None:
    v = _open(args)
    triage.add_note(v, args.id, " ".join(args.text))
    v.save()
    _out("Note added.")


def _say_if_cut(shown: int, total: int) -> None:
    # On stderr, so that --json stays one document and a pipe gets only the rows.
    if total > shown:
        print(f"showing {shown:,} of {total:,}: use --limit N to see more",
              file=sys.stderr)


def cmd_search(args: argparse.Namespace) -> None:
    v = _open(args)
    text = " ".join(args.query)
    hits = triage.run_search(v, text, limit=args.limit)
    if len(hits) == args.limit:
        _say_if_cut(len(hits), triage.count_search(v, text))
    if args.json:
        _print_json(hits)
        return
    if not hits:
        _out("No matches.")
        return
    for hit in hits:
        kind = "report" if hit.type == "report" else "follow-up"
        _out(f"{_short(hit.id)}  {hit.received_day}  {kind}  {hit.status}")
        if hit.snippet:
            _out(f"    {inert(hit.snippet)}")


def cmd_export_attachment(args: argparse.Namespace) -> None:
    v = _open(args)
    path, size = attachments.export_attachment(v, args.id, args.n, args.out)
    _out(f"Wrote {size} bytes to {path}.")
    print(attachments.WARNING, file=sys.stderr)


def _reply_text(args: argparse.Namespace) -> str:
    if args.file:
        with open(args.file, "rb") as f:
            raw = f.read(replies.MAX_REPLY_CHARS * 4 + 1)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CLIError(f"{args.file} is not UTF-8 text; nothing was queued") from None
    if not sys.stdin.isatty():
        return sys.stdin.read(replies.MAX_REPLY_CHARS * 4 + 1)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "nano"
    try:
        return edit_draft(shlex.split(editor))
    except subprocess.CalledProcessError:
        raise CLIError("the editor failed; nothing was queued") from None
    except UnicodeDecodeError:
        raise CLIError("the draft is not UTF-8 text; nothing was queued") from None
    except ValueError as e:
        raise CLIError(str(e)) from None


def cmd_reply(args: argparse.Namespace) -> None:
    v = _open(args)
    triage.get_item(v, args.id)  # fail before the editor opens
    reply_id = replies.add_reply(v, args.id, _reply_text(args))
    v.save()
    _out(f"Reply {_short(reply_id)} is in the outbox. Run `outbox bundle --out FILE` to send.")


def cmd_refer(args: argparse.Namespace) -> None:
    v = _open(args)
    ref_id = replies.refer(v, args.id, args.to, args.note,
                           override_consent=args.override_consent)
    v.save()
    _out(f"Referral {_short(ref_id)} to desk {args.to} is in the outbox.")


def cmd_outbox(args: argparse.Namespace) -> None:
    v = _open(args)
    if args.action == "bundle":
        if args.json:
            raise CLIError("--json lists the outbox; `outbox bundle` prints no records")
        if not args.out:
            raise CLIError("give --out FILE for the outbox bundle")
        path, count = replies.bundle_outbox(v, args.out)
        fs.set_day(path, fs.today())  # outside the vault: dated here, not by Vault.close
        v.save()
        _out(f"Wrote {count} item(s) to {path}, signed by desk {v.desk_id}. "
             "Carry it to the transfer machine and run push.")
        return
    entries = replies.list_outbox(v, include_sent=args.all)
    if args.json:
        _print_json(entries)
        return
    if not entries:
        _out("The outbox is empty.")
        return
    for e in entries:
        to = f"desk {e.to_desk}" if e.type == "referral" else "the source"
        # The air-gapped machine knows the item went into a bundle, not that the bundle
        # was pushed: push runs on the transfer machine.
        sent = f"  (in outbox bundle {e.bundle_id[:12]})" if e.bundle_id else ""
        _out(f"{_short(e.id)}  {e.type:8}  report {_short(e.item_id)} → {to}  "
             f"{e.at} by {inert(e.author)}{sent}")


def _quarantine_show(v: vault.Vault, args: argparse.Namespace) -> None:
    q = importer.describe_quarantined(v, args.id)
    if args.json:
        _print_json(q)
        return
    _out(f"Quarantined {q.type} {q.item_id}, from bundle {q.bundle_id[:12]}, {q.at}")
    _out(f"  reason: {inert(q.reason)}")
    _out("  kept (export with `quarantine export ID [--file N] --out FILE`; never shown here):")
    for f in q.files:
        what = "document" if f.n == 0 else f"attachment {f.n}"
        state = "opens with this desk's key" if f.opens else inert(f.problem)
        _out(f"    {f.n}. {what}: quarantine/{f.file}, {f.size} bytes, {state}")


def _quarantine_export(v: vault.Vault, args: argparse.Namespace) -> None:
    if args.json:
        raise CLIError("--json lists or shows the quarantine; `quarantine export` prints "
                       "no records")
    if not args.out:
        raise CLIError("give --out FILE: a new file for the exported content")
    path, size = importer.export_quarantined(v, args.id, args.out, number=args.file,
                                             ciphertext=args.ciphertext)
    what = "ciphertext" if args.ciphertext else "decrypted bytes"
    _out(f"Wrote {size} {what} to {path}.")
    print("It failed a check on import: treat it as hostile. " + attachments.WARNING,
          file=sys.stderr)


def cmd_quarantine(args: argparse.Namespace) -> None:
    if (args.action is None) != (args.id is None):
        raise CLIError("give both an action and an id: `quarantine show ID` or "
                       "`quarantine export ID --out FILE`")
    if args.action is None and (args.out or args.file or args.ciphertext):
        raise CLIError("--out, --file and --ciphertext go with `quarantine export ID`")
    if args.action is not None and args.retry:
        raise CLIError("--retry goes alone: `quarantine --retry`")
    v = _open(args)
    if args.action == "show":
        _quarantine_show(v, args)
        return
    if args.action == "export":
        _quarantine_export(v, args)
        return
    if args.retry:
        done, still = importer.retry_quarantined(v)
        if not args.json:
            _out(f"{len(done)} item(s) imported from quarantine, {len(still)} still refused.")
    entries = importer.quarantined(v)
    if args.json:
        _print_json(entries)
        return
    if not entries:
        _out("Nothing is quarantined.")
        return
    for e in entries:
        _out(f"{_short(e.item_id)}  {e.type}  {e.at}: {inert(e.reason)}")
        _out(f"    ciphertext kept in quarantine/: {', '.join(e.files)}")


def cmd_iocs(args: argparse.Namespace) -> None:
    v = _open(args)
    if args.action == "import":
        failed = 0
        for path in args.files:
            try:
                r = indicators.import_file(v, path)
            except indicators.IndicatorError as e:
                # The other files are still imported (and saved): say which one failed.
                failed += 1
                print(f"error: {inert(str(e))}", file=sys.stderr)
                continue
            except OSError as e:
                failed += 1
                print(f"error: {inert(str(path))}: {e.strerror or e}", file=sys.stderr)
                continue
            f = r.info
            if r.status == "unchanged":
                _out(f"{inert(f.name)}: already imported with this content; nothing changed.")
                continue
            was = f" (replaces sha256 {r.previous_sha256[:16]}…)" if r.status == "replaced" else ""
            _out(f"{inert(f.name)}: {f.indicators} indicator(s), {f.unsupported} unsupported "
                 f"pattern(s), sha256 {f.sha256}{was}")
            for fam in f.families:
                _out(f"    {inert(fam.family)}: {fam.indicators}")
        v.save()
        _out("Run `journalist-client iocs rescan` to match the reports already here.")
        if failed:
            raise CLIError(f"{failed} indicator file(s) not imported; see above")
    elif args.action == "remove":
        f = indicators.remove_file(v, args.name)
        v.save()
        _out(f"Removed {inert(f.name)}: {f.indicators} indicator(s) and their matches.")
    elif args.action == "export":
        since = _day_option(args.since, "--since")
        until = _day_option(args.until, "--until") if args.until else fs.today()
        count = indicators.export_sightings(v, args.out, since=since, until=until,
                                            fmt=args.format)
        _out(f"Wrote {count} indicator(s) seen from {since} to {until} to {args.out} "
             f"({args.format}): published indicators, counts and days only.")
    elif args.action in ("mark", "unmark"):
        kind, item_id = indicators.Kind(args.kind), triage.get_item(v, args.id)["id"]
        if args.action == "mark":
            m = indicators.mark(v, item_id, kind, args.value, family=args.family)
        else:
            m = indicators.unmark(v, item_id, kind, args.value)
        v.save()
        _out(f"{args.action.capitalize()}ed {m.kind} {inert(m.value)} ({inert(m.family)}) on "
             f"{inert(args.id)}: a candidate for `iocs export`, recorded in the history.")
    elif args.action == "rescan":
        scanned, matched = indicators.rescan(v, progress=None if args.progress else False)
        v.save()
        _out(f"Rescanned {scanned} item(s); {matched} with matches (`list --matched`).")
    else:
        _iocs_list(indicators.list_files(v, unsupported=args.unsupported), args.json)


def _day_option(value: str, option: str) -> dt.date:
    try:
        return ids.parse_day(value)
    except ValueError as e:
        raise CLIError(f"{option}: {e}") from None


def _iocs_list(listing: records.IndicatorListing, as_json: bool) -> None:
    if as_json:
        _print_json(listing)
        return
    if not listing.files:
        _out("No indicator files. Import some with `journalist-client iocs import FILE`.")
        return
    _out("Files")
    for f in listing.files:
        _out(f"  {inert(f.name)}  imported {f.imported_day}  {f.indicators} indicator(s), "
             f"{f.unsupported} unsupported  sha256 {f.sha256}")
    _out("Families")
    for fam in listing.families:
        _out(f"  {inert(fam.family)}: {fam.indicators} indicator(s), "
             f"{fam.unsupported} unsupported")
    if listing.unsupported:
        _out("Unsupported patterns (kept, not matched)")
        for u in listing.unsupported:
            _out(f"  {inert(u.file)} {inert(u.indicator_id)}: {inert(u.reason)}")
            _out(f"      {inert(u.pattern)}")


def cmd_stats(args: argparse.Namespace) -> None:
    v = _open(args)
    until = args.until or f"{fs.today():%Y-%m}"
    if args.pack:
        # Imported here: only the pack loads matplotlib.
        from journalist_client import stats_charts

        folder = stats_charts.write_pack(v, args.since, until, args.pack, k=args.k,
                                         lang=args.lang)
        _out(f"Wrote the advocacy pack {folder}: CSV and charts per dimension, and a "
             f"README stating the method and k = {args.k}.")
        return
    tab = stats.table(v, args.since, until, by=args.by, k=args.k, lang=args.lang)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        _print_document(stats.to_json(tab))
    elif fmt == "csv":
        sys.stdout.write(inert(stats.to_csv(tab), keep_newlines=True))
    else:
        _out(f"Consented reports received {tab.since} to {tab.until}, by {args.by} "
             f"(counts under {tab.k} hidden; docs/stats.md)")
        width = max([len(tab.by_label), *(len(r.label) for r in tab.rows), 5])
        _out(f"{inert(tab.by_label):{width}}  reports")
        for r in tab.rows:
            _out(f"{inert(r.label):{width}}  {r.shown:>7}")
        _out(f"{'total':{width}}  {tab.total.shown:>7}")
        if tab.note:
            _out(tab.note)
        _out(f"Left out (source did not consent to anonymised figures): {tab.left_out.shown}")


def _k(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < stats.MIN_K:
        raise argparse.ArgumentTypeError(f"must be at least {stats.MIN_K}")
    return value


def cmd_shell(args: argparse.Namespace) -> None:
    v = _open(args)
    v.start_journal()
    names = [n for n in _command_names() if n not in _NOT_IN_SHELL]

    def execute(argv: list[str]) -> int:
        if argv[0] in _NOT_IN_SHELL:
            print(f"error: `{argv[0]}` is not available inside the shell", file=sys.stderr)
            return 2
        return _in_session(v, args, argv)

    status = shell.run(execute, prompt=f"{v.desk_id}> ", commands=names,
                       idle_minutes=args.idle_minutes, timing=args.timing)
    if status:
        # Commands piped in: the script can tell its last command failed.
        raise CLIError(f"the last command failed (exit status {status})")


def _in_session(v: vault.Vault, outer: argparse.Namespace, argv: list[str]) -> int:
    """Run one command line in the shell's session; what it did not save is undone."""
    try:
        ns = parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error (or --help)
        return e.code if isinstance(e.code, int) else 2
    # The session's vault and name, whatever the line says.
    ns.vault, ns.passphrase_file, ns.user = outer.vault, outer.passphrase_file, outer.user
    _SESSION.append(v)
    try:
        with v.bulk() if ns.command in _BULK else contextlib.nullcontext():
            return _run(ns)
    finally:
        _SESSION.clear()
        # A failed (or interrupted) command leaves no half-change behind.
        v.discard_unsaved()


def _command_names() -> list[str]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def _refresh_and_save(v: vault.Vault) -> None:
    if triage.refresh_search_index(v):
        v.save()


def cmd_ui(args: argparse.Namespace) -> None:
    # Imported here: only this command loads aiohttp (and listens, on 127.0.0.1 only).
    from journalist_client.ui import serve
    from journalist_client.ui._worker import VaultWorker

    if not args.vault:
        raise CLIError("which vault? give --vault DIR (or set AMANA_VAULT)")
    worker = VaultWorker()
    try:
        # As _open, but the vault is unlocked on the worker thread, which alone uses it
        # (SQLite thread affinity) and holds it, with its lock, until the UI stops: the
        # CLI meanwhile is refused. The passphrase is asked here, on the main thread,
        # so that Ctrl-C at the prompt ends the command.
        for attempt in range(1, PASSPHRASE_TRIES + 1):
            opener = functools.partial(vault.unlock, args.vault, _read_passphrase(args),
                                       user=args.user)
            try:
                worker.unlock(opener)
                break
            except vault.WrongVaultPassphrase:
                if args.passphrase_file or attempt == PASSPHRASE_TRIES:
                    raise
                print("Wrong passphrase, try again.", file=sys.stderr)
        worker.call(_refresh_and_save)
        serve(worker, language=args.lang, open_browser=args.browser)
    finally:
        worker.close()


# --- parser ---------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Offline triage of Amana reports: an encrypted vault on an air-gapped "
                    "machine. Opens no network connection.",
        epilog="Example: journalist-client --vault ~/desk list --status new\n"
               "Every command has its own --help with an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--vault", default=os.environ.get("AMANA_VAULT"),
                   help="vault directory (default: $AMANA_VAULT)")
    p.add_argument("--passphrase-file", help="read the passphrase from the first line of FILE "
                   "instead of asking")
    p.add_argument("--as", dest="user", help="your name in the history (default: set at init)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The same options are accepted after the command name too (`init --vault DIR`);
    # SUPPRESS keeps a value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--vault", default=argparse.SUPPRESS,
                        help="vault directory (default: $AMANA_VAULT)")
    common.add_argument("--passphrase-file", default=argparse.SUPPRESS, metavar="FILE",
                        help="read the passphrase from the first line of FILE")
    common.add_argument("--as", dest="user", default=argparse.SUPPRESS, metavar="NAME",
                        help="your name in the history")

    def add(name: str, func: Command, help_: str, example: str) -> argparse.ArgumentParser:
        return add_command(sub, name, func, help_, example, parents=[common])

    def json_option(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--json", action="store_true",
                        help="print one JSON document instead of text (docs/client.md)")

    sp = add("init", cmd_init, "create a vault, with new desk keys or keys from intake-keys",
             "journalist-client --vault ~/desk init --desk smex --keyring keyring.json "
             "--server-key /media/usb/server-verify.key")
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--desk", help="generate new keys for desk ID ([a-z0-9-], ≤ 32)")
    g.add_argument("--import-keys", metavar="DESK_DIR",
                   help="use the keys `intake-keys generate` wrote in DESK_DIR")
    sp.add_argument("--keyring", help="the coalition keyring (JSON) this vault trusts")
    sp.add_argument("--server-key", metavar="KEY",
                    help="the server's verify key: the path of server-verify.key (as "
                         "`intake-server init` wrote it), its content, or ed25519:…")
    sp.add_argument("--name-en")
    sp.add_argument("--name-ar")
    sp.add_argument("--name-fr")

    sp = add("rotate-keys", cmd_rotate_keys,
             "move the vault to the desk's new keys, keeping the old identity",
             "journalist-client --vault ~/desk rotate-keys --import-keys ./smex-keys-2027")
    sp.add_argument("--import-keys", required=True, metavar="DESK_DIR",
                    help="the new keys `intake-keys rotate` wrote (same passphrase)")

    sp = add("trust-server", cmd_trust_server, "set the server key that signs desk exports",
             "journalist-client trust-server /media/usb/server-verify.key")
    sp.add_argument("key", help="the path of server-verify.key (as `intake-server init` "
                                "wrote it), its content, or the key itself, ed25519:…")

    sp = add("import", cmd_import, "import desk-export bundles and write the ack for the server",
             "journalist-client import /media/usb/triage-export.bundle")
    sp.add_argument("bundles", nargs="+", metavar="BUNDLE")
    sp.add_argument("--ack-out", metavar="FILE", help="where to write the ack bundle "
                    "(default: acks/ in the vault)")
    sp.add_argument("--no-progress", dest="progress", action="store_false")

    sp = add("list", cmd_list, "list reports, newest first, with filters",
             "journalist-client list --status new --severity S1 --since 2026-11-01")
    sp.add_argument("--status", choices=STATUSES)
    sp.add_argument("--severity", choices=list(SEVERITIES))
    sp.add_argument("--category", help="taxonomy code (the triager's, else the reporter's)")
    sp.add_argument("--country", help="country code, e.g. AE")
    sp.add_argument("--desk", help="reports addressed to this desk")
    sp.add_argument("--since", metavar="YYYY-MM-DD")
    sp.add_argument("--until", metavar="YYYY-MM-DD")
    sp.add_argument("--tag")
    sp.add_argument("--indicator", help="text contained in the links, senders or messages")
    sp.add_argument("--matched", action="store_true",
                    help="only items where a published spyware indicator was found")
    sp.add_argument("--followups", action="store_true", help="list follow-ups too")
    sp.add_argument("--limit", type=_positive, default=100,
                    help="at most this many rows (default 100); more are counted on stderr")
    json_option(sp)

    sp = add("show", cmd_show, "show a report: answers, attachments, thread, notes",
             "journalist-client show 3f9a0c11 --history")
    sp.add_argument("id")
    sp.add_argument("--history", action="store_true", help="also show who changed what when")
    json_option(sp)

    sp = add("history", cmd_history, "who changed what, and when, on a report",
             "journalist-client history 3f9a0c11")
    sp.add_argument("id")
    json_option(sp)

    sp = add("set", cmd_set, "change a report's status, severity, category, assignee or tags",
             "journalist-client set 3f9a0c11 --status triaged --severity S2 "
             "--category spyware.exploit_link --assign rania --tag pegasus")
    sp.add_argument("id")
    sp.add_argument("--status", choices=STATUSES)
    sp.add_argument("--severity", choices=list(SEVERITIES))
    sp.add_argument("--category")
    sp.add_argument("--assign", metavar="NAME")
    sp.add_argument("--tag", action="append", help="add a tag (repeatable)")
    sp.add_argument("--untag", action="append", help="remove a tag (repeatable)")
    sp.add_argument("--confirm-suggestion", action="store_true",
                    help="set the severity the indicator matches suggest (see `show`)")

    sp = add("note", cmd_note, "add a note to a report (kept encrypted in the vault)",
             "journalist-client note 3f9a0c11 'called back, device seized at border'")
    sp.add_argument("id")
    sp.add_argument("text", nargs="+")

    sp = add("search", cmd_search, "full-text search in Arabic, French and English",
             "journalist-client search الإمارات pegasus")
    sp.add_argument("query", nargs="+")
    sp.add_argument("--limit", type=_positive, default=20,
                    help="at most this many items (default 20); more are counted on stderr")
    json_option(sp)

    sp = add("export-attachment", cmd_export_attachment,
             "decrypt attachment N of a report to a new file (never opened by the client)",
             "journalist-client export-attachment 3f9a0c11 1 --out /media/usb/evidence-1.bin")
    sp.add_argument("id")
    sp.add_argument("n", type=_positive)
    sp.add_argument("--out", required=True, metavar="PATH")

    sp = add("reply", cmd_reply, "reply to the source (from --file, stdin or $EDITOR)",
             "journalist-client reply 3f9a0c11 --file reply.txt")
    sp.add_argument("id")
    sp.add_argument("--file")

    sp = add("refer", cmd_refer, "re-encrypt a report and its attachments to another desk",
             "journalist-client refer 3f9a0c11 --to lawyers --note 'needs legal help'")
    sp.add_argument("id")
    sp.add_argument("--to", required=True, metavar="DESK")
    sp.add_argument("--note", required=True)
    sp.add_argument("--override-consent", metavar="REASON",
                    help="refer although the source declined sharing, for this reason "
                         "(recorded in the history and shown with the report)")

    sp = add("outbox", cmd_outbox, "list pending replies and referrals, or bundle them",
             "journalist-client outbox bundle --out /media/usb/outbox.bundle")
    sp.add_argument("action", nargs="?", choices=["bundle"])
    sp.add_argument("--out", metavar="FILE")
    sp.add_argument("--all", action="store_true", help="also list items already bundled")
    json_option(sp)

    sp = add("quarantine", cmd_quarantine, "list items refused on import and why, retry "
             "them, or show and export one",
             "journalist-client quarantine export 3f9a0c11 --out /media/usb/q-doc.json")
    sp.add_argument("action", nargs="?", choices=["show", "export"],
                    help="show ID: what was kept and why; export ID --out FILE: write a "
                         "kept file, decrypted, to a new file (never shown)")
    sp.add_argument("id", nargs="?", help="the quarantined item's id (the start is enough)")
    sp.add_argument("--retry", action="store_true",
                    help="check every quarantined item again (after a key or client update)")
    sp.add_argument("--out", metavar="FILE", help="export: the new file to write (0600)")
    sp.add_argument("--file", type=int, default=0, metavar="N",
                    help="export: 0 the document (default), 1… the attachments")
    sp.add_argument("--ciphertext", action="store_true",
                    help="export the file as kept, encrypted (when this desk cannot "
                         "decrypt it)")
    json_option(sp)

    sp = add("iocs", cmd_iocs, "spyware indicator files: import, list, remove; rescan reports",
             "journalist-client iocs import /media/usb/iocs/pegasus.stix2")
    actions = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("import", parents=[common],
                           help="import STIX 2.1 files (a newer file of the same name "
                                "replaces the older)")
    a.add_argument("files", nargs="+", metavar="FILE")
    a = actions.add_parser("list", parents=[common],
                           help="files and malware families, with counts")
    a.add_argument("--unsupported", action="store_true",
                   help="also list each pattern the matcher cannot evaluate")
    json_option(a)
    a = actions.add_parser("remove", parents=[common],
                           help="remove an indicator file and its matches")
    a.add_argument("name", metavar="FILE_NAME")
    a = actions.add_parser("export", parents=[common],
                           help="the indicators seen in reports, as STIX 2.1 or MISP, for "
                                "other helplines (no text, ids, names or times)")
    a.add_argument("--since", required=True, metavar="YYYY-MM-DD",
                   help="first day (the day reports were received)")
    a.add_argument("--until", metavar="YYYY-MM-DD", help="last day (default: today)")
    a.add_argument("--format", choices=("stix2", "misp"), default="stix2")
    a.add_argument("--out", required=True, metavar="FILE",
                   help="a new file (never replaced), mode 0600")
    for action, help_ in (("mark", "record a new candidate indicator found in a report; "
                                   "`iocs export` shares it"),
                          ("unmark", "withdraw a candidate indicator marked on a report")):
        a = actions.add_parser(
            action, parents=[common], help=help_, description=help_,
            epilog=f"Example: journalist-client iocs {action} 3f9a0c11 "
                   "'hxxps://login-verify[.]example/a' --type url"
                   + (" --family Predator" if action == "mark" else ""))
        a.add_argument("id", metavar="REPORT_ID")
        a.add_argument("value", metavar="VALUE", help="as written in the report (defanged "
                       "forms such as hxxps:// and [.] are undone)")
        a.add_argument("--type", dest="kind", required=True, metavar="TYPE",
                       choices=[k.value for k in indicators.Kind],
                       help="one of: " + ", ".join(k.value for k in indicators.Kind))
        if action == "mark":
            a.add_argument("--family", default="", metavar="NAME",
                           help="the malware family, if known (default: unattributed)")
    a = actions.add_parser("rescan", parents=[common],
                           help="match every report again (after an import)")
    a.add_argument("--no-progress", dest="progress", action="store_false")

    sp = add("stats", cmd_stats, "anonymised counts of consented reports, small counts "
             "hidden (docs/stats.md); or write a dated advocacy pack with charts",
             "journalist-client stats --since 2026-01 --until 2026-06 --by country "
             "--format csv")
    sp.add_argument("--since", required=True, metavar="YYYY-MM",
                    help="first month (a day is rounded to its month)")
    sp.add_argument("--until", metavar="YYYY-MM", help="last month (default: this month)")
    sp.add_argument("--by", choices=stats.DIMENSIONS, default="category")
    sp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sp.add_argument("--k", type=_k, default=stats.DEFAULT_K, metavar="K",
                    help=f"hide counts under K (default {stats.DEFAULT_K}, at least "
                         f"{stats.MIN_K})")
    sp.add_argument("--lang", choices=stats.LANGS, default="en",
                    help="language of labels and charts")
    sp.add_argument("--pack", metavar="DIR", help="write a dated advocacy pack folder in "
                    "DIR (CSV, SVG and PNG charts for every dimension, README)")
    json_option(sp)

    sp = add("shell", cmd_shell, "unlock once and run many commands, each saved at once",
             "journalist-client --vault ~/desk shell")
    sp.add_argument("--idle-minutes", type=_minutes, default=shell.IDLE_MINUTES,
                    metavar="N", help="lock the vault after N minutes without a command "
                    f"(default {shell.IDLE_MINUTES:g}; 0.5 is thirty seconds)")
    sp.add_argument("--timing", action="store_true",
                    help="print how long each command took on stderr")

    sp = add("ui", cmd_ui, "triage in the browser: a local web UI on 127.0.0.1 (docs/ui.md)",
             "journalist-client ui --lang ar --no-browser")
    sp.add_argument("--lang", choices=("en", "ar", "fr"), default="en",
                    help="language until you choose one in the UI (kept per triager)")
    sp.add_argument("--no-browser", dest="browser", action="store_false",
                    help="only print the address (with its one-time token)")

    return p


def main(argv: Sequence[str] | None = None) -> int:
    # A crash dump of this process would hold decrypted reports and keys (keys.process).
    process.harden_process()
    args = parser().parse_args(argv)
    try:
        return _run(args)
    finally:
        while _OPENED:
            _OPENED.pop().close()


def _run(args: argparse.Namespace) -> int:
    return run_command(args, (vault.VaultError, triage.TriageError, importer.ImportRefused,
                              attachments.ExportError, replies.OutboxError, SearchError,
                              importer.QuarantineError,
                              fs.FsError,
                              indicators.IndicatorError, stats.StatsError))


if __name__ == "__main__":
    sys.exit(main())

"""The desk's offline triage client (journalist-client).

Runs on an air-gapped machine. Unlocks the desk's keys, imports signed bundles of
ciphertext into an encrypted vault, and lets triagers list, search, annotate, reply to
and refer reports. Every decrypted byte was written by a stranger and is treated as
hostile: strictly validated on import, always shown escaped, never opened or executed.

Modules: vault (the encrypted triage database), schema (the report document),
importer (desk-export bundles in, ack out, quarantine), triage (list/show/set/note),
search (Arabic and Latin normalisation, FTS5), attachments (streaming export),
indicators (spyware indicator files in the vault, matching every item; the offline
matcher itself is iocs/),
replies (reply, refer, outbox), records (the typed records the library returns and
--json prints), display (inert terminal output), cli (argparse, journalist-client).
online/ is the transfer machine's journalist-transfer (fetch, push); nothing here
imports it.
"""

__all__: list[str] = []

"""The desk's offline triage client (journalist-client).

Runs on an air-gapped machine. Unlocks the desk's keys, imports signed bundles of
ciphertext into an encrypted vault, and lets triagers list, search, annotate, reply to
and refer reports. Every decrypted byte was written by a stranger and is treated as
hostile: strictly validated on import, always shown escaped, never opened or executed.

Modules: vault (the encrypted triage database), schema (the report document),
importer (desk-export bundles in, ack out), triage (list/show/set/note),
search (Arabic and Latin normalisation, FTS5), attachments (streaming export),
replies (reply, refer, outbox), display (inert terminal output), cli (argparse).
transfer.py is the online side and is never imported by the offline commands.
"""

__all__: list[str] = []

"""Exporting an attachment: the only way source-supplied bytes leave the vault in clear.

The ciphertext is decrypted as a stream (bounded memory, one age chunk at a time) into
a new file at the path the triager names; the source's own file name is never used as
a path. The output appears only when every chunk has authenticated and the SHA-256 the
document declared matches; an existing file is never replaced. The client never opens,
renders or executes what it exports, and says so, with advice.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

from journalist_client.importer import age_failure
from journalist_client.triage import TriageError, get_item
from journalist_client.vault import Vault
from keys import fs
from keys.age import AgeError, decrypt_stream

__all__ = ["WARNING", "ExportError", "export_attachment"]

WARNING: Final = (
    "WARNING: this file was sent by a stranger and may be built to attack whoever opens it.\n"
    "  - Open it only on this offline machine, never on a connected one.\n"
    "  - Convert documents and images to safe PDFs with Dangerzone before opening them.\n"
    "  - Do not run, install or unzip it; hand suspected malware to a forensics lab as is.\n"
    "journalist-client itself never opens, renders or runs an attachment."
)


class ExportError(Exception):
    """The attachment could not be exported; nothing was written."""


def export_attachment(vault: Vault, item_id: str, number: int, out: str | os.PathLike[str]
                      ) -> tuple[Path, int]:
    """Decrypt attachment ``number`` (1-based) of an item to ``out``; return (path, size)."""
    item = get_item(vault, item_id)
    row = vault.conn.execute(
        "SELECT file, size, sha256 FROM attachments WHERE item_id = ? AND n = ?",
        (item["id"], number),
    ).fetchone()
    if row is None:
        count = vault.conn.execute("SELECT count(*) FROM attachments WHERE item_id = ?",
                                   (item["id"],)).fetchone()[0]
        raise TriageError(f"item {item['id'][:12]} has {count} attachment(s); "
                          f"there is no number {number}")
    name, size, sha256 = row
    out_path = Path(out)
    if os.path.lexists(out_path):
        raise ExportError(f"{out_path} already exists: choose a new file name")
    if out_path.is_dir():
        raise ExportError(f"{out_path} is a directory: give a file name")
    h = hashlib.sha256()
    written = 0
    try:
        with open(fs.safe_join(vault.dir("files"), name), "rb") as src, \
                fs.AtomicWriter(out_path) as w:
            for chunk in decrypt_stream(src, [vault.keys.identity], armored=False):
                h.update(chunk)
                w.write(chunk)
                written += len(chunk)
            if written != size or h.hexdigest() != sha256:
                # Leaving the block by an exception discards the partial file.
                raise ExportError(
                    f"the decrypted file does not match the size and SHA-256 the report "
                    f"declares ({written} bytes); nothing was written"
                )
    except AgeError as e:
        raise ExportError(f"attachment {number}: {age_failure(e)}; nothing was written") from None
    except fs.FileExistsRefused:
        raise ExportError(f"{out_path} already exists: choose a new file name") from None
    except FileNotFoundError as e:
        raise ExportError(f"cannot write {out_path}: {e.strerror}") from None
    return out_path, written

"""The severity an indicator match suggests, from the coalition taxonomy.

Scope: one pure function, :func:`suggest_severity`. The triager confirms or overrides
the suggestion; recording which is the caller's job (the report history).

The rule, from ``shared/data/taxonomy.md`` ("Urgency / severity scale"):

* S2 (High) lists "An MVT CRITICAL alert or another IOC match in device output" and
  "A clicked link matching Pegasus or Predator infrastructure". So a match on a device
  artefact (process, file name or path, configuration profile, app id, certificate,
  Android property), or any match inside device forensic output, suggests **S2**.
  The MVT mapping table says the same of a reporter's CRITICAL alert.
* S3 (Medium) is "A targeted attempt with no evidence that it succeeded", e.g.
  "Spear-phishing received but not clicked". A domain, URL, e-mail address, IP address
  or hash found in a message suggests **S3**: whether it was clicked is for the triager.
  A reporter's HIGH alert is "S2 or S3, triager decides"; we suggest S3.
* The modifiers (move up for a known mercenary family, for third parties at risk...)
  need facts the matcher does not have; they stay with the triager.

The confidence follows the taxonomy's "Spyware match confidence": *strong-device* for
device evidence, *strong-indicator* for an exact match on what the reporter supplied,
*weak* when the only device matches are 16-character process-name prefixes, or the
only evidence is a reporter's alert we did not reproduce.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from journalist_client.iocs.attachments import Claim
from journalist_client.iocs.match import DEVICE_KINDS, Match

__all__ = ["Suggestion", "suggest_severity"]

Level = Literal["S2", "S3"]
Confidence = Literal["weak", "strong-indicator", "strong-device"]


@dataclass(frozen=True, slots=True)
class Suggestion:
    level: Level
    confidence: Confidence
    reason: str


def _is_device(m: Match) -> bool:
    return m.indicator.kind in DEVICE_KINDS or m.location.device_output


def suggest_severity(matches: Iterable[Match], claims: Iterable[Claim] = ()) -> Suggestion | None:
    """The suggested level for a report's matches and MVT claims; None if there are none."""
    matches = list(matches)
    claim_levels = {c.level for c in claims if c.indicator_value or c.level}
    device = [m for m in matches if _is_device(m)]
    if device:
        weak = all(m.how == "process-prefix16" for m in device)
        return Suggestion("S2", "weak" if weak else "strong-device",
                          f"{len(device)} match(es) on device artefacts or forensic output")
    if "CRITICAL" in claim_levels:
        return Suggestion("S2", "strong-device", "the reporter's MVT run raised a CRITICAL alert")
    if matches:
        return Suggestion("S3", "strong-indicator",
                          f"{len(matches)} match(es) in what the reporter sent")
    if "HIGH" in claim_levels or any(level == "" for level in claim_levels):
        # A v2 detection has no level; it is an IOC match of the reporter's run.
        return Suggestion("S3", "weak",
                          "the reporter's MVT run raised an alert we did not reproduce")
    return None

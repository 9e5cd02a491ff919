"""Spyware indicators in triage (issue 15): the offline core, without vault or CLI.

Scope: load published STIX 2.1 indicator bundles, index them, and find them in what a
report carries (text fields, attachment hashes, attachments: text, e-mail, JSON, zips,
MVT output v2/v3), each match with its family, source file and location, plus the
severity it suggests. Pure Python, in memory, no network, nothing from an attachment
written to disk or executed. Storage of indicators, the ``iocs`` commands and report
display are the caller's (the importer and CLI).

The API the importer and CLI call::

    from journalist_client.iocs import (IndicatorIndex, Location, load_bundle,
                                        scan_attachment, suggest_severity)

    bundle = load_bundle(data, "pegasus.stix2")   # BundleError if unusable
    bundle.indicators, bundle.unsupported, bundle.families()   # `iocs import` / `list`
    index = IndicatorIndex.build(i for b in bundles for i in b.indicators)
    # Build once per run (import, rescan) and reuse for every report. With a million
    # indicators, gc.freeze() after building keeps full collections from walking it.

    where = Location("description")
    matches = index.scan_text(report_text, where)                 # every text field
    matches += index.match_hash(sha256, Location("attachment", name))   # server's hash
    scan = scan_attachment(index, name, data, Location("attachment", name))
    matches += scan.matches       # our re-match (MVT records included)
    scan.claims                   # what the reporter's MVT run said, kept apart
    scan.problems, scan.skipped   # limits hit, files not scanned
    suggestion = suggest_severity(matches, scan.claims)   # S2/S3 + confidence, or None

Each :class:`Match` has ``indicator`` (``kind``, ``value``, ``family``,
``source_file``, ``indicator_id``, ``stix_key``, ``references``), the ``candidate``
found, its :class:`Location` (``field``, ``attachment``, ``path`` inside it,
``device_output``) and ``how`` it matched (exact, subdomain, url-host, path-prefix,
basename, process-prefix16, in-text). Everything is an immutable record of plain
values (frozen dataclasses; ``Indicator`` is a named tuple, for import speed), so the
importer can store it as JSON rows.
"""

from journalist_client.iocs.attachments import (
    AttachmentScan,
    Claim,
    Limits,
    Problem,
    ZipFormatError,
    ZipLimitError,
    read_zip,
    scan_attachment,
)
from journalist_client.iocs.extract import Candidate, CandidateKind, ExtractError, extract
from journalist_client.iocs.match import IndicatorIndex, Location, Match
from journalist_client.iocs.severity import Suggestion, suggest_severity
from journalist_client.iocs.stix import (
    BundleError,
    Indicator,
    IndicatorColumns,
    IndicatorFile,
    Kind,
    Unsupported,
    load_bundle,
    load_stream,
)

__all__ = [
    "AttachmentScan",
    "BundleError",
    "Candidate",
    "CandidateKind",
    "Claim",
    "ExtractError",
    "Indicator",
    "IndicatorColumns",
    "IndicatorFile",
    "IndicatorIndex",
    "Kind",
    "Limits",
    "Location",
    "Match",
    "Problem",
    "Suggestion",
    "Unsupported",
    "ZipFormatError",
    "ZipLimitError",
    "extract",
    "load_bundle",
    "load_stream",
    "read_zip",
    "scan_attachment",
    "suggest_severity",
]

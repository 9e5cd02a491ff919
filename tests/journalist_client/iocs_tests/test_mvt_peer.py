"""Against the real peer: our re-match of MVT output versus ``mvt-ios``/``mvt-android check-iocs``.

For each platform and each output format (v3, and the older v2 whose ``*_detected.json``
holds bare records), a results folder is written with one record per indicator, in the
module and field where MVT looks for that kind. ``mvt-<platform> check-iocs --iocs
FILE... FOLDER`` runs on it as a subprocess, offline (``MVT_NETWORK_ACCESS_ALLOWED=false``,
no update checks, a HOME and config folder of its own so no downloaded indicators are
read), and its CRITICAL alerts are read from its log. The same folder, zipped, goes
through :func:`scan_attachment` with the same indicator files. The records each side
flags must be the same; the differences we chose are in :data:`ONLY_OURS`, each with its
reason, and the test fails if one of them stops being a difference.

Not compared: e-mail and profile-id indicators (the shared files hold no profile ids;
MVT's iOS modules that read e-mail addresses need full backup records), and MVT's
heuristic alerts (third-party installers, suspicious paths), which are not indicator
matches (they come at other levels and are ignored here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from journalist_client.iocs import Indicator, IndicatorIndex, Kind, Location, scan_attachment
from support.iocs import DATA, SHARED_FILES, sample, shared_bundle, zip_bytes

pytestmark = pytest.mark.slow

# mvt is in the test extras: its scripts sit beside the interpreter running the tests.
BIN = Path(sys.executable).parent
STAMP = "2024-05-01 10:00:00.000000"

def _record(slug: str, n: int, indicator: Indicator, host: str | None = None) -> dict[str, Any]:
    value = indicator.value
    if slug == "sms":
        link = value if indicator.kind is Kind.URL else f"https://{host or value}/r{n}"
        return {"isodate": STAMP, "text": "Votre colis", "links": [link], "direction": "received"}
    if slug == "datausage":
        return {"isodate": STAMP, "first_isodate": STAMP, "proc_name": value, "proc_id": n + 1,
                "bundle_id": "", "wwan_in": 10, "wwan_out": 0}
    if slug == "aqf_get_prop":  # AQFGetProp; MVT derives the slug from the class name
        return {"name": value, "value": "1"}
    if slug == "aqf_files":
        path = value + ("payload" if value.endswith("/") else "")
        if indicator.kind is Kind.FILE_NAME:
            path = f"/sdcard/Download/{value}"
        hashes = {"sha256": value} if indicator.kind is Kind.SHA256 else {}
        if hashes:
            path = f"/sdcard/Download/h{n}.apk"
        return {"path": path, "mode": "-rw-r--r--", "size": 10, **hashes}
    # aqf_packages: an app id, or a signing certificate hash in AndroidQF's spelling.
    package = {"name": value, "installer": "com.android.vending", "system": False,
               "disabled": False, "files": []}
    if indicator.kind is Kind.APP_CERT:
        slot = {32: "Md5", 40: "Sha1", 64: "Sha256"}[len(value)]
        certificate = {"Md5": "0" * 32, "Sha1": "0" * 40, "Sha256": "0" * 64, slot: value}
        package.update(name=f"com.example.signed{n}",
                       files=[{"path": f"/data/app/base{n}.apk", "sha256": "",
                               "certificate": certificate}])
    return package


_SLUGS = {
    "ios": {Kind.DOMAIN: "sms", Kind.IPV4: "sms", Kind.URL: "sms", Kind.PROCESS: "datausage"},
    "android": {Kind.ANDROID_PROPERTY: "aqf_get_prop", Kind.APP_ID: "aqf_packages",
                Kind.APP_CERT: "aqf_packages", Kind.FILE_PATH: "aqf_files",
                Kind.FILE_NAME: "aqf_files", Kind.SHA256: "aqf_files"},
}


def _indicators() -> list[Indicator]:
    every = [i for name in SHARED_FILES for i in shared_bundle(name).indicators]
    return sample(every, per_kind=6)


def _deep_domain(indicators: list[Indicator]) -> Indicator:
    """A domain indicator with three labels or more: its subdomains show a difference."""
    return next(i for i in indicators if i.kind is Kind.DOMAIN and i.value.count(".") >= 2)


Key = tuple[str, int]  # (module slug, record number)

# The differences we chose; each extra record below is built to show one.
ONLY_OURS = {
    "deep-subdomain": "MVT compares a URL's full host and its registrable domain (eTLD+1) "
                      "with the indicator, so indicator a.b.example is not found in "
                      "cdn.a.b.example; we walk every parent down to the registrable domain.",
}
ONLY_THEIRS = {
    "path-component": "MVT matches a file path that starts with the indicator path as a "
                      "string (/a/b flags /a/bx); we require a component boundary, so "
                      "/a/bx is another file.",
}


def _folder(root: Path, platform: str,
            version: str) -> tuple[Path, dict[Key, str], dict[Key, str]]:
    """The results folder; for each (module, record) the token MVT's message names; and
    the records built to show a chosen difference, with its name."""
    every = [i for name in SHARED_FILES for i in shared_bundle(name).indicators]
    chosen = [i for i in _indicators() if i.kind in _SLUGS[platform]]
    modules: dict[str, list[dict[str, Any]]] = {}
    tokens: dict[tuple[str, int], str] = {}
    for indicator in chosen:
        slug = _SLUGS[platform][indicator.kind]
        records = modules.setdefault(slug, [])
        record = _record(slug, len(records), indicator)
        tokens[(slug, len(records))] = (record.get("links") or [indicator.value])[0]
        records.append(record)
    differences: dict[Key, str] = {}
    if platform == "ios":
        deep = _deep_domain(every)
        records = modules["sms"]
        record = _record("sms", len(records), deep, host=f"cdn.{deep.value}")
        tokens[("sms", len(records))] = record["links"][0]
        differences[("sms", len(records))] = "deep-subdomain"
        records.append(record)
    else:
        path = next(i for i in every if i.kind is Kind.FILE_PATH).value.rstrip("/") + "x"
        records = modules["aqf_files"]
        tokens[("aqf_files", len(records))] = path
        differences[("aqf_files", len(records))] = "path-component"
        records.append({"path": path, "mode": "-rw-r--r--", "size": 10})
    folder = root / f"{platform}-{version}"
    folder.mkdir()
    info = {"target_path": "/tmp/backup", "mvt_version": "2026.7.29" if version == "v3"
            else "2.7.0", "date": "2024-05-02 10:00:00", "ioc_files": [], "hashes": []}
    (folder / "info.json").write_text(json.dumps(info))
    (folder / "command.log").write_text("2024-05-02 10:00:00 - mvt - INFO - done\n")
    for slug, records in modules.items():
        (folder / f"{slug}.json").write_text(json.dumps(records))
    # The reporter's own detections in each format: check-iocs never reads them (they are
    # not a module's slug), and we keep them as claims, apart from our matches.
    first_slug, first_records = next(iter(modules.items()))
    claim = {"value": "x", "type": "domains", "name": "Old", "stix2_file_name": "old.stix2"}
    if version == "v3":
        alert = {"level": "CRITICAL", "module": first_slug, "message": "Found",
                 "event_time": "", "event": first_records[0], "matched_indicator": claim}
        (folder / f"{first_slug}_detected.json").write_text(json.dumps([alert]))
        (folder / "alerts.json").write_text(json.dumps([alert]))
    else:
        detected = [{**first_records[0], "matched_indicator": claim}]
        (folder / f"{first_slug}_detected.json").write_text(json.dumps(detected))
    return folder, tokens, differences


def _run_mvt(platform: str, folder: Path, home: Path) -> list[str]:
    """MVT's indicator alerts (its log lines), from a run that reads only our files."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "MVT_CONFIG_FOLDER": str(home / "cfg"),
           "MVT_NETWORK_ACCESS_ALLOWED": "false", "NO_COLOR": "1", "COLUMNS": "2000",
           "TERM": "dumb"}
    args = [str(BIN / f"mvt-{platform}"), "--disable-update-check",
            "--disable-indicator-update-check", "check-iocs"]
    for name in SHARED_FILES:
        args += ["--iocs", str(DATA / name)]
    done = subprocess.run([*args, str(folder)], capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "Loaded a total of" in output  # it read our files, and only those
    return [line for line in output.splitlines()
            if re.search(r"\b(?:Maybe found|Found) (?:a|known) ", line)
            and "suspicious" in line and "at suspicious path" not in line]


def _ours(folder: Path, version: str) -> set[Key]:
    """The records our scan of the zipped folder flags (re-matched, not the claims)."""
    index = IndicatorIndex.build(i for name in SHARED_FILES for i in shared_bundle(name).indicators)
    data = zip_bytes({f"results/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())})
    scan = scan_attachment(index, "mvt.zip", data, Location("attachment", "mvt.zip"))
    assert all(c.mvt_format == version for c in scan.claims)
    assert scan.claims  # the reporter's detection is read, and kept apart
    flagged: set[Key] = set()
    for match in scan.matches:
        entry, pointer = match.location.path[0], match.location.path[1]
        slug = entry.rpartition("/")[2].removesuffix(".json")
        if slug.endswith("_detected") or slug == "alerts":
            continue
        flagged.add((slug, int(pointer.split("/")[1])))
    return flagged


@pytest.mark.parametrize("version", ["v3", "v2"])
@pytest.mark.parametrize("platform", ["ios", "android"])
def test_same_detections_as_mvt_check_iocs(tmp_path: Path, platform: str, version: str) -> None:
    if not (BIN / f"mvt-{platform}").exists():
        pytest.fail(f"mvt is in the test extras but {BIN / f'mvt-{platform}'} is missing")
    folder, tokens, differences = _folder(tmp_path, platform, version)
    home = tmp_path / "home"
    home.mkdir()
    alerts = _run_mvt(platform, folder, home)
    theirs = {key for key, token in tokens.items() for line in alerts if token in line}
    ours = _ours(folder, version)
    only_ours = {k for k, name in differences.items() if name in ONLY_OURS}
    only_theirs = {k for k, name in differences.items() if name in ONLY_THEIRS}
    # Every other record is flagged by both; each chosen difference is still one.
    assert theirs == set(tokens) - only_ours, sorted(set(tokens) ^ theirs)
    assert ours == set(tokens) - only_theirs, sorted(set(tokens) ^ ours)
    assert ours - theirs == only_ours
    assert theirs - ours == only_theirs
    assert only_ours or only_theirs
    shutil.rmtree(home)

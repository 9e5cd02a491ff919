"""Malformed part headers get a clean 400, never a 500 (security invariant 3); uploads
that fall below the pace floor lose their slot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.intake import assert_nothing_stored, get_csrf


@pytest.mark.parametrize("case", ["too-many-headers", "header-too-long"])
async def test_broken_part_headers_are_a_400(client: Any, case: str) -> None:
    csrf = await get_csrf(client)
    boundary = "b0undary"
    if case == "too-many-headers":
        headers = "".join(f"X-H{n}: v\r\n" for n in range(200))
    else:
        headers = "X-Long: " + "a" * 9000 + "\r\n"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n"
        f"{headers}\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    resp = await client.post("/en/submit", data=body,
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert resp.status == 400
    assert "Content-Security-Policy" in resp.headers


BOUNDARY = "b0undary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def parts(*fields: tuple[str, str], file: str | None = None) -> bytes:
    """Text parts, then (with ``file``) the headers of a file part, its body to follow."""
    out = "".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
                  f"\r\n\r\n{value}\r\n" for name, value in fields)
    if file is not None:
        out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{file}"\r\n\r\n')
    return out.encode()


def tight_pace(monkeypatch: pytest.MonkeyPatch, bytes_per_second: int) -> None:
    """The pace limits of upload.py, shrunk to a test's time scale."""
    from intake_server import upload

    monkeypatch.setattr(upload, "PACE_GRACE_SECONDS", 0.3)
    monkeypatch.setattr(upload, "PACE_CREDIT_SECONDS", 0.3)
    monkeypatch.setattr(upload, "MIN_BYTES_PER_SECOND", bytes_per_second)


@pytest.mark.parametrize("banked", [0, 2_000_000], ids=["drip", "burst-then-drip"])
async def test_a_slow_drip_upload_loses_its_slot(client: Any, install: Any, banked: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Each piece arrives well within the read timeout, but the pace is far below the
    # floor: 408, and nothing is kept. Sending a lot at first does not buy the right
    # to trickle afterwards (the credit it earns is capped).
    tight_pace(monkeypatch, 100_000)
    head = parts(("csrf", await get_csrf(client)), ("desks", "triage"), file="a.bin")

    async def drip():
        yield head + b"x" * banked
        for _ in range(12):
            await asyncio.sleep(0.1)
            yield b"x" * 300

    resp = await client.post("/en/submit", data=drip(), headers=MULTIPART)
    assert resp.status == 408
    assert_nothing_stored(install)


async def test_a_steady_upload_keeps_its_slot(client: Any, install: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The same limits, at a pace above the floor: accepted.
    tight_pace(monkeypatch, 100_000)
    head = parts(("csrf", await get_csrf(client)), ("category", "spyware"),
                 ("desks", "triage"), file="a.bin")

    async def steady():
        yield head
        for _ in range(12):
            await asyncio.sleep(0.1)
            yield b"x" * 60_000  # 600 kB/s
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    resp = await client.post("/en/submit", data=steady(), headers=MULTIPART)
    assert resp.status == 200


async def test_slow_empty_parts_lose_their_slot(client: Any, install: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Empty parts, each well within the read timeout, bring no bytes: the pace is
    # checked at every part boundary too.
    tight_pace(monkeypatch, 1000)
    csrf = await get_csrf(client)

    async def empty_parts():
        yield parts(("csrf", csrf))
        for _ in range(12):
            await asyncio.sleep(0.1)
            yield parts(("country", ""))
        yield f"--{BOUNDARY}--\r\n".encode()

    resp = await client.post("/en/submit", data=empty_parts(), headers=MULTIPART)
    assert resp.status == 408
    assert_nothing_stored(install)

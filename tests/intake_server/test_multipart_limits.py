"""Malformed part headers get a clean 400, never a 500 (security invariant 3)."""

from __future__ import annotations

from typing import Any

import pytest
from intake_helpers import get_csrf


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

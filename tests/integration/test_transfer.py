"""journalist-transfer's fetch and push against the real staff app on loopback.

Crosses both wings (journalist_client.online and intake_server.staff), so it lives here.

The staff app listens on 127.0.0.1 (aiohttp's test server); a small TCP relay in
front of it cuts the first download part-way, to show that fetch resumes and ends
with a verified bundle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from intake_server.config import Config
from intake_server.staff import create_staff_app
from intake_server.staff.app import STAFF_STORE
from intake_server.staff.store import EXPORT_MAX_BYTES
from journalist_client.online import cli
from journalist_client.online.credential import TransferError, init_transfer, load_settings
from journalist_client.online.fetch import DEFAULT_MAX_BUNDLE_BYTES, fetch
from journalist_client.online.push import push
from keys.age import decrypt
from keys.bundle import open_bundle
from support.staff import Site, ack_bundle, bundle_bytes, make_site, submit


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
async def server(site: Site, aiohttp_server: Any) -> Any:
    app = create_staff_app(site.config, signing_key=site.server_key, storage=site.storage)
    return await aiohttp_server(app, host="127.0.0.1")


def transfer_dir(site: Site, server: Any, tmp_path: Path, desk: str = "triage") -> Path:
    """A transfer directory for ``desk``, its key registered on ``server`` (if given)."""
    directory = tmp_path / f"transfer-{desk}"
    public = init_transfer(
        directory,
        desk=desk,
        server_key=str(site.server_key.verify_key),
        keyring_path=site.config.keyring,
    )
    if server is not None:
        server.app[STAFF_STORE].add_transfer_key(desk, public)
    return directory


async def test_fetch_then_push_ack(site: Site, server: Any, tmp_path: Path) -> None:
    sid = await submit(site, ("triage",), b"report", (b"A" * 300_000,))
    settings = load_settings(transfer_dir(site, server, tmp_path))
    url = str(server.make_url("/"))
    bundle = await fetch(settings, server=url, out_dir=tmp_path / "usb", show_progress=False)
    assert bundle is not None
    with open_bundle(bundle, {"server": site.server_key.verify_key}) as b:
        index = json.loads(b.read("index.json"))
        assert decrypt(b.read(f"{sid}.a1.age"), [site.identities["triage"]]) == b"A" * 300_000
    assert [i["id"] for i in index["items"]] == [sid]
    # Nothing new, but the item is not acknowledged yet: the server's signed statement
    # says so, and that is kept for the offline client (ADR 0007).
    again = await fetch(settings, server=url, out_dir=tmp_path / "usb", show_progress=False)
    assert again is not None
    assert again.name == f"export-triage-{index['cursor']}-{index['cursor']}.bundle"
    with open_bundle(again, {"server": site.server_key.verify_key}) as b:
        statement = json.loads(b.read("index.json"))
    assert statement["items"] == []
    assert statement["before_cursor"] == {"count": 1, "ids": [sid]}

    ack = tmp_path / "usb" / "ack.bundle"
    ack.write_bytes(ack_bundle(site, "triage", [sid]))
    (result,) = await push(settings, [ack], server=url, show_progress=False)
    assert result.accepted
    assert result.summary["deleted"] == 1
    assert site.storage.submissions() == []
    # Acknowledged: nothing new and nothing to say, so no bundle is written.
    assert await fetch(settings, server=url, out_dir=tmp_path / "usb", show_progress=False) is None


async def test_push_refuses_a_bundle_not_signed_by_the_desk(
    site: Site, server: Any, tmp_path: Path
) -> None:
    sid = await submit(site, ("triage",), b"report")
    settings = load_settings(transfer_dir(site, server, tmp_path))
    forged = tmp_path / "forged.bundle"
    forged.write_bytes(ack_bundle(site, "triage", [sid], key=site.signing["forensics"]))
    (outcome,) = await push(settings, [forged], server=str(server.make_url("/")),
                            show_progress=False)
    assert not outcome.accepted
    assert outcome.problem.startswith("not sent: not a bundle signed by this desk")
    assert len(site.storage.submissions()) == 1


async def test_push_reports_every_file_and_goes_on_after_a_refusal(
    site: Site, server: Any, tmp_path: Path
) -> None:
    """One refused file neither hides the ones accepted before it nor stops the ones
    after it; the server's refusal reads as a sentence, not as raw JSON."""
    first = await submit(site, ("triage",), b"one")
    second = await submit(site, ("triage",), b"two")
    settings = load_settings(transfer_dir(site, server, tmp_path))
    url = str(server.make_url("/"))
    acks = [tmp_path / f"{name}.bundle" for name in ("first", "stranger", "forged", "second")]
    acks[0].write_bytes(ack_bundle(site, "triage", [first]))
    # Signed by the desk, so it leaves this machine, but its ack names no real id: the
    # server refuses it.
    bad = {"format": "amana-ack", "version": 1, "desk": "triage", "ids": ["not-an-id"]}
    acks[1].write_bytes(bundle_bytes("ack", "triage", {"ack.json": json.dumps(bad).encode()},
                                     site.signing["triage"]))
    acks[2].write_bytes(b"not a bundle at all")
    acks[3].write_bytes(ack_bundle(site, "triage", [second]))
    outcomes = await push(settings, acks, server=url, show_progress=False)
    assert [o.accepted for o in outcomes] == [True, False, False, True]
    assert [o.file for o in outcomes] == [str(a) for a in acks]
    assert outcomes[1].problem.startswith("the server refused it: ")
    assert "{" not in outcomes[1].problem
    assert outcomes[2].problem.startswith("not sent: ")
    assert site.storage.submissions() == []


async def test_push_on_the_command_line_says_what_became_of_each_file(
    site: Site, server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = await submit(site, ("triage",), b"one")
    directory = transfer_dir(site, server, tmp_path)
    good, junk = tmp_path / "ack.bundle", tmp_path / "junk.bundle"
    good.write_bytes(ack_bundle(site, "triage", [sid]))
    junk.write_bytes(b"junk")
    argv = ["push", "--dir", str(directory), "--server", str(server.make_url("/")),
            str(junk), str(good)]
    # main runs its own event loop: give it a thread of its own.
    assert await asyncio.to_thread(cli.main, argv) == 1
    out, err = capsys.readouterr()
    assert f"{good}: accepted by the server (acknowledged 1, deleted 1)" in out
    assert f"{junk}: not sent: " in err
    assert "1 of 2 file(s) not accepted" in err
    assert "\r" not in out + err  # no progress bar drawn into a pipe
    assert site.storage.submissions() == []


async def test_unregistered_credential_gets_a_clear_error(
    site: Site, server: Any, tmp_path: Path
) -> None:
    directory = transfer_dir(site, None, tmp_path)
    with pytest.raises(TransferError, match="add-transfer-key"):
        await fetch(
            load_settings(directory),
            server=str(server.make_url("/")),
            out_dir=tmp_path / "usb",
            show_progress=False,
        )


async def test_a_dropped_download_resumes(site: Site, server: Any, tmp_path: Path) -> None:
    await submit(site, ("triage",), b"report", (bytes(range(256)) * 8000,))  # ~2 MB
    settings = load_settings(transfer_dir(site, server, tmp_path))
    cut_after = {"bytes": 700_000}
    connections = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", server.port)
        first = not connections
        connections.append(1)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int | None):
            sent = 0
            while data := await src.read(65536):
                if limit is not None and sent + len(data) > limit:
                    dst.write(data[: limit - sent])
                    await dst.drain()
                    dst.close()  # the connection drops mid-body
                    return
                sent += len(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, None),
            pipe(up_reader, writer, cut_after["bytes"] if first else None),
            return_exceptions=True,
        )

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        bundle = await fetch(
            settings,
            server=f"http://127.0.0.1:{port}",
            out_dir=tmp_path / "usb",
            show_progress=False,
        )
    finally:
        proxy.close()
    assert bundle is not None
    assert len(connections) >= 2  # it really was cut and resumed
    with open_bundle(bundle, {"server": site.server_key.verify_key}) as b:
        # index.json, keyring.json (ADR 0011), the report and its attachment
        assert len(b.files) == 4


async def test_a_bundle_over_the_limit_is_refused_and_nothing_kept(
    site: Site, server: Any, tmp_path: Path
) -> None:
    await submit(site, ("triage",), b"report", (b"A" * 300_000,))
    settings = load_settings(transfer_dir(site, server, tmp_path))
    url, usb = str(server.make_url("/")), tmp_path / "usb"
    with pytest.raises(TransferError, match="larger than .* --max-mib"):
        await fetch(settings, server=url, out_dir=usb, show_progress=False,
                    max_bytes=100_000)
    assert list(usb.iterdir()) == []
    assert not settings.state_path.exists()  # the cursor did not move
    assert await fetch(settings, server=url, out_dir=usb, show_progress=False) is not None


async def test_an_endless_answer_cannot_fill_the_disk(
    site: Site, server: Any, tmp_path: Path, aiohttp_server: Any
) -> None:
    """A hostile server streams without a length; fetch stops at its limit."""
    settings = load_settings(transfer_dir(site, server, tmp_path))
    sent = {"bytes": 0}

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Amana-Cursor": "7"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        block = b"\0" * 65536
        with contextlib.suppress(ConnectionError):
            while sent["bytes"] < 64 * 1024 * 1024:  # a bound for the test itself
                await resp.write(block)
                sent["bytes"] += len(block)
        return resp

    app = web.Application()
    app.router.add_get("/v1/desks/{desk}/bundle", endless)
    hostile = await aiohttp_server(app, host="127.0.0.1")
    usb = tmp_path / "usb"
    with pytest.raises(TransferError, match="larger than 2 MiB"):
        await fetch(settings, server=str(hostile.make_url("/")), out_dir=usb,
                    show_progress=False, max_bytes=2 * 1024 * 1024)
    assert list(usb.iterdir()) == []
    assert sent["bytes"] < 64 * 1024 * 1024  # fetch hung up; the bound never mattered


@pytest.mark.parametrize("answer", ["redirect", "unasked-416"])
async def test_a_hostile_server_cannot_redirect_or_confuse_fetch_and_push(
    site: Site, server: Any, tmp_path: Path, aiohttp_server: Any, answer: str
) -> None:
    """No redirect is followed (the server must not send this machine, its signed
    requests or its IP elsewhere), and odd answers are clear errors, not crashes."""
    settings = load_settings(transfer_dir(site, server, tmp_path))
    visited: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        visited.append(request.path)
        return web.Response(text="followed")

    async def hostile(request: web.Request) -> web.Response:
        if answer == "redirect":
            raise web.HTTPTemporaryRedirect(str(request.url.with_path("/elsewhere")))
        return web.Response(status=416)

    app = web.Application()
    app.router.add_route("*", "/v1/desks/{desk}/{what}", hostile)
    app.router.add_route("*", "/elsewhere", elsewhere)
    bad = await aiohttp_server(app, host="127.0.0.1")
    url, usb = str(bad.make_url("/")), tmp_path / "usb"
    with pytest.raises(TransferError, match="307|range"):
        await fetch(settings, server=url, out_dir=usb, show_progress=False)
    assert list(usb.iterdir()) == []
    if answer == "redirect":
        ack = tmp_path / "ack.bundle"
        ack.write_bytes(ack_bundle(site, "triage", ["0" * 32]))
        (outcome,) = await push(settings, [ack], server=url, show_progress=False)
        assert not outcome.accepted
        assert "307" in outcome.problem
    assert visited == []


def test_the_server_never_builds_a_bundle_the_client_refuses_by_default() -> None:
    assert EXPORT_MAX_BYTES < DEFAULT_MAX_BUNDLE_BYTES
    # The first item of a bundle comes however large: one default-size submission,
    # with age's per-chunk overhead and the bundle's own, must fit too.
    assert Config().max_submission_bytes * 1.01 < DEFAULT_MAX_BUNDLE_BYTES
    assert cli.parser().parse_args(["fetch", "--dir", "d", "--server", "http://h:1",
                                    "--out", "o"]).max_mib * 1024 * 1024 == \
        DEFAULT_MAX_BUNDLE_BYTES


def test_init_refuses_unknown_desk_and_overwrite(site: Site, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="not in the keyring"):
        init_transfer(
            tmp_path / "x",
            desk="nobody",
            server_key=str(site.server_key.verify_key),
            keyring_path=site.config.keyring,
        )
    init_transfer(
        tmp_path / "y",
        desk="triage",
        server_key=str(site.server_key.verify_key),
        keyring_path=site.config.keyring,
    )
    with pytest.raises(TransferError, match="refusing to replace"):
        init_transfer(
            tmp_path / "y",
            desk="triage",
            server_key=str(site.server_key.verify_key),
            keyring_path=site.config.keyring,
        )
    assert (tmp_path / "y" / "transfer.key").stat().st_mode & 0o777 == 0o600


async def test_server_answers_are_shown_inert_and_onions_need_tor(
    site: Site, tmp_path: Path, aiohttp_server: Any
) -> None:
    async def hostile(request: web.Request) -> web.Response:
        return web.Response(status=500, text="\x1b]0;owned\x07\x1b[2K\rVerified bundle OK" * 500)

    app = web.Application()
    app.router.add_get("/v1/desks/triage/bundle", hostile)
    evil = await aiohttp_server(app, host="127.0.0.1")
    settings = load_settings(transfer_dir(site, None, tmp_path))
    with pytest.raises(TransferError) as info:
        await fetch(
            settings, server=str(evil.make_url("/")), out_dir=tmp_path / "usb", show_progress=False
        )
    message = str(info.value)
    assert "\x1b" not in message
    assert "\r" not in message
    assert len(message) < 20_000
    with pytest.raises(TransferError, match="needs --tor-socks"):
        await fetch(
            settings,
            server="http://abcdefghijklmnop.onion",
            out_dir=tmp_path / "usb",
            show_progress=False,
        )

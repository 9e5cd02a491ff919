"""New codenames: derived correctly, never shown by repr, workers bounded."""

from __future__ import annotations

from intake_server.sources import LoginDeriver, NewSource, SourceFactory, new_source
from keys.codename import derive_source, normalize_codename
from support.intake import eventually


def test_new_source_matches_the_keys_derivation() -> None:
    src = new_source()
    assert len(src.codename.split()) == 7
    assert normalize_codename(src.codename) == src.codename
    keys = derive_source(src.codename)
    assert keys.source_id == src.source_id
    assert str(keys.reply_identity.recipient()) == src.reply_recipient
    # A log line or traceback that prints the object must not print the codename.
    assert src.codename not in repr(src)


async def test_post_quantum_keyring_derives_the_pq_reply_key_in_the_workers() -> None:
    factory = SourceFactory(1, post_quantum=True)
    logins = LoginDeriver(1, 0, post_quantum=True)
    try:
        src = await factory.create()
        login = await logins.derive(src.codename)
    finally:
        factory.close()
        logins.close()
    keys = derive_source(src.codename, post_quantum=True)
    assert keys.reply_pq_identity is not None
    assert src.reply_recipient_pq == str(keys.reply_pq_identity.recipient())
    assert src.reply_recipient == str(keys.reply_identity.recipient())
    assert login.reply_pq_identity == str(keys.reply_pq_identity)
    assert login.reply_pq_identity not in repr(login)


async def test_factory_runs_in_a_worker_process_and_closes() -> None:
    factory = SourceFactory(1)
    try:
        first = await factory.create()
        second = await factory.create()
    finally:
        factory.close()
    assert isinstance(first, NewSource)
    assert first.codename != second.codename
    assert first.source_id != second.source_id


async def test_reserve_hands_out_ready_codenames_and_refills() -> None:
    import asyncio

    factory = SourceFactory(2, reserve=2)
    try:
        factory.refill()
        await eventually(lambda: factory.reserved == 2)
        assert factory.reserved == 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = await factory.create()
        assert loop.time() - start < 0.1  # no Argon2id on the request path
        assert factory.reserved == 1
        assert len(got.codename.split()) == 7
        # Taking from the reserve starts no derivation: the caller refills once
        # its upload is over, so Argon2id does not compete with it for a core.
        await asyncio.sleep(0.3)
        assert factory._refilling == 0  # noqa: SLF001
        assert factory.reserved == 1
        factory.refill()
        await eventually(lambda: factory.reserved == 2)
        assert factory.reserved == 2
        others = [await factory.create() for _ in range(3)]  # drains, then derives
        assert factory.reserved == 0
        assert len({s.codename for s in [got, *others]}) == 4
    finally:
        factory.close()
    assert factory.reserved == 0


async def test_login_deriver_matches_keys_and_bounds_work_in_flight() -> None:
    import asyncio

    import pytest

    from intake_server.sources import LoginBusy, LoginDeriver
    from keys.age import X25519Identity
    from keys.codename import generate_codename

    codename = generate_codename()
    deriver = LoginDeriver(1, 0)
    try:
        got = await deriver.derive(codename)
        expected = derive_source(codename)
        assert got.source_id == expected.source_id
        assert str(X25519Identity.parse(got.reply_identity).recipient()) == \
            str(expected.reply_identity.recipient())
        assert got.reply_identity not in repr(got)
        assert deriver.in_flight == 0
        first = asyncio.ensure_future(deriver.derive(generate_codename()))
        await asyncio.sleep(0)
        with pytest.raises(LoginBusy):
            await deriver.derive(generate_codename())
        await first
        await asyncio.sleep(0.05)  # the done callback hops through the loop
        assert deriver.in_flight == 0
    finally:
        deriver.close()


async def test_login_deriver_recovers_from_a_killed_worker() -> None:
    import os
    import signal

    import pytest

    from intake_server.sources import LoginBusy, LoginDeriver
    from keys.codename import generate_codename

    deriver = LoginDeriver(1, 2)
    try:
        await deriver.derive(generate_codename())
        pool = deriver._pool  # noqa: SLF001 - the test plays the OOM killer
        assert pool is not None
        for pid in list(pool._processes):  # noqa: SLF001
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(LoginBusy):
            await deriver.derive(generate_codename())
        # A fresh pool serves the next login.
        assert len((await deriver.derive(generate_codename())).source_id) == 64
    finally:
        deriver.close()


async def test_source_factory_recovers_from_a_killed_worker() -> None:
    # A dead worker used to break the pool for good: every first report got a 500
    # until the server was restarted.
    import os
    import signal

    from intake_server.sources import SourceFactory

    factory = SourceFactory(1)
    try:
        await factory.create()
        pool = factory._pool  # noqa: SLF001 - the test plays the OOM killer
        assert pool is not None
        for pid in list(pool._processes):  # noqa: SLF001
            os.kill(pid, signal.SIGKILL)
        for _ in range(2):
            assert len((await factory.create()).codename.split()) == 7
    finally:
        factory.close()


async def test_refill_never_raises_and_stops_after_close() -> None:
    # refill() runs once a report is stored: a worker that died while the pool was
    # idle used to raise BrokenProcessPool there, and turn the stored report's
    # codename page into a 500.
    import os
    import signal

    factory = SourceFactory(1, reserve=1)
    try:
        factory.refill()
        await eventually(lambda: factory.reserved == 1)
        assert factory.reserved == 1
        pool = factory._pool  # noqa: SLF001 - the test plays the OOM killer
        assert pool is not None
        for pid in list(pool._processes):  # noqa: SLF001
            os.kill(pid, signal.SIGKILL)
        await eventually(lambda: pool._broken)  # noqa: SLF001 - the pool has noticed
        assert pool._broken  # noqa: SLF001
        await factory.create()  # from the reserve
        factory.refill()  # must not raise; drops the broken pool
        assert factory._pool is None  # noqa: SLF001
        factory.refill()  # a new pool
        await eventually(lambda: factory.reserved == 1)
        assert factory.reserved == 1
    finally:
        factory.close()
    factory.refill()  # after close: nothing starts
    assert factory._pool is None  # noqa: SLF001
    assert factory.reserved == 0

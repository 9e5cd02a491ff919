"""Builders and helpers shared by the tests (pytest puts tests/ on the import path).

- ``support.intake``: a fresh server install (two desks, keyring, config), forms, CSRF.
- ``support.source``: the source's check-back path (submit, log in, read a reply).
- ``support.staff``: a staff site over the same install, signed requests, bundles.
- ``support.server_process``: the real ``intake-server demo`` process on 127.0.0.1.
- ``support.checkback``: replies stored beside a running demo, as an operator would.
- ``support.deploy``: the deploy guide's files and commands.
- ``support.files_at_rest``: the one walk of what a seized disk shows (times, modes,
  needles in content and names, times in SQLite).
- ``support.kills``: seeded, replayable kill points for the crash tests.
- ``support.e2e``: a real `intake-server serve` install with desks that made their own keys.
- ``support.iocs``: STIX bundles, defanged text and MVT output built for the indicator tests.
"""

"""The transfer machine's side of the client (journalist-transfer): online, keyless.

The transfer machine is online and holds no decryption key. It holds a *transfer
credential* (an Ed25519 key registered on the server for one desk) that lets it
download that desk's ciphertext and upload bundles the air-gapped machine has
signed. It can forge nothing: bundles are verified by the air-gapped client (exports,
against the server key) and by the server (acks and outboxes, against the desk's
signing key), and the transfer machine checks both too, so a bad USB stick or a
dropped connection is caught here rather than carried across the air gap.

Modules: credential (the transfer directory: credential, server key, keyring),
fetch (download and verify the desk's export), push (upload acks and outboxes),
_http (what fetch and push share about the server connection), cli (argparse).

This package may import the offline one (for journalist_client.display); the offline
package never imports this one, so the air-gapped machine never loads aiohttp
(tests/test_architecture.py holds that line).
"""

__all__: list[str] = []

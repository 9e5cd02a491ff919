"""Amana's key material: the age format (keys.age), desk identities, the coalition
keyring, Ed25519 signatures, signed bundles, source codenames, fingerprints and QR codes.

No network and no storage beyond the files a caller asks for; import the submodules.
"""

__all__: list[str] = []

"""age v1 (age-encryption.org/v1) on the `cryptography` package.

The public surface: encrypt()/decrypt() for byte strings, Encryptor (push) and
decrypt_stream() (pull) for files of any size in bounded memory over any Writer or
Reader (age's io.Writer and io.Reader), the key types, their parsers, and one
exception class per failing layer.

Layers, lowest first: _io (the Reader and Writer protocols), _primitives (the only
hazmat import), _bech32, _format (header), _stream (payload), armor, the key types
(_x25519, _scrypt, _hybrid), and _age (the recipe that joins them).
"""

from ._age import (
    Decryptor,
    Encryptor,
    decrypt,
    decrypt_stream,
    encrypt,
    parse_identity,
    parse_identity_file,
    parse_recipient,
    parse_recipients_file,
)
from ._errors import AgeError, ArmorError, HeaderError, HMACError, NoMatchError, PayloadError
from ._hybrid import HybridIdentity, HybridRecipient
from ._io import Reader, Writer
from ._recipient import Identity, Recipient
from ._scrypt import ScryptIdentity, ScryptRecipient
from ._stream import CHUNK_SIZE
from ._x25519 import X25519Identity, X25519Recipient

__all__ = [
    "CHUNK_SIZE",
    "AgeError",
    "ArmorError",
    "Decryptor",
    "Encryptor",
    "HMACError",
    "HeaderError",
    "HybridIdentity",
    "HybridRecipient",
    "Identity",
    "NoMatchError",
    "PayloadError",
    "Reader",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "X25519Identity",
    "Writer",
    "X25519Recipient",
    "decrypt",
    "decrypt_stream",
    "encrypt",
    "parse_identity",
    "parse_identity_file",
    "parse_recipient",
    "parse_recipients_file",
]

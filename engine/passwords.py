"""Password hashes for protocol users (OPC UA): PBKDF2-HMAC-SHA256, salted.

A hash is the string ``pbkdf2_sha256$<iterations>$<salt hex>$<key hex>`` with
key = PBKDF2(SHA-256, password, salt, iterations, 32 bytes). Make one with::

    python -c "from engine.passwords import hash_password; print(hash_password('secret'))"
"""

from __future__ import annotations

import hashlib
import hmac
import os

SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${key.hex()}"


def parse_hash(hashed: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, key) of a hash; ValueError naming what is wrong."""
    parts = hashed.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError(f"not a {SCHEME}$<iterations>$<salt hex>$<key hex> hash "
                         "(make one with engine.passwords.hash_password)")
    try:
        iterations, salt, key = int(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
    except ValueError:
        raise ValueError(f"malformed {SCHEME} hash: iterations must be an integer, "
                         "salt and key hexadecimal") from None
    if iterations < 1 or not salt or not key:
        raise ValueError(f"malformed {SCHEME} hash: empty salt or key, or no iterations")
    return iterations, salt, key


def verify_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches ``hashed`` (constant-time comparison)."""
    iterations, salt, key = parse_hash(hashed)
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, len(key))
    return hmac.compare_digest(candidate, key)

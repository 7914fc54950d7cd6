"""Bearer-token authentication with ordered roles: viewer < operator < engineer < admin.

Tokens live in a TOML file, hashed (SHA-256 of a per-token random salt and the token;
tokens are 256-bit random strings, so a fast salted hash is enough, and the file
reveals no token)::

    [[tokens]]
    user = "olga"
    role = "operator"
    hash = "sha256:<salt hex>:<digest hex>"

``twinloop token add --user olga --role operator`` generates a token, prints it once and
adds its hash; ``twinloop token remove --user olga`` revokes olga's tokens. Both replace the
file atomically (a reader sees the old file or the new one, never half of one). A running
server re-reads the file when it changes (its size, modification time or inode differ
from the last read, checked on each request: one ``stat``), so an added token is accepted
and a removed one refused from the next request on, without a restart.

A route declares the role it needs with a dependency, which answers 401 without a valid
token and 403 without the role, and otherwise gives the route the caller's user name
(recorded in the audit log)::

    @app.put("/assets/{asset_id}/mode")
    async def put_mode(self, ..., user: str = Depends(RoleRequired(Role.OPERATOR))): ...
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

import msgspec
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.config import ConfigError
from engine.files import private_directory, write_private

log = logging.getLogger(__name__)


class Role(enum.IntEnum):
    """What a token may do; each role may do everything the roles below it may."""

    VIEWER = 1    # read assets, audit, proposals, metrics
    OPERATOR = 2  # modes, references, setpoints, operator limits, approvals
    ENGINEER = 3  # controller tuning
    ADMIN = 4     # everything

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; roles: "
                             f"{', '.join(r.name.lower() for r in cls)}") from None


class Token(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One entry of the token file."""

    user: str
    role: str
    hash: str


class TokenFile(msgspec.Struct, forbid_unknown_fields=True):
    tokens: list[Token] = []


def hash_token(token: str, salt: bytes | None = None) -> str:
    """``sha256:<salt>:<sha256(salt + token)>``, salt 16 random bytes unless given."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.sha256(salt + token.encode()).hexdigest()
    return f"sha256:{salt.hex()}:{digest}"


def matches(token: str, hashed: str) -> bool:
    scheme, _, rest = hashed.partition(":")
    salt, _, _ = rest.partition(":")
    if scheme != "sha256":
        return False
    return hmac.compare_digest(hash_token(token, bytes.fromhex(salt)), hashed)


def load_tokens(path: str | Path) -> list[Token]:
    """The tokens of ``path`` ([] if it does not exist). Bad entries raise ConfigError."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        tokens = msgspec.toml.decode(path.read_bytes(), type=TokenFile).tokens
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise ConfigError(path, "tokens", str(error)) from None
    for i, token in enumerate(tokens):
        try:
            Role.named(token.role)
        except ValueError as error:
            raise ConfigError(path, f"tokens[{i}].role", str(error)) from None
        scheme, salt, digest = (token.hash.split(":") + ["", ""])[:3]
        if scheme != "sha256" or len(digest) != 64 or not _is_hex(salt + digest):
            raise ConfigError(path, f"tokens[{i}].hash",
                              "expected 'sha256:<salt hex>:<64 hex digits>'")
    return tokens


def add_token(path: str | Path, user: str, role: str) -> str:
    """Generate a token for ``user`` with ``role``, add its hash to ``path`` (created
    readable by its owner only) and return the token: it is shown once, never stored."""
    Role.named(role)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]*", user):
        raise ValueError(f"user {user!r} must be letters, digits, '_', '.', '@', '-'")
    token = secrets.token_urlsafe(32)
    entry = Token(user, role.lower(), hash_token(token))
    _write_tokens(path, [*load_tokens(path), entry])
    return token


def remove_tokens(path: str | Path, user: str) -> int:
    """Revoke every token of ``user`` in ``path``; returns how many. ValueError if the
    user has none."""
    tokens = load_tokens(path)
    kept = [t for t in tokens if t.user != user]
    if len(kept) == len(tokens):
        raise ValueError(f"user {user!r} has no token in {path}")
    _write_tokens(path, kept)
    return len(tokens) - len(kept)


def _write_tokens(path: str | Path, tokens: list[Token]) -> None:
    """Replace ``path`` with ``tokens``, atomically, readable by its owner only
    (:func:`engine.files.write_private`)."""
    path = Path(path)
    private_directory(path.parent)
    text = "".join(f'[[tokens]]\nuser = "{t.user}"\nrole = "{t.role}"\nhash = "{t.hash}"\n\n'
                   for t in tokens)
    write_private(path, text)


class TokenTable:
    """The tokens a server accepts: ``fixed`` ones (the demo's admin token) and those of
    the token file at ``path``, re-read whenever the file changes.

    Each ``identify`` compares the file's (inode, size, modification time) with the last
    read and re-reads it if they differ, so ``twinloop token add`` and ``token remove``
    take effect on the next request. A missing file holds no tokens. A file that does not
    parse fails closed: its tokens are refused (the fixed ones still work) and the error
    is logged, until it is fixed."""

    def __init__(self, fixed: Iterable[Token] = (), path: str | Path | None = None) -> None:
        self.fixed = _entries(fixed)
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._from_file: list[tuple[str, Role, str]] = []

    def identify(self, token: str) -> tuple[str, Role] | None:
        """The user and role of ``token``, or None."""
        for user, role, hashed in [*self.fixed, *self._file_tokens()]:
            if matches(token, hashed):
                return user, role
        return None

    def _file_tokens(self) -> list[tuple[str, Role, str]]:
        if self.path is None:
            return []
        with self._lock:
            try:
                info = self.path.stat()
                seen = (info.st_ino, info.st_size, info.st_mtime_ns)
            except FileNotFoundError:
                seen = (0, 0, 0)
            if seen != self._seen:
                try:
                    self._from_file = _entries(load_tokens(self.path))
                except ConfigError as error:
                    log.error("token file refused, its tokens are not accepted: %s", error)
                    self._from_file = []
                self._seen = seen
            return self._from_file


def _entries(tokens: Iterable[Token]) -> list[tuple[str, Role, str]]:
    return [(t.user, Role.named(t.role), t.hash) for t in tokens]


_table = TokenTable()
_bearer = HTTPBearer(auto_error=False)

MISSING_TOKEN = "missing bearer token (Authorization: Bearer <token>)"
INVALID_TOKEN = "invalid bearer token"


def install(table: TokenTable) -> None:
    """Make ``table`` the tokens this process accepts (called in the HTTP replica)."""
    global _table
    _table = table


def identify(token: str) -> tuple[str, Role] | None:
    """The user and role of ``token`` among the tokens this process accepts, or None."""
    return _table.identify(token)


class RoleRequired:
    """FastAPI dependency: the caller's user name if its bearer token has ``role``."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                       ) -> str:
        """Async, so that FastAPI runs it in the event loop, not on a thread of its pool
        (a thread hop per request: the largest cost of a status read served from memory)."""
        user, role = _identity(credentials)
        if role < self.role:
            raise HTTPException(403, f"role {self.role.name.lower()} required; {user} has "
                                     f"{role.name.lower()}")
        return user


async def caller(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                 ) -> tuple[str, Role]:
    """FastAPI dependency: the user and role of the request's bearer token (401 without
    a known one)."""
    return _identity(credentials)


def _identity(credentials: HTTPAuthorizationCredentials | None) -> tuple[str, Role]:
    if credentials is None:
        raise HTTPException(401, MISSING_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    identity = _table.identify(credentials.credentials)
    if identity is None:
        raise HTTPException(401, INVALID_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return identity


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True

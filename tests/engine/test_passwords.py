"""Password hashes of protocol users, and the site file's [opcua] table that holds them
(and their roles)."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, parse_site
from engine.passwords import hash_password, verify_password

SITE = """
[site]
name = "t"
[opcua]
{opcua}
"""


ALICE = f'users = {{ alice = "{hash_password("x", iterations=10)}" }}'


def test_a_hash_verifies_its_password_only():
    hashed = hash_password("wonderland", iterations=1000)
    assert hashed.startswith("pbkdf2_sha256$1000$")
    assert verify_password("wonderland", hashed)
    assert not verify_password("Wonderland", hashed)
    assert hash_password("wonderland", iterations=1000) != hashed  # salted


def test_opcua_defaults_to_anonymous_loopback_on_4840():
    opcua = parse_site(SITE.format(opcua="")).opcua
    assert opcua.url == "opc.tcp://127.0.0.1:4840/twinloop"
    assert opcua.security == "none"


def test_secure_opcua_with_a_user_loads():
    security = (f'security = "Basic256Sha256_SignAndEncrypt"\n{ALICE}\n'
                'roles = { alice = "viewer" }')
    opcua = parse_site(SITE.format(opcua=security)).opcua
    assert list(opcua.users) == ["alice"]
    assert opcua.roles == {"alice": "viewer"}


@pytest.mark.parametrize(("table", "key", "message"), [
    ('security = "Basic128"', "opcua.security", "'Basic128' is not one of none, "
                                                 "Basic256Sha256_SignAndEncrypt"),
    ('security = "Basic256Sha256_SignAndEncrypt"', "opcua.users", "needs at least one user"),
    ('users = { alice = "wonderland" }', "opcua.users.alice", "not a pbkdf2_sha256$"),
    ("port = 70000", "opcua.port", "must be in 1..65535, got 70000"),
    (f'{ALICE}\nroles = {{ alice = "admin" }}', "opcua.roles.alice",
     "'admin' is not one of viewer, operator"),
    (f'{ALICE}\nroles = {{ bob = "viewer" }}', "opcua.roles.bob", "'bob' is not in opcua.users"),
])
def test_bad_opcua_settings_name_the_key(table, key, message):
    with pytest.raises(ConfigError) as error:
        parse_site(SITE.format(opcua=table), "site.toml")
    assert error.value.key == key
    assert message in str(error.value)

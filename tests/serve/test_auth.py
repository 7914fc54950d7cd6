"""Bearer tokens without Ray: hashed storage, the `twinloop token add` command, roles."""

from __future__ import annotations

import stat

import pytest

from engine.config import ConfigError
from serve.auth import Role, Token, TokenTable, hash_token, load_tokens
from serve.cli import admin_token, main


def test_token_add_prints_the_token_once_and_stores_only_its_salted_hash(tmp_path, capsys):
    path = tmp_path / "var" / "tokens.toml"
    assert main(["token", "add", "--user", "olga", "--role", "operator", "--file", str(path)]) == 0
    assert main(["token", "add", "--user", "vera", "--role", "viewer", "--file", str(path)]) == 0
    olga, vera = [out.splitlines()[-1] for out in capsys.readouterr().out.split("twinloop: ")[1:]]
    text = path.read_text()
    assert olga not in text and vera not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    table = TokenTable(load_tokens(path))
    assert table.identify(olga) == ("olga", Role.OPERATOR)
    assert table.identify(vera) == ("vera", Role.VIEWER)
    assert table.identify(olga[:-1]) is None
    hashes = [t.hash for t in load_tokens(path)]
    assert len({h.split(":")[1] for h in hashes}) == 2  # a salt of its own each


def test_roles_are_ordered():
    assert Role.VIEWER < Role.OPERATOR < Role.ENGINEER < Role.ADMIN
    with pytest.raises(ValueError, match="unknown role 'root'; roles: viewer, operator"):
        Role.named("root")


def test_a_missing_token_file_holds_no_tokens(tmp_path):
    assert load_tokens(tmp_path / "absent.toml") == []


@pytest.mark.parametrize(("entry", "key", "problem"), [
    ('user = "a"\nrole = "root"\nhash = "sha256:00:' + "0" * 64 + '"', "tokens[0].role",
     "unknown role 'root'"),
    ('user = "a"\nrole = "viewer"\nhash = "plain-token"', "tokens[0].hash",
     "expected 'sha256:<salt hex>:<64 hex digits>'"),
    ('user = "a"\nrole = "viewer"', "tokens", "missing required field `hash`"),
])
def test_bad_token_files_name_the_file_and_the_key(tmp_path, entry, key, problem):
    path = tmp_path / "tokens.toml"
    path.write_text("[[tokens]]\n" + entry + "\n")
    with pytest.raises(ConfigError) as caught:
        load_tokens(path)
    assert (caught.value.path, caught.value.key) == (str(path), key)
    assert problem in caught.value.problem


def test_user_names_cannot_break_the_token_file(tmp_path, capsys):
    path = tmp_path / "tokens.toml"
    assert main(["token", "add", "--user", 'x"\nrole = "admin', "--role", "viewer",
                 "--file", str(path)]) == 2
    assert "must be letters, digits" in capsys.readouterr().err
    assert not path.exists()


def test_the_demo_takes_its_admin_token_from_the_environment_or_makes_one():
    assert admin_token({"TWINLOOP_ADMIN_TOKEN": "s3cret"}) == ("s3cret", False)
    first, generated = admin_token({})
    assert generated and len(first) >= 43  # 32 random bytes, URL-safe base64
    assert admin_token({"TWINLOOP_ADMIN_TOKEN": ""})[0] != first


def test_a_token_file_that_stops_parsing_refuses_its_tokens_and_keeps_the_fixed_ones(
        tmp_path, capsys):
    path = tmp_path / "tokens.toml"
    assert main(["token", "add", "--user", "olga", "--role", "operator", "--file", str(path)]) == 0
    olga = capsys.readouterr().out.splitlines()[-1]
    admin = "a" * 43
    table = TokenTable([Token("admin", "admin", hash_token(admin))], path)
    assert table.identify(olga) == ("olga", Role.OPERATOR)
    path.write_text(path.read_text().replace('role = "operator"', 'role = "root"'))
    assert table.identify(olga) is None  # fail closed while the file is broken
    assert table.identify(admin) == ("admin", Role.ADMIN)
    path.unlink()
    assert table.identify(olga) is None

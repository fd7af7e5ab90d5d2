import hashlib
import re

import pytest

from gateway import keys
from gateway.cli import cli


def test_new_keys_are_random_and_prefixed():
    first, second = keys.new_key(), keys.new_key()
    assert first != second
    for key in (first, second):  # 32 random bytes, URL-safe: 43 characters after the prefix
        assert re.fullmatch(r"gwk_[A-Za-z0-9_-]{43}", key)


def test_only_a_sha256_hash_is_kept():
    assert keys.hash_key("gwk_example") == hashlib.sha256(b"gwk_example").hexdigest()
    assert keys.hash_key("gwk_é") == hashlib.sha256("gwk_é".encode()).hexdigest()


def test_find_role_checks_every_entry():
    auditor, admin = keys.new_key(), keys.new_key()
    stored = [(keys.hash_key(auditor), "auditor"), (keys.hash_key(admin), "admin")]
    assert keys.find_role(auditor, stored) == "auditor"
    assert keys.find_role(admin, stored) == "admin"
    assert keys.find_role("gwk_wrong", stored) is None
    assert keys.find_role(auditor, []) is None


@pytest.mark.parametrize(
    ("role", "required", "allowed"),
    [
        ("auditor", "auditor", True),
        ("admin", "auditor", True),
        ("admin", "admin", True),
        ("auditor", "admin", False),
        ("sender", "auditor", False),
        ("auditor", "sender", False),
        (None, "auditor", False),
        ("bogus", "auditor", False),
    ],
)
def test_allows(role, required, allowed):
    assert keys.allows(role, required) is allowed


def test_cli_create_list_revoke(runner, cli_env, db_url):
    env = cli_env
    created = runner.invoke(cli, ["keys", "create", "--role", "auditor", "--label", "compliance team"], env=env)
    assert created.exit_code == 0
    key = created.stdout.strip()
    assert key.startswith("gwk_")
    assert "only its hash is kept" in created.stderr

    listed = runner.invoke(cli, ["keys", "list", "--format", "json"], env=env)
    assert '"role": "auditor"' in listed.output and '"label": "compliance team"' in listed.output
    assert key not in listed.output and keys.hash_key(key) not in listed.output

    from gateway.store import Store

    store = Store(db_url)
    assert store.active_api_keys() == [(keys.hash_key(key), "auditor")]
    assert runner.invoke(cli, ["keys", "revoke", "1"], env=env).exit_code == 0
    assert store.active_api_keys() == []
    again = runner.invoke(cli, ["keys", "revoke", "1"], env=env)
    assert again.exit_code == 1 and "no active key with id 1" in again.output


def test_cli_rejects_unknown_role(runner):
    result = runner.invoke(
        cli, ["keys", "create", "--role", "root"], env={"DATABASE_URL": "sqlite:////nonexistent/x.db"}
    )
    assert result.exit_code == 2 and "Invalid value for '--role'" in result.output


def test_cli_revoke_an_id_no_database_can_hold(runner, cli_env):
    result = runner.invoke(cli, ["keys", "revoke", "99999999999999999999"], env=cli_env)
    assert result.exit_code == 2 and "is not in the range 1<=x<=9223372036854775807" in result.output

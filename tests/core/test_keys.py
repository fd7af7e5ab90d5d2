import hashlib
import re

import pytest

from gateway.cli import cli
from gateway.core import keys

from ..support.accounts import three_accounts
from ..support.constants import ACCOUNT, BRAND_ACCOUNT, REGION_ACCOUNT


def test_new_keys_are_random_and_prefixed():
    first, second = keys.new_key(), keys.new_key()
    assert first != second
    for key in (first, second):  # 32 random bytes, URL-safe: 43 characters after the prefix
        assert re.fullmatch(r"gwk_[A-Za-z0-9_-]{43}", key)


def test_only_a_sha256_hash_is_kept():
    assert keys.hash_key("gwk_example") == hashlib.sha256(b"gwk_example").hexdigest()
    assert keys.hash_key("gwk_é") == hashlib.sha256("gwk_é".encode()).hexdigest()


def test_find_checks_every_entry_and_returns_the_keys_grant():
    auditor, admin = keys.new_key(), keys.new_key()
    limited = keys.stored_accounts(["AC2", "AC1", "AC2"])
    stored = [(keys.hash_key(auditor), "auditor", limited), (keys.hash_key(admin), "admin", None)]
    assert limited == '["AC1", "AC2"]'
    assert keys.find(auditor, stored) == keys.Grant("auditor", ("AC1", "AC2"))
    assert keys.find(admin, stored) == keys.Grant("admin", None)
    assert keys.find("gwk_wrong", stored) is None
    assert keys.find(auditor, []) is None
    assert keys.stored_accounts(None) is None


@pytest.mark.parametrize(
    ("accounts", "account", "seen"),
    [
        (None, "AC1", True),
        (None, None, True),  # an unlimited key sees records made before accounts were recorded
        (("AC1",), "AC1", True),
        (("AC1",), "AC2", False),
        (("AC1",), None, False),  # a limited key never sees a record without an account
    ],
)
def test_a_limited_key_sees_only_its_accounts_records(accounts, account, seen):
    assert keys.Grant("auditor", accounts).sees(account) is seen


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
    assert store.active_api_keys() == [(keys.hash_key(key), "auditor", None)]
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


def test_cli_limits_a_key_to_accounts_by_name_or_sid(runner, cli_env, tmp_path, db_url):
    env = {**cli_env, **three_accounts(tmp_path)}
    made = runner.invoke(
        cli, ["keys", "create", "--role", "auditor", "--account", "brand", "--account", REGION_ACCOUNT], env=env
    )
    assert made.exit_code == 0, made.output
    assert f"limited to {BRAND_ACCOUNT}, {REGION_ACCOUNT}) created" in made.stderr
    listed = runner.invoke(cli, ["keys", "list", "--format", "json"], env=env)
    assert BRAND_ACCOUNT in listed.output and REGION_ACCOUNT in listed.output
    unknown = runner.invoke(cli, ["keys", "create", "--role", "auditor", "--account", "nosuch"], env=env)
    assert unknown.exit_code == 2
    assert f"no account 'nosuch'; known: default ({ACCOUNT}), brand ({BRAND_ACCOUNT}), region" in unknown.output

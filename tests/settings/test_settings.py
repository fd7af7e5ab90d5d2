"""Configuration layers and fail-fast start-up."""

import stat

import pytest

from gateway import ConfigError, create_app
from gateway.settings import DEFAULTS_DIR, DEV_TOKEN_FILE, FILE_KEYS, dev_token, instance_folder, load

from ..support.constants import ROOT, TOKEN
from ..support.servers import child_environ


def settings(tmp_path, overrides=None, environ=None, **kwargs):
    return load(overrides, instance_path=str(tmp_path / "instance"), environ=environ or {}, **kwargs)


def test_committed_defaults(tmp_path):
    result = settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN})
    assert result["MAX_CONTENT_LENGTH"] == 65536
    assert result["TRUST_PROXY"] == 0 and result["PUBLIC_URL"] is None
    assert result["DURABILITY"] == "full"
    assert result["AUTH_TOKENS"] == (TOKEN,)
    assert result["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'gateway.db'}"


def test_environment_overrides_defaults_and_mapping_overrides_environment(tmp_path):
    environ = {
        "GATEWAY_MAX_BODY_BYTES": "4096",
        "GATEWAY_TRUST_PROXY": "2",
        "TWILIO_AUTH_TOKEN": "env-token",
        "TWILIO_SECONDARY_AUTH_TOKEN": "second",
        "DATABASE_URL": "sqlite:////tmp/x.db",
    }
    result = settings(tmp_path, {"TRUST_PROXY": 1}, environ)
    assert result["MAX_CONTENT_LENGTH"] == 4096 and result["TRUST_PROXY"] == 1
    assert result["AUTH_TOKENS"] == ("env-token", "second")
    assert result["DATABASE_URL"] == "sqlite:////tmp/x.db"


def test_config_file_layer(tmp_path):
    extra = tmp_path / "site.toml"
    extra.write_text('max_body_bytes = 8192\npublic_url = "https://gw.example.com/"\n')
    result = settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {"GATEWAY_CONFIG_FILE": str(extra)})
    assert result["MAX_CONTENT_LENGTH"] == 8192 and result["PUBLIC_URL"] == "https://gw.example.com"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "TWILIO_AUTH_TOKEN is not set"),
        ({"TWILIO_SECONDARY_AUTH_TOKEN": "x"}, "TWILIO_AUTH_TOKEN is not set"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_TRUST_PROXY": "yes"}, "GATEWAY_TRUST_PROXY: expected a whole number"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_TRUST_PROXY": "-1"}, "GATEWAY_TRUST_PROXY: must be between 0 and 10"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_MAX_BODY_BYTES": "10"}, "GATEWAY_MAX_BODY_BYTES: must be between"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_PUBLIC_URL": "abc.ngrok.app"}, "GATEWAY_PUBLIC_URL: expected a base URL"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_PUBLIC_URL": "https://a.b/?x=1"}, "GATEWAY_PUBLIC_URL: must not contain"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_LOG_LEVEL": "LOUD"}, "GATEWAY_LOG_LEVEL: expected one of"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_DURABILITY": "fast"}, "GATEWAY_DURABILITY: expected one of full"),
        ({"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "mysql://db/x"}, "DATABASE_URL: unsupported database URL 'mysql'"),
        (
            {"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "postgresql://db:x/gw"},
            "DATABASE_URL: not a valid PostgreSQL URL",
        ),
        (
            {"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "postgres://u:s3cr%@db/gw"},
            r"DATABASE_URL: not a valid PostgreSQL URL: invalid percent-encoded token: \"\*\*\*\"$",
        ),
        ({"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "sqlite://"}, "DATABASE_URL: 'sqlite://' is not an SQLite URL"),
        (
            {"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "sqlite://gateway.db"},
            "DATABASE_URL: 'sqlite://gateway.db' is not an SQLite URL the gateway can read: write three slashes "
            r"before a relative path \(sqlite:///gateway.db\) and four before an absolute one",
        ),
        ({"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "SQLite:/x.db"}, "write three slashes before a relative path"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_DEFAULT_REGION": "XX"}, "GATEWAY_DEFAULT_REGION: expected a country code"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_DEFAULT_REGION": "USA"}, "GATEWAY_DEFAULT_REGION: expected a country"),
        ({"TWILIO_AUTH_TOKEN": "t", "DATABASE_URL": "sqlite:///:memory:"}, "DATABASE_URL: an in-memory database"),
        (
            {"TWILIO_AUTH_TOKEN": "t", "GATEWAY_KEYWORDS_FILE": "/nonexistent.toml"},
            "GATEWAY_KEYWORDS_FILE: file not found",
        ),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": "/nonexistent.toml"}, "GATEWAY_CONFIG_FILE: file not found"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_OPT_OUT_SCOPE": "global"}, "GATEWAY_OPT_OUT_SCOPE: expected one of pair"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_RATE_LIMIT_PER_SECOND": "x"}, "RATE_LIMIT_PER_SECOND: expected"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_RATE_LIMIT_PER_SECOND": "0"}, "GATEWAY_RATE_LIMIT_PER_SECOND: must be"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_RATE_LIMIT_BURST": "0"}, "GATEWAY_RATE_LIMIT_BURST: must be between 1"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_SESSION_IDLE_SECONDS": "0"}, "GATEWAY_SESSION_IDLE_SECONDS: must be"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_SESSION_GRACE_SECONDS": "soon"}, "GATEWAY_SESSION_GRACE_SECONDS: expec"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_SESSION_WARNING": "x" * 1601}, "GATEWAY_SESSION_WARNING: expected"),
        ({"TWILIO_AUTH_TOKEN": "t", "GATEWAY_SMS_BACKEND": "smtp"}, "GATEWAY_SMS_BACKEND: expected twilio or console"),
        (
            {"TWILIO_AUTH_TOKEN": "t", "GATEWAY_SMS_BACKEND": "console", "GATEWAY_ENV": "live"},
            "GATEWAY_SMS_BACKEND: console only prints messages",
        ),
    ],
)
def test_invalid_settings_are_named(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, environ=environ)


def test_bad_keyword_file_is_named(tmp_path):
    bad = tmp_path / "kw.toml"
    bad.write_text('[keywords]\nstop = ["stop"]\nstart = ["stop"]\n[replies]\nstop="a"\nstart="b"\nhelp="c"\n')
    with pytest.raises(ConfigError, match="GATEWAY_KEYWORDS_FILE: .*kw.toml: keyword 'stop' is in both"):
        settings(tmp_path, {"TWILIO_AUTH_TOKEN": "t", "KEYWORDS_FILE": str(bad)})
    bad.write_text("not = [toml")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        settings(tmp_path, {"TWILIO_AUTH_TOKEN": "t", "KEYWORDS_FILE": str(bad)})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('messaging_services = ["MG"]', "messaging_services: expected a table"),
        ('[messaging_services]\nMG123 = ["+14155550100"]', "'MG123' is not a Messaging Service SID"),
        (f'[messaging_services]\nMG{"a" * 32} = "+14155550100"', "expected a list of E.164 numbers"),
        (f'[messaging_services]\nMG{"a" * 32} = ["4155550100"]', "'4155550100' is not an E.164 number such as"),
    ],
)
def test_bad_messaging_services_are_named(tmp_path, table, message):
    extra = tmp_path / "extra.toml"
    extra.write_text(table + "\n")
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, environ={"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": str(extra)})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('brands = ["+14155550100"]', r"extra.toml: brands: expected a table of brand = "),
        ('[brands]\n"Acme Co" = ["+14155550100"]', r"brands.Acme Co: a name is 1 to 32 of a-z"),
        ("[brands]\nacme = []", r"brands.acme: expected a list of E.164 numbers and Messaging Service SIDs"),
        ('[brands]\nacme = ["4155550100"]', r"brands.acme: '4155550100' is neither an E.164 number"),
        (
            '[brands]\nacme = ["+14155550100"]\nzenith = ["+14155550100"]',
            r"brands: \+14155550100 is in two brands, acme and zenith",
        ),
    ],
)
def test_bad_brands_are_named(tmp_path, table, message):
    extra = tmp_path / "extra.toml"
    extra.write_text(table + "\n")
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, environ={"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": str(extra)})


def test_brands_and_business_scope(tmp_path):
    extra = tmp_path / "extra.toml"
    service = "MG" + "a" * 32
    extra.write_text(f'opt_out_scope = "business"\n[brands]\nacme = ["+14155550100", "{service}"]\n')
    scope = settings(tmp_path, environ={"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": str(extra)})["SCOPE"]
    assert scope.mode == "business" and scope.brands == {"acme": frozenset({"+14155550100", service})}
    assert scope.brand_of(service) == "acme"


def test_token_not_required_for_read_only_commands(tmp_path):
    assert settings(tmp_path, require_token=False)["AUTH_TOKENS"] == ()


def test_dev_token_is_generated_once_and_private(tmp_path):
    first = settings(tmp_path, {"ALLOW_DEV_TOKEN": True})
    second = settings(tmp_path, {"ALLOW_DEV_TOKEN": True})
    assert first["DEV_TOKEN"] and first["AUTH_TOKENS"] == second["AUTH_TOKENS"]
    (token,) = first["AUTH_TOKENS"]
    assert len(token) == 32 and int(token, 16) >= 0
    path = tmp_path / "instance" / DEV_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_token(tmp_path / "instance", create=False) == token


def test_real_token_wins_over_dev_token(tmp_path):
    result = settings(tmp_path, {"ALLOW_DEV_TOKEN": True}, {"TWILIO_AUTH_TOKEN": TOKEN})
    assert result["AUTH_TOKENS"] == (TOKEN,) and not result["DEV_TOKEN"]
    assert not (tmp_path / "instance" / DEV_TOKEN_FILE).exists()


def test_create_app_refuses_without_token():
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN is not set"):
        create_app()


def test_create_app_reads_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    app = create_app()
    assert app.config["AUTH_TOKENS"] == (TOKEN,)
    assert (tmp_path / "env.db").exists()


def test_create_app_fails_on_unwritable_database(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as caught:
        create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": f"sqlite:///{blocker}/sub/x.db"})
    assert str(caught.value) == (
        f"DATABASE_URL: cannot open or migrate the SQLite database {blocker}/sub/x.db: Not a directory"
    )


def _clean_env(**extra):
    return child_environ(extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trust_proxi = 1", r"extra.toml: unknown setting 'trust_proxi'; did you mean 'trust_proxy'\?$"),
        ("TRUST_PROXY = 1", r"extra.toml: unknown setting 'TRUST_PROXY'; did you mean 'trust_proxy'\?$"),
        ("colour = 'red'", r"extra.toml: unknown setting 'colour'; see gateway/settings/defaults/gateway.toml for"),
        ("[sender]\ndev = []", r"extra.toml: unknown setting 'sender'; did you mean 'senders'\?$"),
        ('trust_proxy = "lots"', r"extra.toml: trust_proxy: expected a whole number, got 'lots'$"),
        ("max_body_bytes = 10", r"extra.toml: max_body_bytes: must be between 1024 and 1.04858e\+07, got 10$"),
        ('log_level = "LOUD"', r"extra.toml: log_level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'$"),
        ('public_url = "https://host:443x"', r"extra.toml: public_url: the port of 'https://host:443x' is not a"),
        ('[senders]\ndev = ["4155550100"]', r"extra.toml: senders.dev: '4155550100' is neither an E.164 number"),
    ],
)
def test_a_configuration_file_is_checked_key_by_key_and_named(tmp_path, text, message):
    """A misspelt key must not do nothing quietly; a bad value names the file and key, not a variable never set."""
    extra = tmp_path / "extra.toml"
    extra.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as caught:
        settings(tmp_path, environ={"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": str(extra)})
    assert str(caught.value).startswith(str(extra))
    assert "GATEWAY_" not in str(caught.value).split(": ", 2)[1]


def test_the_environment_overrides_a_file_and_is_named_when_wrong(tmp_path):
    extra = tmp_path / "extra.toml"
    extra.write_text("trust_proxy = 1\n")
    environ = {"TWILIO_AUTH_TOKEN": "t", "GATEWAY_CONFIG_FILE": str(extra)}
    assert settings(tmp_path, environ={**environ, "GATEWAY_TRUST_PROXY": "2"})["TRUST_PROXY"] == 2
    with pytest.raises(ConfigError, match=r"^GATEWAY_TRUST_PROXY: expected a whole number, got 'x'$"):
        settings(tmp_path, environ={**environ, "GATEWAY_TRUST_PROXY": "x"})


@pytest.mark.parametrize("url", ["https://host:443x", "https://:443", "https://host:99999"])
def test_a_public_url_that_could_never_match_is_refused_at_start_up(tmp_path, url):
    with pytest.raises(ConfigError, match="GATEWAY_PUBLIC_URL: "):
        settings(tmp_path, environ={"TWILIO_AUTH_TOKEN": "t", "GATEWAY_PUBLIC_URL": url})


# -- several Twilio accounts -----------------------------------------------------

BRAND_SID, REGION_SID = "AC" + "2" * 32, "AC" + "3" * 32
BRAND_SERVICE = "MG" + "4" * 32


def _accounts_file(tmp_path, body):
    path = tmp_path / "accounts.toml"
    path.write_text(body)
    return {"GATEWAY_CONFIG_FILE": str(path)}


ACCOUNTS_TOML = f"""
[accounts.brand]
account_sid = "{BRAND_SID}"
auth_token_env = "BRAND_TOKEN"
secondary_auth_token_env = "BRAND_NEXT_TOKEN"
senders = {{ dev = ["+15005550007"], live = ["+15005550009"] }}
messaging_services = {{ "{BRAND_SERVICE}" = ["+15005550010", "+15005550007"] }}

[accounts.region]
account_sid = "{REGION_SID}"
auth_token_file = "TOKEN_FILE"
"""


def test_accounts_come_from_the_file_with_tokens_from_the_environment_or_a_file(tmp_path):
    token_file = tmp_path / "region-token"
    token_file.write_text("region-token\n")
    environ = {
        **_accounts_file(tmp_path, ACCOUNTS_TOML.replace("TOKEN_FILE", str(token_file))),
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "main-token",
        "GATEWAY_SENDERS": "+15005550006",
        "BRAND_TOKEN": "brand-token",
        "BRAND_NEXT_TOKEN": "brand-next",
    }
    result = settings(tmp_path, environ=environ)
    accounts = result["ACCOUNTS"]
    assert accounts.routed
    assert [(a.name, a.sid, a.tokens, a.senders, a.numbers) for a in accounts.accounts] == [
        ("default", "AC" + "1" * 32, ("main-token",), ("+15005550006",), ()),
        ("brand", BRAND_SID, ("brand-token", "brand-next"), ("+15005550007",), ("+15005550010",)),
        ("region", REGION_SID, ("region-token",), (), ()),
    ]
    assert result["SENDERS"] == ("+15005550006", "+15005550007")
    assert result["SCOPE"].service_of("+15005550010") == BRAND_SERVICE
    live = settings(tmp_path, environ={**environ, "GATEWAY_ENV": "live", "GATEWAY_SENDERS": "+15005550006"})
    assert live["ACCOUNTS"].by_sid(BRAND_SID).senders == ("+15005550009",)


def test_with_accounts_no_single_account_token_is_needed(tmp_path):
    environ = {**_accounts_file(tmp_path, ACCOUNTS_TOML.split("[accounts.region]")[0]), "BRAND_TOKEN": "b"}
    result = settings(tmp_path, environ=environ)
    assert [a.name for a in result["ACCOUNTS"].accounts] == ["brand"] and result["AUTH_TOKENS"] == ()
    served = settings(tmp_path, {"ALLOW_DEV_TOKEN": True}, environ=environ)
    assert not served["DEV_TOKEN"] and not (tmp_path / "instance" / DEV_TOKEN_FILE).exists()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('auth_token = "x"', "accounts.b.auth_token: a token is never written in a configuration file"),
        ('secondary_auth_token = "x"', "accounts.b.secondary_auth_token: a token is never written"),
        ('token = "x"', "accounts.b: unknown setting 'token' (an account takes account_sid, auth_token_env"),
        ('auth_token_file = "/nonexistent/token"', "accounts.b.auth_token_file: cannot read /nonexistent/token"),
        ('auth_token_file = "EMPTY"', "accounts.b.auth_token_file: EMPTY is empty"),
        ('auth_token_file = "EMPTY"\nsenders = 3', "accounts.b.auth_token_file: EMPTY is empty"),
        ('auth_token_env = "UNSET"', "accounts.b.auth_token_env: the environment variable UNSET is not set"),
        ('auth_token_env = "B"\nauth_token_file = "x"', "accounts.b: give auth_token_env or auth_token_file, not both"),
        ("senders = 3", "accounts.b.senders: expected a table of dev, sandbox and live lists"),
        ('senders = { dev = "+15005550007" }', "accounts.b.senders.dev: expected a list of E.164 numbers"),
        ('senders = { dev = ["4155550100"] }', "accounts.b.senders.dev: '4155550100' is neither an E.164 number"),
        ('messaging_services = { "MG1" = ["+15005550007"] }', "accounts.b.messaging_services: 'MG1' is not a"),
    ],
)
def test_a_bad_account_is_refused_naming_the_file_and_the_key(tmp_path, section, message):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    token = "" if "auth_token_env" in section or "auth_token_file" in section else 'auth_token_env = "B"\n'
    body = f'[accounts.b]\naccount_sid = "{BRAND_SID}"\n{token}{section}\n'
    environ = {**_accounts_file(tmp_path, body.replace("EMPTY", str(empty))), "B": "b"}
    with pytest.raises(ConfigError) as raised:
        settings(tmp_path, environ=environ)
    assert str(raised.value).startswith(f"{tmp_path / 'accounts.toml'}: accounts.b")
    assert message.replace("EMPTY", str(empty)) in str(raised.value)


@pytest.mark.parametrize(
    ("body", "environ", "message"),
    [
        ("accounts = 3", {}, "expected a table of accounts, [accounts.NAME] each"),
        ("[accounts]\nB = { }", {}, "accounts.B: a name is 1 to 32 of a-z, 0-9, _ and -"),
        ("[accounts]\nb = 3", {}, "accounts.b: expected a table with account_sid"),
        ('[accounts.b]\naccount_sid = "AC1"', {}, "accounts.b.account_sid: expected AC followed by 32 hex"),
        (f'[accounts.b]\naccount_sid = "{BRAND_SID}"', {}, "accounts.b: needs auth_token_env (an environment"),
        (
            f'[accounts.b]\naccount_sid = "{BRAND_SID}"\nauth_token_env = "T"',
            {"T": "t", "TWILIO_AUTH_TOKEN": "main"},
            "the single-account settings (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, [senders]) describe one more account",
        ),
        (
            f'[accounts.b]\naccount_sid = "{BRAND_SID}"\nauth_token_env = "T"\n'
            f'[accounts.c]\naccount_sid = "{BRAND_SID}"\nauth_token_env = "T"',
            {"T": "t"},
            f"SID {BRAND_SID} belongs to both account 'b' and account 'c'",
        ),
        (
            f'[accounts.b]\naccount_sid = "{BRAND_SID}"\nauth_token_env = "T"\nsenders = {{ dev = ["+15005550007"] }}\n'
            f'[accounts.c]\naccount_sid = "{REGION_SID}"\nauth_token_env = "T"\nsenders = {{ dev = ["+15005550007"] }}',
            {"T": "t"},
            "+15005550007 belongs to both account 'b' and account 'c'",
        ),
        (
            f'messaging_services = {{ "{BRAND_SERVICE}" = ["+15005550010"] }}\n'
            f'[accounts.b]\naccount_sid = "{BRAND_SID}"\nauth_token_env = "T"\n'
            f'messaging_services = {{ "{BRAND_SERVICE}" = ["+15005550010"] }}',
            {"T": "t"},
            f"accounts.b.messaging_services: {BRAND_SERVICE} is configured for another account too",
        ),
    ],
)
def test_the_accounts_table_is_checked_whole(tmp_path, body, environ, message):
    with pytest.raises(ConfigError) as raised:
        settings(tmp_path, environ={**_accounts_file(tmp_path, body), **environ})
    assert message in str(raised.value)


def test_an_account_may_bring_its_own_keywords_and_opt_out_scope(tmp_path):
    words = tmp_path / "brand-keywords.toml"
    words.write_text(
        '[keywords]\nstop = ["stop", "alto"]\nstart = ["start"]\nhelp = ["help"]\n'
        '[replies]\nstop = "Brand B: unsubscribed."\nstart = "Brand B: back."\nhelp = "Brand B: call +14155550100."\n'
    )
    body = f"""
[accounts.brand]
account_sid = "{BRAND_SID}"
auth_token_env = "T"
keywords_file = "{words}"
opt_out_scope = "messaging_service"
senders = {{ dev = ["+15005550007"] }}
messaging_services = {{ "{BRAND_SERVICE}" = ["+15005550007", "+15005550010"] }}
"""
    environ = {**_accounts_file(tmp_path, body), "T": "t", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32}
    result = settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN, "SENDERS_OVERRIDE": "+15005550006"}, environ)
    book, scope = result["KEYWORDS"], result["SCOPE"]
    assert book.for_number("+15005550007").match("Alto") == "stop"
    assert book.for_number("+15005550010").replies["help"] == "Brand B: call +14155550100."
    assert book.for_number("+15005550006").match("alto") is None  # the main account keeps the defaults
    assert scope.cover("+15005550010").numbers == ("+15005550007", "+15005550010")
    assert scope.cover("+15005550006").numbers == ("+15005550006",)  # still pair for the main account
    wide = body.replace('opt_out_scope = "messaging_service"', 'opt_out_scope = "business"')
    scope = settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {**environ, **_accounts_file(tmp_path, wide)})["SCOPE"]
    assert scope.cover(BRAND_SERVICE).numbers == ("*",)  # the account's service follows its rule too
    assert scope.cover("+15005550006").numbers == ("+15005550006",)
    bad = body.replace('opt_out_scope = "messaging_service"', 'opt_out_scope = "everything"')
    with pytest.raises(
        ConfigError,
        match=r"accounts\.brand\.opt_out_scope: expected one of pair, messaging_service, business, got 'everything'",
    ):
        settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {**environ, **_accounts_file(tmp_path, bad)})
    missing = body.replace(str(words), str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match=r"accounts\.brand\.keywords_file: file not found"):
        settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {**environ, **_accounts_file(tmp_path, missing)})


def test_consent_settings_from_file_and_environment(tmp_path):
    rules = settings(tmp_path, {"TWILIO_AUTH_TOKEN": "t"})["CONSENT"]
    assert (rules.categories, rules.required, rules.keyword, rules.default) == (
        ("marketing", "informational"),
        (),
        ("informational",),
        "informational",
    )
    environ = {
        "GATEWAY_CONSENT_CATEGORIES": "marketing, informational, surveys",
        "GATEWAY_REQUIRE_CONSENT": "marketing,surveys",
        "GATEWAY_KEYWORD_CONSENT_CATEGORIES": "",
        "GATEWAY_DEFAULT_CATEGORY": "surveys",
    }
    rules = settings(tmp_path, {"TWILIO_AUTH_TOKEN": "t"}, environ)["CONSENT"]
    assert rules.required == ("marketing", "surveys") and rules.default == "surveys"
    assert rules.keyword == ("informational",)  # an empty variable is not set: the file's value stands


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY_REQUIRE_CONSENT": "promos"}, "GATEWAY_REQUIRE_CONSENT: 'promos' is not one of consent_categories"),
        ({"GATEWAY_DEFAULT_CATEGORY": "promos"}, "GATEWAY_DEFAULT_CATEGORY: 'promos' is not one of consent_categories"),
        (
            {"GATEWAY_KEYWORD_CONSENT_CATEGORIES": "marketing,promos"},
            "GATEWAY_KEYWORD_CONSENT_CATEGORIES: 'promos' is not one of",
        ),
        ({"GATEWAY_CONSENT_CATEGORIES": "Marketing"}, "GATEWAY_CONSENT_CATEGORIES: expected a list of category names"),
        ({"GATEWAY_CONSENT_CATEGORIES": " , "}, "GATEWAY_CONSENT_CATEGORIES: name at least one category"),
    ],
)
def test_bad_consent_settings_are_named(tmp_path, environ, message):
    with pytest.raises(ConfigError) as raised:
        settings(tmp_path, {"TWILIO_AUTH_TOKEN": "t"}, environ)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "GATEWAY_OPTOUT_SCOPE",
            "GATEWAY_OPTOUT_SCOPE: not a setting of the gateway; did you mean GATEWAY_OPT_OUT_SCOPE?",
        ),
        ("GATEWAY_DURABILTY", "GATEWAY_DURABILTY: not a setting of the gateway; did you mean GATEWAY_DURABILITY?"),
        (
            "GATEWAY_COLOUR",
            "GATEWAY_COLOUR: not a setting of the gateway; see gateway/settings/defaults/gateway.toml for every "
            "setting",
        ),
    ],
)
def test_an_unknown_gateway_variable_stops_start_up_naming_it(tmp_path, variable, message):
    """A misspelt variable must not be ignored: the setting it meant would silently keep its default."""
    with pytest.raises(ConfigError, match=f"^environment variable {message}$".replace("?", r"\?")):
        settings(tmp_path, environ={"TWILIO_AUTH_TOKEN": TOKEN, variable: "business"})


def test_variables_that_are_not_settings_but_are_known_pass(tmp_path):
    """Where the configuration and the instance are, the test suite's own, and a token source an account names."""
    environ = {
        **_accounts_file(tmp_path, ACCOUNTS_TOML.split("[accounts.region]")[0].replace("BRAND_", "GATEWAY_BRAND_")),
        "GATEWAY_BRAND_TOKEN": "b",
        "GATEWAY_BRAND_NEXT_TOKEN": "n",
        "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
        "GATEWAY_TEST_POSTGRES_URL": "postgresql://localhost/x",
        "GATEWAY_TEST_ARTEFACTS": str(tmp_path),
    }
    accounts = settings(tmp_path, environ=environ)["ACCOUNTS"]
    assert accounts.by_sid(BRAND_SID).tokens == ("b", "n")


def test_the_console_key_is_given_or_made_once_per_instance_folder(tmp_path):
    given = load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ={"GATEWAY_SECRET_KEY": "k" * 32})
    assert given["SECRET_KEY"] == "k" * 32 and given["SECRET_KEY_FILE"] is None
    made = load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ={})
    again = load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ={})
    assert made["SECRET_KEY"] == again["SECRET_KEY"] and len(made["SECRET_KEY"]) >= 32  # one key per machine
    assert made["SECRET_KEY_FILE"] == str(tmp_path / "console_secret_key")
    with pytest.raises(ConfigError, match="GATEWAY_SECRET_KEY.*at least 32 characters"):
        load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ={"GATEWAY_SECRET_KEY": "short"})


@pytest.mark.parametrize("given", [False, True])
def test_a_shared_database_without_a_console_key_is_warned_of(db_url, db_kind, gateway_log, given):
    """Instances sharing a database each make their own console key: auditors would be signed out whenever
    the load balancer picks another instance. Start-up says so in one line on PostgreSQL, and only there."""
    create_app({"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": db_url, **({"SECRET_KEY": "k" * 32} if given else {})})
    warned = [r.getMessage() for r in gateway_log.records if "GATEWAY_SECRET_KEY is not set" in r.getMessage()]
    if db_kind == "postgresql" and not given:
        assert len(warned) == 1 and "\n" not in warned[0] and "set GATEWAY_SECRET_KEY to one value" in warned[0]
    else:
        assert warned == []


@pytest.mark.parametrize(
    ("environ", "refused"),
    [
        ({"DYNO": "web.1"}, "DATABASE_URL is not set: the default SQLite file {db} is on Heroku's disk (DYNO is set)"),
        (
            {"K_SERVICE": "gateway", "DATABASE_URL": "sqlite:///{db}"},
            "DATABASE_URL: the SQLite file {db} is on Cloud Run",
        ),
        ({"DYNO": "run.1234", "GATEWAY_EPHEMERAL_SQLITE": "true"}, None),  # a trial: told, so it starts
        ({"DYNO": "web.1", "DATABASE_URL": "postgres://gw:pw@db.example.com:5432/gateway"}, None),
        ({"DATABASE_URL": "sqlite:///{db}"}, None),  # a machine of one's own
        ({"DYNO": "web.1", "GATEWAY_EPHEMERAL_SQLITE": "perhaps"}, "GATEWAY_EPHEMERAL_SQLITE: expected true or false"),
    ],
)
def test_sqlite_on_a_disk_that_restarts_wipe_is_refused(tmp_path, environ, refused):
    """Heroku's and Cloud Run's disks forget everything at each restart and deploy: an SQLite file there
    would lose every opt-out, so start-up stops, naming the file and what to do."""
    db = tmp_path / "gateway.db"
    environ = {key: value.format(db=db) for key, value in environ.items()}
    if refused is None:
        assert load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ=environ)
        return
    with pytest.raises(ConfigError) as caught:
        load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path=str(tmp_path), environ=environ)
    assert str(caught.value).startswith(refused.format(db=db)) and "\n" not in str(caught.value)


# -- where settings and records are ---------------------------------------------------------------------------


def test_the_operator_file_is_config_gateway_toml_in_the_current_directory(tmp_path, monkeypatch):
    """Without GATEWAY_CONFIG_FILE, ``config/gateway.toml`` of the folder the gateway runs in is read when it is
    there; a relative path in it is relative to it, and a keywords file there is laid over the defaults."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "gateway.toml").write_text('max_body_bytes = 4096\nkeywords_file = "mine.toml"\n')
    (tmp_path / "config" / "mine.toml").write_text('[replies]\nhelp = "Acme: call +1 415 555 0100."\n')
    monkeypatch.chdir(tmp_path)
    result = settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {})
    assert result["MAX_CONTENT_LENGTH"] == 4096
    assert result["KEYWORDS_FILE"] == str(tmp_path / "config" / "mine.toml")
    keywords = result["KEYWORDS"].default
    assert keywords.replies["help"] == "Acme: call +1 415 555 0100."
    assert keywords.match("unsubscribe") == "stop" and keywords.replies["stop"].startswith("You have been")  # defaults
    assert keywords.source == "config/mine.toml [replies]"
    named = tmp_path / "elsewhere.toml"
    named.write_text("max_body_bytes = 2048\n")
    assert (
        settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {"GATEWAY_CONFIG_FILE": str(named)})["MAX_CONTENT_LENGTH"]
        == 2048
    )  # the named file instead, not as well
    monkeypatch.chdir(tmp_path / "config")
    assert settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {})["MAX_CONTENT_LENGTH"] == 65536  # none here


def test_an_environment_variables_relative_path_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "words.toml").write_text('[replies]\nhelp = "Acme: help at help@acme.example"\n')
    monkeypatch.chdir(tmp_path)
    result = settings(tmp_path, {"TWILIO_AUTH_TOKEN": TOKEN}, {"GATEWAY_KEYWORDS_FILE": "words.toml"})
    assert result["KEYWORDS"].default.replies["help"] == "Acme: help at help@acme.example"


def test_the_checkouts_own_config_folder_loads_and_changes_nothing_yet(monkeypatch):
    """The checkout's config/ is the operator's: its files are valid, and until edited they keep the defaults."""
    monkeypatch.chdir(ROOT)
    mine = load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path="/nonexistent", environ={}, require_token=True)
    monkeypatch.chdir(ROOT / "tests")
    packaged = load({"TWILIO_AUTH_TOKEN": TOKEN}, instance_path="/nonexistent", environ={}, require_token=True)
    assert mine["KEYWORDS_FILE"] == str(ROOT / "config" / "keywords.toml")
    assert packaged["KEYWORDS_FILE"] == str(DEFAULTS_DIR / "keywords.toml")
    assert mine["KEYWORDS"] == packaged["KEYWORDS"]
    assert mine["KEYWORDS"].default.source == "config/keywords.toml [replies]"


def test_the_packaged_defaults_name_every_setting_but_the_secrets():
    """The packaged gateway.toml says what every setting is and its default; secrets (and the Account SID that
    goes with them, and the accounts that name theirs) come from the environment, never a committed file."""
    text = (DEFAULTS_DIR / "gateway.toml").read_text()
    missing = [key for key in sorted(FILE_KEYS) if f"\n{key} =" not in text and f"[{key}]" not in text]
    assert missing == [
        "accounts",
        "agent_secret",
        "secret_key",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_secondary_auth_token",
    ]


@pytest.mark.parametrize("given", [None, "data"])
def test_the_instance_folder_is_in_the_current_directory_unless_given(tmp_path, monkeypatch, given):
    """Never inside the Python environment (an upgrade that recreates it would delete every opt-out): the
    folder the gateway runs in, or GATEWAY_INSTANCE_PATH (relative to it)."""
    monkeypatch.chdir(tmp_path)
    environ = {"GATEWAY_INSTANCE_PATH": given} if given else {}
    assert instance_folder(environ) == str(tmp_path / (given or "instance"))

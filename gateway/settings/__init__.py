"""Settings in layers: the committed defaults shipped in the package
(``gateway/settings/defaults/``), then the operator's optional file (``GATEWAY_CONFIG_FILE``,
else ``config/gateway.toml`` in the current directory if there is one), then
environment variables, then an explicit mapping (tests, ``gateway serve``).

A relative path in a file (``keywords_file``, ``templates_dir``) is relative to
that file's folder; in an environment variable, to the current directory.

Everything is validated once at start-up; a bad or missing setting raises
:class:`ConfigError` naming it, so the process fails fast with one line.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import store
from ..core import accounts, consent, numbers, smstemplates
from ..core.keywords import KINDS, KeywordBook, KeywordSet
from ..core.revocation import Detector
from ..core.scope import SCOPES, Scope

# The committed defaults: every setting, the keyword sets and replies, the revocation patterns, the templates.
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
DEFAULTS_FILE = DEFAULTS_DIR / "gateway.toml"
DEFAULT_KEYWORDS = DEFAULTS_DIR / "keywords.toml"
# The operator's file when GATEWAY_CONFIG_FILE is not set, if it exists: relative to the current directory,
# the deployment's folder (as ``instance/``, where its records are kept by default).
OPERATOR_FILE = Path("config") / "gateway.toml"
INSTANCE_FOLDER = "instance"
DEV_TOKEN_FILE = "dev_auth_token"  # noqa: S105 - a file name, not a secret
SECRET_KEY_FILE = "console_secret_key"  # noqa: S105 - a file name, not a secret
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Setting name -> (environment variable, parser). Secrets and DATABASE_URL keep
# their conventional unprefixed names.
_ENV = {
    "PUBLIC_URL": "GATEWAY_PUBLIC_URL",
    "TRUST_PROXY": "GATEWAY_TRUST_PROXY",
    "MAX_BODY_BYTES": "GATEWAY_MAX_BODY_BYTES",
    "BUSY_TIMEOUT_MS": "GATEWAY_BUSY_TIMEOUT_MS",
    "DATABASE_POOL_SIZE": "GATEWAY_DATABASE_POOL_SIZE",
    "DATABASE_POOL_TIMEOUT_SECONDS": "GATEWAY_DATABASE_POOL_TIMEOUT_SECONDS",
    "LOG_LEVEL": "GATEWAY_LOG_LEVEL",
    "DURABILITY": "GATEWAY_DURABILITY",
    "KEYWORDS_FILE": "GATEWAY_KEYWORDS_FILE",
    "REVOCATION_FILE": "GATEWAY_REVOCATION_FILE",
    "DATABASE_URL": "DATABASE_URL",
    "EPHEMERAL_SQLITE": "GATEWAY_EPHEMERAL_SQLITE",
    "SECRET_KEY": "GATEWAY_SECRET_KEY",
    "COOKIE_SECURE": "GATEWAY_COOKIE_SECURE",
    "TWILIO_AUTH_TOKEN": "TWILIO_AUTH_TOKEN",
    "TWILIO_ACCOUNT_SID": "TWILIO_ACCOUNT_SID",
    "TWILIO_API_BASE": "GATEWAY_TWILIO_API_BASE",
    "ENV": "GATEWAY_ENV",
    "TEMPLATES_DIR": "GATEWAY_TEMPLATES_DIR",
    "SENDERS_OVERRIDE": "GATEWAY_SENDERS",
    "STATUS_CALLBACK_URL": "GATEWAY_STATUS_CALLBACK_URL",
    "OUTBOUND_MAX_AGE_SECONDS": "GATEWAY_OUTBOUND_MAX_AGE_SECONDS",
    "TWILIO_SECONDARY_AUTH_TOKEN": "TWILIO_SECONDARY_AUTH_TOKEN",
    "OPT_OUT_SCOPE": "GATEWAY_OPT_OUT_SCOPE",
    "RATE_LIMIT_PER_SECOND": "GATEWAY_RATE_LIMIT_PER_SECOND",
    "RATE_LIMIT_BURST": "GATEWAY_RATE_LIMIT_BURST",
    "AGENT_URL": "GATEWAY_AGENT_URL",
    "AGENT_SECRET": "GATEWAY_AGENT_SECRET",
    "AGENT_HANDLER": "GATEWAY_AGENT_HANDLER",
    "AGENT_TIMEOUT_SECONDS": "GATEWAY_AGENT_TIMEOUT_SECONDS",
    "AGENT_MAX_AGE_SECONDS": "GATEWAY_AGENT_MAX_AGE_SECONDS",
    "AGENT_LEASE_SECONDS": "GATEWAY_AGENT_LEASE_SECONDS",
    "AGENT_BACKOFF_SECONDS": "GATEWAY_AGENT_BACKOFF_SECONDS",
    "SESSION_IDLE_SECONDS": "GATEWAY_SESSION_IDLE_SECONDS",
    "SESSION_GRACE_SECONDS": "GATEWAY_SESSION_GRACE_SECONDS",
    "SESSION_WARNING": "GATEWAY_SESSION_WARNING",
    "SMS_BACKEND": "GATEWAY_SMS_BACKEND",
    "DEFAULT_REGION": "GATEWAY_DEFAULT_REGION",
    "CONSENT_CATEGORIES": "GATEWAY_CONSENT_CATEGORIES",
    "REQUIRE_CONSENT": "GATEWAY_REQUIRE_CONSENT",
    "KEYWORD_CONSENT_CATEGORIES": "GATEWAY_KEYWORD_CONSENT_CATEGORIES",
    "DEFAULT_CATEGORY": "GATEWAY_DEFAULT_CATEGORY",
    "TWILIO_CONSENT_SYNC": "GATEWAY_TWILIO_CONSENT_SYNC",
    "CONSENT_SYNC_REQUESTS_PER_MINUTE": "GATEWAY_CONSENT_SYNC_REQUESTS_PER_MINUTE",
    "CONSENT_SYNC_LEASE_SECONDS": "GATEWAY_CONSENT_SYNC_LEASE_SECONDS",
    "CLARIFICATION_TEXT": "GATEWAY_CLARIFICATION_TEXT",
}


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


def operator_file(environ: Mapping[str, str] = os.environ) -> tuple[Path, str] | None:
    """The operator's configuration file and what named it: ``GATEWAY_CONFIG_FILE``, else ``config/gateway.toml``
    in the current directory when it exists, else none."""
    named = environ.get("GATEWAY_CONFIG_FILE")
    if named:
        return Path(named), "GATEWAY_CONFIG_FILE"
    if OPERATOR_FILE.is_file():
        return OPERATOR_FILE, str(OPERATOR_FILE)
    return None


def instance_folder(environ: Mapping[str, str] = os.environ) -> str:
    """Where the default database, the development token and the console's key are kept: GATEWAY_INSTANCE_PATH,
    else ``instance/`` in the current directory, as an absolute path. Never inside the Python environment, which
    an upgrade may delete with every opt-out in it."""
    return str(Path(environ.get("GATEWAY_INSTANCE_PATH") or INSTANCE_FOLDER).resolve())


def _read_toml(path: Path, setting: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{setting}: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{setting}: {path} is not valid TOML: {exc}") from None


# The keys a configuration file may set: every setting, by its lower-case name, and the two tables.
FILE_KEYS = frozenset(
    {key.lower() for key in _ENV if key != "SENDERS_OVERRIDE"}
    | {"senders", "messaging_services", "accounts", "brands", "clarification_choices"}
)


class Layers(dict):
    """The raw settings, each remembering where it came from, so a message can name that."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self.folders: dict[str, Path] = {}  # the folder of the file that set a key

    def put(self, key: str, value: Any, source: str | None, folder: Path | None = None) -> None:
        self[key] = value
        if source:
            self.sources[key] = source
        else:
            self.sources.pop(key, None)
        if folder is not None:
            self.folders[key] = folder
        else:
            self.folders.pop(key, None)

    def path(self, key: str, given: Any = None) -> Path:
        """``given`` (else the value of ``key``) as a path: a relative one is relative to the folder of the file
        that set ``key``, or to the current directory when an environment variable or the mapping did."""
        path = Path(str(self.get(key) if given is None else given))
        return path if path.is_absolute() else self.folders.get(key, Path.cwd()) / path

    def source(self, key: str) -> str:
        """``config/gateway.toml: trust_proxy``, or the environment variable (the one a person would set)."""
        return self.sources.get(key) or _ENV.get(key, key)


def _file_layer(raw: Layers, path: Path, setting: str, shown: str | None = None) -> None:
    """Put a configuration file's settings in ``raw``, refusing a key that is not a setting; ``shown`` is how
    messages name the file (the packaged defaults by their name in the package)."""
    shown = shown or str(path)
    for key, value in _read_toml(path, setting).items():
        if key not in FILE_KEYS:
            close = difflib.get_close_matches(key.lower(), sorted(FILE_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; see {DEFAULTS_SHOWN} for every setting"
            raise ConfigError(f"{shown}: unknown setting {key!r}{hint}")
        raw.put(key.upper(), value, f"{shown}: {key}", path.resolve().parent)


DEFAULTS_SHOWN = "gateway/settings/defaults/gateway.toml"  # how messages name the packaged defaults, wherever installed


# Variables with the prefix that are not settings: where the configuration and the instance folder are; and
# GATEWAY_TEST_*, the test suite's own (a developer may keep them in the shell that also runs the gateway).
_NOT_SETTINGS = frozenset({"GATEWAY_CONFIG_FILE", "GATEWAY_INSTANCE_PATH"})
# An account's tokens: each named by KEY_env (an environment variable) or KEY_file, never written in a file.
_TOKEN_KEYS = ("auth_token", "secondary_auth_token")


def _check_environment(environ: Mapping[str, str], raw: Layers) -> None:
    """Refuse a ``GATEWAY_`` variable that is no setting: a misspelt one would otherwise be ignored without a
    word (``GATEWAY_OPTOUT_SCOPE=business`` leaving the narrower scope in force). A variable the configuration
    names as an account's token source is known too."""
    accounts_table = raw.get("ACCOUNTS")
    named = {
        str(section[f"{key}_env"])
        for section in (accounts_table.values() if isinstance(accounts_table, dict) else ())
        if isinstance(section, dict)
        for key in _TOKEN_KEYS
        if section.get(f"{key}_env")
    }
    known = {*_ENV.values(), *_NOT_SETTINGS, *named}
    for name in sorted(environ):
        if name.startswith("GATEWAY_") and not name.startswith("GATEWAY_TEST_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
            hint = f"did you mean {close[0]}?" if close else f"see {DEFAULTS_SHOWN} for every setting"
            raise ConfigError(f"environment variable {name}: not a setting of the gateway; {hint}")


def _raw_layers(overrides: Mapping[str, Any] | None, environ: Mapping[str, str]) -> Layers:
    raw = Layers()
    _file_layer(raw, DEFAULTS_FILE, "the gateway's packaged defaults", DEFAULTS_SHOWN)
    found = operator_file(environ)
    if found:
        _file_layer(raw, *found)
    _check_environment(environ, raw)
    for key, variable in _ENV.items():
        if environ.get(variable, "") != "":
            raw.put(key, environ[variable], variable)
    for key, value in (overrides or {}).items():
        raw.put(key, value, None)
    return raw


def _as_int(raw: Layers, key: str, low: int, high: int) -> int:
    return _as_number(raw, key, low, high, int, "a whole number")


def _as_float(raw: Layers, key: str, low: float, high: float) -> float:
    return _as_number(raw, key, low, high, float, "a number")


def _as_number(raw: Layers, key: str, low: float, high: float, kind: type, expected: str) -> Any:
    """``raw[key]`` as ``kind`` within [low, high]; ConfigError naming the setting otherwise."""
    value = raw.get(key)
    try:
        number = kind(str(value).strip())
    except ValueError:
        raise ConfigError(f"{raw.source(key)}: expected {expected}, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{raw.source(key)}: must be between {low:g} and {high:g}, got {number:g}")
    return number


def _as_bool(raw: Layers, key: str, default: bool) -> bool:
    """``raw[key]`` as true or false (also 1 and 0); ConfigError naming the setting otherwise."""
    value = str(raw.get(key, default)).strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ConfigError(f"{raw.source(key)}: expected true or false, got {value!r}")
    return value in ("true", "1")


def _public_url(raw: Layers) -> str | None:
    value = raw.get("PUBLIC_URL")
    if not value:
        return None
    text, where = str(value).strip(), raw.source("PUBLIC_URL")
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(f"{where}: the port of {text!r} is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: expected a base URL such as https://abc123.ngrok.app, got {text!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: must not contain a query string or fragment")
    return text.rstrip("/")


def load_keywords(path: Path, setting: str = "GATEWAY_KEYWORDS_FILE") -> KeywordBook:
    """Load keyword sets and replies, with optional per-number overrides; errors name ``setting``.

    A file other than the packaged defaults is laid over them: a keyword list or a reply it leaves out is the
    default one, so an operator's file may hold just the HELP reply with their contact.
    """
    data = _read_toml(path, setting)
    if path.resolve() != DEFAULT_KEYWORDS:
        defaults = _read_toml(DEFAULT_KEYWORDS, "the gateway's packaged keywords")
        data = {
            **data,
            "keywords": {**defaults.get("keywords", {}), **_table(data, "keywords", path, setting)},
            "replies": {**defaults.get("replies", {}), **_table(data, "replies", path, setting)},
        }
    base_words = data.get("keywords", {})
    base_replies = data.get("replies", {})
    try:
        shown = shown_path(path)
        default = KeywordSet.build(base_words, base_replies, f"{shown} [replies]")
        per_number = {}
        for number, section in data.get("numbers", {}).items():
            words = {kind: section.get("keywords", {}).get(kind, base_words.get(kind, ())) for kind in KINDS}
            replies = {**base_replies, **section.get("replies", {})}
            per_number[number] = KeywordSet.build(words, replies, f'{shown} [numbers."{number}".replies]')
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(f"{setting}: {path}: {exc}") from None
    return KeywordBook(default, per_number)


def shown_path(path: Path) -> str:
    """How a message names a configuration file: the packaged defaults by their place in the package, a file
    below the current directory relative to it (``config/keywords.toml``), any other whole."""
    resolved = path.resolve()
    if resolved.is_relative_to(DEFAULTS_DIR):
        return f"gateway/settings/defaults/{resolved.relative_to(DEFAULTS_DIR)}"
    cwd = Path.cwd()
    return str(resolved.relative_to(cwd)) if resolved.is_relative_to(cwd) else str(resolved)


def _table(data: Mapping[str, Any], name: str, path: Path, setting: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{setting}: {path}: [{name}] must be a table")
    return table


def load_revocation(path: Path) -> Detector:
    """Load revocation-candidate patterns and exclusions."""
    data = _read_toml(path, "GATEWAY_REVOCATION_FILE")
    try:
        return Detector.build(
            data.get("patterns", {}), data.get("exclusions", {}), int(data.get("business_days_to_honour", 10))
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"GATEWAY_REVOCATION_FILE: {path}: {exc}") from None


def dev_token(instance_path: str | os.PathLike[str], create: bool = True) -> str | None:
    """Return the local development auth token, creating it once if asked."""
    return _instance_secret(Path(instance_path) / DEV_TOKEN_FILE, create)


def _instance_secret(path: Path, create: bool = True) -> str | None:
    """A random secret kept in the instance folder (mode 0600), made once."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    try:
        os.link(temporary, path)  # atomic: a complete file or none
    except FileExistsError:  # another process made it first
        token = path.read_text().strip()
    finally:
        temporary.unlink()
    return token


# Platforms whose local disk every restart and deploy wipes, each known by a variable it sets in every process.
_EPHEMERAL_DISKS = (("DYNO", "Heroku"), ("K_SERVICE", "Cloud Run (or Knative)"))


def _refuse_a_disk_that_forgets(raw: Layers, url: str, environ: Mapping[str, str], given: bool) -> None:
    """An SQLite file on such a platform would lose every opt-out at the next restart: stop, unless told."""
    file = store.local_file(url)
    found = next(((variable, name) for variable, name in _EPHEMERAL_DISKS if environ.get(variable)), None)
    if file is None or found is None or _as_bool(raw, "EPHEMERAL_SQLITE", False):
        return
    variable, name = found
    where = (
        f"{raw.source('DATABASE_URL')}: the SQLite file"
        if given
        else "DATABASE_URL is not set: the default SQLite file"
    )
    raise ConfigError(
        f"{where} {file} is on {name}'s disk ({variable} is set), which every restart and deploy wipes, and every "
        "opt-out with it: use PostgreSQL (DATABASE_URL=postgres://...), or for a trial with nothing to keep set "
        "GATEWAY_EPHEMERAL_SQLITE=true"
    )


def load(
    overrides: Mapping[str, Any] | None = None,
    *,
    instance_path: str,
    environ: Mapping[str, str] = os.environ,
    require_token: bool = True,
) -> dict[str, Any]:
    """Return validated settings as a Flask-style mapping of upper-case keys.

    ``require_token`` is false for CLI commands that only read the database.
    With ``ALLOW_DEV_TOKEN`` set in ``overrides`` (``gateway serve``), a missing
    TWILIO_AUTH_TOKEN is replaced by a generated local development token.
    """
    raw = _raw_layers(overrides, environ)
    settings: dict[str, Any] = {
        "PUBLIC_URL": _public_url(raw),
        "TRUST_PROXY": _as_int(raw, "TRUST_PROXY", 0, 10),
        "MAX_CONTENT_LENGTH": _as_int(raw, "MAX_BODY_BYTES", 1024, 10 * 1024 * 1024),
        "BUSY_TIMEOUT_MS": _as_int(raw, "BUSY_TIMEOUT_MS", 100, 600_000),
        "DATABASE_POOL_SIZE": _as_int(raw, "DATABASE_POOL_SIZE", 1, 100),
        "DATABASE_POOL_TIMEOUT_SECONDS": _as_float(raw, "DATABASE_POOL_TIMEOUT_SECONDS", 0.1, 120),
    }
    level = str(raw.get("LOG_LEVEL", "INFO")).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{raw.source('LOG_LEVEL')}: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    settings["LOG_LEVEL"] = level
    durability = str(raw.get("DURABILITY", "full")).strip().lower()
    if durability not in store.DURABILITY:
        raise ConfigError(
            f"{raw.source('DURABILITY')}: expected one of {', '.join(store.DURABILITY)}, got {durability!r}"
        )
    settings["DURABILITY"] = durability

    keywords_file = raw.path("KEYWORDS_FILE")
    settings["KEYWORDS"] = load_keywords(keywords_file)
    settings["KEYWORDS_FILE"] = str(keywords_file)
    settings["REVOCATION"] = load_revocation(raw.path("REVOCATION_FILE"))

    url = str(raw.get("DATABASE_URL") or "") or store.default_url(instance_path)
    try:
        store.check_url(url)
    except ValueError as exc:
        raise ConfigError(f"{raw.source('DATABASE_URL')}: {exc}") from None
    settings["DATABASE_URL"] = url
    _refuse_a_disk_that_forgets(raw, url, environ, given=bool(raw.get("DATABASE_URL")))

    primary = str(raw.get("TWILIO_AUTH_TOKEN") or "").strip()
    secondary = str(raw.get("TWILIO_SECONDARY_AUTH_TOKEN") or "").strip()
    settings["DEV_TOKEN"] = False
    routed = bool(raw.get("ACCOUNTS"))  # [accounts]: each account brings its own tokens
    if not primary and raw.get("ALLOW_DEV_TOKEN") and not routed:
        primary = dev_token(instance_path) or ""
        settings["DEV_TOKEN"] = True
    if require_token and not primary and not routed:
        raise ConfigError(
            "TWILIO_AUTH_TOKEN is not set: without it the gateway cannot verify that "
            "requests come from Twilio (for local development use `gateway serve` or `make run`)"
        )
    settings["AUTH_TOKENS"] = tuple(token for token in (primary, secondary) if token)

    # The console's session cookie: signed with GATEWAY_SECRET_KEY, or a key
    # made once in the instance folder (shared by the workers of one machine).
    secret = str(raw.get("SECRET_KEY") or "").strip()
    if secret and len(secret) < 32:
        raise ConfigError(f"{raw.source('SECRET_KEY')}: must be at least 32 characters")
    settings["SECRET_KEY"] = secret or _instance_secret(Path(instance_path) / SECRET_KEY_FILE, create=require_token)
    settings["SECRET_KEY_FILE"] = None if secret else str(Path(instance_path) / SECRET_KEY_FILE)
    settings["SESSION_COOKIE_SECURE"] = _as_bool(raw, "COOKIE_SECURE", True)
    given = raw.get("DEFAULT_REGION")
    region = str(given or "").strip().upper()
    if not numbers.is_region(region):
        raise ConfigError(f"{raw.source('DEFAULT_REGION')}: expected a country code such as US or GB, got {given!r}")
    settings["DEFAULT_REGION"] = region
    settings["TWILIO_CONSENT_SYNC"] = _as_bool(raw, "TWILIO_CONSENT_SYNC", False)
    settings["CONSENT_SYNC_REQUESTS_PER_MINUTE"] = _as_float(raw, "CONSENT_SYNC_REQUESTS_PER_MINUTE", 1, 6000)
    settings["CONSENT_SYNC_LEASE_SECONDS"] = _as_float(raw, "CONSENT_SYNC_LEASE_SECONDS", 0.5, 3600)
    settings.update(_agent(raw))
    settings.update(_outbound(raw, settings, environ))
    services = _services(raw.get("MESSAGING_SERVICES"), raw.source("MESSAGING_SERVICES"))
    overrides = Overrides(services)
    settings["ACCOUNTS"] = _accounts(raw, settings, environ, overrides)
    settings["SENDERS"] = settings["ACCOUNTS"].senders
    settings["SCOPE"] = _scope(raw, services, overrides.modes, _brands(raw.get("BRANDS"), raw.source("BRANDS")))
    settings["CONSENT"] = _consent(raw)
    settings["CLARIFICATION"] = _clarification(raw, settings["CONSENT"])
    book = settings["KEYWORDS"]  # a number's own section in the main keywords file comes first
    settings["KEYWORDS"] = KeywordBook(book.default, {**overrides.keywords, **book.per_number})
    return settings


def _categories(raw: Layers, key: str) -> tuple[str, ...]:
    """A list of category names: a TOML list, or comma-separated in an environment variable."""
    value = raw.get(key, [])
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    try:
        return consent.categories_setting(value, raw.source(key))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _consent(raw: Layers) -> consent.Rules:
    """consent_categories, require_consent, keyword_consent_categories, default_category."""
    categories = _categories(raw, "CONSENT_CATEGORIES")
    if not categories:
        raise ConfigError(f"{raw.source('CONSENT_CATEGORIES')}: name at least one category")
    required, keyword = _categories(raw, "REQUIRE_CONSENT"), _categories(raw, "KEYWORD_CONSENT_CATEGORIES")
    default = str(raw.get("DEFAULT_CATEGORY") or "").strip()
    try:
        return consent.Rules(categories, required, keyword, default)
    except ValueError as exc:
        setting = str(exc).split(":", 1)[0].upper()
        raise ConfigError(f"{raw.source(setting)}: {str(exc).split(': ', 1)[1]}") from None


def _clarification(raw: Layers, rules: consent.Rules) -> consent.Clarification | None:
    """The optional clarification text and its answers (``clarification_choices``: WORD = [categories])."""
    text = str(raw.get("CLARIFICATION_TEXT") or "").strip()
    choices = raw.get("CLARIFICATION_CHOICES") or {}
    if not text and not choices:
        return None
    if not isinstance(choices, dict):
        raise ConfigError(f"{raw.source('CLARIFICATION_CHOICES')}: expected a table of WORD = [categories]")
    try:
        return consent.Clarification.build(text, choices, rules)
    except ValueError as exc:
        setting = "CLARIFICATION_TEXT" if str(exc).startswith("clarification_text") else "CLARIFICATION_CHOICES"
        raise ConfigError(f"{raw.source(setting)}: {str(exc).split(': ', 1)[1]}") from None


@dataclass
class Overrides:
    """What the accounts add to the deployment's settings, per Twilio number: their Messaging Services
    (joining ``[messaging_services]``), their own keyword sets and their own opt-out scope."""

    services: dict[str, list[str]]
    keywords: dict[str, KeywordSet] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)


def _scope_mode(value: Any, where: str) -> str:
    mode = str(value or "pair").strip().lower()
    if mode not in SCOPES:
        raise ConfigError(f"{where}: expected one of {', '.join(SCOPES)}, got {mode!r}")
    return mode


def _scope(raw: Layers, services: dict[str, list[str]], modes: dict[str, str], brands: dict[str, list[str]]) -> Scope:
    """``opt_out_scope`` over the Messaging Services of every account (SID -> its numbers), with the
    numbers of accounts that chose their own (``modes``) and the brands ``business`` scope covers."""
    return Scope.build(_scope_mode(raw.get("OPT_OUT_SCOPE"), raw.source("OPT_OUT_SCOPE")), services, modes, brands)


def _brands(brands: Any, where: str) -> dict[str, list[str]]:
    """A ``[brands]`` table (name -> its numbers and Messaging Service SIDs), checked."""
    brands = brands or {}
    if not isinstance(brands, dict):
        raise ConfigError(f'{where}: expected a table of brand = ["+14155550100", "MG..."]')
    owner: dict[str, str] = {}
    for name, members in brands.items():
        if not accounts.NAME.fullmatch(name):
            raise ConfigError(
                f"{where}.{name}: a name is 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit"
            )
        if not isinstance(members, list) or not members:
            raise ConfigError(f"{where}.{name}: expected a list of E.164 numbers and Messaging Service SIDs")
        _check_senders(members, f"{where}.{name}")
        for member in members:
            if member in owner and owner[member] != name:
                raise ConfigError(f"{where}: {member} is in two brands, {owner[member]} and {name}")
            owner[member] = name
    return dict(brands)


def _services(services: Any, where: str) -> dict[str, list[str]]:
    """A ``[messaging_services]`` table (SID -> its numbers), checked; ``where`` names it in errors."""
    services = services or {}
    if not isinstance(services, dict):
        raise ConfigError(f"{where}: expected a table of Messaging Service SID = [numbers]")
    for sid, members in services.items():
        if not SERVICE_SID.match(sid):
            raise ConfigError(f"{where}: {sid!r} is not a Messaging Service SID (MG + 32 hex characters)")
        if not isinstance(members, list) or not members:
            raise ConfigError(f'{where}.{sid}: expected a list of E.164 numbers such as "+14155550100"')
        for member in members:
            if numbers.problem(member):
                raise ConfigError(
                    f"{where}.{sid}: {member!r} is not an E.164 number such as "
                    f"{numbers.EXAMPLE}: {numbers.problem(member)}"
                )
    return dict(services)


def _agent(raw: Layers) -> dict[str, Any]:
    """Where queued messages go: an HTTP agent (URL + secret) or a Python function, or nowhere yet."""
    url = str(raw.get("AGENT_URL") or "").strip() or None
    handler = str(raw.get("AGENT_HANDLER") or "").strip() or None
    secret = str(raw.get("AGENT_SECRET") or "").strip() or None
    if url and handler:
        raise ConfigError(f"{raw.source('AGENT_URL')} and {raw.source('AGENT_HANDLER')} are both set: choose one")
    if url:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ConfigError(f"{raw.source('AGENT_URL')}: expected an http(s) URL, got {url!r}")
        if not secret or len(secret) < 16:
            raise ConfigError(f"{raw.source('AGENT_SECRET')}: required with GATEWAY_AGENT_URL, at least 16 characters")
    if handler and not re.fullmatch(r"[\w.]+:[\w]+", handler):
        raise ConfigError(f"{raw.source('AGENT_HANDLER')}: expected module:function, got {handler!r}")
    return {
        "AGENT_URL": url,
        "AGENT_SECRET": secret,
        "AGENT_HANDLER": handler,
        "AGENT_TIMEOUT_SECONDS": _as_float(raw, "AGENT_TIMEOUT_SECONDS", 0.05, 600),
        "AGENT_MAX_AGE_SECONDS": _as_int(raw, "AGENT_MAX_AGE_SECONDS", 1, 30 * 86400),
        "AGENT_LEASE_SECONDS": _as_float(raw, "AGENT_LEASE_SECONDS", 0.5, 3600),
        "AGENT_BACKOFF_SECONDS": _as_float(raw, "AGENT_BACKOFF_SECONDS", 0.01, 3600),
        **_sessions(raw),
    }


def _sessions(raw: Layers) -> dict[str, Any]:
    """The inactivity timeout: idle time before the warning, grace before closing, the warning text."""
    warning = str(raw.get("SESSION_WARNING") or "").strip()
    if not warning or len(warning) > 1600:
        raise ConfigError(f"{raw.source('SESSION_WARNING')}: expected the warning text, 1 to 1600 characters")
    return {
        "SESSION_IDLE_SECONDS": _as_float(raw, "SESSION_IDLE_SECONDS", 1, 365 * 86400),
        "SESSION_GRACE_SECONDS": _as_float(raw, "SESSION_GRACE_SECONDS", 1, 30 * 86400),
        "SESSION_WARNING": warning,
    }


ENVIRONMENTS = ("dev", "sandbox", "live")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


def _check_senders(senders: Any, where: str) -> None:
    if not isinstance(senders, list):
        raise ConfigError(f"{where}: expected a list of E.164 numbers and Messaging Service SIDs")
    for sender in senders:
        if not isinstance(sender, str) or not (SERVICE_SID.match(sender) or numbers.is_e164(sender)):
            raise ConfigError(
                f"{where}: {sender!r} is neither an E.164 number (+14155550100) "
                "nor a Messaging Service SID (MG + 32 hex characters)"
            )


def _outbound(raw: Layers, settings: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings for sending: account, API base, environment, senders, status callback."""
    account = str(raw.get("TWILIO_ACCOUNT_SID") or "").strip() or None
    if account and not accounts.ACCOUNT_SID.fullmatch(account):
        raise ConfigError(f"{raw.source('TWILIO_ACCOUNT_SID')}: expected AC followed by 32 hex characters")
    env = str(raw.get("ENV") or "dev").strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"{raw.source('ENV')}: expected one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    senders_table = raw.get("SENDERS") or {}
    if not isinstance(senders_table, dict):
        raise ConfigError(f"{raw.source('SENDERS')}: expected a table of dev, sandbox and live lists")
    senders = list(senders_table.get(env) or [])
    if raw.get("SENDERS_OVERRIDE"):
        senders = [s.strip() for s in str(raw["SENDERS_OVERRIDE"]).split(",") if s.strip()]
    _check_senders(
        senders, raw.source("SENDERS_OVERRIDE") if raw.get("SENDERS_OVERRIDE") else f"{raw.source('SENDERS')}.{env}"
    )
    api_base = str(raw.get("TWILIO_API_BASE") or "").strip() or None
    if api_base and urlsplit(api_base).scheme not in ("http", "https"):
        raise ConfigError(f"{raw.source('TWILIO_API_BASE')}: expected an http(s) URL, got {api_base!r}")
    callback = str(raw.get("STATUS_CALLBACK_URL") or "").strip() or None
    if callback and urlsplit(callback).scheme not in ("http", "https"):
        raise ConfigError(f"{raw.source('STATUS_CALLBACK_URL')}: expected an http(s) URL, got {callback!r}")
    if not callback and settings.get("PUBLIC_URL"):
        callback = settings["PUBLIC_URL"] + "/twilio/status"
    templates_dir = raw.path("TEMPLATES_DIR")
    try:
        templates = smstemplates.load_dir(templates_dir)
    except smstemplates.TemplateError as exc:
        raise ConfigError(f"{raw.source('TEMPLATES_DIR')}: {exc}") from None
    backend = str(raw.get("SMS_BACKEND") or "twilio").strip().lower()
    if backend not in ("twilio", "console"):
        raise ConfigError(f"{raw.source('SMS_BACKEND')}: expected twilio or console, got {backend!r}")
    if backend == "console" and env == "live":
        raise ConfigError(
            f"{raw.source('SMS_BACKEND')}: console only prints messages; it cannot be used with GATEWAY_ENV=live"
        )
    return {
        "SMS_BACKEND": backend,
        "TEMPLATES": templates,
        "TWILIO_ACCOUNT_SID": account,
        "TWILIO_API_BASE": api_base,
        "ENV": env,
        "SENDERS": tuple(senders),
        "STATUS_CALLBACK_URL": callback,
        "OUTBOUND_MAX_AGE_SECONDS": _as_int(raw, "OUTBOUND_MAX_AGE_SECONDS", 60, 7 * 86400),
        "RATE_LIMIT_PER_SECOND": _as_float(raw, "RATE_LIMIT_PER_SECOND", 0.01, 100_000),
        "RATE_LIMIT_BURST": _as_int(raw, "RATE_LIMIT_BURST", 1, 1_000_000),
    }


ACCOUNT_KEYS = (
    "account_sid",
    "auth_token_env",
    "auth_token_file",
    "secondary_auth_token_env",
    "secondary_auth_token_file",
    "senders",
    "messaging_services",
    "keywords_file",
    "opt_out_scope",
)


def _accounts(
    raw: Layers, settings: dict[str, Any], environ: Mapping[str, str], overrides: Overrides
) -> accounts.Accounts:
    """The Twilio accounts: today's single-account settings, and each ``[accounts.NAME]`` table.

    What each account adds for its numbers (services, keywords, scope) goes into ``overrides``.
    """
    single_senders = list(settings["SENDERS"])
    table = raw.get("ACCOUNTS") or {}
    if not table:
        return accounts.Accounts.single(settings["TWILIO_ACCOUNT_SID"], settings["AUTH_TOKENS"], single_senders)
    where = raw.source("ACCOUNTS")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of accounts, [accounts.NAME] each")
    found = []
    sid, tokens = settings["TWILIO_ACCOUNT_SID"], settings["AUTH_TOKENS"]
    if sid or tokens or single_senders:
        if not (sid and tokens):
            raise ConfigError(
                f"{where}: with [accounts], the single-account settings (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
                f"[senders]) describe one more account, {accounts.DEFAULT!r}, and need both its SID and its token"
            )
        found.append(accounts.Account(accounts.DEFAULT, sid, tokens, tuple(single_senders)))
    for name, section in table.items():
        resolve = functools.partial(raw.path, "ACCOUNTS")  # relative to the file that holds [accounts]
        found.append(_account(name, section, f"{where}.{name}", settings["ENV"], environ, overrides, resolve))
    try:
        return accounts.Accounts(tuple(found), routed=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _account(
    name: str,
    section: Any,
    where: str,
    env: str,
    environ: Mapping[str, str],
    overrides: Overrides,
    resolve: Callable[[Any], Path],
) -> accounts.Account:
    if not accounts.NAME.fullmatch(name):
        raise ConfigError(f"{where}: a name is 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit")
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a table with account_sid, auth_token_env or auth_token_file, senders")
    for key in section:
        if key in _TOKEN_KEYS:
            raise ConfigError(
                f"{where}.{key}: a token is never written in a configuration file; name the environment variable "
                f"({key}_env) or the file ({key}_file) that holds it"
            )
        if key not in ACCOUNT_KEYS:
            raise ConfigError(f"{where}: unknown setting {key!r} (an account takes {', '.join(ACCOUNT_KEYS)})")
    sid = section.get("account_sid")
    if not isinstance(sid, str) or not accounts.ACCOUNT_SID.fullmatch(sid):
        raise ConfigError(f"{where}.account_sid: expected AC followed by 32 hex characters, got {sid!r}")
    primary = _secret(section, "auth_token", where, environ, resolve)
    if not primary:
        raise ConfigError(f"{where}: needs auth_token_env (an environment variable) or auth_token_file (a file)")
    secondary = _secret(section, "secondary_auth_token", where, environ, resolve, required=False)
    table = section.get("senders", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}.senders: expected a table of dev, sandbox and live lists")
    senders = table.get(env, [])
    _check_senders(senders, f"{where}.senders.{env}")
    own = _services(section.get("messaging_services"), f"{where}.messaging_services")
    for sid_of_service, members in own.items():
        if sid_of_service in overrides.services:
            raise ConfigError(f"{where}.messaging_services: {sid_of_service} is configured for another account too")
        overrides.services[sid_of_service] = members
    members = tuple(number for listed in own.values() for number in listed if number not in senders)
    numbers_of = (*senders, *members)
    if section.get("keywords_file"):
        path = Path(str(section["keywords_file"]))
        book = load_keywords(resolve(path), f"{where}.keywords_file")
        overrides.keywords.update({number: book.for_number(number) for number in numbers_of})
    if section.get("opt_out_scope") is not None:
        mode = _scope_mode(section["opt_out_scope"], f"{where}.opt_out_scope")
        overrides.modes.update(dict.fromkeys((*numbers_of, *own), mode))
    return accounts.Account(name, sid, tuple(filter(None, (primary, secondary))), tuple(senders), members)


def _secret(
    section: dict,
    key: str,
    where: str,
    environ: Mapping[str, str],
    resolve: Callable[[Any], Path],
    required: bool = True,
) -> str | None:
    """A token named by ``KEY_env`` (an environment variable) or ``KEY_file`` (a file), or None.

    An optional one (the secondary token, set only while rotating) may name a variable that is unset.
    """
    variable, path = section.get(f"{key}_env"), section.get(f"{key}_file")
    if variable is not None and path is not None:
        raise ConfigError(f"{where}: give {key}_env or {key}_file, not both")
    if variable is not None:
        value = environ.get(str(variable), "").strip()
        if not value and required:
            raise ConfigError(f"{where}.{key}_env: the environment variable {variable} is not set")
        return value or None
    if path is not None:
        try:
            value = resolve(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.{key}_file: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{where}.{key}_file: {path} is empty")
        return value
    return None

"""SMS templates: loading, validation and rendering. Pure logic.

One file per template in the folder ``templates_dir`` names (TOML with ``title`` and
``body``). Tokens: ``${attribute}``, ``{{entity:name}}``, ``{{vrbl:NAME}}``;
variables are passed with the token's own spelling as the key:
``{"attribute": ..., "entity:name": ..., "vrbl:NAME": ...}``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_TITLE = 100
MAX_BODY = 500
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TOKEN = re.compile(r"\$\{(" + _NAME + r")\}|\{\{(entity|vrbl):(" + _NAME + r")\}\}")
_OPENERS = re.compile(r"\$\{|\{\{")


class TemplateError(ValueError):
    """A template file is invalid; the message names the file and position."""


class MissingVariable(KeyError):
    def __str__(self) -> str:
        return f"missing variable {self.args[0]!r}"


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    body: str
    tokens: tuple[str, ...]

    def render(self, variables: Mapping[str, object]) -> str:
        """Fill every token; raise MissingVariable naming the first one absent."""
        for token in self.tokens:
            if token not in variables or variables[token] is None:
                raise MissingVariable(token)
        return TOKEN.sub(lambda m: str(variables[_key(m)]), self.body)


def _key(match: re.Match[str]) -> str:
    return match.group(1) or f"{match.group(2)}:{match.group(3)}"


def _position(text: str, index: int) -> str:
    before = text[:index]
    line = before.count("\n") + 1
    column = index - (before.rfind("\n") + 1) + 1
    return f"line {line}, column {column}"


def parse(name: str, title: object, body: object, source: str = "<template>") -> Template:
    """Validate one template; raise TemplateError with the file and position."""
    if not isinstance(title, str) or not title.strip():
        raise TemplateError(f"{source}: title is missing")
    if len(title) > MAX_TITLE:
        raise TemplateError(f"{source}: title is {len(title)} characters, at most {MAX_TITLE}")
    if not isinstance(body, str) or not body.strip():
        raise TemplateError(f"{source}: body is missing")
    if len(body) > MAX_BODY:
        raise TemplateError(f"{source}: body is {len(body)} characters, at most {MAX_BODY}")
    valid = {m.start(): m for m in TOKEN.finditer(body)}
    for opener in _OPENERS.finditer(body):
        if opener.start() not in valid:  # no token holds another opener: ${name} and {{kind:name}} cannot
            snippet = body[opener.start() : opener.start() + 24].split("\n")[0]
            raise TemplateError(
                f"{source}: body {_position(body, opener.start())}: unknown token syntax {snippet!r} "
                "(use ${name}, {{entity:name}} or {{vrbl:NAME}})"
            )
    tokens = tuple(dict.fromkeys(_key(m) for m in valid.values()))
    return Template(name, title.strip(), body, tokens)


def load_dir(directory: Path) -> dict[str, Template]:
    """Every ``*.toml`` template in ``directory``, by title; duplicate titles are an error."""
    templates: dict[str, Template] = {}
    if not directory.is_dir():
        return templates
    for path in sorted(directory.glob("*.toml")):
        try:
            with path.open("rb") as handle:  # TOML is UTF-8 by definition, whatever the locale
                data = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: not valid TOML: {exc}") from None
        template = parse(path.stem, data.get("title"), data.get("body"), str(path))
        if template.title in templates:
            raise TemplateError(f"{path}: title {template.title!r} is already used by another template")
        templates[template.title] = template
    return templates

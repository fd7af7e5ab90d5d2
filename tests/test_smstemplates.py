import pytest

from gateway.config import CONFIG_DIR
from gateway.smstemplates import MissingVariable, TemplateError, load_dir, parse


def test_shipped_templates_load():
    templates = load_dir(CONFIG_DIR / "templates")
    template = templates["reservation_confirmation"]
    assert template.tokens == ("customer_name", "property_name", "entity:booking_date", "vrbl:CONFIRMATION_CODE")


def test_render():
    template = parse("t", "t", "Hi ${name}, code {{vrbl:CODE}} for {{entity:day}}. ${name}!")
    assert template.render({"name": "Ana", "vrbl:CODE": 42, "entity:day": "Tue"}) == "Hi Ana, code 42 for Tue. Ana!"


def test_missing_variable_is_named():
    template = parse("t", "t", "Hi ${name}, code {{vrbl:CODE}}")
    with pytest.raises(MissingVariable) as info:
        template.render({"name": "Ana"})
    assert str(info.value) == "missing variable 'vrbl:CODE'"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Hi ${name", "line 1, column 4: unknown token syntax '${name'"),
        ("Hi {{var:name}}", "line 1, column 4: unknown token syntax '{{var:name}}'"),
        ("ok\nthen {{entity: day}}", "line 2, column 6: unknown token syntax '{{entity: day}}'"),
        ("Hi ${1abc}", "unknown token syntax '${1abc}'"),
        ("x" * 501, "body is 501 characters, at most 500"),
        ("  ", "body is missing"),
    ],
)
def test_invalid_bodies(body, message):
    with pytest.raises(
        TemplateError,
        match="^file.toml: .*"
        + message.replace("$", r"\$")
        .replace("{", r"\{")
        .replace("}", r"\}")
        .replace("(", r"\(")
        .replace(")", r"\)")
        .replace("?", r"\?"),
    ):
        parse("t", "title", body, "file.toml")


def test_title_limits():
    with pytest.raises(TemplateError, match="title is 101 characters, at most 100"):
        parse("t", "x" * 101, "body")
    assert parse("t", "x" * 100, "body").title == "x" * 100


def test_load_dir_reports_file(tmp_path):
    (tmp_path / "a.toml").write_text('title = "a"\nbody = "fine ${x}"\n')
    (tmp_path / "b.toml").write_text('title = "b"\nbody = "broken {{oops}}"\n')
    with pytest.raises(TemplateError, match=r"b\.toml: body line 1, column 8: unknown token syntax"):
        load_dir(tmp_path)
    (tmp_path / "b.toml").write_text('title = "a"\nbody = "dup"\n')
    with pytest.raises(TemplateError, match="title 'a' is already used"):
        load_dir(tmp_path)

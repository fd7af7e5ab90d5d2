import pytest

from gateway.core.smstemplates import MissingVariable, TemplateError, load_dir, parse
from gateway.settings import DEFAULTS_DIR


def test_shipped_templates_load():
    templates = load_dir(DEFAULTS_DIR / "templates")
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


USE = "(use ${name}, {{entity:name}} or {{vrbl:NAME}})"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Hi ${name", "body line 1, column 4: unknown token syntax '${name' " + USE),
        ("Hi {{var:name}}", "body line 1, column 4: unknown token syntax '{{var:name}}' " + USE),
        ("ok\nthen {{entity: day}}", "body line 2, column 6: unknown token syntax '{{entity: day}}' " + USE),
        ("\n${x", "body line 2, column 1: unknown token syntax '${x' " + USE),
        ("a\nb\ncc ${x\nmore", "body line 3, column 4: unknown token syntax '${x' " + USE),
        ("${a}${b", "body line 1, column 5: unknown token syntax '${b' " + USE),  # right after a good token
        ("{{{vrbl:X}}", "body line 1, column 1: unknown token syntax '{{{vrbl:X}}' " + USE),
        ("Hi ${1abc}", "body line 1, column 4: unknown token syntax '${1abc}' " + USE),
        ("{{" + "x" * 40, "body line 1, column 1: unknown token syntax '{{" + "x" * 22 + "' " + USE),  # 24 shown
        ("x" * 501, "body is 501 characters, at most 500"),
        ("  ", "body is missing"),
        (None, "body is missing"),
    ],
)
def test_invalid_bodies(body, message):
    with pytest.raises(TemplateError) as info:
        parse("t", "title", body, "file.toml")
    assert str(info.value) == f"file.toml: {message}"


def test_a_good_template_keeps_its_name_title_and_tokens_in_order():
    template = parse("file-stem", "  Title  ", "x" * 488 + "${b}${a}${b}")
    assert (template.name, template.title, template.tokens) == ("file-stem", "Title", ("b", "a"))
    assert len(parse("t", "t", "x" * 500).body) == 500  # the limit itself is allowed


@pytest.mark.parametrize("title", ["", "   ", None, 5])
def test_a_title_is_required(title):
    with pytest.raises(TemplateError) as info:
        parse("t", title, "body")
    assert str(info.value) == "<template>: title is missing"


def test_title_limits():
    with pytest.raises(TemplateError, match="title is 101 characters, at most 100"):
        parse("t", "x" * 101, "body")
    assert parse("t", "x" * 100, "body").title == "x" * 100


def test_load_dir_names_templates_by_title_and_remembers_the_file(tmp_path):
    (tmp_path / "welcome.toml").write_text('title = "greeting"\nbody = "Hi ${name} ✓"\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a template")
    templates = load_dir(tmp_path)
    assert list(templates) == ["greeting"] and templates["greeting"].name == "welcome"
    assert templates["greeting"].render({"name": "Ana"}) == "Hi Ana ✓"
    assert load_dir(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('body = "no title"\n', "title is missing"),
        ('title = "no body"\n', "body is missing"),
        ("title = \n", "not valid TOML: Invalid value (at line 1, column 9)"),
    ],
)
def test_load_dir_reports_the_file_and_the_fault(tmp_path, text, message):
    (tmp_path / "x.toml").write_text(text)
    with pytest.raises(TemplateError) as info:
        load_dir(tmp_path)
    assert str(info.value) == f"{tmp_path / 'x.toml'}: {message}"


def test_load_dir_refuses_a_file_that_is_not_utf8(tmp_path):
    (tmp_path / "x.toml").write_bytes(b'title = "caf\xe9"\nbody = "b"\n')
    with pytest.raises(TemplateError, match=r"x\.toml: not valid TOML: 'utf-8' codec can't decode"):
        load_dir(tmp_path)


def test_load_dir_reports_file(tmp_path):
    (tmp_path / "a.toml").write_text('title = "a"\nbody = "fine ${x}"\n')
    (tmp_path / "b.toml").write_text('title = "b"\nbody = "broken {{oops}}"\n')
    with pytest.raises(TemplateError, match=r"b\.toml: body line 1, column 8: unknown token syntax"):
        load_dir(tmp_path)
    (tmp_path / "b.toml").write_text('title = "a"\nbody = "dup"\n')
    with pytest.raises(TemplateError, match="title 'a' is already used"):
        load_dir(tmp_path)

"""The API's declared shapes: what a request body must be, said in one line when it is not. Pure."""

import pytest
from jsonschema import Draft202012Validator

from gateway.web import schemas

GOOD_OUTBOUND = {"to_number": "+14155550100", "content": "hi"}


@pytest.mark.parametrize(
    ("schema", "body", "message"),
    [
        (schemas.OUTBOUND, None, "expected a JSON object body, got null"),
        (schemas.OUTBOUND, "text", "expected a JSON object body, got a string"),
        (schemas.OUTBOUND, [GOOD_OUTBOUND], "expected a JSON object body, got an array"),
        (schemas.OUTBOUND, {"content": "hi"}, "to_number is required"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "template": ["x"]}, "template must be a string, got an array"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "template": {"a": 1}}, "template must be a string, got an object"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "to_number": 14155550100}, "to_number must be a string, got a number"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "content": True}, "content must be a string, got true or false"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "variables": []}, "variables must be an object, got an array"),
        (
            schemas.OUTBOUND,
            {"to_number": "+14155550100", "template": "t", "variables": {"name": {"x": 1}}},
            "variables.name must be a string or a number, got an object",
        ),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "color": "red"}, "unknown field(s): color"),
        (schemas.OUTBOUND, {"to_number": "+14155550100"}, "give the text as content, or a template with variables"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "template": "t"}, "give content or template (with variables), not both"),
        (schemas.OUTBOUND, {**GOOD_OUTBOUND, "content": "x" * 1601}, "content is 1601 characters; at most 1600"),
        (schemas.MANUAL, {"number": "+1", "twilio_number": "+2", "reason": "", "by": "a"}, "reason must not be empty"),
        (schemas.MANUAL, {"number": "+1", "twilio_number": "+2"}, "reason, by are required"),
        (schemas.CONFIRM, {"by": "a", "note": None}, "note must be a string, got null"),
    ],
)
def test_bad_bodies_are_named(schema, body, message):
    with pytest.raises(schemas.ShapeError) as caught:
        schemas.check(schema, body)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (schemas.OUTBOUND, GOOD_OUTBOUND),
        (schemas.OUTBOUND, {"to_number": "+1", "template": "t", "variables": {"n": 2, "s": "x"}, "agent_number": "+2"}),
        (schemas.CONFIRM, {"by": "ana"}),
        (schemas.DISMISS, {"by": "ana", "note": "asked about hours"}),
    ],
)
def test_good_bodies_pass_unchanged(schema, body):
    assert schemas.check(schema, body) is body


def test_the_document_is_valid_openapi_31_made_of_valid_schemas():
    document = schemas.document("1.2.3")
    assert document["openapi"] == "3.1.0" and document["info"]["version"] == "1.2.3"
    operation_ids = []
    for path, operations in document["paths"].items():
        assert path.startswith("/v1/")
        for operation in operations.values():
            operation_ids.append(operation["operationId"])
            assert operation["responses"] and operation["summary"]
            for answer in operation["responses"].values():
                for content in answer["content"].values():
                    Draft202012Validator.check_schema(content["schema"])
            if "requestBody" in operation:
                Draft202012Validator.check_schema(operation["requestBody"]["content"]["application/json"]["schema"])
    assert len(operation_ids) == len(set(operation_ids)) == len(schemas.OPERATIONS)

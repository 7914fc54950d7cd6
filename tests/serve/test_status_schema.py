"""The HTTP answers and the Structs they are encoded from cannot drift apart: GET
/assets/{id} sends the JSON of engine.status.AssetStatus and the alarm routes that of
engine.alarms.AlarmStatus, so the OpenAPI document must declare exactly their fields, at
every depth (a field a Struct gains and the document lacks fails here, and so does a field
the document promises and the Struct does not send). GET /assets still answers from a
pydantic mirror of engine.status.AssetSummary, held equal here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.alarms import AlarmStatus
from engine.status import AssetStatus, AssetSummary


def field_paths(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    """Every property path of a JSON schema: nested objects with ``.``, a dict's values
    with ``.*``, a list's items with ``[]``, each member of a union tagged by ``kind`` as
    ``[kind]``; nulls and plain values add nothing."""
    if "$ref" in schema:
        return field_paths(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, prefix)
    paths: set[str] = set()
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        resolved = alternative
        while "$ref" in resolved:
            resolved = defs[resolved["$ref"].rsplit("/", 1)[-1]]
        tag = _tag(resolved)
        paths |= field_paths(resolved, defs, f"{prefix}[{tag}]" if tag else prefix)
    for name, child in schema.get("properties", {}).items():
        paths.add(f"{prefix}.{name}")
        paths |= field_paths(child, defs, f"{prefix}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        paths |= field_paths(schema["additionalProperties"], defs, f"{prefix}.*")
    if isinstance(schema.get("items"), dict):
        paths |= field_paths(schema["items"], defs, f"{prefix}[]")
    return paths


def _tag(schema: dict[str, Any]) -> str | None:
    kind = schema.get("properties", {}).get("kind", {})
    if "const" in kind:
        return kind["const"]
    return kind["enum"][0] if len(kind.get("enum", [])) == 1 else None


def struct_paths(struct: type) -> set[str]:
    (schema,), components = msgspec.json.schema_components([struct])
    return field_paths(schema, components)


def http_paths(model: str) -> set[str]:
    return field_paths(components()[model], components())


def answer_paths(path: str, method: str = "get") -> set[str]:
    """The field paths of the 200 answer ``path`` declares."""
    from serve.app import app

    answer = app.openapi()["paths"][path][method]["responses"]["200"]
    return field_paths(answer["content"]["application/json"]["schema"], components())


def components() -> dict[str, Any]:
    from serve.app import app

    return app.openapi()["components"]["schemas"]


def test_the_status_answer_declares_every_field_of_the_status_struct_and_no_other():
    struct, http = struct_paths(AssetStatus), answer_paths("/assets/{asset_id}")
    assert struct - http == set(), "fields the HTTP answer sends but OpenAPI does not declare"
    assert http - struct == set(), "fields OpenAPI declares but the answer does not send"
    # the walk sees deep fields and each kind of link
    assert {".estimator.parameters.*.std", ".link[modbus].reconnect_attempts",
            ".link[mqtt].received", ".setpoints.*.time", ".alarms[].shelved_until",
            ".external_writes[].gated"} <= struct


def test_the_alarm_answers_declare_every_field_of_the_alarm_struct():
    alarm = struct_paths(AlarmStatus)
    assert {".shelved_until", ".out_of_service"} <= alarm
    assert answer_paths("/alarms/{alarm}/acknowledge", "post") == alarm
    assert answer_paths("/alarms") == answer_paths("/assets/{asset_id}/alarms") == {
        f"[]{path}" for path in alarm}


def test_the_asset_list_declares_every_field_of_the_summary_struct():
    assert struct_paths(AssetSummary) == http_paths("AssetSummary")


def test_a_field_added_to_the_struct_alone_is_caught():
    """The check itself: a Struct with one more field than the answer declares fails it."""

    class Extended(AssetSummary, frozen=True, kw_only=True):
        plc_writes: list[str] = []

    assert struct_paths(Extended) - http_paths("AssetSummary") == {".plc_writes"}

"""Generate the reference sections of docs/api.md: REST from the gateway's OpenAPI document, gRPC from the protos.

python scripts/gen_api_docs.py          # rewrite the generated sections of docs/api.md in place (`make docs`)
python scripts/gen_api_docs.py --check  # exit 1 when docs/api.md differs from what would be generated

Only the text between the markers `<!-- generated:<name>:start -->` and `<!-- generated:<name>:end -->`
is rewritten; everything else in docs/api.md is hand-written and kept as it is.

- `rest`: every path and method of the OpenAPI document the gateway serves at /api/openapi.json (built by
  `gateway.openapi` from the same `Operation`s the app routes), with its summary, description, auth,
  parameters, request body, responses and problem statuses, then every schema with its fields.
- `grpc`: every service, method and message of the compiled descriptors in protos/gen/python, with the
  leading comments of the .proto sources (protoc's source_code_info) as descriptions.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import importlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc_tools
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos" / "gen" / "python")]

API_DOC = ROOT / "docs" / "api.md"
PROTO_ROOT = ROOT / "protos"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
SCHEMA_PREFIX = "#/components/schemas/"
PARAMETER_PREFIX = "#/components/parameters/"
METHODS = ("get", "post", "put", "patch", "delete")


def start_marker(name: str) -> str:
    return f"<!-- generated:{name}:start (scripts/gen_api_docs.py; edit the code, then run `make docs`) -->"


def end_marker(name: str) -> str:
    return f"<!-- generated:{name}:end -->"


def cell(text: object) -> str:
    """Text fit for one cell of a Markdown table: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading."""
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return slug.replace(" ", "-")


# REST ------------------------------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The document the gateway serves, built on default settings (not this shell's GATEWAY_* variables)."""
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("GATEWAY_")}
    try:
        from gateway.app import create_app
        from gateway.config import GatewaySettings
        from gateway.openapi import OPENAPI_PATH

        app = create_app(GatewaySettings())
    finally:
        os.environ.update(saved)
    for route in app.routes:
        if getattr(route, "path", None) == OPENAPI_PATH:
            response = asyncio.run(route.endpoint(None))  # type: ignore[attr-defined]
            document: dict[str, Any] = json.loads(response.body)
            return document
    raise SystemExit(f"the gateway serves no {OPENAPI_PATH}")


def schema_name(ref: str) -> str:
    return ref.removeprefix(SCHEMA_PREFIX)


def schema_link(ref: str) -> str:
    name = schema_name(ref)
    return f"[`{name}`](#{anchor('schema ' + name)})"


def type_of(schema: Mapping[str, Any]) -> str:
    """A short rendering of a JSON Schema's type: `string`, `integer`, `[Transfer]`, `"a" \\| "b"`, `X \\| null`."""
    if "$ref" in schema:
        return schema_link(schema["$ref"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " or ".join(type_of(option) for option in schema[combinator])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " or ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"object of {type_of(schema['additionalProperties'])}"
    if isinstance(kind, list):
        return " or ".join(f"`{k}`" for k in kind)
    text = f"`{kind}`"
    if "format" in schema:
        text += f" ({schema['format']})"
    return text


RULES = (
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches `{}`"),
)


def rules_of(schema: Mapping[str, Any]) -> list[str]:
    found = []
    for option in [schema, *schema.get("anyOf", ())]:
        for key, phrase in RULES:
            if key in option:
                found.append(phrase.format(option[key]))
    if schema.get("default") is not None:
        found.append(f"default `{json.dumps(schema['default'])}`")
    return found


def describe(schema: Mapping[str, Any]) -> str:
    parts = [schema.get("description", "")]
    for option in schema.get("anyOf", ()):
        if option.get("description"):
            parts.append(option["description"])
    parts += rules_of(schema)
    if schema.get("examples"):
        parts.append("e.g. " + ", ".join(f"`{json.dumps(e)}`" for e in schema["examples"]))
    return cell("; ".join(p.rstrip(".") for p in parts if p))


def parameter_rows(document: Mapping[str, Any], parameters: Iterable[Mapping[str, Any]]) -> list[str]:
    rows = []
    for parameter in parameters:
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].removeprefix(PARAMETER_PREFIX)]
        schema = parameter.get("schema", {})
        text = "; ".join(p.rstrip(".") for p in (parameter.get("description", ""), describe(schema)) if p)
        rows.append(
            f"| `{parameter['name']}` | {parameter['in']} | {'yes' if parameter.get('required') else 'no'} "
            f"| {type_of(schema)} | {cell(text)} |"
        )
    return rows


def field_rows(schema: Mapping[str, Any]) -> list[str]:
    required = set(schema.get("required", ()))
    return [
        f"| `{name}` | {type_of(prop)} | {'yes' if name in required else 'no'} | {describe(prop)} |"
        for name, prop in schema.get("properties", {}).items()
    ]


def body_schemas(schema: Mapping[str, Any]) -> list[str]:
    if "$ref" in schema:
        return [schema["$ref"]]
    return [option["$ref"] for option in schema.get("oneOf", ()) if "$ref" in option]


def operation_lines(document: Mapping[str, Any], path: str, method: str, op: Mapping[str, Any]) -> Iterator[str]:
    yield f"#### `{method.upper()} {path}`"
    yield ""
    yield f"{op['summary']}."
    if op.get("description"):
        yield ""
        yield cell(op["description"])
    yield ""
    auth = "bearer token (`Authorization: Bearer <JWT>`)" if op.get("security") else "none"
    facts = [f"Auth: {auth}", f"operation id `{op['operationId']}`"]
    if op.get("tags"):
        facts.append("tag " + ", ".join(f"`{t}`" for t in op["tags"]))
    yield "; ".join(facts) + "."
    parameters = [p for p in op.get("parameters", ()) if p.get("name") != "X-Request-ID"]
    if parameters:
        yield ""
        yield "| parameter | in | required | type | description |"
        yield "|---|---|---|---|---|"
        yield from parameter_rows(document, parameters)
    body = op.get("requestBody")
    if body:
        yield ""
        schema = body["content"]["application/json"]["schema"]
        refs = body_schemas(schema)
        shapes = " or ".join(schema_link(ref) for ref in refs)
        kind = "one of " if len(refs) > 1 else ""
        needed = "required" if body.get("required") else "optional"
        yield f"Request body ({needed}, `application/json`): {kind}{shapes}."
    yield ""
    yield "| status | meaning | body |"
    yield "|---|---|---|"
    problems = [status for status, response in op["responses"].items() if is_problem(response)]
    for status, response in op["responses"].items():
        if status in problems:
            continue
        content = response.get("content", {})
        bodies = []
        for media_type, media in content.items():
            schema = media.get("schema", {})
            bodies.append(f"{type_of(schema) if schema else 'any'} (`{media_type}`)")
        headers = [h for h in response.get("headers", {}) if h != "X-Request-ID"]
        text = response["description"] + (f" Headers: {', '.join(f'`{h}`' for h in headers)}." if headers else "")
        yield f"| {status} | {cell(text)} | {cell('; '.join(bodies)) or '—'} |"
    if problems:
        yield ""
        statuses = ", ".join(f"[{status}](#problem-{status})" for status in problems)
        yield f"Problems (`application/problem+json`, [`ProblemDetails`](#schema-problemdetails)): {statuses}."
    yield ""


def is_problem(response: Mapping[str, Any]) -> bool:
    return list(response.get("content", {})) == ["application/problem+json"]


def problem_lines(document: Mapping[str, Any]) -> Iterator[str]:
    """What each problem status means, wherever it occurs (the same text on every operation)."""
    meanings: dict[str, dict[str, None]] = {}
    for item in document["paths"].values():
        for method in METHODS:
            for status, response in item.get(method, {}).get("responses", {}).items():
                if is_problem(response):
                    headers = [h for h in response.get("headers", {}) if h != "X-Request-ID"]
                    text = response["description"] + (
                        f" Headers: {', '.join(f'`{h}`' for h in headers)}." if headers else ""
                    )
                    meanings.setdefault(status, {})[text] = None
    yield "#### Problem statuses"
    yield ""
    yield "What each status of a problem response means, on every operation that lists it; the `reason` in the body"
    yield "says exactly what happened (see [Errors](#errors))."
    yield ""
    for status in sorted(meanings):
        yield f'- <a id="problem-{status}"></a>**{status}**: {cell(" / ".join(meanings[status]))}'
    yield ""


def rest_section(document: Mapping[str, Any]) -> str:
    lines = [
        f"OpenAPI {document['openapi']}, `{document['info']['title']}` {document['info']['version']}. "
        "Every response carries `X-Request-ID`; every operation accepts it "
        "(see [Idempotency](#idempotency) for `Idempotency-Key`).",
        "",
        "| method and path | auth | summary |",
        "|---|---|---|",
    ]
    operations = [
        (path, method, item[method]) for path, item in document["paths"].items() for method in METHODS if method in item
    ]
    for path, method, op in operations:
        link = anchor(f"{method.upper()} {path}")
        auth = "bearer" if op.get("security") else "none"
        lines.append(f"| [`{method.upper()} {path}`](#{link}) | {auth} | {cell(op['summary'])} |")
    lines.append("")
    lines.extend(problem_lines(document))
    for path, method, op in operations:
        lines.extend(operation_lines(document, path, method, op))
    lines += ["#### Schemas", ""]
    for name, schema in sorted(document["components"]["schemas"].items()):
        lines.append(f"##### Schema {name}")
        lines.append("")
        if schema.get("description"):
            lines += [cell(schema["description"]), ""]
        if "properties" in schema:
            lines += ["| field | type | required | description |", "|---|---|---|---|", *field_rows(schema)]
        else:
            lines.append(f"Type: {type_of(schema)}.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# gRPC ------------------------------------------------------------------------------------------------------------

PROTO_MODULES = (
    "billing.common.v1.errors_pb2",
    "billing.common.v1.money_pb2",
    "billing.common.v1.admin_pb2",
    "billing.credits.v1.credits_pb2",
    "billing.payments.v1.payments_pb2",
    "billing.subscriptions.v1.subscriptions_pb2",
)
# FileDescriptorProto field numbers, as source_code_info paths use them.
MESSAGE, ENUM, SERVICE = 4, 5, 6
FIELD, NESTED_MESSAGE, NESTED_ENUM, VALUE, METHOD = 2, 3, 4, 2, 2


def proto_comments() -> dict[str, dict[tuple[int, ...], str]]:
    """The leading comment of each element of each .proto file: {file name: {source path: comment}}."""
    names = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / "billing").rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "descriptors.pb"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{WELL_KNOWN}",
            f"--descriptor_set_out={out}",
            "--include_source_info",
            *names,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    comments: dict[str, dict[tuple[int, ...], str]] = {}
    for file in files.file:
        comments[file.name] = {
            tuple(location.path): " ".join(location.leading_comments.split())
            for location in file.source_code_info.location
            if location.leading_comments.strip()
        }
    return comments


def field_type(field: FieldDescriptor) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return f"map<{field_type(key)}, {field_type(value)}>"
    named = field.message_type or field.enum_type
    if named is not None:
        name = f"`{named.full_name}`"
        if named.full_name.startswith("billing."):
            suffix = " (enum)" if field.enum_type is not None else ""
            name = f"[{name}](#{anchor(named.full_name + suffix)})"
    else:
        name = f"`{SCALARS[field.type]}`"
    if field.is_repeated:
        return f"repeated {name}"
    if field.has_presence and field.containing_oneof is None and field.message_type is None:
        return f"optional {name}"
    return name


SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64",
    FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


def message_lines(message: Descriptor, path: tuple[int, ...], comments: Mapping[tuple[int, ...], str]) -> Iterator[str]:
    yield f"##### `{message.full_name}`"
    yield ""
    if comments.get(path):
        yield cell(comments[path])
        yield ""
    if message.fields:
        yield "| field | type | description |"
        yield "|---|---|---|"
        for index, field in enumerate(message.fields):
            note = comments.get((*path, FIELD, index), "")
            if field.containing_oneof is not None:
                note = f"one of `{field.containing_oneof.name}`. {note}".strip()
            yield f"| `{field.name}` = {field.number} | {field_type(field)} | {cell(note)} |"
    else:
        yield "No fields."
    yield ""
    for index, nested in enumerate(message.nested_types):
        if not nested.GetOptions().map_entry:
            yield from message_lines(nested, (*path, NESTED_MESSAGE, index), comments)
    for index, enum in enumerate(message.enum_types):
        yield from enum_lines(enum, (*path, NESTED_ENUM, index), comments)


def enum_lines(enum: EnumDescriptor, path: tuple[int, ...], comments: Mapping[tuple[int, ...], str]) -> Iterator[str]:
    yield f"##### `{enum.full_name}` (enum)"
    yield ""
    if comments.get(path):
        yield cell(comments[path])
        yield ""
    yield "| value | number | description |"
    yield "|---|---|---|"
    for index, value in enumerate(enum.values):
        yield f"| `{value.name}` | {value.number} | {cell(comments.get((*path, VALUE, index), ''))} |"
    yield ""


def file_lines(file: FileDescriptor, comments: Mapping[tuple[int, ...], str]) -> Iterator[str]:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    for s_index, service_proto in enumerate(proto.service):
        service = file.services_by_name[service_proto.name]
        yield f"#### `{service.full_name}`"
        yield ""
        yield f"Defined in `protos/{file.name}`."
        if comments.get((SERVICE, s_index)):
            yield ""
            yield cell(comments[(SERVICE, s_index)])
        yield ""
        yield "| method | request → response | description |"
        yield "|---|---|---|"
        for m_index, method in enumerate(service.methods):
            note = comments.get((SERVICE, s_index, METHOD, m_index), "")
            request = f"[`{method.input_type.name}`](#{anchor(method.input_type.full_name)})"
            response = f"[`{method.output_type.name}`](#{anchor(method.output_type.full_name)})"
            yield f"| `{method.name}` | {request} → {response} | {cell(note)} |"
        yield ""
    if not proto.message_type and not proto.enum_type:
        return
    yield f"Messages and enums of `protos/{file.name}` (package `{file.package}`):"
    yield ""
    for index, message_proto in enumerate(proto.message_type):
        yield from message_lines(file.message_types_by_name[message_proto.name], (MESSAGE, index), comments)
    for index, enum_proto in enumerate(proto.enum_type):
        yield from enum_lines(file.enum_types_by_name[enum_proto.name], (ENUM, index), comments)


def grpc_section() -> str:
    comments = proto_comments()
    files: list[FileDescriptor] = [importlib.import_module(name).DESCRIPTOR for name in PROTO_MODULES]
    lines = ["| service | methods |", "|---|---|"]
    for file in files:
        for service in file.services_by_name.values():
            methods = ", ".join(f"`{m.name}`" for m in service.methods)
            lines.append(f"| [`{service.full_name}`](#{anchor(service.full_name)}) | {methods} |")
    lines.append("")
    # Services first (they are what a caller looks for), then the shared types.
    for file in sorted(files, key=lambda f: (not f.services_by_name, f.name)):
        lines.append(f"### `{file.name}`")
        lines.append("")
        lines.extend(file_lines(file, comments.get(file.name, {})))
    return "\n".join(lines).rstrip() + "\n"


# The document ----------------------------------------------------------------------------------------------------


def replace_section(text: str, name: str, content: str) -> str:
    start, end = start_marker(name), end_marker(name)
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise SystemExit(f"{API_DOC.relative_to(ROOT)} must hold exactly one pair of markers:\n{start}\n{end}")
    return pattern.sub(lambda _: f"{start}\n\n{content}\n{end}", text)


def generated(text: str) -> str:
    text = replace_section(text, "rest", rest_section(openapi_document()))
    return replace_section(text, "grpc", grpc_section())


def diff(old: str, new: str) -> Sequence[str]:
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(), "docs/api.md", "generated", lineterm=""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/api.md is out of date")
    args = parser.parse_args(argv)
    current = API_DOC.read_text()
    fresh = generated(current)
    if args.check:
        if fresh != current:
            print("\n".join(diff(current, fresh)[:80]))
            print("docs/api.md is out of date: run `make docs` and commit the result", file=sys.stderr)
            return 1
        print("docs/api.md is up to date")
        return 0
    if fresh != current:
        API_DOC.write_text(fresh)
        print("docs/api.md: generated sections rewritten")
    else:
        print("docs/api.md: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

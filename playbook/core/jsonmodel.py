"""One JSON (de)serialiser for frozen dataclasses, and the JSON Schema of their JSON form.

The summary sections between the steps are frozen dataclasses; this module turns them into
JSON-ready values and back, reading the field types (``str``, ``int``, ``float``, ``bool``,
``datetime.date`` as an ISO string, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``,
nested dataclasses, ``Any``). Reading is strict: a missing or unknown key raises
:class:`FieldError` naming the section and the field, so a renamed field fails where it is read,
not silently two notebooks later. A field whose metadata has ``omit_if_none`` is left out of the
JSON when it is None (and read as None when absent), ``omitted_with(name)`` when field ``name`` is
None; ``json=False`` keeps a field out of the JSON.
No dependency beyond the standard library (the JSON Schema is draft 2020-12).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import types
import typing
from typing import Any, Union

OMIT_IF_NONE = {"omit_if_none": True}
NOT_IN_JSON = {"json": False}


def omitted_with(name: str) -> dict[str, str]:
    """Field metadata: the key is left out of the JSON when field ``name`` is None (a group of keys
    written together, such as a primary metric's K-day window)."""
    return {"omit_with": name}


def _omitted(f: dataclasses.Field, obj: Any) -> bool:
    if f.metadata.get("omit_if_none"):
        return getattr(obj, f.name) is None
    if "omit_with" in f.metadata:
        return getattr(obj, f.metadata["omit_with"]) is None
    return False


def _optional_key(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("omit_if_none")) or "omit_with" in f.metadata


class FieldError(LookupError):
    """A section's JSON does not match its model; the message names the section and the field."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _json_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("json", True)]


def to_json(obj: Any) -> Any:
    """``obj`` as a JSON-ready value (dataclass -> dict in field order, tuple -> list, date -> ISO)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in _json_fields(type(obj)):
            if not _omitted(f, obj):
                out[f.name] = to_json(getattr(obj, f.name))
        return out
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, dt.date):
        return obj.isoformat()
    return obj


def from_json(tp: Any, data: Any, where: str) -> Any:
    """Read ``data`` (parsed JSON) as type ``tp``; ``where`` names the place for errors (``lever.options[0]``)."""
    if tp is Any:
        return data
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None:
            if type(None) in args:
                return None
            raise FieldError(f"{where} is null, expected {_name(tp)}")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return from_json(arg, data, where)
            except FieldError as e:
                errors.append(str(e))
        raise FieldError("; ".join(errors))
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, where)
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise FieldError(f"{where} is {type(data).__name__}, expected a list")
        item = typing.get_args(tp)[0]
        values = [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(values) if origin is tuple else values
    if origin is dict:
        if not isinstance(data, dict):
            raise FieldError(f"{where} is {type(data).__name__}, expected an object")
        item = typing.get_args(tp)[1]
        return {k: from_json(item, v, f"{where}.{k}") for k, v in data.items()}
    return _scalar(tp, data, where)


def _dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise FieldError(f"{where} is {type(data).__name__}, expected an object ({cls.__name__})")
    hints = _hints(cls)
    fields = _json_fields(cls)
    unknown = sorted(set(data) - {f.name for f in fields})
    if unknown:
        raise FieldError(f"{where} has unknown field(s) {', '.join(unknown)} ({cls.__name__} does not declare them)")
    values = {}
    for f in fields:
        if f.name not in data:
            if _optional_key(f):
                values[f.name] = None
                continue
            raise FieldError(f"{where} has no field '{f.name}' ({cls.__name__} requires it)")
        values[f.name] = from_json(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**values)


def _scalar(tp: Any, data: Any, where: str) -> Any:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            words = ", ".join(repr(m.value) for m in tp)
            raise FieldError(f"{where} is {data!r}, expected one of {words} ({tp.__name__})") from None
    if tp is dt.date:
        if isinstance(data, str):
            try:
                return dt.date.fromisoformat(data[:10])
            except ValueError:
                pass
        raise FieldError(f"{where} is {data!r}, expected an ISO date")
    if tp is float and isinstance(data, (int, float)) and not isinstance(data, bool):
        return data  # an integral float is kept as written (3 stays 3) so the JSON round-trips unchanged
    if tp is int and isinstance(data, int) and not isinstance(data, bool):
        return data
    if tp in (str, bool) and isinstance(data, tp):
        return data
    raise FieldError(f"{where} is {data!r}, expected {_name(tp)}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def json_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``tp``'s JSON form; dataclasses go to ``defs`` (``$defs``) by class name."""
    if tp is Any:
        return {}
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a, defs) for a in typing.get_args(tp)]}
    if tp is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: a recursive model refers to itself
            hints = _hints(tp)
            fields = _json_fields(tp)
            schema: dict[str, Any] = {"type": "object"}
            doc = (tp.__doc__ or "").strip()
            if doc and not doc.startswith(f"{name}("):
                schema["description"] = doc.split("\n\n")[0].replace("\n", " ")
            schema["properties"] = {f.name: json_schema(hints[f.name], defs) for f in fields}
            schema["required"] = [f.name for f in fields if not _optional_key(f)]
            schema["additionalProperties"] = False
            defs[name] = schema
        return {"$ref": f"#/$defs/{name}"}
    if origin in (list, tuple):
        return {"type": "array", "items": json_schema(typing.get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(typing.get_args(tp)[1], defs)}
    if tp is dt.date:
        return {"type": "string", "format": "date"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON Schema for {tp!r}")

"""``KEY=VALUE`` overrides (``--set``) of a frozen dataclass, parsed by each field's type hint.

One parser for every ``--set`` jsynth has (``jsynth train``'s TrainConfig, ``jsynth eval``'s
EvalOptions), so a value means the same everywhere and a bad one is an error everywhere.
"""
from __future__ import annotations

import dataclasses
import typing

from jsynth.errors import InputError

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def apply_overrides(obj, assignments: list[str], *, error: type[Exception] = InputError,
                    settable: typing.Iterable[str] | None = None):
    """``dataclasses.replace(obj, ...)`` with each ``KEY=VALUE`` parsed by the field's type.

    Args:
      obj: a dataclass instance (validated again by its ``__post_init__``).
      assignments: strings ``KEY=VALUE``.
      error: the exception type raised for a malformed item, an unknown key or a bad value.
      settable: the keys that may be set (default: every field).

    Types understood: bool (true/false/1/0/yes/no), int, float, str, ``X | None`` ("none"/"null"),
    and ``tuple[float, ...]``/``tuple[int, ...]`` as a comma list.
    """
    hints = typing.get_type_hints(type(obj))
    keys = sorted(settable if settable is not None else (f.name for f in dataclasses.fields(obj)))
    changes = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise error(f"--set expects KEY=VALUE, got {item!r}")
        if key not in keys:
            raise error(f"unknown --set key {key!r}; valid keys: {keys}")
        changes[key] = parse_value(raw, hints[key], key, error)
    return dataclasses.replace(obj, **changes)


def parse_value(raw: str, hint, key: str, error: type[Exception] = InputError):
    """``raw`` as a value of type ``hint`` (see ``apply_overrides``)."""
    args = typing.get_args(hint)
    if type(None) in args and raw.lower() in ("none", "null"):
        return None
    kinds = [t for t in args if t is not type(None)] if type(None) in args else [hint]
    kind = kinds[0]
    try:
        if typing.get_origin(kind) is tuple:
            element = typing.get_args(kind)[0]
            return tuple(element(v) for v in raw.split(",") if v)
        if kind is bool:
            if raw.lower() not in _TRUE + _FALSE:
                raise ValueError(raw)
            return raw.lower() in _TRUE
        return kind(raw)
    except ValueError:
        name = getattr(kind, "__name__", str(kind))
        article = "an" if name[:1] in "aeiou" else "a"
        raise error(f"--set {key}={raw!r}: expected {article} {name}") from None

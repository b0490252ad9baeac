"""A row's key as people give it (a command line, a URL, a JSON body), and back.

:func:`parse_key` reads the text a person typed, :func:`typed_key` turns values into
those the key columns hold, :func:`key_values` splits typed text into values where the
table is not known yet (the agent types them), and :func:`key_text` names a key to a
person. A key that does not fit is InvalidArgument: one sentence naming the table and
the key column.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional, Sequence, Union

from terrafusion_agent.errors import InvalidArgument
from terrafusion_agent.stores.base import Column, TableInfo

#: a key as callers give it: its values in key column order (a bare value for a
#: one-column key), or the text a person typed (see :func:`parse_key`)
KeyInput = Union[str, Sequence[Any], int, float]
#: the largest and smallest integer SQLite stores
_INT64 = 2**63


def parse_key(info: TableInfo, text: str) -> tuple:
    """A key as a person types it: the value itself for a one-column key (``1001``,
    ``R-1001``), a JSON array of the values in key column order for any key
    (``[1001]``, ``["x", 2]``); each value typed by its column's kind."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"The key is empty; give the value of {_columns(info)} "
                              f"of table {info.name}.")
    values = _array(text)
    if values is not None:
        return typed_key(info, values)
    if len(info.pk) > 1:
        raise InvalidArgument(
            f"Table {info.name} has a key of {len(info.pk)} columns ({_columns(info)}): "
            f"give it as a JSON array of {len(info.pk)} values in that order, such as "
            f"{_example(info)}, not {text!r}.")
    column = _key_columns(info)[0]
    # a text key is the text as typed; a number may come with spaces around it
    return (_typed(info, column, text if column.kind == "text" else text.strip()),)


def typed_key(info: TableInfo, key: KeyInput) -> tuple:
    """``key`` (its values in key column order, a bare value for a one-column key, or
    text as :func:`parse_key` reads it) as the values the key columns hold."""
    if isinstance(key, str):
        return parse_key(info, key)
    values = list(key) if isinstance(key, (list, tuple)) else [key]
    if len(values) != len(info.pk):
        raise InvalidArgument(
            f"Table {info.name} has a key of {len(info.pk)} column(s) ({_columns(info)}), "
            f"so a key has {len(info.pk)} value(s), not {len(values)}.")
    return tuple(_typed(info, column, value)
                 for column, value in zip(_key_columns(info), values))


def key_values(text: str) -> tuple:
    """A key as typed, split into its values but not typed yet: a JSON array's values,
    else the text itself as the one value (:func:`typed_key` of those values is
    :func:`parse_key` of the text, up to the wording of a wrong one)."""
    values = _array(text)
    return (text,) if values is None else tuple(values)


def key_text(key: Sequence[Any]) -> str:
    """How a key is named to a person: ``1001``, ``["A", 3]``."""
    if len(key) == 1 and isinstance(key[0], (int, float, str)):
        return str(key[0])
    return json.dumps(list(key), ensure_ascii=False, default=str)


def _array(text: str) -> Optional[list]:
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        values = json.loads(stripped)
    except ValueError:
        return None
    return values if isinstance(values, list) else None


def _key_columns(info: TableInfo) -> list[Column]:
    by_name = {c.name: c for c in info.columns}
    return [by_name[name] for name in info.pk]


def _columns(info: TableInfo) -> str:
    return ", ".join(info.pk)


def _example(info: TableInfo) -> str:
    samples = {"integer": "1001", "real": "2.5", "decimal": "2.5", "boolean": "true",
               "date": '"2026-12-01"', "datetime": '"2026-12-01T14:30:00"'}
    return "[" + ", ".join(samples.get(c.kind, '"A-1"') for c in _key_columns(info)) + "]"


def _typed(info: TableInfo, column: Column, value: Any) -> Any:
    """``value`` as key column ``column`` holds it; one sentence when it cannot be."""
    kind = column.kind

    def wrong(what: str) -> InvalidArgument:
        return InvalidArgument(f"{value!r} is not a key of table {info.name}: its key "
                               f"column {column.name} holds {what}.")

    if kind == "integer":
        number: Any = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                pass
        if number is None:
            raise wrong("whole numbers")
        if not -_INT64 <= number < _INT64:
            raise wrong(f"whole numbers from {-_INT64} to {_INT64 - 1}")
        return number
    if kind in ("real", "decimal"):
        # a numeric key is matched as a double, as the sync matches it
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                number = float(value)
            elif isinstance(value, str):
                number = float(value.strip())
            else:
                raise wrong("numbers")
        except (ValueError, OverflowError):
            raise wrong("numbers") from None
        if not math.isfinite(number):
            raise wrong("finite numbers")
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "t", "yes"):
            return True
        if text in ("false", "0", "f", "no"):
            return False
        raise wrong("true or false")
    if kind in ("text", "date", "datetime"):
        if isinstance(value, str):
            try:
                value.encode("utf-8")  # a lone surrogate from JSON cannot reach SQLite
            except UnicodeEncodeError:
                raise wrong("text without lone surrogates") from None
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # [1001] for a text key: the digits are its text
        raise wrong("text")
    raise wrong(f"{kind} values, which cannot be given as a key")

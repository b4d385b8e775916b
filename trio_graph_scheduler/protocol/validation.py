"""Field checkers, built once per message class from the fields' annotations.

A checker takes a field's value and returns it, normalised, or raises :class:`InvalidValue`
saying what is wrong ("must be int, got str"). Normalising is deliberately narrow: an
``int`` or ``str`` subclass (an ``IntEnum``, a ``StrEnum`` such as ``TaskStatus``) becomes
the plain ``int`` or ``str``, and an ``int`` given for a ``float`` becomes a ``float``, so
that what goes on the wire is always the exact type the peer checks for. Containers must be
exactly ``list`` and ``dict``.

Annotations understood: ``int`` (0 to 2**63 - 1: every int of the protocol is a count, an
id or a version), ``float`` (finite), ``bool``, ``str``, ``bytes``, ``X | None``,
``list[X]``, ``dict[K, V]``, a record class (checked by its own ``__post_init__``), ``Any``
(not checked: a value), and ``Annotated[X, rule, ...]`` where each rule is a function that
raises :class:`InvalidValue` for a value of type X it refuses.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable
from typing import Annotated, Any, Final, Union, get_args, get_origin

#: The largest int a structural field may hold: msgpack's signed 64-bit range, so that
#: peers in other languages can read every id and count as an int64.
MAX_WIRE_INT: Final = 2**63 - 1

Check = Callable[[Any], Any]
Rule = Callable[[Any], None]


class InvalidValue(Exception):
    """A field's value breaks its annotation; the text says how, without the field name.

    An internal signal: the message classes catch it and raise ``LocalProtocolError``.
    """


def type_name(value: object) -> str:
    """The short name of ``value``'s type, for error messages."""
    return type(value).__name__


def _check_int(value: object) -> int:
    if type(value) is int:
        checked = value
    elif isinstance(value, int) and not isinstance(value, bool):
        checked = int(value)
    else:
        raise InvalidValue(f"must be int, got {type_name(value)}")
    if not 0 <= checked <= MAX_WIRE_INT:
        raise InvalidValue(f"must be between 0 and 2**63 - 1, got {checked}")
    return checked


def _check_float(value: object) -> float:
    if type(value) is float:
        checked = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        checked = float(value)
    else:
        raise InvalidValue(f"must be float, got {type_name(value)}")
    if not math.isfinite(checked):
        raise InvalidValue(f"must be finite, got {checked}")
    return checked


def _check_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise InvalidValue(f"must be bool, got {type_name(value)}")
    return value


def _check_str(value: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        # str.__str__ of a subclass returns an exact str copy; str() could be overridden.
        return str.__str__(value)
    raise InvalidValue(f"must be str, got {type_name(value)}")


def _check_bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise InvalidValue(f"must be bytes, got {type_name(value)}")
    return value


_SIMPLE_CHECKS: Final[dict[Any, Check]] = {
    int: _check_int,
    float: _check_float,
    bool: _check_bool,
    str: _check_str,
    bytes: _check_bytes,
}


def _optional(check: Check | None) -> Check | None:
    if check is None:
        return None

    def check_optional(value: Any) -> Any:
        return None if value is None else check(value)

    return check_optional


def _list_of(check: Check | None) -> Check:
    def check_list(value: Any) -> list[Any]:
        if type(value) is not list:
            raise InvalidValue(f"must be list, got {type_name(value)}")
        if check is None:
            return list(value)
        result = []
        for index, item in enumerate(value):
            try:
                result.append(check(item))
            except InvalidValue as exc:
                raise InvalidValue(f"item {index}: {exc}") from None
        return result

    return check_list


def _dict_of(check_key: Check | None, check_value: Check | None) -> Check:
    def check_dict(value: Any) -> dict[Any, Any]:
        if type(value) is not dict:
            raise InvalidValue(f"must be dict, got {type_name(value)}")
        result = {}
        for key, item in value.items():
            try:
                checked_key = key if check_key is None else check_key(key)
            except InvalidValue as exc:
                raise InvalidValue(f"key {key!r}: {exc}") from None
            try:
                result[checked_key] = item if check_value is None else check_value(item)
            except InvalidValue as exc:
                raise InvalidValue(f"value of {key!r}: {exc}") from None
        return result

    return check_dict


def _instance_of(cls: type) -> Check:
    # Records validate themselves when built, so an instance is already valid.
    def check_instance(value: Any) -> Any:
        if type(value) is not cls:
            raise InvalidValue(f"must be {cls.__name__}, got {type_name(value)}")
        return value

    return check_instance


def _with_rules(check: Check | None, rules: tuple[Rule, ...]) -> Check:
    if check is not None and len(rules) == 1:
        # The common case (a Name: str and non_empty), on the hot path: no loop.
        (rule,) = rules

        def check_one_rule(value: Any) -> Any:
            value = check(value)
            rule(value)
            return value

        return check_one_rule

    def check_annotated(value: Any) -> Any:
        if check is not None:
            value = check(value)
        for rule in rules:
            rule(value)
        return value

    return check_annotated


def checker_for(annotation: Any) -> Check | None:
    """Build the checker for a field annotated ``annotation``.

    Returns:
        The checker, or ``None`` when every value is accepted (an ``Any`` field).

    Raises:
        TypeError: The annotation is not one this module understands (a bug in a message
            definition, found at import).
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *rules = get_args(annotation)
        return _with_rules(checker_for(base), tuple(rules))
    if annotation is Any:
        return None
    if annotation in _SIMPLE_CHECKS:
        return _SIMPLE_CHECKS[annotation]
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) != 1 or len(get_args(annotation)) != 2:
            raise TypeError(f"only `X | None` unions are supported, not {annotation}")
        return _optional(checker_for(members[0]))
    if origin is list:
        (item,) = get_args(annotation)
        return _list_of(checker_for(item))
    if origin is dict:
        key, value = get_args(annotation)
        return _dict_of(checker_for(key), checker_for(value))
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _instance_of(annotation)
    raise TypeError(f"unsupported field annotation {annotation!r}")


# Rules for Annotated[...] fields.


def non_empty(value: str | list[Any] | dict[Any, Any]) -> None:
    """Refuse an empty string (a name, uid or handle)."""
    if not value:
        raise InvalidValue("must not be empty")


def at_least_one(value: int) -> None:
    """Refuse 0 (a credit, a concurrency)."""
    if value < 1:
        raise InvalidValue(f"must be at least 1, got {value}")


def positive(value: float) -> None:
    """Refuse 0 and below (an interval)."""
    if value <= 0:
        raise InvalidValue(f"must be positive, got {value}")


def unique(value: list[Any]) -> None:
    """Refuse a list naming something twice."""
    seen = set()
    for item in value:
        if item in seen:
            raise InvalidValue(f"lists {item!r} twice")
        seen.add(item)


def one_of(allowed: Any) -> Rule:
    """Build a rule accepting only the strings of ``allowed`` (an iterable of str)."""
    choices = frozenset(str(choice) for choice in allowed)
    shown = ", ".join(sorted(choices))

    def rule(value: str) -> None:
        if value not in choices:
            raise InvalidValue(f"must be one of {shown}; got {value!r}")

    return rule


def task_arguments(value: Any) -> None:
    """Accept ``None`` or ``(args, kwargs)``: a 2-tuple (or list) of a tuple, list or None and
    a dict with str keys or None, as ``TaskGraph.create_task`` accepts them. The exact types
    are kept: the value codec carries them as they are.
    """
    if value is None:
        return
    if type(value) not in (tuple, list) or len(value) != 2:
        raise InvalidValue(f"must be None or (args, kwargs), got {type_name(value)}")
    args, kwargs = value
    if args is not None and type(args) not in (tuple, list):
        raise InvalidValue(f"args must be a tuple, list or None, got {type_name(args)}")
    if kwargs is None:
        return
    if type(kwargs) is not dict:
        raise InvalidValue(f"kwargs must be a dict or None, got {type_name(kwargs)}")
    for key in kwargs:
        if type(key) is not str:
            raise InvalidValue(f"kwargs keys must be str, got {type_name(key)}")

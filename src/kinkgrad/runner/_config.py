"""Typed settings: describe a config dataclass, coerce values to its field types, apply checked overrides.

A config is a frozen dataclass whose fields all have defaults. Fields may be ``bool``, ``int``, ``float``,
``str``, a ``Literal`` of choices, ``X | None``, ``tuple[X, ...]`` or another such dataclass (a group, whose
settings are addressed with dotted keys such as ``data.root``). Declare help texts with :func:`setting`.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

C = TypeVar("C")

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_NONE = frozenset({"none", "null"})


class ConfigError(ValueError):
    """An unknown setting or a bad value. The message names it and lists what is valid."""


class _BadValue(Exception):
    """Internal: a value that does not fit a type; the caller adds the setting's name."""


def setting(default: Any = dataclasses.MISSING, *, help: str = "", default_factory: Any = None) -> Any:
    """A dataclass field with a help text shown by ``kinkgrad list``.

    Args:
        default: the default value (immutable).
        help: one line saying what the setting does.
        default_factory: instead of ``default``, a callable that builds it (for nested config dataclasses).

    Returns:
        A ``dataclasses.field``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     steps: int = setting(10, help="number of gradient steps")
        >>> describe_settings(Config)[0].help
        'number of gradient steps'
    """
    metadata = {"help": help}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SettingInfo:
    """One leaf setting of a config dataclass.

    Attributes:
        key: dotted path, such as ``"data.root"``.
        type: the resolved type annotation.
        default: the default value.
        help: the help text (from :func:`setting`, or empty).
    """

    key: str
    type: Any
    default: Any
    help: str

    @property
    def type_name(self) -> str:
        """The type as shown to users, such as ``int``, ``{sgd, adam}`` or ``float | None``."""
        return type_name(self.type)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The allowed values of a ``Literal`` setting, else ``None``."""
        tp = _strip_optional(self.type)
        return tuple(get_args(tp)) if get_origin(tp) is Literal else None


def _hints(cls: type) -> dict[str, Any]:
    """Field types, resolving string annotations.

    A class defined inside a function with ``from __future__ import annotations`` may name local classes
    that ``get_type_hints`` cannot see; a nested config field then takes the type of its default.
    """
    try:
        return typing.get_type_hints(cls)
    except NameError:
        pass
    module = sys.modules.get(cls.__module__)
    namespace = {**vars(typing), **(vars(module) if module else {})}
    hints: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        tp = field.type
        if isinstance(tp, str):
            try:
                tp = eval(tp, namespace)  # the same evaluation get_type_hints does, field by field
            except NameError as err:
                default = _field_default(field)
                if not dataclasses.is_dataclass(default):
                    raise TypeError(
                        f"cannot resolve the annotation {tp!r} of {cls.__qualname__}.{field.name}: {err}"
                    ) from None
                tp = type(default)
        hints[field.name] = tp
    return hints


def _field_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"field {field.name!r} has no default: every setting of a config needs one")


def _walk(cls: type, prefix: str) -> Iterator[SettingInfo]:
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        key = prefix + field.name
        tp = hints[field.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield from _walk(tp, key + ".")
            continue
        yield SettingInfo(key, tp, _field_default(field), str(field.metadata.get("help", "")))


def describe_settings(config_type: type) -> tuple[SettingInfo, ...]:
    """All leaf settings of a config dataclass, nested groups flattened to dotted keys, in field order.

    Example:
        >>> from dataclasses import dataclass, field
        >>> @dataclass(frozen=True)
        ... class Data:
        ...     root: str | None = None
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     lr: float = 0.1
        ...     data: Data = field(default_factory=Data)
        >>> [(s.key, s.type_name, s.default) for s in describe_settings(Config)]
        [('lr', 'float', 0.1), ('data.root', 'str | None', None)]
    """
    if not (isinstance(config_type, type) and dataclasses.is_dataclass(config_type)):
        raise TypeError(f"a config must be a dataclass type, got {config_type!r}")
    return tuple(_walk(config_type, ""))


def _groups(config_type: type, prefix: str = "") -> Iterator[str]:
    hints = _hints(config_type)
    for field in dataclasses.fields(config_type):
        tp = hints[field.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            yield prefix + field.name
            yield from _groups(tp, prefix + field.name + ".")


def check_config_type(config_type: type) -> None:
    """Raise ``TypeError`` unless ``config_type`` is a frozen dataclass with supported, defaulted fields."""
    infos = describe_settings(config_type)
    classes = [config_type]
    while classes:
        cls = classes.pop()
        if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise TypeError(f"config class {cls.__qualname__} must be a frozen dataclass (frozen=True)")
        hints = _hints(cls)
        classes.extend(
            hints[f.name]
            for f in dataclasses.fields(cls)
            if isinstance(hints[f.name], type) and dataclasses.is_dataclass(hints[f.name])
        )
    for info in infos:
        _check_supported(info.type, info.key)
        try:
            coerce(info.default, info.type)
        except _BadValue as err:
            raise TypeError(f"default of setting {info.key!r} does not fit its type: {err}") from None


def _strip_optional(tp: Any) -> Any:
    if _is_optional(tp):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return inner
    return tp


def _is_optional(tp: Any) -> bool:
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        return len(args) == 2 and type(None) in args
    return False


def _check_supported(tp: Any, key: str) -> None:
    inner = _strip_optional(tp)
    origin = get_origin(inner)
    if inner in (bool, int, float, str):
        return
    if origin is Literal:
        if all(isinstance(a, (bool, int, float, str)) for a in get_args(inner)):
            return
    elif origin is tuple:
        args = get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (bool, int, float, str):
            return
    raise TypeError(
        f"setting {key!r} has unsupported type {tp!r}: use bool, int, float, str, Literal[...], "
        "X | None, tuple[X, ...] or a nested frozen dataclass"
    )


def type_name(tp: Any) -> str:
    """How a setting's type is shown to users.

    Example:
        >>> from typing import Literal
        >>> type_name(Literal["sgd", "adam"]), type_name(tuple[int, ...]), type_name(int | None)
        ('{sgd, adam}', 'tuple[int, ...]', 'int | None')
    """
    if _is_optional(tp):
        return f"{type_name(_strip_optional(tp))} | None"
    origin = get_origin(tp)
    if origin is Literal:
        return "{" + ", ".join(str(a) for a in get_args(tp)) + "}"
    if origin is tuple:
        return f"tuple[{type_name(get_args(tp)[0])}, ...]"
    return getattr(tp, "__name__", str(tp))


def _scalar_from_text(text: str, tp: Any) -> Any:
    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _BadValue(f"{text!r} is not a bool (use true or false)")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise _BadValue(f"{text!r} is not an int") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise _BadValue(f"{text!r} is not a float") from None
    return text


def _scalar_from_value(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _BadValue(f"{value!r} is not a bool")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _BadValue(f"{value!r} is not an int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _BadValue(f"{value!r} is not a float")
    if isinstance(value, str):
        return value
    raise _BadValue(f"{value!r} is not a str")


def coerce(value: Any, tp: Any) -> Any:
    """Convert ``value`` to type ``tp``; strings are parsed as on the command line.

    Raises an internal error for values that do not fit; use :func:`with_overrides` for messages that name
    the setting.

    Example:
        >>> coerce("0.5", float), coerce("yes", bool), coerce("none", int | None)
        (0.5, True, None)
        >>> coerce("1,2", tuple[int, ...]), coerce([3], tuple[int, ...])
        ((1, 2), (3,))
    """
    if _is_optional(tp):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        return coerce(value, _strip_optional(tp))
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
            if isinstance(value, str) and not isinstance(choice, str) and value == str(choice):
                return choice
        raise _BadValue(f"{value!r} is not one of: {', '.join(str(c) for c in choices)}")
    if origin is tuple:
        item = get_args(tp)[0]
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")] if value.strip() else []
            return tuple(_scalar_from_text(p, item) for p in parts)
        if isinstance(value, (list, tuple)):
            return tuple(coerce(v, item) for v in value)
        raise _BadValue(f"{value!r} is not a list")
    if isinstance(value, str) and tp is not str:
        return _scalar_from_text(value, tp)
    return _scalar_from_value(value, tp)


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def setting_info(config_type: type, key: str, *, owner: str = "") -> SettingInfo:
    """The leaf setting called ``key``, or a :class:`ConfigError` that lists the valid keys.

    Args:
        config_type: the config dataclass.
        key: dotted key such as ``data.root``.
        owner: who owns the settings, for the message (e.g. ``"experiment 'toy'"``).
    """
    infos = {info.key: info for info in describe_settings(config_type)}
    if key in infos:
        return infos[key]
    valid = list(infos)
    where = f" for {owner}" if owner else ""
    if key in set(_groups(config_type)):
        inside = [k for k in valid if k.startswith(key + ".")]
        raise ConfigError(f"{key!r} is a group of settings{where}; set one of: {', '.join(inside)}")
    raise ConfigError(
        f"unknown setting {key!r}{where}{_suggest(key, valid)}; valid settings: {', '.join(valid)}"
    )


def flatten_mapping(
    data: Mapping[str, Any], config_type: type, *, prefix: str = "", owner: str = ""
) -> dict[str, Any]:
    """Turn nested mappings (as read from JSON or TOML) into dotted keys, following the config's groups."""
    groups = set(_groups(config_type))
    flat: dict[str, Any] = {}
    for name, value in data.items():
        key = prefix + str(name)
        if key in groups:
            if not isinstance(value, Mapping):
                setting_info(config_type, key, owner=owner)  # raises: a group is not a value
            flat.update(flatten_mapping(value, config_type, prefix=key + ".", owner=owner))
        else:
            flat[key] = value
    return flat


def _replace(config: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    if rest:
        value = _replace(getattr(config, head), rest, value)
    return dataclasses.replace(config, **{head: value})


def coerce_setting(config_type: type, key: str, value: Any, *, owner: str = "") -> Any:
    """Check ``key`` exists and convert ``value`` to its type; errors name both and say what is valid."""
    info = setting_info(config_type, key, owner=owner)
    try:
        return coerce(value, info.type)
    except _BadValue as err:
        raise ConfigError(f"bad value for {key!r} ({info.type_name}): {err}") from None


def with_overrides(config: C, overrides: Mapping[str, Any], *, owner: str = "") -> C:
    """A copy of the frozen config with dotted-key overrides applied, each checked and coerced.

    Args:
        config: a frozen config dataclass instance.
        overrides: ``{"data.root": "/data", "lr": "0.1"}``; strings are parsed like command-line values,
            nested mappings address groups.
        owner: who owns the settings, for error messages.

    Returns:
        The new config (``__post_init__`` checks run again).

    Raises:
        ConfigError: unknown key, bad value, or a value the config's own checks reject.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     lr: float = 0.1
        ...     steps: int = 10
        >>> with_overrides(Config(), {"lr": "0.5", "steps": 3})
        Config(lr=0.5, steps=3)
        >>> with_overrides(Config(), {"lrr": 1})  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        kinkgrad.runner._config.ConfigError: unknown setting 'lrr' (did you mean 'lr'?);
        valid settings: lr, steps
    """
    flat = flatten_mapping(overrides, type(config), owner=owner)
    for key, raw in flat.items():
        value = coerce_setting(type(config), key, raw, owner=owner)
        try:
            config = _replace(config, key.split("."), value)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"bad value for {key!r}: {err}") from None
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as nested JSON-ready dicts (tuples become lists).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     sizes: tuple[int, ...] = (4, 2)
        >>> config_to_dict(Config())
        {'sizes': [4, 2]}
    """
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[field.name] = config_to_dict(value)
        elif isinstance(value, tuple):
            out[field.name] = list(value)
        else:
            out[field.name] = value
    return out


def config_from_dict(config_type: type[C], data: Mapping[str, Any], *, owner: str = "") -> C:
    """Build a config from nested dicts (missing keys keep their defaults; unknown keys are errors)."""
    return with_overrides(config_type(), data, owner=owner)

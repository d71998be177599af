"""The JSON form of frozen dataclasses: what ops, the journal and the recorded state are on disk.

`dump(value)` turns a dataclass (nested dataclasses, tuples, mappings, `ipaddress` values) into
plain JSON data; `load(cls, data)` turns it back, driven by the class's type hints. The loaders
are built once per class: a journal of a thousand containers holds ~9,000 ops, and the recorded
state of as many containers is read by every DNS reload, so the per-value cost is what counts.
Keys a class does not know are ignored and missing ones take the field's default, so an older
file still loads when a field was only added.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import ipaddress
import typing
from typing import Any, Callable, Union

_IP_TYPES = {
    frozenset({ipaddress.IPv4Address, ipaddress.IPv6Address}): ipaddress.ip_address,
    frozenset({ipaddress.IPv4Network, ipaddress.IPv6Network}): ipaddress.ip_network,
    frozenset({ipaddress.IPv4Interface, ipaddress.IPv6Interface}): ipaddress.ip_interface,
}
_ATOMS = (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network,
          ipaddress.IPv4Interface, ipaddress.IPv6Interface)


def dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list, frozenset)):
        return [dump(v) for v in value]
    if isinstance(value, typing.Mapping):
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, _ATOMS):
        return str(value)
    return value


def load(cls: type, data: Any) -> Any:
    return _loader(cls)(data)


@functools.lru_cache(maxsize=None)
def _loader(tp: Any) -> Callable[[Any], Any]:
    if dataclasses.is_dataclass(tp):
        return _dataclass_loader(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        non_none = [a for a in args if a is not type(None)]
        ip = _IP_TYPES.get(frozenset(non_none))
        if ip is not None:
            return lambda v: None if v is None else ip(v)
        if len(non_none) == 1:
            inner = _loader(non_none[0])
            return lambda v: None if v is None else inner(v)
        return lambda v: v
    if tp in _ATOMS:
        return lambda v: None if v is None else tp(v)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner = _loader(args[0])
            return lambda v: tuple(inner(x) for x in v or ())
        return lambda v: tuple(v or ())
    if origin in (dict, collections.abc.Mapping):
        inner = _loader(args[1]) if len(args) == 2 else (lambda v: v)
        return lambda v: {str(k): inner(x) for k, x in (v or {}).items()}
    if origin is frozenset:
        inner = _loader(args[0]) if args else (lambda v: v)
        return lambda v: frozenset(inner(x) for x in v or ())
    return lambda v: v


def _dataclass_loader(cls: type) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _loader(hints[f.name])) for f in dataclasses.fields(cls) if f.init]

    def load_one(data: Any) -> Any:
        if isinstance(data, cls):
            return data
        return cls(**{name: fn(data[name]) for name, fn in fields if name in data})

    return load_one

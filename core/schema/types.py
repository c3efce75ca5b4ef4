"""The building blocks of the request-body descriptions: Go's JSON types as msgspec sees them.

dockerd decodes a body into Go structs with ``encoding/json``; these aliases give each Go type
its JSON meaning here, so a body dockerd refuses with ``json: cannot unmarshal ...`` is refused
here too, with the field's path:

- every field may be absent (``UNSET``: the service sees no key) or ``null`` (Go leaves the zero
  value; the service sees ``None``), as Go's decoder allows ``null`` for any field;
- a Go ``bool`` takes only ``true``/``false`` (``"false"`` is refused: the string slipped
  through as true once); an ``int64`` only integers within its range (``1.0``, ``2**63`` and
  ``true`` are refused: Go refuses them too);
- ``strslice.StrSlice`` (``Cmd``, ``Entrypoint``, ``Shell``, ``CapAdd``, ``CapDrop``) takes a
  string or a list of strings; a string is a list of that one string (not ``sh -c``), as the
  Go type's ``UnmarshalJSON`` makes it: a Struct with such fields lists them in
  :func:`str_slices`;
- ``struct{}`` (the values of ``ExposedPorts`` and ``Volumes``) takes any object and keeps none
  of it, as Go does.

A Struct may list, in ``unsupported``, fields this engine knows but does not implement, with the
values that mean "not set" besides the zero values; :mod:`.unsupported` refuses any other value.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar, Union

from msgspec import UNSET, Meta, UnsetType

from .anycase import GoStruct

T = TypeVar("T")

#: a field as Go decodes it: absent, null, or a T
Opt = Union[T, None, UnsetType]

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

Int64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
#: Go's ``int`` on 64-bit Linux
Int = Int64
Uint16 = Annotated[int, Meta(ge=0, le=(1 << 16) - 1)]
Uint32 = Annotated[int, Meta(ge=0, le=(1 << 32) - 1)]
#: a Go uint64; msgspec bounds stop at int64, and no real rate or count needs more
Uint64 = Annotated[int, Meta(ge=0, le=INT64_MAX)]
#: an int64 that must not be negative (sizes, counts, durations in nanoseconds)
NonNegative = Annotated[int, Meta(ge=0, le=INT64_MAX)]

StrSlice = Union[str, list[str]]
StrList = list[str]
StrMap = dict[str, str]


def str_slices(body: Any, *names: str) -> None:
    """For a ``__post_init__``: each StrSlice field ``names`` of ``body`` given as a string
    becomes a list of that string, as moby's ``strslice.StrSlice`` decodes it."""
    for name in names:
        value = getattr(body, name)
        if type(value) is str:
            setattr(body, name, [value])


class Body(GoStruct):
    """Base of every description: keys match fields in any case and unknown keys are ignored,
    as in Go's decoder (see :mod:`.anycase`)."""

    #: field -> values besides null/0/""/false/[]/{} that mean "not set" (see .unsupported)
    unsupported: ClassVar[dict[str, tuple[object, ...]]] = {}


class Empty(Body, forbid_unknown_fields=False):
    """Go's ``struct{}``: any object, nothing kept (``{"80/tcp": {}}``)."""


__all__ = ["UNSET", "Body", "Empty", "Int", "Int64", "NonNegative", "Opt", "StrList", "StrMap",
           "StrSlice", "Uint16", "Uint32", "Uint64", "INT64_MAX", "INT64_MIN", "str_slices"]

"""docs/plugins.md stays the whole reference: every hookspec, every public name of the driver
toolkit, every entry-point group and contract class appears in it."""
from __future__ import annotations

import inspect
import os
import re
import types

import pytest

from dockyard import hookspecs
from dockyard.hookspecs import host, spec

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "plugins.md")


def doc_text() -> str:
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def toolkit_names() -> list[str]:
    """Every public name of the toolkit: ``host.__all__`` and each toolkit module's ``__all__``
    (a module without one: the functions and classes it defines)."""
    names = set(host.__all__)
    for name in host.__all__:
        mod = getattr(host, name)
        if not isinstance(mod, types.ModuleType):
            continue
        public = getattr(mod, "__all__", None)
        if public is None:
            public = [k for k, v in vars(mod).items() if not k.startswith("_")
                      and (inspect.isfunction(v) or inspect.isclass(v))
                      and v.__module__ == mod.__name__]
        names.update(public)
    return sorted(names)


HOOKS = sorted(n for n, f in vars(spec).items() if n.startswith("dockyard_") and callable(f))


def _mentioned(text: str, name: str) -> bool:
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", text) is not None


def test_every_hook_is_in_the_reference() -> None:
    text = doc_text()
    assert len(HOOKS) >= 12
    missing = [h for h in HOOKS if f"#### `{h}(" not in text]
    assert not missing, f"hooks without a section in docs/plugins.md: {missing}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_section_matches_its_docstring(name: str) -> None:
    """The reference says what the hookspec says (regenerate the section when a spec changes)."""
    first = inspect.getdoc(getattr(spec, name)).splitlines()[0]
    assert first in doc_text(), f"{name}: its summary {first!r} is not in docs/plugins.md"


def test_every_toolkit_name_is_in_the_doc() -> None:
    text = doc_text()
    names = toolkit_names()
    assert "RefCounter" in names and "mount" in names and len(names) > 100
    missing = [n for n in names if not _mentioned(text, n)]
    assert not missing, f"toolkit names missing from docs/plugins.md: {missing}"


def test_groups_and_contract_classes_are_in_the_doc() -> None:
    text = doc_text()
    for group in [*hookspecs.DRIVER_GROUPS.values(), hookspecs.PLUGIN_GROUP, "pytest11"]:
        assert f"`{group}`" in text, group
    for cls in ("GraphDriver", "NaiveDiff", "DirectoryLayers", "ExecDriver", "NetDriver", "PassiveNetDriver",
                "RegistryBackend", "DriverNotSupported", "DriverNotFound"):
        assert _mentioned(text, cls), cls

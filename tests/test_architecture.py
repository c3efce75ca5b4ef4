"""The architecture's rules, checked on the source (AST, no imports): who may import whom, and how
large a module or a function may grow.

- A driver (``plugins/``) imports ``dockyard.hookspecs`` (the contract and its host toolkit) and
  never ``dockyard.core`` or ``dockyard.cli``: what it needs of the host is in
  ``dockyard.hookspecs.host``. Caught in every spelling: ``import dockyard.core.x``, ``from
  dockyard.core import x``, ``from dockyard import core``, relative imports that climb out of
  ``plugins``, and module names given to ``importlib.import_module``/``__import__``.
- ``hookspecs/`` imports nothing of core, cli or plugins at run time (types only, under
  ``if TYPE_CHECKING:``).
- ``core/`` never names a driver module (drivers are found through entry points).
- Only ``core/state/`` speaks SQL: no string literal elsewhere holds a statement.
- No module over :data:`MAX_MODULE_LINES` lines and no function over :data:`MAX_FUNCTION_LINES`
  lines outside ``tests/``, but for today's offenders below, each held to its size of today:
  the lists may only shrink (an entry that no longer exceeds the limit must be removed).
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from typing import Iterator

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: top-level folder -> the import name it is installed as (pyproject's package-dir)
PACKAGES = {"core": "dockyard.core", "hookspecs": "dockyard.hookspecs",
            "plugins": "dockyard.plugins", "cli": "dockyard.cli"}
#: where the size limits apply: everything that is not a test
SIZED = ("core", "hookspecs", "plugins", "cli", "contrib")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

#: modules over the limit today -> their size today (lines); a later restructuring shrinks them
MODULE_ALLOWLIST: dict[str, int] = {}
#: functions over the limit today ("path::Class.function") -> their size today (lines)
FUNCTION_ALLOWLIST: dict[str, int] = {}

_IMPORT_CALLS = {"import_module", "__import__", "find_spec", "resolve_name"}
_DOTTED = re.compile(r"^dockyard(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name imported, or named in a string
    line: int
    typing_only: bool  # under ``if TYPE_CHECKING:``


def _py_files(top: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__",) and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.relpath(os.path.join(dirpath, name), ROOT)


def _module_name(path: str) -> str:
    top, _, rest = path.partition("/")
    parts = [PACKAGES[top], *rest[:-3].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: str, source: str | None = None) -> list[Import]:
    """Every module ``path`` imports (``from X import y`` also counts as ``X.y``, which covers
    ``from dockyard import core``), and every ``dockyard.*`` module it names in a string given to
    an import function or as an entry-point reference (``"dockyard.x.y:name"``)."""
    if source is None:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            source = f.read()
    tree = ast.parse(source, path)
    out: list[Import] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            guarded = typing_only or (isinstance(child, ast.If) and _is_type_checking(child.test))
            if isinstance(child, ast.Import):
                out.extend(Import(a.name, child.lineno, typing_only) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(path, child)
                out.append(Import(base, child.lineno, typing_only))
                out.extend(Import(f"{base}.{a.name}", child.lineno, typing_only)
                           for a in child.names if a.name != "*")
            elif isinstance(child, ast.Call):
                fn = child.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if (name in _IMPORT_CALLS and child.args and isinstance(child.args[0], ast.Constant)
                        and isinstance(child.args[0].value, str)):
                    out.append(Import(child.args[0].value.split(":")[0], child.lineno, typing_only))
            elif isinstance(child, ast.Constant) and isinstance(child.value, str):
                module, colon, attr = child.value.partition(":")  # "pkg.module:attr"
                if colon and _DOTTED.match(module) and attr.isidentifier():
                    out.append(Import(module, child.lineno, typing_only))
            visit(child, guarded)
    visit(tree, False)
    return out


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(top: str, forbidden: tuple[str, ...], allow_typing: bool = False) -> list[str]:
    bad = []
    for path in _py_files(top):
        for imp in imports_of(path):
            if _under(imp.module, *forbidden) and not (allow_typing and imp.typing_only):
                bad.append(f"{path}:{imp.line} imports {imp.module}")
    return bad


#: modules that moved into the toolkit -> where their names are now (a hint in the failures)
MOVED = {
    "dockyard.core.linux": "dockyard.hookspecs.host (.mounts, .ns, .libc)",
    "dockyard.core.units": "dockyard.hookspecs.host.units",
    "dockyard.hookspecs.devices": "dockyard.hookspecs.host.devices",
    "dockyard.hookspecs.devicebpf": "dockyard.hookspecs.host.devicebpf",
    "dockyard.hookspecs.tarsafe": "dockyard.hookspecs.host.tarsafe",
    "dockyard.plugins.execdrivers.native.security": "dockyard.hookspecs.host (.caps, .seccompbpf)",
    "dockyard.plugins.execdrivers.native.supervisor": "dockyard.hookspecs.host.supervisor",
    "dockyard.plugins.execdrivers.native.cgroups": "dockyard.hookspecs.host.supervisor.cgroups",
    "dockyard.plugins.execdrivers.native.procenv": "dockyard.hookspecs.host.process",
}


def _toolkit_exports() -> dict[str, str]:
    """name -> the toolkit module whose ``__all__`` lists it (read from the source)."""
    out: dict[str, str] = {}
    for path in _py_files("hookspecs/host"):
        tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read(), path)
        for node in tree.body:
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                     for t in node.targets)):
                for name in ast.literal_eval(node.value):
                    out.setdefault(name, _module_name(path))
    return out


def _hint(imp: Import, names: tuple[str, ...] = ()) -> str:
    for old, new in MOVED.items():
        if _under(imp.module, old):
            exports = _toolkit_exports()
            homes = sorted({f"{n} -> {exports[n]}" for n in names if n in exports})
            return f" (moved: use {new}{'; ' + ', '.join(homes) if homes else ''})"
    return ""


def _report(kind: str, bad: list[str]) -> str:
    return f"{kind}:\n  " + "\n  ".join(bad)


def test_drivers_import_only_the_contract() -> None:
    bad = violations("plugins", ("dockyard.core", "dockyard.cli"))
    assert not bad, _report("driver modules import the daemon or the CLI; a driver imports only "
                            "dockyard.hookspecs, its host work is in dockyard.hookspecs.host "
                            "(docs/toolkit.md)", bad)


def test_the_contract_imports_nothing_of_the_project() -> None:
    bad = violations("hookspecs", ("dockyard.core", "dockyard.cli", "dockyard.plugins"),
                     allow_typing=True)
    assert not bad, _report("the contract imports core, cli or a driver at run time", bad)


def test_core_never_names_a_driver() -> None:
    bad = violations("core", ("dockyard.plugins",))
    assert not bad, _report("core names a driver module (drivers are found by entry point)", bad)


EXECDRIVERS = "dockyard.plugins.execdrivers"


def foreign_execdriver_imports(path: str, source: str | None = None) -> list[str]:
    """Imports by an exec driver package (``plugins/execdrivers/<name>/``) of another exec
    driver's package: what two exec drivers share is in the toolkit (the supervisor)."""
    parts = path.split("/")
    if len(parts) < 4 or parts[:2] != ["plugins", "execdrivers"]:
        return []
    own = f"{EXECDRIVERS}.{parts[2]}"
    return [f"{path}:{imp.line} imports {imp.module}" for imp in imports_of(path, source)
            if _under(imp.module, EXECDRIVERS) and imp.module.count(".") >= 3
            and not _under(imp.module, own)]


def test_exec_drivers_share_only_the_toolkit() -> None:
    bad = [b for path in _py_files("plugins/execdrivers") for b in foreign_execdriver_imports(path)]
    assert not bad, _report("an exec driver imports another exec driver's modules (what both "
                            "need is in dockyard.hookspecs.host.supervisor)", bad)
    # the check itself can fail: the OCI driver's imports before the supervisor moved
    for source in ("from dockyard.plugins.execdrivers.native.driver import NativeDriver",
                   "from dockyard.plugins.execdrivers.native import launcher as base",
                   "from ..native.init import _report"):
        assert foreign_execdriver_imports("plugins/execdrivers/oci/launch.py", source), source
    assert not foreign_execdriver_imports("plugins/execdrivers/oci/driver.py",
                                          "LAUNCHER = 'dockyard.plugins.execdrivers.oci.launch:X'")


def _module_file(module: str) -> str | None:
    """The source file of ``dockyard.x.y`` in this tree, None when there is none."""
    parts = module.split(".")
    if parts[0] != "dockyard" or len(parts) < 2 or f"dockyard.{parts[1]}" not in PACKAGES.values():
        return None
    base = os.path.join(ROOT, parts[1], *parts[2:])
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _bound_names(path: str) -> set[str] | None:
    """Names a module binds at its top level (in any ``if``/``try`` branch); None when it has a
    ``from x import *``, whose names are not known without importing."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return None
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def missing_imports(path: str, source: str | None = None) -> list[str]:
    """The ``dockyard.*`` imports of ``path`` that name a module, or a name of a module, that
    this tree does not have (a module another branch moved or removed), each with a hint."""
    if source is None:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            source = f.read()
    bad = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            wanted = [(a.name, ()) for a in node.names if a.name.startswith("dockyard.")]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(path, node)
            if not base.startswith("dockyard."):
                continue
            wanted = [(base, tuple(a.name for a in node.names))]
        else:
            continue
        for module, names in wanted:
            imp = Import(module, node.lineno, False)
            file = _module_file(module)
            if file is None:
                bad.append(f"{path}:{node.lineno} imports {module}, which does not exist"
                           f"{_hint(imp, names)}")
                continue
            bound = _bound_names(file) if file.endswith("__init__.py") else None
            for name in names:
                if (name != "*" and bound is not None and name not in bound
                        and _module_file(f"{module}.{name}") is None):
                    sub = Import(f"{module}.{name}", node.lineno, False)
                    bad.append(f"{path}:{node.lineno} imports {module}.{name}, which does not "
                               f"exist{_hint(sub)}")
    return bad


def test_every_import_of_dockyard_exists() -> None:
    """A module moved into the toolkit (``dockyard.core.linux``...) and still imported — by a
    branch written before the move — is named here with the file, line and where it went."""
    bad = [b for top in (*PACKAGES, "tests", "contrib") for path in _py_files(top)
           for b in missing_imports(path)]
    assert not bad, _report("imports of modules this tree does not have", bad)


@pytest.mark.parametrize("source, expected", [
    ("from dockyard.core.linux import mount, MS_BIND",
     "dockyard.core.linux, which does not exist (moved: use dockyard.hookspecs.host (.mounts, "
     ".ns, .libc); MS_BIND -> dockyard.hookspecs.host.mounts, mount -> "
     "dockyard.hookspecs.host.mounts)"),
    ("from dockyard.core import linux", "dockyard.core.linux, which does not exist (moved"),
    ("from .. import linux", "dockyard.core.linux, which does not exist (moved"),
    ("import dockyard.core.units", "dockyard.core.units, which does not exist (moved: use "
     "dockyard.hookspecs.host.units)"),
    ("from dockyard.hookspecs.tarsafe import extract",
     "dockyard.hookspecs.tarsafe, which does not exist (moved: use dockyard.hookspecs.host.tarsafe"),
])
def test_a_moved_module_is_named_with_its_new_home(source: str, expected: str) -> None:
    found = missing_imports("core/daemon/example.py", source)
    assert len(found) == 1 and f"core/daemon/example.py:1 imports {expected}" in found[0], found


def test_existing_imports_are_not_reported() -> None:
    source = ("from dockyard.hookspecs import host, NaiveDiff\n"
              "from dockyard.hookspecs.host import mounts\n"
              "from dockyard.core import containers\nimport dockyard.cli.main\n")
    assert missing_imports("core/daemon/example.py", source) == []


@pytest.mark.parametrize("source", [
    "import dockyard.core.linux",
    "from dockyard.core import linux",
    "from dockyard import core",
    "from dockyard.core.linux import mount",
    "from ....core import linux",
    "import importlib\nimportlib.import_module('dockyard.core.linux')",
    "__import__('dockyard.core')",
    "ENTRY = 'dockyard.core.seccomp:for_container'",
])
def test_every_spelling_of_an_import_is_caught(source: str) -> None:
    """The scan itself can fail: each of these, in a driver module, is a violation."""
    found = imports_of("plugins/execdrivers/native/example.py", source)
    assert any(_under(i.module, "dockyard.core") for i in found), found


def test_what_is_not_an_import_is_not_caught() -> None:
    source = ('"""Uses dockyard.core.linux no more: see the toolkit."""\n'
              "from typing import TYPE_CHECKING\n"
              "from dockyard.hookspecs import host\n"
              "msg = 'dockyard.core is the daemon'\n")
    found = imports_of("plugins/graphdrivers/example.py", source)
    assert not any(_under(i.module, "dockyard.core") for i in found), found
    typed = imports_of("hookspecs/example.py", "if TYPE_CHECKING:\n    import dockyard.core.x\n")
    assert [i.typing_only for i in typed] == [True]


# -- state ---------------------------------------------------------------------------------------
STATE = "core/state/"
# SQL as the house writes it: a statement's leading words, in capitals
_SQL = re.compile(r"\b(SELECT\s+\S|INSERT\s+(OR\s+[A-Z]+\s+)?INTO\s|DELETE\s+FROM\s|"
                  r"UPDATE\s+\w+\s+SET\s|CREATE\s+(TABLE|INDEX)\s|PRAGMA\s|BEGIN\s+IMMEDIATE\b)")


def sql_literals(path: str, source: str | None = None) -> list[str]:
    """``path:line`` of each string literal (f-strings' parts included) that holds SQL."""
    if source is None:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            source = f.read()
    lines = sorted({node.lineno for node in ast.walk(ast.parse(source, path))
                    if _SQL.search(_literal_text(node))})
    return [f"{path}:{line}" for line in lines]


def _literal_text(node: ast.AST) -> str:
    """A string literal's text; an f-string's with ``?`` for each replacement field."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(v) if isinstance(v, ast.Constant) else "?" for v in node.values)
    return ""


def test_only_the_state_package_speaks_sql() -> None:
    """``core/state/`` is the one place that speaks SQL: services call its named methods."""
    bad = [hit for top in SIZED for path in _py_files(top) if not path.startswith(STATE)
           for hit in sql_literals(path)]
    assert not bad, "SQL outside core/state/ (add a named method to a repository there):\n  " + \
        "\n  ".join(bad)


@pytest.mark.parametrize("source", [
    'rows = state.q("SELECT * FROM layers WHERE chain_id=?", chain)',
    'state.x("INSERT OR IGNORE INTO images(id) VALUES(?)", i)',
    'db.execute("DELETE FROM tags WHERE ref=?", (r,))',
    'state.x("UPDATE build_cache_mounts SET usage=usage+1 WHERE id=?", rid)',
    'q = ("SELECT id "\n     "FROM images")',
    'q = f"SELECT {col} FROM images"',
    'db.executescript("CREATE TABLE x (a TEXT)")',
])
def test_every_spelling_of_sql_is_caught(source: str) -> None:
    assert sql_literals("core/example.py", source) == ["core/example.py:1"]


def test_prose_is_not_sql() -> None:
    source = ('"""Select the images to delete; insert a tag; update the set."""\n'
              'msg = "SELECT"\nhelp = "the UPDATE of a volume"\n')
    assert sql_literals("core/example.py", source) == []


# -- sizes --------------------------------------------------------------------------------------
def module_sizes() -> dict[str, int]:
    out = {}
    for top in SIZED:
        for path in _py_files(top):
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                out[path] = len(f.read().splitlines())
    return out


def function_sizes() -> dict[str, int]:
    """``path::Class.func`` -> lines from ``def`` to its last line (decorators not counted);
    nested functions are counted on their own too."""
    out: dict[str, int] = {}
    for top in SIZED:
        for path in _py_files(top):
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)

            def visit(node: ast.AST, prefix: str, path: str = path) -> None:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        name = prefix + child.name
                        out[f"{path}::{name}"] = child.end_lineno - child.lineno + 1  # type: ignore[operator]
                        visit(child, name + ".")
                    elif isinstance(child, ast.ClassDef):
                        visit(child, prefix + child.name + ".")
                    else:
                        visit(child, prefix)
            visit(tree, "")
    return out


def _check_sizes(sizes: dict[str, int], allow: dict[str, int], limit: int, what: str) -> None:
    over = {k: n for k, n in sizes.items() if n > limit}
    new = {k: n for k, n in over.items() if k not in allow}
    grown = {k: (n, allow[k]) for k, n in over.items() if k in allow and n > allow[k]}
    stale = sorted(k for k in allow if k not in over)
    assert not new, (f"{what} over {limit} lines (split them; new logic goes into a new "
                     f"module): {new}")
    assert not grown, f"allow-listed {what} grew (now, allowed): {grown}"
    assert not stale, (f"{what} no longer over {limit} lines or gone: remove them from the "
                       f"allow-list, which only shrinks: {stale}")


def test_no_module_over_the_limit() -> None:
    _check_sizes(module_sizes(), MODULE_ALLOWLIST, MAX_MODULE_LINES, "modules")


def test_no_function_over_the_limit() -> None:
    _check_sizes(function_sizes(), FUNCTION_ALLOWLIST, MAX_FUNCTION_LINES, "functions")


def test_size_check_fails_on_growth_and_on_stale_entries() -> None:
    with pytest.raises(AssertionError, match="over 10 lines"):
        _check_sizes({"a.py": 11}, {}, 10, "modules")
    with pytest.raises(AssertionError, match="grew"):
        _check_sizes({"a.py": 13}, {"a.py": 12}, 10, "modules")
    with pytest.raises(AssertionError, match="remove them"):
        _check_sizes({"a.py": 9}, {"a.py": 12}, 10, "modules")
    _check_sizes({"a.py": 12, "b.py": 3}, {"a.py": 12}, 10, "modules")


#: what a lifecycle hook is called through: the daemon's ``emit`` (core.daemon.app) or pluggy's
#: ``pm.hook.<name>`` itself
_HOOK_CALLS = ("emit",)


def hook_calls(path: str, source: str | None = None) -> list[str]:
    """``path:line`` of each pluggy lifecycle hook a module calls: ``X.emit(...)`` or
    ``X.pm.hook.<name>(...)``."""
    if source is None:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            source = f.read()
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        fn = node.func
        via_pm = isinstance(fn.value, ast.Attribute) and fn.value.attr == "hook"
        if fn.attr in _HOOK_CALLS or via_pm:
            found.append(f"{path}:{node.lineno}")
    return found


def test_routes_emit_no_lifecycle_hooks() -> None:
    """Lifecycle hooks are emitted by services (core.containers, core.imagelife...), never by
    routes: a route translates HTTP to a service call and back. Authorization
    (``dockyard_authorize``, core.daemon.authz) is no lifecycle hook and no route."""
    routes = list(_py_files("core/daemon/routes"))
    assert routes
    found = [hit for p in routes for hit in hook_calls(p)]
    assert found == [], found


@pytest.mark.parametrize("source", ["d.emit('dockyard_image_built', image_id=i, tags=[])",
                                    "request.app['daemon'].pm.hook.dockyard_image_removed(image_id=i)"])
def test_a_hook_call_is_caught(source: str) -> None:
    assert hook_calls("core/daemon/routes/example.py", source) == ["core/daemon/routes/example.py:1"]

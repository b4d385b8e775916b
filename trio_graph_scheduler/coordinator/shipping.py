"""Shipping the user's code to workers, which need none of it installed.

cloudpickle pickles a function *by reference* (module and name) when its module can be
imported, and a worker started in another directory cannot import the user's module. So
every module of the user's own code is registered to be pickled *by value*: its
functions travel with their code and the globals they use.

"The user's own code" is every imported module loaded from a file that is not
installed. The import system decides what is installed: a module whose top-level package
belongs to an installed distribution (``importlib.metadata``; an editable install of the
user's own project does not count), or whose file lies in the standard library or under
a ``site-packages``/``dist-packages`` directory (the user site and Debian's
``/usr/lib/python3/dist-packages`` included). Installed packages are assumed to be
installed on the workers too, and travel by reference.

Shipped code keeps its real file names (cloudpickle would write ``<dynamic-code>``), and
the sources of the user's files travel with it (``shared/shipped_code.py``), so that a
traceback on a worker names the file and line and shows the source line.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import json
import linecache
import pickle
import site
import sys
import sysconfig
import types
from collections import ChainMap
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import cloudpickle

from ..shared.errors import GraphDefinitionError
from ..shared.shipped_code import pack_shipped

if TYPE_CHECKING:
    from collections.abc import Mapping

_THIS_LIBRARY = Path(__file__).resolve().parent.parent

#: The names of the directories that installers put packages in.
_PACKAGE_DIRECTORIES: Final = ("site-packages", "dist-packages")


def _installed_roots() -> list[Path]:
    """The standard library, every site directory and this library."""
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(Path(p) for p in site.getsitepackages())
    if site.ENABLE_USER_SITE is not False:
        roots.add(Path(site.getusersitepackages()))
    roots.update(Path(p) for p in sys.path if p and Path(p).name in _PACKAGE_DIRECTORIES)
    resolved = set()
    for root in roots:
        try:
            resolved.add(root.resolve())
        except OSError:
            continue
    return [*resolved, _THIS_LIBRARY]


def _installed_top_level_names() -> frozenset[str]:
    """The top-level import names of the installed distributions, editable ones left
    out (an editable install is the user's project, which workers do not have)."""
    # Reading every distribution's metadata takes tens of milliseconds: once per search
    # path, not once per coordinator.
    return _top_level_names_on(tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _top_level_names_on(path: tuple[str, ...]) -> frozenset[str]:
    # ``path`` (sys.path) is only the cache key: importlib.metadata reads sys.path itself.
    editable = {
        dist.metadata["Name"] for dist in importlib.metadata.distributions() if _is_editable(dist)
    }
    return frozenset(
        name
        for name, dists in importlib.metadata.packages_distributions().items()
        if not all(dist in editable for dist in dists)
    )


def _is_editable(dist: importlib.metadata.Distribution) -> bool:
    try:
        text = dist.read_text("direct_url.json")
        return bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except (OSError, ValueError, AttributeError):
        return False


def _is_under_package_directory(path: Path) -> bool:
    return any(part in _PACKAGE_DIRECTORIES for part in path.parts)


def user_modules() -> list[str]:
    """Names of the imported modules that are the user's own code (see the module doc)."""
    roots = _installed_roots()
    installed = _installed_top_level_names()
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "__main__":  # __main__ is pickled by value anyway
            continue
        if name.partition(".")[0] in installed:
            continue
        path = Path(file).resolve()
        if _is_under_package_directory(path):
            continue
        if not any(path.is_relative_to(root) for root in roots):
            names.append(name)
    return names


_DYNAMIC_CODE: Final = "<dynamic-code>"
_CLOUDPICKLE_CODE_REDUCE: Final = cloudpickle.Pickler.dispatch_table[types.CodeType]


def _reduce_code_keeping_its_file(code: types.CodeType) -> Any:
    # cloudpickle names every code object's file "<dynamic-code>" (for deterministic
    # payloads); a traceback on a worker should name the user's real file instead.
    constructor, args = _CLOUDPICKLE_CODE_REDUCE(code)
    return constructor, tuple(
        code.co_filename if isinstance(arg, str) and arg == _DYNAMIC_CODE else arg for arg in args
    )


class _ShippingPickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle has no types
    """cloudpickle, keeping the code objects' file names."""

    dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
        {types.CodeType: _reduce_code_keeping_its_file}, cloudpickle.Pickler.dispatch_table
    )


def _dumps(value: Any) -> bytes:
    with io.BytesIO() as file:
        _ShippingPickler(file, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return file.getvalue()


def _sources_in(pickled: bytes, files: Mapping[str, str]) -> dict[str, str]:
    """The sources of the user's files whose names the pickled code carries."""
    sources = {}
    for filename in files:
        if filename.encode() in pickled:
            lines = linecache.getlines(filename)
            if lines:
                sources[filename] = "".join(lines)
    return sources


def pickle_for_workers(functions: Mapping[str, Any], what: str) -> dict[str, bytes]:
    """Cloudpickle each function, with the user's modules pickled by value and their
    sources along (see the module doc).

    Args:
        functions: name to callable.
        what: how errors name the callables, e.g. ``"function"``.

    Raises:
        GraphDefinitionError: a callable cannot be pickled; the error names it, and the
            module that could not be shipped by value when one is to blame.
    """
    modules = [sys.modules[name] for name in user_modules()]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    files: dict[str, str] = {}
    for shipped in [*modules, sys.modules.get("__main__")]:
        file = getattr(shipped, "__file__", None)
        if shipped is not None and file:
            files[file] = shipped.__name__
    pickled = {}
    for name, function in functions.items():
        try:
            data = _dumps(function)
        except Exception as exc:  # pickling a user's object can raise anything
            raise GraphDefinitionError(_cannot_ship(what, name, function, exc, modules)) from exc
        pickled[name] = pack_shipped(data, _sources_in(data, files))
    return pickled


def _cannot_ship(
    what: str, name: str, function: Any, error: Exception, modules: list[types.ModuleType]
) -> str:
    """Why a callable cannot be shipped, naming the module to blame if one is: the one
    that, pickled by reference instead of by value, lets it pickle."""
    text = f"{what} {name!r} cannot be shipped to workers: {error!r}"
    for module in modules:
        cloudpickle.unregister_pickle_by_value(module)
        try:
            _dumps(function)
        except Exception:  # still not: this module is not the one
            continue
        else:
            return (
                f"{text}; module {module.__name__!r} ({module.__file__}) cannot be pickled "
                "by value: install it on the workers (pip install it there, and here too), "
                "so that it is imported there instead of shipped"
            )
        finally:
            cloudpickle.register_pickle_by_value(module)
    return text

"""Shipping the user's code to workers, which need none of it installed.

cloudpickle pickles a function *by reference* (module and name) when its module can be
imported, and a worker started in another directory cannot import the user's module. So
every module of the user's own code is registered to be pickled *by value*: its
functions travel with their code and the globals they use. "The user's own code" means a
module loaded from a file outside the standard library, the installed packages and this
library; installed packages are assumed to be installed on workers too.
"""

from __future__ import annotations

import pickle
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from ..shared.errors import GraphDefinitionError

if TYPE_CHECKING:
    from collections.abc import Mapping

_THIS_LIBRARY = Path(__file__).resolve().parent.parent


def _installed_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return [*roots, _THIS_LIBRARY]


def user_modules() -> list[str]:
    """Names of the imported modules that are the user's own code (see the module doc)."""
    roots = _installed_roots()
    names = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "__main__":  # __main__ is pickled by value anyway
            continue
        path = Path(file).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            names.append(name)
    return names


def pickle_for_workers(functions: Mapping[str, Any], what: str) -> dict[str, bytes]:
    """Cloudpickle each function, with the user's modules pickled by value.

    Args:
        functions: name to callable.
        what: how errors name the callables, e.g. ``"function"``.

    Raises:
        GraphDefinitionError: a callable cannot be pickled; the error names it.
    """
    for name in user_modules():
        cloudpickle.register_pickle_by_value(sys.modules[name])
    pickled = {}
    for name, function in functions.items():
        try:
            pickled[name] = cloudpickle.dumps(function, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pickling a user's object can raise anything
            raise GraphDefinitionError(
                f"{what} {name!r} cannot be shipped to workers: {exc!r}"
            ) from exc
    return pickled

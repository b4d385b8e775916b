"""Shipping the user's code to workers (issue 12): what counts as installed, tracebacks
that name the user's files on a machine without them, and a failure that names the
module to install.

Each test writes small modules of its own to a temporary directory and imports them, as
a user's project would be imported; it forgets them afterwards (``sys.modules`` and
cloudpickle's by-value registry are process-wide).
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import cloudpickle
import pytest

from trio_graph_scheduler import GraphDefinitionError
from trio_graph_scheduler.coordinator.shipping import pickle_for_workers, user_modules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import ModuleType

    MakeModule = Callable[[Path, str, str], ModuleType]


@pytest.fixture
def make_module() -> Iterator[MakeModule]:
    """``make(directory, name, source)`` writes ``directory/name.py`` and imports it."""
    made: list[ModuleType] = []
    path_entries: list[str] = []

    def make(directory: Path, name: str, source: str) -> ModuleType:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.py").write_text(textwrap.dedent(source))
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
            path_entries.append(str(directory))
        module = __import__(name)
        made.append(module)
        return module

    yield make
    for module in made:
        sys.modules.pop(module.__name__, None)
        with contextlib.suppress(ValueError):  # never registered
            cloudpickle.unregister_pickle_by_value(module)
    for entry in path_entries:
        sys.path.remove(entry)


USER_CODE = """\
    class HTTPError(Exception):
        pass


    def fetch(url, **_):
        status = 404
        raise HTTPError(f"{status} for {url}")
"""


def test_modules_under_any_package_directory_count_as_installed(
    tmp_path: Path, make_module: MakeModule
) -> None:
    make = make_module
    project = make(tmp_path / "project", "tgs_ship_project", "X = 1\n")
    debian = tmp_path / "usr" / "lib" / "python3" / "dist-packages"
    vendored = make(debian, "tgs_ship_debian", "X = 2\n")
    user_site = tmp_path / "home" / ".local" / "lib" / "python3.11" / "site-packages"
    user = make(user_site, "tgs_ship_user_site", "X = 3\n")
    shipped = user_modules()
    assert project.__name__ in shipped
    assert vendored.__name__ not in shipped
    assert user.__name__ not in shipped
    # Installed distributions, wherever they live, are not the user's code either.
    assert not {"trio", "cloudpickle", "msgspec", "pytest"} & set(shipped)
    assert not [name for name in shipped if name.startswith("trio_graph_scheduler")]


def test_a_shipped_function_names_its_file_and_line_where_the_file_is_missing(
    tmp_path: Path, make_module: MakeModule
) -> None:
    module = make_module(tmp_path / "project", "tgs_ship_fetch", USER_CODE)
    payload = pickle_for_workers({"fetch": module.fetch}, "function")["fetch"]
    source = tmp_path / "project" / "tgs_ship_fetch.py"
    source.rename(tmp_path / "elsewhere.py")  # a worker's machine has no such file
    (tmp_path / "payload").write_bytes(payload)
    worker = textwrap.dedent(
        """
        import sys, traceback
        from trio_graph_scheduler.shared.shipped_code import load_shipped
        fetch = load_shipped(open(sys.argv[1], "rb").read())
        try:
            fetch("https://example.org")
        except Exception as exc:
            print("".join(traceback.format_exception(exc)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", worker, str(tmp_path / "payload")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[-4:] == [
        f'  File "{source}", line 7, in fetch',
        '    raise HTTPError(f"{status} for {url}")',
        "tgs_ship_fetch.HTTPError: 404 for https://example.org",
        "",
    ], done.stdout + done.stderr


def test_a_module_that_cannot_be_shipped_is_named_with_what_to_do(
    tmp_path: Path, make_module: MakeModule
) -> None:
    module = make_module(
        tmp_path / "project",
        "tgs_ship_locked",
        """\
        import threading

        LOCK = threading.Lock()


        def guarded(**_):
            with LOCK:
                return 1
        """,
    )
    with pytest.raises(GraphDefinitionError) as caught:
        pickle_for_workers({"guarded": module.guarded}, "function")
    message = str(caught.value)
    assert "function 'guarded' cannot be shipped to workers" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "module 'tgs_ship_locked'" in message
    assert "install it on the workers" in message


def test_a_plain_payload_still_loads() -> None:
    from trio_graph_scheduler.shared.shipped_code import load_shipped

    assert load_shipped(pickle.dumps(len)) is len

"""``tgs-coordinator MODULE:FUNC``: where MODULE is imported from, and what a miss says."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from trio_graph_scheduler.coordinator.cli import build_parser, load_builder
from trio_graph_scheduler.shared.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

BUILDER = "async def build():\n    return None\n"


@pytest.fixture
def fresh_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test adds to sys.path and sys.modules is undone after it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))


@pytest.mark.usefixtures("fresh_imports")
def test_module_is_imported_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tgs_cwd_graph.py").write_text(BUILDER)
    monkeypatch.chdir(tmp_path)
    assert load_builder("tgs_cwd_graph:build").__name__ == "build"


@pytest.mark.usefixtures("fresh_imports")
def test_a_missing_module_says_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_builder("tgs_examples_nowhere.word_count:build_graph")
    assert str(info.value) == (
        "cannot import module 'tgs_examples_nowhere.word_count': No module named "
        f"'tgs_examples_nowhere' (MODULE:FUNC is imported from the current directory "
        f"{tmp_path.resolve()}; run from the directory that holds it, or pass --path DIR)"
    )


@pytest.mark.usefixtures("fresh_imports")
def test_path_adds_a_directory_to_import_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "tgs_path_graph.py").write_text(BUILDER)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = build_parser().parse_args(["tgs_path_graph:build", "--path", "../code", "--path", "x"])
    assert args.path == ["../code", "x"]
    assert load_builder(args.graph, args.path).__name__ == "build"
    # Absolute, first given first, before the current directory.
    assert sys.path[:3] == [str(code), str(elsewhere / "x"), ""]


@pytest.mark.usefixtures("fresh_imports")
def test_a_miss_with_path_names_the_paths_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"imported from --path lib and the current directory"):
        load_builder("tgs_not_there:build", ["lib"])


@pytest.mark.usefixtures("fresh_imports")
def test_a_module_that_imports_a_missing_one_is_not_blamed_on_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tgs_bad_import.py").write_text("import tgs_missing_dependency\n" + BUILDER)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_builder("tgs_bad_import:build")
    assert "tgs_missing_dependency" in str(info.value)
    assert "--path" not in str(info.value)

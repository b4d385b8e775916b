"""Fixtures of the end-to-end tests: a fresh set of directories and process handles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from e2e_procs import Processes

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Start programs through this; every one still running is killed afterwards."""
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.close()

"""Fixtures shared by every test folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trustme

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, str]:
    """PEM files made for the test: ``ca``, a ``cert`` chain and its ``key`` that CA
    signed for 127.0.0.1 and localhost, and ``other_ca``, a CA that signed nothing."""
    directory = tmp_path / "certs"
    directory.mkdir()
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
        "other_ca": directory / "other-ca.pem",
    }
    ca.cert_pem.write_to_path(paths["ca"])
    server.private_key_pem.write_to_path(paths["key"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(paths["cert"], append=True)
    trustme.CA().cert_pem.write_to_path(paths["other_ca"])
    return {name: str(path) for name, path in paths.items()}

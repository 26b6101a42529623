"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditkit.config import MockConfig


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    """A no-cache mock SUT for functional tests (not timing: those start their own, in its own
    process)."""
    from auditkit.mock import MockServer

    with MockServer(MockConfig()) as server:
        yield server.url

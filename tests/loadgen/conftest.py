"""Shared fixtures for the load generator tests: a small in-memory dataset."""

import pytest

from auditkit.data import Dataset, Sample


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """256 distinct prompts of 3 to 52 words (no file I/O)."""
    rows = tuple(
        Sample(i, f"prompt number {i} " + " ".join(["word"] * (i % 50))) for i in range(256)
    )
    return Dataset("memory", rows)

"""Shared fixtures.  In CI (CI=true) a test that needs a real component fails
instead of skipping when the component is missing."""
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str):
    """Skip locally, fail in CI, when a real component is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {what}")
    pytest.skip(f"component missing: {what}")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)

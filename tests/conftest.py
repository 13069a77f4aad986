"""Shared test set-up.

The suite runs on the default device (``TINYLLM_DEVICE``: "cpu" or "strict" in CI,
"cuda" on a GPU machine). Compare results on the host with ``tinyllm.to_numpy``.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Numba compiles inside the first call, so no per-example deadline; bounded example counts.
settings.register_profile(
    "tinyllm", deadline=None, max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tinyllm")

DEVICE = os.environ.get("TINYLLM_DEVICE", "cpu")


def pytest_report_header(config):
    return f"tinyllm device: {DEVICE}"


@pytest.fixture
def torch():
    """The PyTorch oracle; tests that use it skip with a reason when it is absent."""
    return pytest.importorskip("torch", reason="PyTorch (the test oracle) is not installed: pip install -e '.[test]'")


@pytest.fixture(autouse=True)
def _seed():
    import tinyllm

    tinyllm.manual_seed(0)
    np.random.seed(0)
    yield

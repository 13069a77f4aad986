"""The data files tests read (tinyshakespeare.txt, names.txt, gpt2.tiktoken) live outside the package:
CI points TINYLLM_DATA_DIR at ../shared/data. Without them, a test skips and says so."""

import os
import pathlib

import pytest


def data_file(name: str) -> pathlib.Path:
    """$TINYLLM_DATA_DIR/name, or skip the test with a reason."""
    data_dir = os.environ.get("TINYLLM_DATA_DIR")
    path = pathlib.Path(data_dir or "", name)
    if not data_dir or not path.is_file():
        pytest.skip(f"{name} not found: set TINYLLM_DATA_DIR to the folder that holds it")
    return path

"""Lab 9 (grouped-query attention): its --quick run end to end."""

import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figure(tmp_path):
    lab = runpy.run_path(str(ROOT / "examples" / "09_gqa.py"))
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "09_gqa.png").stat().st_size > 10_000 and (tmp_path / "09_gqa.json").exists()
    rows = report["memory"]["rows"]
    assert [r["n_kv_head"] for r in rows] == [8, 4, 2, 1]
    assert all(r["measured"] == r["formula"] for r in rows)
    assert [r["measured"] for r in rows] == [rows[0]["measured"] // g for g in (1, 2, 4, 8)]
    assert rows[0]["params"] > rows[-1]["params"]
    conv = report["conversion"]
    assert set(conv) == {"mha", "2", "1"} and all(np.isfinite(conv[k]["uptrained"]) for k in ("2", "1"))
    (tmp_path / "09_gqa.png").unlink()
    lab["main"](["--quick", "--out", str(tmp_path), "--replot"])  # the figure again, from the JSON alone
    assert (tmp_path / "09_gqa.png").stat().st_size > 10_000

"""Lab 14 (--quick): the bytes of a block, the error per format, AWQ against rounding, the accuracy/size table,
the sensitivity sweep and (when llama-cpp-python is installed) llama.cpp's answers, with figures and JSON."""

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(tmp_path, capsys):
    lab = runpy.run_path(str(ROOT / "examples" / "14_quantization.py"))
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("14_bytes.png", "14_error.png", "14_outliers.png", "14_pareto.png", "14_sensitivity.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert json.loads((tmp_path / "14_quantization.json").read_text())["table"][0]["name"] == "F32"

    assert len(report["bytes"]["q8_0"]["bytes"]) == 34 and len(report["bytes"]["q4_0"]["bytes"]) == 18
    bits = {r["format"]: r["bits"] for r in report["error"]}
    assert bits["q8_0"] == 8.5 and bits["q4_0"] == 4.5 and bits["f16"] == 16
    errs = {r["format"]: r["rms_rel_err"] for r in report["error"]}
    assert errs["f16"] < errs["q8_0"] < errs["q5_0"] < errs["q4_0"]  # fewer bits, more error
    assert all(r["error"] <= r["error_rtn"] for r in report["outliers"]["awq"])  # α = 0 is plain rounding

    rows = {r["name"]: r for r in report["table"]}
    assert rows["F32"]["top1_agree"] == 1.0
    size = [rows[n]["weight_bytes"] for n in ("F32", "F16", "Q8_0", "Q4_0")]
    assert size == sorted(size, reverse=True)
    assert all(abs(rows[n]["ppl"] / rows["F32"]["ppl"] - 1) < 0.05 for n in ("F16", "int8", "Q8_0", "Q4_0"))
    assert len(report["sensitivity"]["rows"]) == 8

    lc = report["llama_cpp"]
    if "rows" in lc:  # llama-cpp-python installed
        assert all(r["same_tokens"] for r in lc["rows"])
        f32 = [r for r in lc["rows"] if r["dtype"] == "f32"]
        assert f32[0]["max_rel_diff"] < 2e-3 and f32[1]["max_rel_diff"] < 1e-4 and all(r["same_greedy"] for r in f32)
    assert "Accuracy against size" in capsys.readouterr().out

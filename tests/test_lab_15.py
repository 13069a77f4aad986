"""Lab 15 (--quick): the Hugging Face round trip of a tiny trained model, checked by transformers itself when it is
installed (without it, the lab says so and checks the round trip through tinyllm's own reader)."""

import importlib.util
import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lab_quick_round_trips(tmp_path, capsys):
    lab = runpy.run_path(str(ROOT / "examples" / "15_stacks.py"))
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    hf = report["huggingface"]
    assert hf["gpt2_import_max_abs_diff"] == 0.0 and hf["gpt2_import_same_tokenizer"]
    assert all(r["error"] and next(iter(r["change"])) in r["error"] for r in report["refusals"])
    assert (tmp_path / "15_agreement.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "15_stacks.json").read_text())["prompt"] == report["prompt"]
    out = capsys.readouterr().out
    if importlib.util.find_spec("transformers") is None:
        assert "skipped" in hf and "skipped the rest: transformers is not installed" in out
        return
    assert hf["gpt2_export"]["architecture"] == "GPT2LMHeadModel" and hf["gpt2_export"]["same_ids"]
    for part in ("gpt2_export", "llama_export", "llama_import"):
        assert hf[part]["max_abs_diff"] < 1e-4 and hf[part]["same_greedy"], part
    assert hf["llama_export"]["architecture"] == "LlamaForCausalLM"
    assert "transformers built a GPT2LMHeadModel" in out

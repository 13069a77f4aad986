"""Lab 12: its judge on worked examples, its prompts and preference pairs, and the --quick run."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "12_finetune_rlhf.py"))


def test_the_judge_counts_moods_and_unknown_words(lab):
    known = lab["lexicon"]("A happy dog. The sad cat was glad!")
    assert known == {"a", "happy", "dog", "the", "sad", "cat", "was", "glad"}
    assert lab["true_reward"]("a happy dog zzz.", known) == 0.0  # +1 happy, -1 zzz
    assert lab["true_reward"]("the sad cat was glad ", known) == 0.0
    assert lab["true_reward"]("happy glad happ", known) == 2.0  # the cut-off last word is left out
    assert lab["true_reward"]("sad, sad.", known) == -2.0


@pytest.mark.parametrize("k", [2, 4])
def test_prompts_open_sentences_and_pairs_rank_by_the_judge(lab, k):
    from tinyllm.data import build_tokenizer
    from tinyllm.nn import GPT, GPTConfig

    text = "The dog ran. A happy cat sat. The sad frog hid. Then a dog ran home. " * 3
    tok = build_tokenizer("char", text)
    prompts = lab["story_prompts"](text, tok, 5, 4, seed=0)
    assert prompts.shape == (5, 4)
    assert all(tok.decode(p.tolist())[0].isupper() for p in prompts)
    gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=16))
    judge = lab["make_judge"](tok, lab["lexicon"](text))
    pairs, stats = lab["preference_pairs"](gpt, prompts, 6, judge, seed=0, k=k)
    assert stats["pairs"] + stats["ties"] == 5 * k * (k - 1) // 2 and len(pairs) == stats["pairs"]
    from tinyllm.train.rlhf.policy import Rollout

    for c, r in zip(pairs.chosen, pairs.rejected):
        ones = np.ones((1, 6), dtype=np.float32)
        assert judge(Rollout(c[None], ones, 4))[0] > judge(Rollout(r[None], ones, 4))[0]
        assert (c[:4] == r[:4]).all()  # one prompt, two responses


def test_part_3_alone_needs_a_full_run_first(lab, tmp_path):
    with pytest.raises(SystemExit, match="run the lab without --parts first"):
        lab["main"](["--quick", "--out", str(tmp_path), "--parts", "3"])


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(lab, tmp_path):
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("12_forgetting.png", "12_exact_match.png", "12_rlhf_curves.png", "12_rlhf_compare.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    saved = json.loads((tmp_path / "12_finetune_rlhf.json").read_text())
    assert set(saved["rlhf"]["eval"]) == {"base", "ppo", "ppo-no-kl", "dpo"}
    text = lab["summary"](saved)  # the tables the chapter quotes, from the saved JSON
    assert "exact match" in text and "reward model, held-out pairs" in text and len(text.splitlines()) > 20
    lab["main"](["--quick", "--out", str(tmp_path), "--parts", "3"])  # part 3 again, merged into the same JSON
    again = json.loads((tmp_path / "12_finetune_rlhf.json").read_text())
    assert again["instruct"] == saved["instruct"] and again["seconds"] == saved["seconds"]
    assert set(again["rlhf"]["eval"]) == {"base", "ppo", "ppo-no-kl", "dpo"} and again["rlhf"]["seconds"] > 0
    mem = report["instruct"]["memory"]
    assert mem["lora"]["trainable"] < mem["full"]["trainable"] and mem["lora"]["adam_bytes"] < mem["full"]["adam_bytes"]

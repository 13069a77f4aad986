"""Finetuning (tinyllm/train/finetune.py, tinyllm/data/sft.py, tinyllm/data/instructions.py, `tinyllm finetune`)."""

import json

import numpy as np
import pytest

import tinyllm
from tinyllm.cli import main
from tinyllm.data.instructions import (
    PHRASINGS,
    TASKS,
    alphabet,
    answer,
    held_out,
    instruction_dataset,
    write_jsonl,
)
from tinyllm.data.sft import IGNORE_INDEX, PromptResponseData, masked_example, pad_batch, read_records
from tinyllm.nn import GPT
from tinyllm.tokenizer import CharTokenizer
from tinyllm.train import TrainConfig, load_checkpoint, read_metrics, train
from tinyllm.train.exact_match import exact_match
from tinyllm.train.finetune import FinetuneSpec, finetune, finetune_config, read_spec

TINY = dict(context_length=24, n_layer=1, n_head=2, d_model=16, dropout=0.0, bias=True)
CORPUS = "the cat sat on the mat. the dog ran to the cat.\n" * 40 + alphabet()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny base run (character tokenizer over CORPUS, which covers the instruction alphabet)."""
    root = tmp_path_factory.mktemp("ft")
    (root / "corpus.txt").write_text(CORPUS)
    cfg = TrainConfig(data=str(root / "corpus.txt"), tokenizer="char", out_dir=str(root / "base"), batch_size=4,
                      max_iters=4, warmup_iters=1, eval_interval=4, eval_iters=1, sample_tokens=0, seed=3)
    train(cfg, TINY)
    records = instruction_dataset(("reverse", "count"), 20, seed=0)
    write_jsonl(records, root / "tasks.jsonl")
    return root


def _cfg(base, out, **kw):
    spec = FinetuneSpec(base=str(base / "base"), **{k: kw.pop(k) for k in list(kw) if k.startswith("lora")})
    fields = dict(max_iters=6, eval_interval=3, eval_iters=2, batch_size=4, log_interval=1, seed=5)
    fields.update(kw)
    return spec, finetune_config(spec, str(base / "tasks.jsonl"), str(out), **fields)


# ----------------------------------------------------------------------------- records and batches


def test_the_loss_is_on_the_response_tokens_only():
    x, y, cut = masked_example([0, 1, 2, 3], 2, 8)  # the docstring's example
    assert x.tolist() == [0, 1, 2] and y.tolist() == [-100, 2, 3] and not cut
    x, y, cut = masked_example([5, 6, 7, 8, 9, 4], 4, 3)  # too long: the last 4 tokens kept, prompt cut at the front
    assert x.tolist() == [7, 8, 9] and y.tolist() == [-100, 9, 4] and cut
    X, Y = pad_batch([(np.array([1, 2]), np.array([-100, 3])), (np.array([4]), np.array([5]))])
    assert X.tolist() == [[1, 2], [4, 0]] and Y.tolist() == [[-100, 3], [5, -100]]


def test_records_are_checked_line_by_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n\n{"prompt": "a", "answer": "b"}\n')
    with pytest.raises(ValueError, match=r'line 3: a record needs string fields "prompt" and "response", got '
                                         r"\['answer', 'prompt'\]"):
        read_records(path)
    path.write_text('{"prompt": "a", "response": "b"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2: not JSON"):
        read_records(path)
    tok = CharTokenizer.from_text("ab")
    with pytest.raises(ValueError, match="record 2: character 'z'"):
        PromptResponseData([{"prompt": "a", "response": "b"}, {"prompt": "z", "response": "b"}], tok)


def test_prompt_response_batches_mask_every_prompt_target():
    tok = CharTokenizer.from_text(alphabet())
    records = instruction_dataset(TASKS, 10, seed=1)
    data = PromptResponseData(records, tok, val_fraction=0.2, seed=0)
    assert len(data.splits["val"].examples) == 10 and len(data.splits["train"].examples) == 40
    x, y = data.batch("train", 8, 64, np.random.default_rng(0))
    nl = tok.encode("\n")[0]
    for row_x, row_y in zip(x, y):
        scored = row_y[row_y != IGNORE_INDEX]
        # the scored targets are the response: everything after the prompt's newline, through the final newline
        first_nl = int(np.flatnonzero(row_x == nl)[0])
        assert (row_y[:first_nl] == IGNORE_INDEX).all() and scored[-1] == nl
        assert len(scored) == int((row_y[first_nl:] != IGNORE_INDEX).sum())


# ----------------------------------------------------------------------------- the instruction tasks


def test_the_instruction_tasks_answer_exactly_and_hold_inputs_out():
    assert [answer(t, x) for t, x in [("reverse", "frog"), ("sort", "frog"), ("capitalize", "frog"),
                                      ("count", "frog"), ("add", "12+7")]] == ["gorf", "fgor", "FROG", "4", "19"]
    train_set = instruction_dataset(TASKS, 40, seed=0)
    test_set = instruction_dataset(TASKS, 40, seed=0, split="test", phrasing="held-out")
    inputs = lambda rs: {r["prompt"].split()[-1] for r in rs}  # noqa: E731
    assert not inputs(train_set) & inputs(test_set)
    assert all(held_out(x) for x in inputs(test_set))
    for r in train_set:
        assert r["response"] == r["answer"] + "\n" and r["prompt"].endswith("\n")
        assert any(r["prompt"] == t.format(x=r["prompt"].split()[-1]) + "\n" for t in PHRASINGS[r["task"]][0])
    for r in test_set:
        assert any(r["prompt"].startswith(t.split("{x}")[0]) for t in PHRASINGS[r["task"]][1])


def test_exact_match_cuts_at_the_first_newline():
    tok = CharTokenizer.from_text(alphabet())
    records = [{"prompt": "reverse: ab\n", "answer": "ba", "task": "reverse"},
               {"prompt": "count: abc\n", "answer": "3", "task": "count"},
               {"prompt": "count: xyz\n", "answer": "3", "task": "count"}]
    replies = {"reverse: ab\n": "ba\nzzz", "count: abc\n": "3\n\n\n\n", "count: xyz\n": "33\nxx"}

    class Oracle:  # a stand-in model that "generates" a fixed reply to each prompt
        def generate(self, idx, n, temperature):
            rows = [list(r) + tok.encode(replies[tok.decode(list(r))])[:n] for r in idx]
            return np.asarray(rows)

    assert exact_match(Oracle(), tok, records, max_new_tokens=5) == {"reverse": 1.0, "count": 0.5, "all": 2 / 3}


# ----------------------------------------------------------------------------- finetune runs


def test_finetune_on_records_learns_and_reports_before_and_after(base, tmp_path):
    spec, cfg = _cfg(base, tmp_path / "ft", max_iters=30, eval_interval=30, learning_rate=3e-3)
    result = finetune(spec, cfg)
    assert result.after["new"] < result.before["new"] - 0.1  # it learned the records
    assert result.before["base"] is not None  # the base run's corpus, read from its checkpoint
    saved = read_spec(tmp_path / "ft")
    assert saved["before"] == result.before and saved["after"] == result.after
    assert saved["spec"]["base"] == str(base / "base")
    evals = [r for r in read_metrics(tmp_path / "ft" / "metrics.jsonl") if r.get("eval")]
    assert [r["step"] for r in evals] == [0, 30]
    model = GPT.from_pretrained(tmp_path / "ft")  # the folder is a plain model folder
    assert model.config == GPT.from_pretrained(base / "base").config


def test_lora_finetune_trains_the_adapters_only_and_writes_merged_weights(base, tmp_path, capsys):
    out = tmp_path / "lora"
    argv = ["finetune", "--from", str(base / "base"), "--data", str(base / "tasks.jsonl"), "--out", str(out),
            "--lora-r", "2", "--lora-targets", "c_attn,c_fc", "--max-iters", "4", "--eval-interval", "2",
            "--eval-iters", "1", "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "trainable" in printed and "before: loss" in printed and "after:  loss" in printed
    state = load_checkpoint(out)["model"]
    base_state = load_checkpoint(base / "base")["model"]
    for k, v in base_state.items():  # the frozen base weights did not move
        np.testing.assert_array_equal(tinyllm.to_numpy(state[k].data), tinyllm.to_numpy(v.data))
    assert sum(".lora_" in k for k in state) == 4  # A and B of 2 layers
    merged = GPT.from_pretrained(out)  # model.safetensors: the adapters merged in, a plain GPT
    assert merged.make_decoder(1) is not None
    assert (out / "adapters.safetensors").stat().st_size < 20_000
    assert main(["sample", "--ckpt", str(out), "--prompt", "count: ab\n", "--max-new-tokens", "3"]) == 0


def test_a_stopped_finetune_resumes_to_the_same_losses(base, tmp_path):
    spec, cfg = _cfg(base, tmp_path / "whole", lora_r=2)
    finetune(spec, cfg)
    spec2, cfg2 = _cfg(base, tmp_path / "parts", lora_r=2)
    first = finetune(spec2, cfg2, on_step=lambda step, rec: step == 3)
    assert first.stopped_early and first.step == 4
    finetune(spec2, cfg2, resume=True)
    losses = lambda d: [(r["step"], r["train_loss"]) for r in read_metrics(d / "metrics.jsonl")]  # noqa: E731
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")


def test_finetune_refusals_are_one_line(base, tmp_path, capsys):
    (tmp_path / "other.txt").write_text("the cat ~ sat\n" * 50)
    argv = ["finetune", "--from", str(base / "base"), "--out", str(tmp_path / "o"), "--max-iters", "2",
            "--no-progress"]
    assert main(argv + ["--data", str(tmp_path / "other.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot encode" in err and "'~'" in err
    (tmp_path / "bad.jsonl").write_text('{"prompt": "cat"}\n')
    assert main(argv + ["--data", str(tmp_path / "bad.jsonl")]) == 2
    assert 'line 1: a record needs string fields "prompt" and "response"' in capsys.readouterr().err
    assert main(["finetune", "--out", str(tmp_path / "o")]) == 2
    assert "--from DIR" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # a refused run writes nothing
    json.dumps(finetune_config(FinetuneSpec(base=str(base / "base"), lora_r=4), "x.jsonl", "o").to_dict())

"""The training loop: metrics, checkpoints, a bit-identical resume, presets and the CLI."""

import json
import os
import signal

import numpy as np
import pytest

import tinyllm
from tinyllm.cli import main
from tinyllm.train import PRESETS, TrainConfig, load_checkpoint, preset, read_metrics, train

TINY_MODEL = dict(context_length=16, n_layer=1, n_head=2, d_model=16, dropout=0.1, bias=True)


def tiny_config(out_dir, **kw):
    fields = dict(data="stories", tokenizer="char", out_dir=str(out_dir), batch_size=4, max_iters=12,
                  learning_rate=3e-3, min_lr=3e-4, warmup_iters=3, eval_interval=5, eval_iters=2,
                  log_interval=1, sample_tokens=0, seed=7)
    fields.update(kw)
    return TrainConfig(**fields)


def test_a_run_writes_metrics_checkpoint_and_model(tmp_path):
    result = train(tiny_config(tmp_path), TINY_MODEL, progress=False, log=lambda *_: None)
    assert result.step == 12 and not result.stopped_early
    for name in ("ckpt.safetensors", "model.safetensors", "config.json", "tokenizer.json", "metrics.jsonl"):
        assert (tmp_path / name).exists(), name
    records = read_metrics(tmp_path / "metrics.jsonl")
    steps = [r["step"] for r in records if not r.get("eval")]
    assert steps == list(range(12))
    for r in records:
        assert np.isfinite(r["train_loss"]) and r["lr"] >= 0 and r["elapsed_s"] >= 0
        if r.get("eval"):
            assert np.isfinite(r["val_loss"])
        else:
            assert r["tokens_per_s"] > 0 and "val_loss" not in r
    assert [r["step"] for r in records if r.get("eval")] == [0, 5, 10, 12]
    # warmup from 0, then cosine down to min_lr at max_iters
    lrs = [r["lr"] for r in records if not r.get("eval")]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(3e-3) and lrs[-1] < 1e-3
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 12 and ckpt["model_config"]["vocab_size"] == result.tokenizer.vocab_size


def test_the_library_trains_quietly_and_logs_where_asked(tmp_path, capsys):
    train(tiny_config(tmp_path / "a"), TINY_MODEL)  # no log, no progress: nothing on the terminal
    assert capsys.readouterr() == ("", "")
    lines = []
    train(tiny_config(tmp_path / "b"), TINY_MODEL, log=lines.append)
    assert capsys.readouterr() == ("", "")
    assert "step 5: train loss" in "\n".join(lines) and lines[0].startswith("model: ")


def test_training_lowers_the_loss(tmp_path):
    cfg = tiny_config(tmp_path, max_iters=60, eval_interval=60, eval_iters=4, batch_size=8, log_interval=20)
    train(cfg, dict(TINY_MODEL, dropout=0.0), progress=False, log=lambda *_: None)
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("eval")]
    assert records[-1]["val_loss"] < records[0]["val_loss"] - 0.5


def _curve(path):
    return [(r["step"], r.get("eval", False), r["train_loss"], r.get("val_loss"), r["lr"])
            for r in read_metrics(path / "metrics.jsonl")]


@pytest.mark.parametrize("stop_at", [3, 5, 7])
def test_resume_continues_bit_identically(tmp_path, stop_at):
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full = train(tiny_config(full_dir), TINY_MODEL, progress=False, log=lambda *_: None)

    stopped = train(tiny_config(part_dir), TINY_MODEL, progress=False, log=lambda *_: None,
                    on_step=lambda step, rec: step == stop_at - 1)
    assert stopped.stopped_early and stopped.step == stop_at
    assert load_checkpoint(part_dir)["step"] == stop_at
    resumed = train(tiny_config(part_dir), TINY_MODEL, resume=True, progress=False, log=lambda *_: None)

    assert _curve(part_dir) == _curve(full_dir)  # every logged loss and lr, exactly
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        np.testing.assert_array_equal(tinyllm.to_numpy(a[k].data), tinyllm.to_numpy(b[k].data), err_msg=k)


def test_ctrl_c_stops_at_a_step_boundary_with_a_checkpoint(tmp_path):
    def interrupt(step, rec):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C once

    result = train(tiny_config(tmp_path), TINY_MODEL, progress=False, log=lambda *_: None, on_step=interrupt)
    assert result.stopped_early and result.step == 5
    assert load_checkpoint(tmp_path)["step"] == 5


def test_resume_refuses_other_data_and_missing_checkpoints(tmp_path):
    with pytest.raises(tinyllm.serialization.CheckpointError, match="no training checkpoint"):
        train(tiny_config(tmp_path), TINY_MODEL, resume=True, progress=False, log=lambda *_: None)
    train(tiny_config(tmp_path, max_iters=2, warmup_iters=1), TINY_MODEL, progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="trained on data='stories'"):
        train(tiny_config(tmp_path, data="names"), TINY_MODEL, resume=True, progress=False, log=lambda *_: None)


def test_config_and_presets_validate():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("gpt-5")
    with pytest.raises(ValueError, match="unknown setting 'n_layers'"):
        preset("stories-char", n_layers=3)
    with pytest.raises(ValueError, match="tokenizer must be 'char' or 'bpe:VOCAB'"):
        TrainConfig(tokenizer="bpe")
    with pytest.raises(ValueError, match="warmup_iters"):
        TrainConfig(max_iters=10, warmup_iters=20)
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(learning_rate=1e-3, min_lr=1e-2)
    cfg, model = preset("shakespeare-char-cpu")
    # nanoGPT's documented CPU recipe, field by field
    assert (cfg.batch_size, cfg.max_iters, cfg.decay_iters, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters) == \
        (12, 2000, 2000, 1e-3, 1e-4, 100)
    assert (cfg.beta1, cfg.beta2, cfg.weight_decay, cfg.grad_clip, cfg.eval_interval, cfg.eval_iters) == \
        (0.9, 0.99, 0.1, 1.0, 250, 20)
    assert (model["n_layer"], model["n_head"], model["d_model"], model["context_length"], model["dropout"]) == \
        (4, 4, 128, 64, 0.0)
    assert cfg.data == "tinyshakespeare" and cfg.tokenizer == "char"
    assert set(PRESETS) >= {"stories-char", "shakespeare-char-cpu"}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    short, _ = preset("shakespeare-char-cpu", max_iters=50)
    assert short.warmup_iters == 5 and short.decay_iters == 50  # a short run keeps a short warmup


def test_cli_train_then_sample(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--out", str(out), "--max-iters", "4", "--n-layer", "1", "--d-model", "16", "--n-head", "2",
               "--context-length", "16", "--batch-size", "2", "--eval-interval", "2", "--eval-iters", "1",
               "--sample-tokens", "20", "--no-progress", "--bias", "false"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "a sample" in printed and f"tinyllm sample --ckpt {out}" in printed
    assert json.loads((out / "config.json").read_text())["bias"] is False

    rc = main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "30", "--seed", "3"])
    first = capsys.readouterr().out
    assert rc == 0 and first.startswith("Once") and len(first.rstrip("\n")) >= 4
    main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "30", "--seed", "3"])
    assert capsys.readouterr().out == first  # same seed, same text
    main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "30", "--temperature", "0"])
    greedy = capsys.readouterr().out
    main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "30", "--temperature", "0"])
    assert capsys.readouterr().out == greedy
    main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "30", "--temperature", "0",
          "--no-cache"])
    assert capsys.readouterr().out == greedy  # the KV cache changes only the speed
    rc = main(["sample", "--ckpt", str(out), "--prompt", "Once", "--max-new-tokens", "30", "--seed", "3", "--top-k",
               "none", "--top-p", "0.9", "--min-p", "0.05", "--repetition-penalty", "1.3", "--presence-penalty", "0.5",
               "--frequency-penalty", "0.1", "--num-samples", "2"])
    knobs = capsys.readouterr().out
    assert rc == 0 and knobs.count("Once") == 2 and "---------------" in knobs
    assert main(["sample", "--ckpt", str(out), "--top-p", "1.5"]) == 2
    assert "top_p must be None or a number in (0, 1]" in capsys.readouterr().err


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["sample", "--ckpt", str(tmp_path / "nothing")]) == 2
    assert "config.json missing" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--tokenizer", "wordpiece"]) == 2
    assert "tokenizer must be" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--bias", "maybe"])

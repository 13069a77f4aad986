"""`tinyllm train` never loses a run: it checks everything before it writes, refuses what would
overwrite, resumes with the saved settings, and stops on a NaN without saving it.

Every refusal is exit status 2 with one line on stderr, and leaves the run folder byte-identical.
"""

import json

import numpy as np
import pytest

import tinyllm
from tinyllm.cli import main
from tinyllm.train import NonFiniteLossError, TrainConfig, load_checkpoint, read_metrics, train
from tinyllm.train import loop as loop_module

TINY = ["--max-iters", "2", "--eval-interval", "1", "--eval-iters", "1", "--sample-tokens", "0", "--no-progress",
        "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--context-length", "16", "--batch-size", "2"]


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, argv, *needles):
    """Run the CLI, expect exit 2 and one line `tinyllm train: ...` naming each needle."""
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("tinyllm train: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def run(tmp_path, capsys):
    """A finished 2-step run in tmp_path/run."""
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    return out


# ----------------------------------------------------------------------------- validate, then write

def test_too_little_data_leaves_the_existing_run_alone(run, tmp_path, capsys):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("hello\n")
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--data", str(tiny), "--force", *TINY], "context_length + 1")
    assert snapshot(run) == before  # --force moves nothing aside until the new run is known to work


def test_a_fresh_run_into_a_run_folder_is_refused(run, capsys):
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), *TINY], "--resume", "--force", "ckpt.safetensors")
    assert snapshot(run) == before


def test_a_users_own_config_json_is_not_overwritten(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"mine": true}\n')
    refused(capsys, ["train", "--out", str(folder), *TINY], "--force")
    assert snapshot(folder) == {"config.json": b'{"mine": true}\n'}


def test_force_moves_the_old_run_aside_and_starts_anew(run, capsys):
    before = snapshot(run)
    assert main(["train", "--out", str(run), "--force", "--seed", "3", *TINY]) == 0
    assert "moved the previous files" in capsys.readouterr().out
    aside = [p for p in run.iterdir() if p.name.startswith(".replaced-")]
    assert len(aside) == 1 and snapshot(aside[0]) == before  # every old file, byte for byte
    assert load_checkpoint(run)["train_config"]["seed"] == 3
    # the folder moved aside does not count as a run: another --force leaves it and adds one more
    assert main(["train", "--out", str(run), "--force", *TINY]) == 0
    assert len([p for p in run.iterdir() if p.name.startswith(".replaced-")]) == 2


def test_resume_with_max_iters_at_or_below_the_step_is_refused(run, capsys):
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "1", "--no-progress"],
            "at step 2", "--max-iters 1")
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "2", "--no-progress"], "larger")
    refused(capsys, ["train", "--out", str(run), "--resume", "--no-progress"], "is finished", "larger --max-iters")
    assert snapshot(run) == before


def test_resume_restores_the_saved_settings_and_extends_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _cfg(out, max_iters=6, learning_rate=2e-3, min_lr=2e-4)
    train(cfg, MODEL, on_step=lambda step, rec: step == 2)  # stopped early, at step 3
    assert load_checkpoint(out)["step"] == 3
    # no flags: the saved max_iters (6) and learning rate, not the preset's 800 and 4e-3
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    state = load_checkpoint(out)
    assert state["step"] == 6 and state["train_config"]["learning_rate"] == 2e-3
    # an explicit larger --max-iters extends it
    assert main(["train", "--out", str(out), "--resume", "--max-iters", "8", "--no-progress"]) == 0
    assert load_checkpoint(out)["step"] == 8
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if not r.get("eval")] == list(range(8))


def test_resume_refuses_model_flags_that_contradict_the_checkpoint(run, capsys):
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "4", "--n-layer", "2"],
            "n_layer=1", "--n-layer")
    assert snapshot(run) == before
    # the same value as saved is fine
    assert main(["train", "--out", str(run), "--resume", "--max-iters", "3", "--n-layer", "1", "--no-progress"]) == 0


def test_resume_tolerates_a_torn_last_metrics_line(run, capsys):
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "train_lo')  # the process died mid-write
    assert main(["train", "--out", str(run), "--resume", "--max-iters", "3", "--no-progress"]) == 0
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if not r.get("eval")]
    assert steps == [1, 2]  # (logged every log_interval steps and at the last)


# ----------------------------------------------------------------------------- one line, exit 2, nothing written

def _bad_data(tmp_path, kind):
    if kind == "empty file":
        (tmp_path / "d.txt").write_text("")
    elif kind == "binary":
        (tmp_path / "d.txt").write_bytes(bytes(range(256)) * 10)
    elif kind == "latin-1":
        (tmp_path / "d.txt").write_bytes("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 50)
    elif kind == "empty folder":
        (tmp_path / "d.txt").mkdir()
    return tmp_path / "d.txt"


@pytest.mark.parametrize("kind, needle", [("empty file", "empty"), ("binary", "not UTF-8"),
                                          ("latin-1", "not UTF-8"), ("empty folder", "no .txt files"),
                                          ("missing", "no file or folder")])
def test_bad_data_is_a_message(tmp_path, capsys, kind, needle):
    data = _bad_data(tmp_path, kind)
    out = tmp_path / "new"
    refused(capsys, ["train", "--out", str(out), "--data", str(data), *TINY], needle)
    assert not out.exists()


@pytest.mark.parametrize("flags, needle", [
    (["--n-layer", "0"], "n_layer must be a positive integer"),
    (["--n-head", "3"], "divisible by n_head=3"),
    (["--dropout", "2"], "dropout must be a probability"),
    (["--tokenizer", "bpe:100"], "at least 256"),
    (["--max-iters", "0"], "max_iters must be"),
])
def test_bad_settings_are_messages_and_write_nothing(tmp_path, capsys, flags, needle):
    out = tmp_path / "new"
    refused(capsys, ["train", "--out", str(out), *TINY, *flags], needle)
    assert not out.exists()


def test_cuda_without_cupy_is_a_message(tmp_path, capsys):
    from tinyllm import backend

    if backend.cuda_available():
        pytest.skip("this machine has CuPy and a GPU")
    out = tmp_path / "new"
    refused(capsys, ["train", "--out", str(out), "--device", "cuda", *TINY], "CuPy")
    assert not out.exists()


def test_out_naming_a_file_is_a_message(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    refused(capsys, ["train", "--out", str(f), *TINY], "is a file")
    assert f.read_text() == "mine\n"


def test_resume_without_a_checkpoint_is_a_message(tmp_path, capsys):
    refused(capsys, ["train", "--out", str(tmp_path / "none"), "--resume"], "no training checkpoint")
    assert not (tmp_path / "none").exists()


def test_resume_from_a_corrupt_checkpoint_is_a_message(run, capsys):
    ckpt = run / "ckpt.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "4"], "truncated or corrupt")
    assert snapshot(run) == before


@pytest.mark.parametrize("field, value", [("n_layer", 10**6), ("context_length", 10**12)])
def test_resume_from_a_checkpoint_whose_sizes_were_edited_is_a_message(run, capsys, field, value):
    import tinyllm

    ckpt = run / "ckpt.safetensors"
    state = tinyllm.load(ckpt)
    state["model_config"][field] = value  # as a hand edit (or a hostile sharer) would
    tinyllm.save(state, ckpt)
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "4"], f"{field}={value}", "holds only")
    assert snapshot(run) == before


def test_resume_with_other_data_is_a_message(run, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("a different corpus\n" * 200)
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "4", "--data", str(other)],
            "data='stories'", "--data")
    assert snapshot(run) == before


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="n_layer"):
        main(["--debug", "train", "--out", str(tmp_path / "x"), *TINY, "--n-layer", "0"])


def test_train_help_shows_no_missing_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "MISSING" not in out and "--n-layer" in out


# ----------------------------------------------------------------------------- training health

def _poison_grads_at(monkeypatch, call):
    """From the `call`-th gradient clipping on, one gradient entry is NaN (as after an overflow)."""
    real, calls = loop_module.clip_grad_norm_, []

    def clip(params, max_norm):
        params = list(params)
        calls.append(1)
        if len(calls) == call:
            params[0].grad.data.flat[0] = np.nan
        return real(params, max_norm)

    monkeypatch.setattr(loop_module, "clip_grad_norm_", clip)


def _cfg(out, **kw):
    return TrainConfig(**{**dict(data="stories", out_dir=str(out), batch_size=2, max_iters=6, warmup_iters=1,
                                 eval_interval=2, eval_iters=1, log_interval=1, sample_tokens=0), **kw})


MODEL = dict(n_layer=1, n_head=2, d_model=16, context_length=16)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _poison_grads_at(monkeypatch, 4)  # step 3
    with pytest.raises(NonFiniteLossError, match="step 3"):
        train(_cfg(tmp_path), MODEL)
    state = load_checkpoint(tmp_path)
    assert state["step"] == 2  # the evaluation at step 2 wrote the last checkpoint; none after the NaN
    for name, w in state["model"].items():
        assert np.isfinite(tinyllm.to_numpy(w.data)).all(), name


def test_a_nan_in_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    _poison_grads_at(monkeypatch, 2)
    out = tmp_path / "run"
    refused(capsys, ["train", "--out", str(out), *TINY[:1], "4", *TINY[2:]], "not finite", "--skip-nonfinite")
    assert load_checkpoint(out)["step"] == 1


def test_skip_nonfinite_skips_the_step(tmp_path, monkeypatch, capsys):
    _poison_grads_at(monkeypatch, 2)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--skip-nonfinite", *TINY[:1], "4", *TINY[2:]]) == 0
    assert "step skipped" in capsys.readouterr().out
    state = load_checkpoint(out)
    assert state["step"] == 4
    for name, w in state["model"].items():
        assert np.isfinite(tinyllm.to_numpy(w.data)).all(), name
    assert all(np.isfinite(r["val_loss"]) for r in read_metrics(out / "metrics.jsonl") if r.get("eval"))


def test_metrics_with_a_torn_middle_line_is_a_clear_error(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "{torn", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="line 2, is not JSON"):
        read_metrics(run / "metrics.jsonl")
    json.loads(lines[0])


def test_train_or_load_checks_before_it_writes(tmp_path):
    from tinyllm.train import train_or_load

    with pytest.raises(ValueError, match="n_layer"):
        train_or_load(_cfg(tmp_path / "labs"), dict(MODEL, n_layer=0))
    assert not (tmp_path / "labs").exists()  # not even reuse.json


def test_a_nan_evaluation_writes_no_checkpoint(tmp_path, monkeypatch):
    real = loop_module.estimate_loss

    def estimate(model, splits, cfg, T, step, device, **kw):
        out = real(model, splits, cfg, T, step, device, **kw)
        return {**out, "val": float("nan")} if step == 4 else out

    monkeypatch.setattr(loop_module, "estimate_loss", estimate)
    with pytest.raises(NonFiniteLossError, match="evaluation at step 4"):
        train(_cfg(tmp_path), MODEL)
    assert load_checkpoint(tmp_path)["step"] == 2


def test_resume_without_the_tokenizer_is_a_message(run, capsys):
    (run / "tokenizer.json").unlink()
    before = snapshot(run)
    refused(capsys, ["train", "--out", str(run), "--resume", "--max-iters", "4"], "tokenizer")
    assert snapshot(run) == before


def test_interrupt_is_one_line_and_a_bug_is_a_traceback(monkeypatch, capsys):
    import tinyllm.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_train", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err == "tinyllm train: interrupted\n"

    def buggy(args):
        return {}["no such key"]

    monkeypatch.setattr(cli, "_train", buggy)
    with pytest.raises(KeyError):  # a bug in tinyllm is not dressed up as a user error
        main(["train"])


def test_training_bytes_counts_weights_gradients_moments_and_logits():
    from tinyllm.nn import GPTConfig
    from tinyllm.train.memory import training_bytes

    cfg = GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128)
    assert training_bytes(cfg, 16) == 16 * 802_944 + 8 * 16 * 64 * 65  # the module docstring's example


def test_a_run_past_the_memory_or_the_depth_limit_is_refused_before_anything_is_written(tmp_path, capsys):
    from tinyllm.train.memory import MAX_LAYERS

    out = tmp_path / "run"
    refused(capsys, ["train", "--out", str(out), *TINY, "--n-layer", str(MAX_LAYERS + 1)], "MAX_LAYERS")
    refused(capsys, ["train", "--out", str(out), *TINY, "--d-model", str(2**20), "--n-head", "1"], "GiB",
            "d_model=1048576")
    assert not out.exists()

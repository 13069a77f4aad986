"""train_or_load: a finished run with the same configs is loaded, not retrained; anything else trains."""

import numpy as np

import tinyllm
from tinyllm.train import preset, train_or_load

SMALL = dict(max_iters=4, log_interval=1, eval_interval=2, eval_iters=1, batch_size=2, context_length=8, n_layer=1,
             n_head=1, d_model=8, sample_tokens=0)


def _weights(model):
    return {k: tinyllm.to_numpy(v.data).copy() for k, v in model.state_dict().items()}


def test_reuses_a_finished_run_and_retrains_when_the_config_differs(tmp_path):
    cfg, fields = preset("stories-char", out_dir=str(tmp_path / "run"), **SMALL)
    first = train_or_load(cfg, fields, progress=False, log=lambda *a: None)
    assert first.trained and first.step == 4
    again = train_or_load(cfg, fields, progress=False, log=lambda *a: None)
    assert not again.trained and again.step == 4 and again.val_loss == first.val_loss
    a, b = _weights(first.model), _weights(again.model)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert again.tokenizer.decode(again.tokenizer.encode("Once")) == "Once"

    cfg2, fields2 = preset("stories-char", out_dir=str(tmp_path / "run"), **{**SMALL, "d_model": 12})
    other = train_or_load(cfg2, fields2, progress=False, log=lambda *a: None)
    assert other.trained and other.model.config.d_model == 12


def test_a_stopped_run_is_resumed_to_the_end(tmp_path):
    cfg, fields = preset("stories-char", out_dir=str(tmp_path / "run"), **SMALL)
    full = train_or_load(cfg, fields, progress=False, log=lambda *a: None)
    cfg_b, _ = preset("stories-char", out_dir=str(tmp_path / "b"), **SMALL)
    from tinyllm.train import train
    from tinyllm.train.reuse import write_fingerprint
    stopped = train(cfg_b, fields, progress=False, log=lambda *a: None, on_step=lambda step, rec: step >= 1)
    assert stopped.stopped_early and stopped.step < 4
    write_fingerprint(cfg_b, tmp_path / "b")  # as train_or_load writes before it trains; without it: a retrain
    logs = []
    done = train_or_load(cfg_b, fields, progress=False, log=logs.append)
    assert done.trained and done.step == 4
    assert f"resuming at step {stopped.step}" in logs[0]  # resumed, not retrained (the weights match either way)
    a, b = _weights(full.model), _weights(done.model)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_what_counts_as_the_same_run(tmp_path):
    quiet = dict(progress=False, log=lambda *a: None)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. " * 40)
    cfg, fields = preset("stories-char", out_dir=str(tmp_path / "run"), data=str(corpus), **SMALL)
    first = train_or_load(cfg, fields, **quiet)
    assert first.trained and not first.model.training  # eval mode, trained or reused
    # evaluation, logging and the final sample do not change the weights: reused
    cfg2, _ = preset("stories-char", out_dir=str(tmp_path / "run"), data=str(corpus),
                     **{**SMALL, "eval_iters": 3, "sample_tokens": 50, "log_interval": 2})
    again = train_or_load(cfg2, fields, **quiet)
    assert not again.trained and not again.model.training
    # the same path with other text in it is another corpus: trained again
    corpus.write_text("a dog ran in the park. " * 40)
    assert train_or_load(cfg, fields, **quiet).trained
    # a run without its fingerprint (from `tinyllm train`), or with an unreadable checkpoint: trained again
    (tmp_path / "run" / "reuse.json").unlink()
    assert train_or_load(cfg, fields, **quiet).trained
    (tmp_path / "run" / "ckpt.safetensors").write_bytes(b"not a checkpoint")
    assert train_or_load(cfg, fields, **quiet).trained

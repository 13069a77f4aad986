"""Data-parallel training (tinyllm/distributed/): the pieces alone, then real ranks under mpiexec.

The property: N ranks that each take 1/N of every batch and average their gradients train the
model one process trains on the whole batch (float64: to 1e-10; float32 through the CLI: to a few
ulps of the weights), with plain AdamW or ZeRO-1, across a stop and --resume, with gradient
accumulation. The MPI tests need mpi4py and mpiexec (`pip install mpi4py mpich`) and skip without.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm.distributed import DataParallel, SingleProcess, ZeroOptimizer, launched_size, partition
from tinyllm.nn import GPT, GPTConfig
from tinyllm.optim import AdamW

HERE = Path(__file__).parent
TEXT = "the quick brown fox jumps over the lazy dog. a cat sat on the mat!\n" * 40
RUN = ["--n-layer", "2", "--n-head", "2", "--d-model", "16", "--context-length", "16", "--batch-size", "4",
       "--eval-interval", "10", "--eval-iters", "2", "--sample-tokens", "0", "--no-progress", "--log-interval", "5"]


def _tiny(seed=0):
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8))


def test_partition_gives_each_rank_about_its_share():
    assert partition([100, 60, 50, 10], 2) == [0, 1, 1, 0]
    sizes = [int(s) for s in np.random.default_rng(0).integers(1, 1000, 50)]
    owner = partition(sizes, 4)
    loads = [sum(s for s, o in zip(sizes, owner) if o == r) for r in range(4)]
    assert max(loads) - min(loads) <= max(sizes)  # greedy largest-first: within one tensor of even


def test_one_process_is_a_group_of_one():
    model = _tiny()
    dp = DataParallel(model.parameters(), SingleProcess())
    x = np.arange(12).reshape(4, 3)
    assert dp.shard(x) is x or np.array_equal(dp.shard(x), x)
    assert dp.mean(2.5) == 2.5
    before = [tinyllm.to_numpy(p.data).copy() for p in model.parameters()]
    dp.broadcast_parameters()
    dp.reduce_gradients()
    assert all(np.array_equal(b, tinyllm.to_numpy(p.data)) for b, p in zip(before, model.parameters()))
    assert dp.bytes_per_step == 4 * sum(p.numel() for p in model.parameters())


def test_a_batch_that_does_not_split_evenly_is_refused():
    class Two(SingleProcess):
        rank, size = 1, 2

    dp = DataParallel(_tiny().parameters(), Two())
    assert np.array_equal(dp.shard(np.arange(6)), [3, 4, 5])
    with pytest.raises(ValueError, match="divisible by 2"):
        dp.shard(np.arange(5))


def test_zero_optimizer_of_one_rank_is_adamw():
    a, b = _tiny(), _tiny()
    opt_a = AdamW(a.parameters(), lr=1e-2)
    opt_b = ZeroOptimizer(AdamW(b.parameters(), lr=1e-2), SingleProcess())
    x = tinyllm.tensor(np.random.default_rng(0).integers(0, 11, (2, 8)))
    for _ in range(3):
        for model, opt in ((a, opt_a), (b, opt_b)):
            _, loss = model(x, x)
            loss.backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(tinyllm.to_numpy(p.data), tinyllm.to_numpy(q.data))
    assert opt_b.state_bytes() == 8 * sum(p.numel() for p in b.parameters())
    assert sorted(opt_b.state_dict()["state"]) == sorted(opt_a.state_dict()["state"])


def test_launched_size_reads_the_launchers_variables(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launched_size() == 4


def test_gradient_accumulation_takes_the_same_step(tmp_path):
    from tinyllm.cli import main

    (tmp_path / "c.txt").write_text(TEXT)
    for name, extra in (("one", []), ("accum", ["--grad-accum", "2"])):
        assert main(["train", "--out", str(tmp_path / name), "--data", str(tmp_path / "c.txt"), "--max-iters", "10",
                     *RUN, *extra]) == 0
    assert _max_weight_difference(tmp_path / "one", tmp_path / "accum") < 1e-6
    assert main(["train", "--out", str(tmp_path / "bad"), "--data", str(tmp_path / "c.txt"), *RUN,
                 "--grad-accum", "3"]) == 2


def test_zero_without_data_parallel_is_refused(tmp_path, capsys):
    from tinyllm.cli import main

    assert main(["train", "--out", str(tmp_path / "r"), "--zero", "1", *RUN]) == 2
    assert "--data-parallel" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- real ranks

def _mpiexec():
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("no mpiexec on PATH (pip install mpich)")
    return [exe, "-n", "2"]


def _run(argv, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def _max_weight_difference(a: Path, b: Path) -> float:
    wa, wb = tinyllm.load(a / "model.safetensors"), tinyllm.load(b / "model.safetensors")
    return max(float(np.abs(tinyllm.to_numpy(wa[k].data) - tinyllm.to_numpy(wb[k].data)).max()) for k in wa)


def _losses(run: Path) -> list:
    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in map(json.loads, open(run / "metrics.jsonl"))]


@pytest.mark.slow
@pytest.mark.parametrize("zero", [0, 1])
def test_two_ranks_in_float64_train_what_one_process_trains(zero):
    out = _run([*_mpiexec(), sys.executable, str(HERE / "mpi_data_parallel.py"), "--zero", str(zero)])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("ok "), out.stdout + out.stderr


@pytest.mark.slow
def test_a_rank_that_never_joins_ends_the_job_with_a_message():
    out = _run([*_mpiexec(), sys.executable, str(HERE / "mpi_data_parallel.py"), "--timeout-check"], timeout=60)
    assert out.returncode != 0
    assert "waited 3 s for the other ranks" in out.stdout


@pytest.mark.slow
def test_tinyllm_train_data_parallel_matches_one_process_across_a_stop_and_resume(tmp_path):
    mpi = _mpiexec()
    (tmp_path / "c.txt").write_text(TEXT)
    data = ["--data", str(tmp_path / "c.txt")]
    tiny = [sys.executable, "-m", "tinyllm", "train", *data, *RUN]
    runs = {"one": [], "dp": ["--data-parallel"], "zero": ["--data-parallel", "--zero", "1"]}
    for name, flags in runs.items():  # 10 steps, then --resume to 20 (the schedule decays to 10, then to 20)
        launcher = mpi if flags else []
        for extra in (["--max-iters", "10"], ["--resume", "--max-iters", "20"]):
            out = _run([*launcher, *tiny, "--out", str(tmp_path / name), *extra, *flags])
            assert out.returncode == 0, out.stderr
    for name in ("dp", "zero"):
        one, other = _losses(tmp_path / "one"), _losses(tmp_path / name)
        assert [r[0] for r in one] == [r[0] for r in other]
        for a, b in zip(one, other):  # float32: the shards' sums are added in another order
            np.testing.assert_allclose([v for v in a[1:] if v is not None], [v for v in b[1:] if v is not None],
                                       rtol=1e-5)
        assert _max_weight_difference(tmp_path / "one", tmp_path / name) < 1e-5
    state = tinyllm.load(tmp_path / "dp" / "ckpt.safetensors")
    assert len(state["rng"]["ranks"]) == 2  # every rank's dropout generator, for --resume


@pytest.mark.slow
def test_mpiexec_without_data_parallel_and_an_uneven_batch_are_one_line_each(tmp_path):
    mpi = _mpiexec()
    tiny = [sys.executable, "-m", "tinyllm", "train", *RUN, "--max-iters", "2"]
    out = _run([*mpi, *tiny, "--out", str(tmp_path / "a")])
    assert out.returncode == 2 and out.stderr.count("tinyllm train: launched by mpiexec") == 1, out.stderr
    out = _run([*mpi, *tiny, "--out", str(tmp_path / "b"), "--data-parallel", "--batch-size", "3"])
    assert out.returncode == 2 and out.stderr.count("must be divisible by the 2 rank(s)") == 1, out.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

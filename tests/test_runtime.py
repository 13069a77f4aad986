"""tinyllm.runtime: the process-wide settings the CLI, the labs and the benchmarks opt into.

Each runs where it cannot leak into the test session: mallopt in a child process,
the BLAS thread limit inside its with-block (and checked to be undone after it).
"""

import subprocess
import sys

import pytest

from tinyllm import runtime


def test_keep_host_memory_stops_page_faults_in_a_repeated_allocation():
    # in a child process: mallopt is process-wide and must not leak into the test run
    code = (
        "import resource, numpy as np\n"
        "from tinyllm.runtime import keep_host_memory\n"
        "assert keep_host_memory()\n"
        "def step():\n"
        "    a = [np.ones(300_000, np.float32) for _ in range(20)]\n"  # 20 x 1.2 MB, then all freed
        "step(); step()\n"
        "r0 = resource.getrusage(0).ru_minflt\n"
        "for _ in range(5): step()\n"
        "print(resource.getrusage(0).ru_minflt - r0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 100  # without it: 5 steps x 20 arrays x 293 pages, ~29,000 faults


def test_training_through_the_library_leaves_the_process_alone(tmp_path):
    # the library never calls runtime (tests/test_layers.py: nothing under the tools imports it); a child
    # process that trains through tinyllm.train must not load it, and its BLAS threads stay as they were
    pytest.importorskip("threadpoolctl")
    code = (
        "import sys\n"
        "from threadpoolctl import threadpool_info\n"
        "from tinyllm.train import TrainConfig, train\n"
        "before = [p['num_threads'] for p in threadpool_info()]\n"
        f"cfg = TrainConfig(data='stories', tokenizer='char', out_dir={str(tmp_path)!r}, batch_size=2, max_iters=2,\n"
        "                  warmup_iters=1, eval_interval=2, eval_iters=1, sample_tokens=0)\n"
        "train(cfg, dict(context_length=8, n_layer=1, n_head=1, d_model=8), progress=False, log=lambda *a: None)\n"
        "assert 'tinyllm.runtime' not in sys.modules, 'the library imported tinyllm.runtime'\n"
        "assert [p['num_threads'] for p in threadpool_info()][:len(before)] == before\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_one_blas_thread_limits_blas_inside_the_block_only():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    blas = lambda: [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]  # noqa: E731
    before = blas()
    with runtime.one_blas_thread() as limited:
        assert limited is True
        assert all(n == 1 for n in blas())
    assert blas() == before


def test_one_blas_thread_without_threadpoolctl_yields_false_and_prints_nothing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import threadpoolctl -> ImportError
    with runtime.one_blas_thread() as limited:
        assert limited is False
    assert capsys.readouterr().out == ""  # the caller says so if it cares: runtime.ONE_BLAS_THREAD_HINT
    assert "threadpoolctl" in runtime.ONE_BLAS_THREAD_HINT


def _feed(tuner, speeds_by_n, records, step0=0):
    """Feed the tuner `records` metrics records whose tokens_per_s depends on the thread count in force."""
    for i in range(records):
        tuner.observe(step0 + i, {"tokens_per_s": speeds_by_n[tuner.n]})


def test_thread_tuner_keeps_the_fastest_count_and_reprobes_when_the_machine_changes():
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    from tinyllm.functional import kernels

    before = [p["num_threads"] for p in threadpool_info()]
    with runtime.ThreadTuner(cores=4, trial=3, drift=0.25, every=50, warmup=1) as tuner:
        assert tuner.candidates == [1, 2, 4] and tuner.n == 1
        assert kernels.num_threads() == 1
        tuner.observe(0, {"tokens_per_s": 1.0})  # warmup: compiling, ignored
        idle = {4: 300.0, 2: 200.0, 1: 100.0}
        _feed(tuner, idle, 9)  # three records per candidate
        assert [n for _, n, _ in tuner.history] == [1, 2, 4] and tuner.n == 4
        assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"][0] == 4
        _feed(tuner, idle, 5)
        assert tuner.n == 4 and len(tuner.history) == 3  # steady: no new probe
        busy = {4: 50.0, 2: 120.0, 1: 110.0}  # another process took cores: 4 threads now crawl
        _feed(tuner, busy, 1)
        assert tuner._mode == "watch"  # one slow record (an evaluation's, say) is not enough
        _feed(tuner, busy, 1)  # two of the last three: their median is below 0.75 x 300, a new probe
        assert tuner._mode == "probe" and tuner.n == 1
        _feed(tuner, busy, 9)
        assert tuner.n == 2 and [n for _, n, _ in tuner.history[-3:]] == [1, 2, 4]
        _feed(tuner, busy, 49)
        assert tuner.n == 2
        _feed(tuner, busy, 1)  # after `every` records it probes again (the machine may be idle again)
        assert tuner._mode == "probe" and tuner.n == 1
        tuner.observe(99, {"step": 99})  # a record without a throughput (an evaluation) changes nothing
        assert tuner.observe(100, {"tokens_per_s": 1.0}) is False  # never asks the run to stop
    assert kernels._chosen_threads is None
    assert [p["num_threads"] for p in threadpool_info()][:len(before)] == before  # restored


def test_kernel_thread_count_is_checked():
    from tinyllm.functional import kernels

    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="integer >= 1 or None"):
            kernels.set_num_threads(bad)
    kernels.set_num_threads(3)
    try:
        assert kernels.num_threads() == 3
    finally:
        kernels.set_num_threads(None)


def test_tinyllm_train_tunes_threads_and_restores_them(tmp_path, capsys):
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    from tinyllm.cli import main
    from tinyllm.functional import kernels

    before = [p["num_threads"] for p in threadpool_info()]
    argv = ["train", "--out", str(tmp_path / "run"), "--max-iters", "40", "--log-interval", "2", "--eval-interval",
            "40", "--eval-iters", "1", "--sample-tokens", "0", "--no-progress", "--n-layer", "1", "--n-head", "2",
            "--d-model", "16", "--context-length", "16", "--batch-size", "2"]
    assert main(argv) == 0
    assert kernels._chosen_threads is None
    assert [p["num_threads"] for p in threadpool_info()][:len(before)] == before


def test_generation_threads_one_thread_for_a_small_model_only_and_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    from tinyllm.functional import kernels

    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    blas = lambda: [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]  # noqa: E731
    before = blas()
    with runtime.generation_threads(800_000):
        assert all(n == 1 for n in blas()) and kernels.num_threads() == 1
    assert blas() == before and kernels._chosen_threads is None
    with runtime.generation_threads(runtime.GENERATION_ONE_THREAD_PARAMS):  # a large model: the defaults
        assert blas() == before and kernels._chosen_threads is None


def test_tinyllm_sample_generates_on_one_thread_for_a_small_model(tmp_path, monkeypatch):
    from tinyllm import cli
    from tinyllm.functional import kernels

    seen = []
    real = cli._generate_text_with
    def spy(*a, **k):
        seen.append(kernels.num_threads())
        return real(*a, **k)

    monkeypatch.setattr(cli, "_generate_text_with", spy)
    argv = ["train", "--out", str(tmp_path / "run"), "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1",
            "--sample-tokens", "5", "--no-progress", "--n-layer", "1", "--n-head", "2", "--d-model", "16",
            "--context-length", "16", "--batch-size", "2"]
    assert cli.main(argv) == 0
    assert seen == [1] and kernels._chosen_threads is None

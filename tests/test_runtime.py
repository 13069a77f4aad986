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

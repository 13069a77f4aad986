"""Process-wide settings for speed: what only the CLI, the labs and the benchmarks opt into, visibly.

The library never changes the state of the process it runs in: a program that
imports tinyllm keeps its own malloc and its own BLAS threads. But a training
run on a laptop CPU is faster with settings that touch the whole process,
so the programs a person runs (``tinyllm train``, ``tinyllm demo``, the labs,
``benchmarks/``) call them by name, at their start:

    keep_host_memory()      malloc keeps freed memory for the next step (no page faults)
    with one_blas_thread(): NumPy's BLAS on one thread (small matrices: hand-offs cost more than the work)
    with ThreadTuner():     BLAS and kernel threads chosen by timing the run (what `tinyllm train` uses)
    with FixedThreads(n):   both at n threads (a data-parallel rank: the cores split over the ranks)
    with generation_threads(n_params): one thread of each for a small model's generation

None changes a number the model computes, only the time it takes. None
prints: each returns whether it could do its job, and the caller says so if it
cares (``ONE_BLAS_THREAD_HINT``).

    >>> from tinyllm import runtime
    >>> runtime.keep_host_memory()          # False where the C library has no mallopt (macOS, musl)
    True
    >>> with runtime.one_blas_thread() as limited:
    ...     train(...)                      # limited: False without threadpoolctl
"""

from __future__ import annotations

import contextlib

ONE_BLAS_THREAD_HINT = ("(BLAS at its default thread count; `pip install threadpoolctl` or "
                        "OPENBLAS_NUM_THREADS=1 is faster)")


@contextlib.contextmanager
def one_blas_thread():
    """A with-block in which NumPy's BLAS runs on one thread (through threadpoolctl); yields whether it does.

    Small models multiply small matrices (64 x 192): there, one BLAS thread beats several, whose
    hand-offs and spin-waits cost more than the work, most of all on a busy machine. The numbers
    are the same either way, only the time changes. Without threadpoolctl the block changes
    nothing and yields False (``OPENBLAS_NUM_THREADS=1`` in the environment does the same job).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(1):
        yield True


def keep_host_memory(pad_bytes: int = 256 << 20) -> bool:
    """Ask the C library's malloc to keep freed memory for reuse instead of returning it to the OS.

    A training step allocates and frees the same big arrays every step. By default
    glibc hands the top of its heap back to the kernel once enough of it is free,
    and serves arrays above a threshold with fresh mmaps; either way the next step
    touches new pages, and the kernel zeroes each 4 KiB page in a page fault. For
    a GPT block (benchmarks/profile_autograd.py --no-keep-memory) that was ~1,600
    faults and ~7 ms of system time per 22 ms step at (12, 64, 128); with this, none. PyTorch's
    CUDA caching allocator does the same for GPU memory.

    It sets, process-wide: M_TOP_PAD (keep `pad_bytes` spare at the heap top),
    M_TRIM_THRESHOLD (trim only above 2·pad_bytes free) and M_MMAP_THRESHOLD
    (32 MiB, glibc's maximum: smaller arrays come from the reusable heap).
    Peak memory is unchanged; memory is just not given back between steps.
    Returns False where the C library has no mallopt (macOS, musl): nothing changes.
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = mallopt(M_TOP_PAD, int(pad_bytes))
    ok &= mallopt(M_TRIM_THRESHOLD, int(2 * pad_bytes))
    ok &= mallopt(M_MMAP_THRESHOLD, 32 << 20)
    return bool(ok)


class ThreadTuner:
    """Choose how many threads NumPy's BLAS and tinyllm's kernels get by timing the run itself.

    More threads help a big matrix product on an idle machine and hurt a small one on a busy one:
    a product split over two threads finishes when the slower half does, and an idle BLAS thread
    spins while it waits for the next product. With another process busy on one of two cores,
    training runs several times slower at two threads than at one, yet at one thread it is slower
    on an idle machine (benchmarks/bench_threads.py; the figures are in docs/performance.md). No fixed
    number is right, so the run measures: the training loop reports its throughput every
    log_interval steps (its metrics record, ``tokens_per_s``), and the tuner

        probe:  holds each candidate n (1, then doubling up to the core count) for `trial`
                records and keeps the n with the highest median throughput;
        watch:  probes again when the median of the last `trial` records falls `drift` below
                the probe's best (the machine got busier), or after `every` records (it got idler).

    One policy for both pools: BLAS (through threadpoolctl) and the kernels' thread pool
    (tinyllm.functional.kernels.set_num_threads) get the same n; each op still runs small inputs on
    one thread (kernels.split's size threshold, OpenBLAS's own). The numbers a run computes do not
    depend on n; only the time does. Leaving the with-block restores both.

        with ThreadTuner() as tuner:
            train(cfg, fields, on_step=tuner.observe)
        tuner.history   # [(step, n, median tokens/s), ...] one entry per probed candidate
    """

    def __init__(self, cores: int | None = None, trial: int = 2, drift: float = 0.25, every: int = 300,
                 warmup: int = 1):
        import os

        self.cores = cores or len(os.sched_getaffinity(0))
        # one thread first: the safe choice on a busy machine, so a probe costs little where more threads are slow
        self.candidates = sorted({max(1, self.cores >> i) for i in range(self.cores.bit_length())})
        self.trial, self.drift, self.every, self.warmup = trial, drift, every, warmup
        self.history: list[tuple[int, int, float]] = []
        self.n: int | None = None  # the count in force
        self._blas = None
        self._original = None

    # ---------------------------------------------------------------- the with-block
    def __enter__(self) -> ThreadTuner:
        try:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController().select(user_api="blas")
            self._original = self._blas.info()
        except ImportError:  # only the kernels' pool is tuned
            self._blas = None
        self._begin_probe()
        return self

    def __exit__(self, *exc) -> None:
        from tinyllm.functional import kernels

        kernels.set_num_threads(None)
        if self._blas is not None:
            for lib, info in zip(self._blas.lib_controllers, self._original, strict=True):
                lib.set_num_threads(info["num_threads"])

    def _use(self, n: int) -> None:
        from tinyllm.functional import kernels

        self.n = n
        kernels.set_num_threads(n)
        if self._blas is not None:
            for lib in self._blas.lib_controllers:
                lib.set_num_threads(n)

    # ---------------------------------------------------------------- the policy
    def _begin_probe(self) -> None:
        self._mode, self._left, self._samples, self._results = "probe", list(self.candidates), [], {}
        self._use(self._left[0])

    def observe(self, step: int, record: dict) -> bool:
        """The training loop's on_step callback: one metrics record (its tokens_per_s). Never stops the run."""
        import statistics

        speed = record.get("tokens_per_s")
        if speed is None:
            return False
        if self.warmup > 0:  # the first records include loading (or compiling) the kernels
            self.warmup -= 1
            return False
        self._samples.append(float(speed))
        if self._mode == "probe":
            if len(self._samples) >= self.trial:
                n = self._left.pop(0)
                self._results[n] = statistics.median(self._samples)
                self.history.append((step, n, self._results[n]))
                self._samples = []
                if self._left:
                    self._use(self._left[0])
                else:
                    best = max(self._results, key=self._results.get)
                    self._mode, self._best, self._seen = "watch", self._results[best], 0
                    self._use(best)
            return False
        self._seen += 1
        recent = statistics.median(self._samples[-self.trial:])
        if (len(self._samples) >= self.trial and recent < (1 - self.drift) * self._best) or self._seen >= self.every:
            self._begin_probe()
        return False


class FixedThreads:
    """NumPy's BLAS and tinyllm's kernels at n threads for the with-block (restored after).

    The data-parallel ranks on one machine share its cores: each gets cores / ranks, so they
    do not spin against each other. ``observe`` is ThreadTuner's callback, doing nothing.
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"FixedThreads: n must be an integer >= 1, got {n!r}")
        self.n = n
        self._limits = None

    def __enter__(self) -> FixedThreads:
        from tinyllm.functional import kernels

        kernels.set_num_threads(self.n)
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(self.n, user_api="blas")
        except ImportError:
            self._limits = None
        return self

    def __exit__(self, *exc) -> None:
        from tinyllm.functional import kernels

        kernels.set_num_threads(None)
        if self._limits is not None:
            self._limits.restore_original_limits()

    def observe(self, step: int, record: dict) -> bool:
        return False


GENERATION_ONE_THREAD_PARAMS = 20_000_000


def generation_threads(n_params: int):
    """A with-block for generating from a model of n_params parameters: FixedThreads(1) below 20M, else nothing.

    A decode step multiplies one row per sequence by each weight matrix: it reads the weights once and
    does little arithmetic, so a second thread has almost nothing to share. On a 2-core machine a
    GPT-2-small decode step takes 27.0 ms on one thread and 25.5 ms on two (benchmarks/bench_kv_cache.py,
    06_bench_decode.json); a small model's steps are microseconds of work that threads hand off and
    spin-wait over, and on a busy machine those waits dominate: 200 tokens from the 0.8M-parameter
    shakespeare-char model took 6.1 s wall with one thread and 52.3 s with two at a load average of 14.
    Above 20M parameters the defaults stay, for the prefill of a long prompt, which does gain from threads.
    """
    return FixedThreads(1) if n_params < GENERATION_ONE_THREAD_PARAMS else contextlib.nullcontext()

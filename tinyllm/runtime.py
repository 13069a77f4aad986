"""Process-wide settings for speed: what only the CLI, the labs and the benchmarks opt into, visibly.

The library never changes the state of the process it runs in: a program that
imports tinyllm keeps its own malloc and its own BLAS threads. But a training
run on a laptop CPU is faster with two settings that touch the whole process,
so the programs a person runs (``tinyllm train``, ``tinyllm demo``, the labs,
``benchmarks/``) call them by name, at their start:

    keep_host_memory()      malloc keeps freed memory for the next step (no page faults)
    with one_blas_thread(): NumPy's BLAS on one thread (small matrices: hand-offs cost more than the work)

Neither changes a number the model computes, only the time it takes. Neither
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

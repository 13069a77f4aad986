"""A process group: N copies of one program that add up arrays together, over MPI.

Data-parallel training needs four collective operations between its N processes
(ranks 0 .. N-1), each called by every rank in the same order:

    broadcast_(x, root)    every rank's x becomes root's x               (the initial weights)
    allreduce_([x, ...])   every rank's x becomes the sum over ranks      (the gradients)
    allgather(x)           the concatenation of every rank's x, on all    (ZeRO's updated slices)
    allgather_json(o)      [o_0, ..., o_{N-1}] on every rank, o JSON-able  (checkpoints' per-rank parts)

MPI (mpi4py) is the engine, as in Horovod and ChainerMN: `mpiexec -n N python ...`
starts the ranks, on one machine or several (a hostfile), and MPI moves the bytes
(shared memory on one machine, the network between machines). An all-reduce of
B bytes over a ring of N ranks sends 2(N-1)/N · B bytes per rank (Patarasuk & Yuan
2009): each rank's cost barely grows with N.

A collective waits for every rank. If one rank dies or stops calling, the others
would wait forever; so each collective here is started non-blocking and polled
against a deadline (`timeout_s`), and a rank that waits past it raises
CollectiveTimeout, which the command turns into a message and an abort of the job.

`SingleProcess` is the group of one, with the same methods doing nothing, so a
training loop is written once for both:

    group = init_process_group()          # MPIGroup under mpiexec -n 2, else SingleProcess
    group.allreduce_([flat_grads]); flat_grads /= group.size
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

# environment variables a launcher sets in every rank it starts: MPICH/Intel MPI (PMI), Open MPI, MVAPICH
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class CollectiveTimeout(RuntimeError):
    """A collective operation waited past its deadline: another rank died, hung or took another path."""


def launched_size() -> int:
    """How many processes an MPI launcher started this one among (1 when not launched by mpiexec)."""
    for name in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def launched_rank() -> int:
    """This process's rank as the MPI launcher numbered it (0 when not launched by mpiexec)."""
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


class SingleProcess:
    """The group of one process: every collective leaves its arguments as they are."""

    rank, size = 0, 1

    def broadcast_(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        return x

    def allreduce_(self, buffers: list) -> list:
        return buffers

    def allgather(self, x: np.ndarray) -> list:
        return [x]

    def allgather_json(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    def abort(self, code: int = 2) -> None:
        pass


class MPIGroup:
    """The ranks of MPI's COMM_WORLD, with a deadline on every collective (see the module docstring)."""

    def __init__(self, timeout_s: float = 300.0):
        try:
            from mpi4py import MPI
        except ImportError:
            raise ImportError("data-parallel training needs mpi4py and an MPI: pip install mpi4py mpich "
                              "(or tinyllm's dist extra: pip install 'tinyllm[dist]')") from None
        self._mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout_s = timeout_s

    def _wait(self, requests: list, what: str) -> None:
        """Poll the non-blocking requests until all finish or the deadline passes."""
        deadline, pause = time.monotonic() + self.timeout_s, 1e-5
        pending = list(requests)
        while pending:
            pending = [r for r in pending if not r.Test()]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise CollectiveTimeout(
                    f"rank {self.rank}: {what} waited {self.timeout_s:.0f} s for the other ranks (one of them "
                    f"died, hung, or stopped with an error); stopping the job")
            time.sleep(pause)
            pause = min(pause * 2, 1e-2)  # short waits stay short, long ones do not burn a core

    def broadcast_(self, x: np.ndarray, root: int = 0) -> np.ndarray:
        self._wait([self.comm.Ibcast(x, root=root)], "a broadcast")
        return x

    def allreduce_(self, buffers: list) -> list:
        """Sum each contiguous float array over the ranks, in place; all started at once, then awaited."""
        self._wait([self.comm.Iallreduce(self._mpi.IN_PLACE, b, op=self._mpi.SUM) for b in buffers],
                   "an all-reduce")
        return buffers

    def allgather(self, x: np.ndarray) -> list:
        """[x_0, ..., x_{N-1}]: every rank's 1-D array x (their lengths may differ), on every rank."""
        counts = np.zeros(self.size, np.int64)
        self._wait([self.comm.Iallgather(np.array([x.size], np.int64), counts)], "an all-gather")
        out = np.empty(int(counts.sum()), x.dtype)
        self._wait([self.comm.Iallgatherv(x, [out, counts.tolist()])], "an all-gather")
        return np.split(out, np.cumsum(counts)[:-1])

    def allgather_json(self, obj) -> list:
        """[o_0, ..., o_{N-1}]: every rank's JSON-able object, on every rank (sent as JSON text, not pickled)."""
        raw = np.frombuffer(json.dumps(obj).encode(), np.uint8)
        return [json.loads(part.tobytes()) for part in self.allgather(raw)]

    def barrier(self) -> None:
        self._wait([self.comm.Ibarrier()], "a barrier")

    def abort(self, code: int = 2) -> None:
        """End every rank of the job (after this rank printed why)."""
        self.comm.Abort(code)


def init_process_group(timeout_s: float = 300.0) -> SingleProcess | MPIGroup:
    """The MPI group when launched by mpiexec with more than one process, else the group of one."""
    return MPIGroup(timeout_s) if launched_size() > 1 else SingleProcess()

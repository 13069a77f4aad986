"""Past one process: data-parallel training over MPI, and ZeRO's sharded optimizer state.

    init_process_group, MPIGroup, SingleProcess   the ranks and their collectives   (group.py)
    DataParallel                                  broadcast, shard, gradient all-reduce (data_parallel.py)
    ZeroOptimizer, partition                      ZeRO stage 1: optimizer state split over the ranks (zero.py)

`mpiexec -n 2 tinyllm train --data-parallel ...` uses them (tinyllm/train/loop.py); nothing here
imports mpi4py until an MPIGroup is made.
"""

from tinyllm.distributed.data_parallel import DataParallel
from tinyllm.distributed.group import (
           CollectiveTimeout,
           MPIGroup,
           SingleProcess,
           init_process_group,
           launched_rank,
           launched_size,
)
from tinyllm.distributed.zero import ZeroOptimizer, partition

__all__ = ["CollectiveTimeout", "DataParallel", "MPIGroup", "SingleProcess", "ZeroOptimizer", "init_process_group",
           "launched_rank", "launched_size", "partition"]

"""Run by tests/test_distributed.py under `mpiexec -n 2`: data parallel in float64 against one process.

Every rank builds the same tiny float64 GPT and trains it for a few steps on its half of each
batch (DataParallel: gradients averaged), with plain AdamW or ZeRO-1 (ZeroOptimizer); rank 0
also trains a copy alone on the whole batches. The weights must agree to 1e-10. Prints one line
`ok <max difference>` from rank 0.

    mpiexec -n 2 python tests/mpi_data_parallel.py [--zero 1] [--timeout-check]
"""

import argparse
import sys
import time

import numpy as np

import tinyllm
from tinyllm.distributed import CollectiveTimeout, DataParallel, MPIGroup, ZeroOptimizer
from tinyllm.nn import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_


def make():
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=2, n_head=2, d_model=16)).double()
    return model, AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def step(model, opt, x, y, dp=None):
    _, loss = model(tinyllm.tensor(x), tinyllm.tensor(y))
    loss.backward()
    if dp is not None:
        dp.reduce_gradients()
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zero", type=int, default=0)
    ap.add_argument("--timeout-check", action="store_true")
    args = ap.parse_args()
    group = MPIGroup(timeout_s=3.0)
    if args.timeout_check:  # rank 1 never joins the all-reduce: rank 0 must give up with a message
        if group.rank == 1:
            time.sleep(20)
            return 0
        try:
            group.allreduce_([np.ones(4)])
        except CollectiveTimeout as e:
            print(f"timeout: {e}", flush=True)
            group.abort(3)
        return 1

    model, opt = make()
    dp = DataParallel(model.parameters(), group)
    if group.rank == 1:  # different weights on rank 1 before the broadcast: it must make them equal
        for p in model.parameters():
            p.data[...] += 1.0
    dp.broadcast_parameters()
    opt = ZeroOptimizer(opt, group) if args.zero else opt
    if group.rank == 0:
        alone, alone_opt = make()
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 11, (4, 8))
        y = rng.integers(0, 11, (4, 8))
        step(model, opt, dp.shard(x), dp.shard(y), dp)
        if group.rank == 0:
            step(alone, alone_opt, x, y)
    if args.zero:
        opt.gather_state()
    if group.rank == 0:
        diff = max(float(np.abs(tinyllm.to_numpy(a.data) - tinyllm.to_numpy(b.data)).max())
                   for a, b in zip(model.parameters(), alone.parameters()))
        if args.zero:  # the gathered state dict is the single-process one
            full, mine = alone_opt.state_dict()["state"], opt.state_dict()["state"]
            assert sorted(full) == sorted(mine), (sorted(full), sorted(mine))
            diff = max(diff, max(float(np.abs(tinyllm.to_numpy(full[k]["exp_avg"].data)
                                               - tinyllm.to_numpy(mine[k]["exp_avg"].data)).max()) for k in full))
            whole = sum(v.nbytes for s in alone_opt.state.values() for v in s.values() if hasattr(v, "nbytes"))
            print(f"state bytes on rank 0: {opt.state_bytes()} of {whole}")
        print(f"ok {diff:.3e}" if diff < 1e-10 else f"differ {diff:.3e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

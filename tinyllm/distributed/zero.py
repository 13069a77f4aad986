"""ZeRO stage 1: each rank keeps the optimizer state of its own slice of the parameters.

In plain data parallelism every rank holds the same AdamW state: two moments per
parameter, 8 bytes per float32 weight, N copies of it in the job. ZeRO
(Rajbhandari et al. 2020) notices that after the gradient all-reduce every rank
holds the same gradient, so the update of a parameter needs to happen on one rank
only. Stage 1 partitions the parameters between the ranks (here whole tensors,
greedily by size, so each rank owns about 1/N of the values) and per step:

    1. gradients all-reduced as before (DataParallel); the global norm clipped on every rank
    2. rank r steps AdamW on the parameters it owns, and keeps their moments: state / N per rank
    3. all-gather: each rank sends its updated parameters, so every rank has the new weights

The update of each parameter is the same arithmetic on the same gradient as in one
process, so the weights are the same to the bit; AdamW's state shrinks from
8·P to about 8·P/N bytes per rank, for one extra all-gather of P values per step.

The state dict (for checkpoints) is the one a single-process AdamW would write:
`gather_state()` (every rank calls it) collects the moments on every rank, and
`state_dict()` then returns them in the usual format, so a run checkpointed with
N ranks resumes with any number of ranks, or with one.

    opt = ZeroOptimizer(AdamW(groups, lr=...), group)   # in place of the AdamW
    ...; dp.reduce_gradients(); clip_grad_norm_(...); opt.step(); opt.zero_grad()
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend


def partition(sizes: list, n: int) -> list:
    """The owner rank of each of the tensors of `sizes`: largest first, each to the least-loaded rank.

    partition([100, 60, 50, 10], 2) -> [0, 1, 1, 0]   (loads 110 and 110)
    """
    load, owner = [0] * n, [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(n), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += sizes[i]
    return owner


class ZeroOptimizer:
    """An optimizer whose state is split over the ranks of `group` (see the module docstring)."""

    def __init__(self, optimizer, group):
        self.optimizer, self.group = optimizer, group
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.owner = partition([p.numel() for p in self.params], group.size)
        self.mine = [p for p, r in zip(self.params, self.owner) if r == group.rank]
        self._gathered: dict | None = None

    @property
    def param_groups(self) -> list:  # the schedule sets the learning rate here
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)

    def step(self) -> None:
        """Update this rank's parameters, then give every rank everyone's new values."""
        mine = {id(p) for p in self.mine}
        for p in self.params:
            if id(p) not in mine:
                p.grad = None  # AdamW skips a parameter without a gradient: its owner updates it
        self.optimizer.step()
        self._gathered = None
        if self.group.size > 1:
            send = np.concatenate([backend.to_numpy(p.data).reshape(-1) for p in self.mine] or [np.empty(0)])
            parts = self.group.allgather(send.astype(_dtype(self.params), copy=False))
            for r, flat in enumerate(parts):
                i = 0
                for p in (p for p, o in zip(self.params, self.owner) if o == r):
                    n = p.numel()
                    p.data[...] = backend.asarray(flat[i:i + n].reshape(p.shape), dtype=p.dtype, device=p.device)
                    i += n

    def state_bytes(self) -> int:
        """Bytes of optimizer state held by this rank (the moments of the parameters it owns)."""
        return sum(int(v.nbytes) for s in self.optimizer.state.values() for v in s.values()
                   if backend.is_array(v))

    # ---------------------------------------------------------------- checkpoints
    def gather_state(self) -> None:
        """Collect every rank's moments (a collective: every rank calls it, before state_dict)."""
        local = self.optimizer.state_dict()
        index = {id(p): i for i, p in enumerate(self.params)}
        header, chunks = [], []
        for p in self.mine:
            entry = local["state"].get(index[id(p)])
            if entry is None:
                continue
            fields = []
            for name, value in sorted(entry.items()):
                if backend.is_array(getattr(value, "data", value)):
                    arr = backend.to_numpy(getattr(value, "data", value))
                    fields.append([name, "array", list(arr.shape), arr.dtype.str])
                    chunks.append(arr.astype(np.float64).reshape(-1))
                else:
                    fields.append([name, "number", value])
            header.append([index[id(p)], fields])
        headers = self.group.allgather_json(header)
        datas = self.group.allgather(np.concatenate(chunks) if chunks else np.empty(0))
        state = {}
        for rank_header, flat in zip(headers, datas):
            i = 0
            for k, fields in rank_header:
                entry = {}
                for field in fields:
                    if field[1] == "number":
                        entry[field[0]] = field[2]
                        continue
                    name, _, shape, dtype = field
                    n = int(np.prod(shape))
                    entry[name] = flat[i:i + n].astype(np.dtype(dtype)).reshape(shape)
                    i += n
                state[k] = entry
        self._gathered = {"state": state, "param_groups": local["param_groups"]}

    def state_dict(self) -> dict:
        """The whole optimizer's state dict, as one process's AdamW would give (after gather_state)."""
        if self.group.size == 1:
            return self.optimizer.state_dict()
        if self._gathered is None:
            raise RuntimeError("ZeroOptimizer.state_dict: call gather_state() on every rank first (a collective)")
        from tinyllm.tensor import Tensor

        state = {k: {name: Tensor(v) if isinstance(v, np.ndarray) else v for name, v in entry.items()}
                 for k, entry in self._gathered["state"].items()}
        return {"state": state, "param_groups": self._gathered["param_groups"]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a whole optimizer's state (from any number of ranks), keeping only this rank's part."""
        self.optimizer.load_state_dict(state_dict)
        mine = {id(p) for p in self.mine}
        for p in [p for p in self.optimizer.state if id(p) not in mine]:
            del self.optimizer.state[p]


def _dtype(params) -> np.dtype:
    dtypes = {np.dtype(p.dtype) for p in params}
    if len(dtypes) != 1:
        raise ValueError(f"ZeroOptimizer needs parameters of one dtype, got {sorted(map(str, dtypes))}")
    return dtypes.pop()

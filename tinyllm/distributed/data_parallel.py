"""Data parallelism: N ranks, one model each, the same step as one process with N times the batch.

Each rank holds the whole model. For every step of batch size B (the global batch):

    1. every rank draws the same B examples (one generator, the same seed) and keeps
       its rows r·B/N .. (r+1)·B/N: its shard
    2. forward and backward on the shard: g_r = ∇ mean-loss over its B/N rows
    3. all-reduce:  g = (1/N) Σ_r g_r  = ∇ mean-loss over all B rows
    4. every rank takes the same optimizer step with the same g

Step 3 is the whole trick: the mean of the shards' mean gradients is the gradient of
the global batch's mean loss (each shard has B/N rows), so N ranks compute what one
process would with batch B, up to the order of floating-point additions. The
weights start equal (rank 0's are broadcast) and stay equal, since every rank
applies the same update.

The gradients are reduced in buckets: consecutive parameters packed into flat
buffers of about `bucket_bytes`, in the reverse of the model's order (the order
backward finishes them). All buckets' all-reduces are started together and then
awaited, so MPI can pipeline them; a per-parameter all-reduce would pay MPI's
latency (tens of microseconds) hundreds of times a step. (DDP goes one step
further and starts a bucket while backward is still computing the next; on CPUs
the all-reduce needs the same cores as backward, so that overlap pays only with
a network between machines.)

    dp = DataParallel(model.parameters(), group)
    dp.broadcast_parameters()
    x, y = dp.shard(x), dp.shard(y)
    loss.backward(); dp.reduce_gradients(); opt.step()
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend


class DataParallel:
    """Broadcast, shard and gradient all-reduce for the parameters of one model (see the module docstring)."""

    def __init__(self, params, group, bucket_bytes: int = 4 << 20):
        self.group = group
        self.params = [p for p in params if p.requires_grad]
        self.buckets = _buckets(self.params[::-1], bucket_bytes)  # backward finishes the last layers first
        self._flat = [np.empty(sum(p.numel() for p in b), _host_dtype(b[0])) for b in self.buckets]

    @property
    def bytes_per_step(self) -> int:
        """Bytes each rank all-reduces per step (one copy of the gradients)."""
        return sum(f.nbytes for f in self._flat)

    def broadcast_parameters(self, root: int = 0) -> None:
        """Every rank's weights become root's (a fresh run starts from rank 0's initialization)."""
        for bucket, flat in zip(self.buckets, self._flat):
            _pack(bucket, flat, lambda p: p.data)
            self.group.broadcast_(flat, root)
            _unpack(flat, bucket, lambda p, v: _assign(p, v))

    def reduce_gradients(self) -> None:
        """Every rank's gradients become the mean over the ranks (a missing gradient counts as zeros)."""
        if self.group.size == 1:
            return
        for bucket, flat in zip(self.buckets, self._flat):
            _pack(bucket, flat, lambda p: None if p.grad is None else p.grad.data)
        self.group.allreduce_(self._flat)
        for bucket, flat in zip(self.buckets, self._flat):
            flat *= flat.dtype.type(1.0 / self.group.size)
            _unpack(flat, bucket, _set_grad)

    def shard(self, batch: np.ndarray) -> np.ndarray:
        """This rank's rows of a global batch (B, ...): rows rank·B/N .. (rank+1)·B/N."""
        n, r = self.group.size, self.group.rank
        if len(batch) % n:
            raise ValueError(f"a batch of {len(batch)} rows cannot be split evenly over {n} ranks; "
                             f"choose a batch_size divisible by {n}")
        b = len(batch) // n
        return batch[r * b:(r + 1) * b]

    def mean(self, value: float) -> float:
        """The mean over the ranks of one number (each rank's loss -> the global batch's loss)."""
        if self.group.size == 1:
            return float(value)
        buf = np.array([value], np.float64)
        self.group.allreduce_([buf])
        return float(buf[0]) / self.group.size


def _host_dtype(p) -> np.dtype:
    return np.dtype(p.dtype)


def _buckets(params: list, bucket_bytes: int) -> list:
    """Consecutive parameters of one dtype, grouped until a bucket holds at least bucket_bytes."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and (size >= bucket_bytes or p.dtype != current[0].dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += p.numel() * np.dtype(p.dtype).itemsize
    if current:
        buckets.append(current)
    return buckets


def _pack(params: list, flat: np.ndarray, get) -> None:
    """Copy get(p) for each parameter (None: zeros of p's size) into consecutive slices of flat, on the host."""
    i = 0
    for p in params:
        n, a = p.numel(), get(p)
        flat[i:i + n] = 0 if a is None else backend.to_numpy(a).reshape(-1)
        i += n


def _unpack(flat: np.ndarray, params: list, put) -> None:
    i = 0
    for p in params:
        n = p.numel()
        put(p, flat[i:i + n].reshape(p.shape))
        i += n


def _assign(p, value: np.ndarray) -> None:
    p.data[...] = backend.asarray(value, dtype=p.dtype, device=p.device)


def _set_grad(p, value: np.ndarray) -> None:
    from tinyllm.tensor import Tensor

    value = backend.asarray(value.copy(), dtype=p.dtype, device=p.device)
    if p.grad is None:
        p.grad = Tensor(value)
    else:
        p.grad.data[...] = value

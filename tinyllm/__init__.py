"""tinyllm: the engineering stack of a modern LLM, from first principles, on NumPy.

The top-level namespace mirrors ``torch``: tensors, creation functions, the
primitive ops, devices and seeding. Submodules: ``tinyllm.functional`` (as F),
``tinyllm.nn``, ``tinyllm.optim``.
"""

from tinyllm import backend
from tinyllm.backend import get_device, manual_seed, set_device, to_numpy, use_device
from tinyllm.creation import (
    arange, empty, full, full_like, ones, ones_like, rand, rand_like, randint, randn, randn_like,
    tensor, zeros, zeros_like,
)
from tinyllm.function import Function
from tinyllm.ops import (
    abs, amax, argmax, cat, chunk, exp, flatten, log, matmul, max, maximum, mean, permute, pow,
    relu, reshape, split, sqrt, squeeze, stack, sum, tanh, transpose, tril, triu, unsqueeze, var,
    where, masked_fill,
)
from tinyllm.tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from tinyllm import functional, nn, optim
from tinyllm.serialization import load, save

float32 = "float32"
float64 = "float64"
int64 = "int64"
bool_ = "bool"

__version__ = "0.1.0"

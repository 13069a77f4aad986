"""tinyllm: the engineering stack of a modern LLM, from first principles, on NumPy.

The top-level namespace mirrors ``torch``: tensors, creation functions, the
primitive ops, devices and seeding. Submodules: ``tinyllm.functional`` (as F),
``tinyllm.nn``, ``tinyllm.optim``.
"""

from tinyllm import backend, functional, nn, optim
from tinyllm.autograd import enable_grad, is_grad_enabled, no_grad
from tinyllm.backend import get_device, manual_seed, set_device, to_numpy, use_device
from tinyllm.creation import (
    arange,
    empty,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)
from tinyllm.function import Function
from tinyllm.ops import *  # noqa: F403  (every primitive, as torch has them; the list is tinyllm.ops.__all__)
from tinyllm.serialization import load, save
from tinyllm.tensor import Tensor

float32 = "float32"
float64 = "float64"
int64 = "int64"
bool_ = "bool"

__version__ = "0.1.0"

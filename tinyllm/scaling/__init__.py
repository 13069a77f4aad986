"""Scaling laws at CPU scale (§13): a family of sizes, a resumable sweep, profiles, and the fits.

    SIZES, size_fields, flops_per_token        the family and what a token costs   (family.py)
    sweep, run_config                          every size on the same tokens       (sweep.py)
    matmul_peak, memory_split                  MFU and the memory of a step        (profile.py)
    fit_power_law, fit_chinchilla, isoflop     L(N), L(N, D), N_opt(C)             (fit.py)
    `tinyllm sweep --sizes xs,s,m --tokens N --out DIR`                            (command.py)
"""

from tinyllm.scaling.family import SIZES, flops_per_token, learning_rate, non_embedding_params, size_fields
from tinyllm.scaling.fit import fit_chinchilla, fit_power_law, isoflop
from tinyllm.scaling.profile import activation_count, matmul_peak, memory_split
from tinyllm.scaling.sweep import run_config, sweep

__all__ = ["SIZES", "activation_count", "fit_chinchilla", "fit_power_law", "flops_per_token", "isoflop",
           "learning_rate", "matmul_peak", "memory_split", "non_embedding_params", "run_config", "size_fields",
           "sweep"]

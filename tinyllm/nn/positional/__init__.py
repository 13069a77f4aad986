"""Positional encodings (§2): how attention, which sees a *set* of tokens, learns their order.

    GPTConfig.pos_encoding   where it acts                          file
    "learned"                x = wte[idx] + wpe[pos]   (a table)    nn/gpt.py (an Embedding)
    "sinusoidal"             x = wte[idx] + PE[pos]    (fixed)      sinusoidal.py
    "rope"                   q, k rotated by pos · θ               rope.py
    "alibi"                  scores - m_h · |i - j|                 alibi.py
    "none"                   nothing: the causal mask alone         (NoPE)

The first two add a vector to the token embedding, once, before the first
block; the next two act inside every attention layer, on the scores, and only
through the distance i - j between query and key.
"""

from tinyllm.nn.positional.alibi import alibi_bias, alibi_slopes
from tinyllm.nn.positional.rope import (
    apply_rope,
    apply_rope_interleaved,
    half_to_interleaved,
    interleaved_to_half,
    rope_cos_sin,
)
from tinyllm.nn.positional.sinusoidal import sinusoidal_table

__all__ = ["alibi_bias", "alibi_slopes", "apply_rope", "apply_rope_interleaved", "half_to_interleaved",
           "interleaved_to_half", "rope_cos_sin", "sinusoidal_table"]

"""Byte-level BPE tokenization (curriculum section 1): train, encode, decode, save, and agree with tiktoken.

    from tinyllm.tokenizer import BPETokenizer
    tok = BPETokenizer.train(text, vocab_size=4096)          # pattern="gpt2" by default
    ids = tok.encode("Hello world")                          # tiktoken's ids for the same ranks
    tok.save("out/tokenizer.tiktoken")                       # + out/tokenizer.tiktoken.json

Read in this order: patterns.py (pre-tokenization), reference.py (training in plain
Python), train.py (the same in Numba; its kernels in train_kernels.py), encoder.py
(encoding as tiktoken does; its kernels in bpe_kernels.py), pretokenize.py (the fast
split; its scanners in scanners.py), bpe.py (the class), rankfile.py (files),
visualize.py (the token visualizer).
"""

from .bpe import WHOLE_TEXT_PATTERN, BPETokenizer
from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN, PATTERNS, pattern_name, resolve_pattern
from .rankfile import RankFileError, read_ranks, sidecar_path

__all__ = [
    "BPETokenizer", "RankFileError", "read_ranks", "sidecar_path", "WHOLE_TEXT_PATTERN",
    "GPT2_PATTERN", "GPT4_PATTERN", "O200K_PATTERN", "PATTERNS", "pattern_name", "resolve_pattern",
]

"""Tokenization (curriculum section 1): one Tokenizer interface; characters and byte-level BPE.

    from tinyllm.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
    tok = BPETokenizer.train(text, vocab_size=4096)          # pattern="gpt2" by default
    ids = tok.encode("Hello world")                          # tiktoken's ids for the same ranks
    tok.save("out/tokenizer.tiktoken")                       # + out/tokenizer.tiktoken.json
    load_tokenizer("out/tokenizer.tiktoken")                 # any kind, by the "format" of its JSON

Read in this order: base.py (the Tokenizer interface), char.py (the simplest one),
patterns.py (pre-tokenization), reference.py (BPE training in plain Python), train.py
(the same in Numba; its kernels in train_kernels.py), encoder.py (encoding as tiktoken
does; its kernels in bpe_kernels.py), pretokenize.py (the fast split; its scanners in
scanners.py), bpe.py (the class), rankfile.py (BPE files), files.py (save/load of any
kind), visualize.py (the token view).
"""

from .base import Tokenizer
from .bpe import WHOLE_TEXT_PATTERN, BPETokenizer
from .char import CharTokenizer
from .files import load_tokenizer, save_tokenizer
from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN, PATTERNS, pattern_name, resolve_pattern
from .rankfile import RankFileError, read_ranks, sidecar_path

__all__ = [
    "BPETokenizer", "CharTokenizer", "RankFileError", "Tokenizer", "load_tokenizer", "read_ranks", "save_tokenizer",
    "sidecar_path", "WHOLE_TEXT_PATTERN", "GPT2_PATTERN", "GPT4_PATTERN", "O200K_PATTERN", "PATTERNS", "pattern_name",
    "resolve_pattern",
]

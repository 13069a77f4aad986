"""Pretraining objectives in one harness: causal LM, masked LM, prefix LM (``TrainConfig.objective``).

The same windows of T tokens, the same model code, three ways to turn them into a loss:

    clm        causal LM (GPT; Radford et al. 2018): every position predicts the next token, seeing only
               the past. x = w[0:T], y = w[1:T+1]; loss on all T positions.
    mlm        masked LM (BERT; Devlin et al. 2019 §3.1): attention is bidirectional (GPTConfig.causal =
               False); 15% of positions are selected, and of those 80% become [MASK], 10% a random token,
               10% stay; the model predicts the original token at the selected positions only.
               x = corrupt(w[0:T]), y = w[0:T] at the selected positions, IGNORE_INDEX elsewhere.
    prefix_lm  prefix LM (Raffel et al. 2020 §3.2.1; UniLM, Dong et al. 2019): each row is cut at a random
               P in [1, T-1]; positions < P see one another, the rest causally (nn/prefix_lm.py); loss on the
               tokens after the prefix. x, y as clm, plus prefix_len P (B,).

Worked example, one window w = "abcdefgh" (T = 8, its next token "i"):

    clm        x = abcdefgh   y = bcdefghi                                     8 predicted tokens
    mlm        x = ab[M]defXh y = ..c...g.   (c masked, g replaced by X)        ~15%: here 2
    prefix_lm  x = abcdefgh   y = ..defghi   P = 3: "abc" read whole            T - P + 1 = 6

Each step reads the same B·T input tokens whatever the objective (the same compute), but the number
of predicted tokens differs: all T for clm, about 0.15·T for mlm, T - P + 1 (on average T/2 + 1)
for prefix_lm. Chapter 11 compares learning curves per input token and per predicted token.

The [MASK] token is a special token of the tokenizer (``special_tokens()`` names it for the
tokenizer builder); random replacements are drawn from the ordinary tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyllm.data import get_batch

OBJECTIVES = ("clm", "mlm", "prefix_lm")
MASK_TOKEN = "[MASK]"
IGNORE_INDEX = -100             # GPT.IGNORE_INDEX: targets equal to it add nothing to the loss
MLM_RATE = 0.15                 # BERT: 15% of the positions are predicted
MLM_MASK, MLM_RANDOM = 0.8, 0.1  # of those: 80% [MASK], 10% a random token, the other 10% unchanged


@dataclass
class Batch:
    """What one step feeds the model: model(idx, targets, prefix_len=prefix_len)."""

    idx: np.ndarray                  # (B, T) ints: what the model reads
    targets: np.ndarray              # (B, T) ints: what it predicts, IGNORE_INDEX where nothing is
    prefix_len: np.ndarray | None    # (B,) ints for a prefix LM, else None

    @property
    def predicted(self) -> int:
        """The number of tokens the loss averages over (prefix_lm: targets[:, P-1:] per row)."""
        counted = self.targets != IGNORE_INDEX
        if self.prefix_len is not None:
            counted &= np.arange(self.targets.shape[1])[None, :] >= self.prefix_len[:, None] - 1
        return int(counted.sum())


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {', '.join(map(repr, OBJECTIVES))}")
    return objective


def special_tokens(objective: str) -> tuple:
    """The special tokens the objective needs in the tokenizer: ("[MASK]",) for mlm, else ()."""
    return (MASK_TOKEN,) if check_objective(objective) == "mlm" else ()


def model_fields(objective: str, fields: dict) -> dict:
    """The GPTConfig fields for the objective: mlm needs causal=False (set when absent), the others causal=True."""
    causal = check_objective(objective) != "mlm"
    if fields.get("causal", causal) != causal:
        raise ValueError(f"objective {objective!r} needs a {'causal' if causal else 'bidirectional'} model, "
                         f"but causal={fields['causal']!r} was given; leave --causal out")
    return {**fields, "causal": causal}


def ordinary_ids(vocab_size: int, special_ids) -> np.ndarray:
    """The ids a random replacement may take: every id but the special tokens'."""
    return np.setdiff1d(np.arange(vocab_size), np.asarray(list(special_ids), dtype=np.int64))


def mlm_corrupt(x: np.ndarray, rng: np.random.Generator, mask_id: int, ordinary: np.ndarray,
                rate: float = MLM_RATE) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of windows x (B, T) -> (input, targets).

    Each row gets n = max(1, round(rate·T)) positions chosen without replacement (BERT's
    num_to_predict); each chosen one becomes mask_id with probability 0.8, a random ordinary token
    with 0.1, and stays with 0.1. targets holds x at the chosen positions, IGNORE_INDEX elsewhere.
    """
    B, T = x.shape
    n = max(1, int(round(rate * T)))
    chosen = np.argsort(rng.random((B, T)), axis=1)[:, :n]  # n distinct positions per row
    rows = np.arange(B)[:, None]
    inp = np.array(x, dtype=np.int64)
    targets = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    targets[rows, chosen] = inp[rows, chosen]
    u = rng.random((B, n))
    replaced = inp[rows, chosen]
    replaced = np.where(u < MLM_MASK, mask_id, replaced)
    random_ids = ordinary[rng.integers(0, len(ordinary), (B, n))]
    replaced = np.where((u >= MLM_MASK) & (u < MLM_MASK + MLM_RANDOM), random_ids, replaced)
    inp[rows, chosen] = replaced
    return inp, targets


def random_prefix(B: int, T: int, rng: np.random.Generator) -> np.ndarray:
    """Prefix lengths (B,) uniform in [1, T-1]: at least one token read whole, at least two predicted."""
    if T < 2:
        raise ValueError(f"prefix_lm needs windows of at least 2 tokens, got T={T}")
    return rng.integers(1, T, B)


class Objective:
    """make_batch(tokens, B, T, rng) -> Batch for one objective; mask_id and the ordinary ids for mlm.

    Objective("mlm", tokenizer) finds [MASK] among the tokenizer's special tokens.
    """

    def __init__(self, name: str, tokenizer=None):
        self.name = check_objective(name)
        self.mask_id, self.ordinary = None, None
        if self.name == "mlm":
            specials = {} if tokenizer is None else tokenizer.special_tokens
            if MASK_TOKEN not in specials:
                raise ValueError(f"objective 'mlm' needs a tokenizer with the special token {MASK_TOKEN}; build "
                                 f"it with special_tokens=['{MASK_TOKEN}'] (tinyllm train does)")
            self.mask_id = specials[MASK_TOKEN]
            self.ordinary = ordinary_ids(tokenizer.vocab_size, specials.values())

    def make_batch(self, tokens, B: int, T: int, rng: np.random.Generator, windows=None) -> Batch:
        """A Batch of B random windows of tokens (or the given (x, y) windows): see the module docstring."""
        x, y = get_batch(tokens, B, T, rng) if windows is None else windows
        if self.name == "clm":
            return Batch(x, y, None)
        if self.name == "mlm":
            inp, targets = mlm_corrupt(x, rng, self.mask_id, self.ordinary)
            return Batch(inp, targets, None)
        return Batch(x, y, random_prefix(x.shape[0], x.shape[1], rng))

    def __repr__(self) -> str:
        return f"Objective({self.name!r})"

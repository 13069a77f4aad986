"""Prompt/response records for supervised finetuning: the loss is taken on the response tokens only.

A JSONL file holds one record a line, ``{"prompt": "reverse: frog\\n", "response": "gorf\\n"}``
(InstructGPT's demonstrations, Ouyang et al. 2022 §3.5; Alpaca's format). The model
should learn to *answer* the prompt, not to write prompts, so each record becomes

    ids = encode(prompt) + encode(response)            n_p prompt tokens, then n_r response tokens
    x   = ids[:-1],   y = ids[1:]                        position t predicts ids[t + 1]
    y[t] = IGNORE_INDEX (-100) for t < n_p - 1           targets that are prompt tokens add no loss

Worked example (ids of a character tokenizer): prompt "ab" -> [0, 1], response "c!" -> [2, 3]:

    ids = [0, 1, 2, 3]     x = [0, 1, 2]     y = [-100, 2, 3]

A batch holds B records drawn at random, padded on the right to the longest of them
with token 0 in x and IGNORE_INDEX in y: the causal mask keeps real positions from
seeing the padding, and the padding's targets count for nothing. A record longer than
context_length + 1 tokens keeps its last context_length + 1 (the response; the
beginning of the prompt is cut) and is counted in ``truncated``.

Nothing ends a response but what the data puts there: end each response with the text
that should stop generation (the tasks of tinyllm/data/instructions.py end theirs with a
newline, and generation is cut at the first one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IGNORE_INDEX = -100  # GPT.IGNORE_INDEX
MAX_RECORD_BYTES = 1 << 20  # one JSONL line; a longer one is refused with its line number


def read_records(path) -> list[dict]:
    """The {"prompt", "response"} records of a JSONL file (blank lines skipped), checked one by one.

    A line that is not a JSON object with string "prompt" and "response" fields is a ValueError
    naming the file, the line number and the fields it has.
    """
    path = Path(path)
    records = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if len(raw) > MAX_RECORD_BYTES:
                raise ValueError(f"{path}, line {n}: a record of {len(raw):,} bytes, over the limit of "
                                 f"{MAX_RECORD_BYTES:,}; split it or shorten it")
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise ValueError(f"{path}, line {n}: not JSON ({line[:60]!r}); each line must be one record "
                                 '{"prompt": "...", "response": "..."}') from None
            if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("prompt", "response")):
                have = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
                raise ValueError(f'{path}, line {n}: a record needs string fields "prompt" and "response", got '
                                 f"{have}")
            records.append({"prompt": rec["prompt"], "response": rec["response"]})
    if not records:
        raise ValueError(f'{path} holds no records; write one JSON object a line: {{"prompt": ..., "response": ...}}')
    return records


def encode_record(tok, prompt: str, response: str) -> tuple[list[int], int]:
    """(ids, n_prompt): the prompt's and the response's ids, encoded apart (so no token spans the seam)."""
    p, r = list(tok.encode_ordinary(prompt)), list(tok.encode_ordinary(response))
    if not r:
        raise ValueError(f"a record with an empty response ({prompt[:40]!r}) has nothing to learn; drop it")
    return p + r, len(p)


def masked_example(ids, n_prompt: int, context_length: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(x, y, truncated) int64 (n,) for one record, n <= context_length; see the module docstring.

    masked_example([0, 1, 2, 3], 2, 8) -> ([0, 1, 2], [-100, 2, 3], False)
    """
    ids = np.asarray(ids, dtype=np.int64)
    truncated = len(ids) > context_length + 1
    start = max(0, len(ids) - (context_length + 1))
    ids = ids[start:]
    x, y = ids[:-1].copy(), ids[1:].copy()
    y[:max(0, n_prompt - 1 - start)] = IGNORE_INDEX  # subtle: the first target that is a response token stays
    return x, y, truncated


def pad_batch(pairs) -> tuple[np.ndarray, np.ndarray]:
    """[(x, y), ...] of lengths n_i -> (x, y) int64 (B, max n_i): x padded with 0, y with IGNORE_INDEX."""
    L = max(len(x) for x, _ in pairs)
    X = np.zeros((len(pairs), L), dtype=np.int64)
    Y = np.full((len(pairs), L), IGNORE_INDEX, dtype=np.int64)
    for i, (x, y) in enumerate(pairs):
        X[i, :len(x)], Y[i, :len(y)] = x, y
    return X, Y


@dataclass
class RecordSplit:
    """Encoded records (ids, n_prompt) of one split; len() is their number of tokens."""

    examples: list

    def __len__(self) -> int:
        return sum(len(ids) for ids, _ in self.examples)


class PromptResponseData:
    """The records of a JSONL file, encoded with `tok` and split into "train" and "val".

    ``batch(split, B, T, rng) -> (x, y)`` is the sampler a finetuning RunPlan uses. The split is
    a seeded shuffle: the last max(1, round(val_fraction · N)) records of it are "val".
    """

    def __init__(self, records, tok, val_fraction: float = 0.1, seed: int = 0, source: str = "the records"):
        if len(records) < 2:
            raise ValueError(f"{source}: finetuning needs at least 2 records (one to train on, one to validate), "
                             f"got {len(records)}")
        encoded = []
        for i, rec in enumerate(records):
            try:
                encoded.append(encode_record(tok, rec["prompt"], rec["response"]))
            except ValueError as e:
                raise ValueError(f"{source}, record {i + 1}: {e}") from None
        order = np.random.default_rng(seed).permutation(len(encoded))
        n_val = min(len(encoded) - 1, max(1, round(val_fraction * len(encoded))))
        self.splits = {"train": RecordSplit([encoded[i] for i in order[:-n_val]]),
                       "val": RecordSplit([encoded[i] for i in order[-n_val:]])}

    def count_truncated(self, context_length: int) -> int:
        """How many records are longer than context_length + 1 tokens (their prompts are cut at the front)."""
        return sum(len(ids) > context_length + 1 for s in self.splits.values() for ids, _ in s.examples)

    def batch(self, split: str, batch_size: int, context_length: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """B records of `split` drawn with rng -> (x, y) int64 (B, L), L <= context_length; see pad_batch."""
        examples = self.splits[split].examples
        pick = rng.integers(0, len(examples), size=batch_size)
        return pad_batch([masked_example(*examples[i], context_length)[:2] for i in pick])

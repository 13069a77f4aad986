"""Toy sequence tasks: copy, reverse and sort a string of digits.

Small algorithmic tasks are the transformer's lab rats (e.g. Vaswani et al.
2017's copy baseline, the "Neural GPU"/"Transformers learn to sort" line of
work): the answer is known exactly, so a loss near 0 means the model found the
algorithm, and each task needs a different kind of attention. One example is
one sequence of 2n + 2 tokens:

    <task>  x_1 … x_n  =  y_1 … y_n          y = x, reversed(x) or sorted(x)

    copy     y_k = x_k            look back a fixed n + 1 positions (a positional lookup)
    reverse  y_k = x_{n+1-k}      a positional lookup whose distance shrinks by 2 each step
    sort     y_k = k-th smallest  no position holds the answer: the model must compare contents

A language model reads tokens 0 … 2n and predicts tokens 1 … 2n+1. Only the
n answer tokens are scored: the task marker, the digits x and "=" are random or
fixed, so their targets are set to IGNORE_INDEX (-100, which GPT's loss skips).

Vocabulary (14 ids): the digits "0".."9" are ids 0..9, "=" is 10, and the task
markers "C", "R", "S" are 11, 12, 13.

Example (n = 4):
    >>> decode(make_examples("reverse", 1, 4, np.random.default_rng(0))[0])
    'R8652=2568'
    >>> x, y = task_batch(("reverse",), 1, 4, np.random.default_rng(0))
    >>> x[0].tolist(), y[0].tolist()      # y is x shifted by one; non-answer targets are ignored
    ([12, 8, 6, 5, 2, 10, 2, 5, 6], [-100, -100, -100, -100, -100, 2, 5, 6, 8])
"""

from __future__ import annotations

import numpy as np

TASKS = ("copy", "reverse", "sort")
VOCAB = "0123456789=CRS"
SEP = VOCAB.index("=")
MARKERS = {"copy": VOCAB.index("C"), "reverse": VOCAB.index("R"), "sort": VOCAB.index("S")}
IGNORE_INDEX = -100  # GPT.IGNORE_INDEX: targets equal to it add nothing to the loss
N_SYMBOLS = 10


def _check(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


def make_examples(task: str, n_examples: int, n_digits: int, rng: np.random.Generator) -> np.ndarray:
    """int64 (n_examples, 2·n_digits + 2): rows "<task> x_1..x_n = y_1..y_n" as token ids."""
    _check(task)
    if n_examples < 1 or n_digits < 1:
        raise ValueError(f"n_examples and n_digits must be >= 1, got {n_examples} and {n_digits}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    x = rng.integers(0, N_SYMBOLS, size=(n_examples, n_digits))           # (N, n) random digits
    y = {"copy": x, "reverse": x[:, ::-1], "sort": np.sort(x, axis=1)}[task]  # (N, n) the answer
    marker = np.full((n_examples, 1), MARKERS[task])
    sep = np.full((n_examples, 1), SEP)
    return np.concatenate([marker, x, sep, y], axis=1).astype(np.int64)     # (N, 2n + 2)


def task_batch(tasks, batch_size: int, n_digits: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) int64 (B, 2n + 1): next-token inputs and targets, each row of a task drawn uniformly from `tasks`.

    y[:, t] = seq[:, t + 1] on the n answer positions (t >= n + 1), IGNORE_INDEX on t = 0..n.
    """
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks:
        raise ValueError(f"task_batch needs at least one task from {TASKS}")
    for task in tasks:
        _check(task)
    which = rng.integers(0, len(tasks), size=batch_size)  # (B,) a task per row
    seq = np.empty((batch_size, 2 * n_digits + 2), dtype=np.int64)
    for i, task in enumerate(tasks):
        rows = np.flatnonzero(which == i)
        if rows.size:
            seq[rows] = make_examples(task, rows.size, n_digits, rng)
    return inputs_and_targets(seq, n_digits)


def inputs_and_targets(seq: np.ndarray, n_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Examples (N, 2n + 2) -> (x, y), each (N, 2n + 1): y is x shifted by one, scored on the answer only."""
    x, y = seq[:, :-1].copy(), seq[:, 1:].copy()  # (N, 2n + 1) each
    y[:, :n_digits + 1] = IGNORE_INDEX  # subtle: targets 0..n are x_1..x_n and "=": random or fixed, never scored
    return x, y


def decode(ids) -> str:
    """The text of token ids; IGNORE_INDEX shows as "_".  decode([12, 3, 1, 10, 1, 3]) -> 'R31=13'."""
    return "".join("_" if int(i) == IGNORE_INDEX else VOCAB[int(i)] for i in ids)

"""Exact-match accuracy: does greedy generation, cut at the first newline, equal the answer?

For tasks with one right answer (tinyllm/data/instructions.py) the score needs no judge:

    generated = greedy continuation of the prompt, max_new_tokens long, up to its first "\\n"
    correct   = generated == answer
    accuracy  = mean of correct, per task and over all records

Prompts of the same token length generate together, one batch each (the KV cache and
the sampling loop of tinyllm/inference/generate.py), so scoring a few hundred prompts costs
a few dozen generate calls.

Example:
    >>> exact_match(model, tok, [{"prompt": "reverse: ab\\n", "answer": "ba", "task": "reverse"}])
    {'reverse': 1.0, 'all': 1.0}          # when the model answers "ba\\n..."
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tinyllm.data import encode_text


def generate_answers(model, tok, prompts, max_new_tokens: int = 12, batch_size: int = 64) -> list[str]:
    """The greedy answer to each prompt: its continuation up to the first newline (without it)."""
    by_length = defaultdict(list)
    ids = [encode_text(tok, p) for p in prompts]
    for i, p in enumerate(ids):
        by_length[len(p)].append(i)
    out = [""] * len(prompts)
    for n, rows in sorted(by_length.items()):
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            idx = np.asarray([ids[i] for i in chunk], dtype=np.int64)  # (b, n): one prompt length
            gen = model.generate(idx, max_new_tokens, temperature=0.0)[:, n:]  # (b, max_new_tokens)
            for i, row in zip(chunk, gen):
                out[i] = tok.decode([int(t) for t in row]).split("\n", 1)[0]
    return out


def exact_match(model, tok, records, max_new_tokens: int = 12) -> dict:
    """{task: accuracy, ..., "all": accuracy} over records with "prompt", "answer" and "task"."""
    answers = generate_answers(model, tok, [r["prompt"] for r in records], max_new_tokens)
    hits = defaultdict(list)
    for rec, got in zip(records, answers):
        hits[rec["task"]].append(got == rec["answer"])
        hits["all"].append(got == rec["answer"])
    return {task: float(np.mean(v)) for task, v in hits.items()}

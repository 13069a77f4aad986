"""A generated multi-task instruction dataset: task prefixes, exact answers, held-out phrasings.

Instruction tuning (Wei et al. 2021, FLAN; Sanh et al. 2021, T0) finetunes one model on many
tasks, each stated in words, so that it follows the instruction rather than guessing the
task from the input. Here the tasks are small enough for a CPU and their answers are exact,
so a model is scored by exact match: the generated text up to the first newline equals the
answer, or it does not.

    task        a training phrasing            input -> answer
    reverse     "reverse: {x}"                 frog  -> gorf
    sort        "sort: {x}"                    frog  -> fgor        (its letters, in order)
    capitalize  "capitalize: {x}"              frog  -> FROG
    count       "count: {x}"                   frog  -> 4           (its letters)
    add         "add: {a}+{b}"                 12+7  -> 19

Every task has two training phrasings and two held-out ones (PHRASINGS): the held-out ones
("please reverse frog", "Reverse: frog") never appear in training, so they measure whether a
model learned the instruction or only the exact string "reverse:". Inputs are split the same
way: an input whose crc32 is divisible by HELD_OUT_EVERY is held out (only in "test"), so no
test question was ever a training question, whatever the seeds.

One record is {"prompt": phrasing + "\\n", "response": answer + "\\n", "task": ..., "answer": ...};
the newline ends the answer (tinyllm/data/sft.py), and JSONL files of them feed
`tinyllm finetune --data FILE`.

Example:
    >>> make_examples("reverse", 1, np.random.default_rng(0))[0]["prompt"]   # a training phrasing
    >>> instruction_dataset(TASKS, 100, seed=0, split="test", phrasing="held-out")
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

TASKS = ("reverse", "sort", "capitalize", "count", "add")
LETTERS = "abcdefghijklmnopqrstuvwxyz"
HELD_OUT_EVERY = 5  # one input in five is test-only

# task -> (training phrasings, held-out phrasings); "{x}" is the input
PHRASINGS = {
    "reverse": (("reverse: {x}", "reverse the letters of {x}"), ("please reverse {x}", "Reverse: {x}")),
    "sort": (("sort: {x}", "sort the letters of {x}"), ("please sort {x}", "Sort: {x}")),
    "capitalize": (("capitalize: {x}", "write in capitals {x}"), ("please capitalize {x}", "Capitalize: {x}")),
    "count": (("count: {x}", "count the letters of {x}"), ("please count {x}", "Count: {x}")),
    "add": (("add: {x}", "add the numbers {x}"), ("please add {x}", "Add: {x}")),
}


def answer(task: str, x: str) -> str:
    """The exact answer to `task` on input x: answer("sort", "frog") -> "fgor", answer("add", "12+7") -> "19"."""
    if task == "reverse":
        return x[::-1]
    if task == "sort":
        return "".join(sorted(x))
    if task == "capitalize":
        return x.upper()
    if task == "count":
        return str(len(x))
    if task == "add":
        a, b = x.split("+")
        return str(int(a) + int(b))
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


def held_out(x: str) -> bool:
    """Whether input x belongs to the test inputs (crc32(x) % HELD_OUT_EVERY == 0)."""
    return zlib.crc32(x.encode("utf-8")) % HELD_OUT_EVERY == 0


def _draw_input(task: str, rng: np.random.Generator) -> str:
    if task == "add":
        a, b = rng.integers(0, 20, size=2)
        return f"{a}+{b}"
    n = int(rng.integers(1, 8) if task == "count" else rng.integers(3, 6))  # count's answer: one digit
    return "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), size=n))


def make_examples(task: str, n: int, rng: np.random.Generator, split: str = "train",
                  phrasing: str = "train") -> list[dict]:
    """n records of `task`: inputs of `split` ("train" | "test"), phrasings of `phrasing` ("train" | "held-out")."""
    if task not in PHRASINGS:
        raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    if split not in ("train", "test") or phrasing not in ("train", "held-out"):
        raise ValueError(f"split must be 'train' or 'test' and phrasing 'train' or 'held-out', got {split!r}, "
                         f"{phrasing!r}")
    templates = PHRASINGS[task][0 if phrasing == "train" else 1]
    out = []
    while len(out) < n:
        x = _draw_input(task, rng)
        if held_out(x) != (split == "test"):
            continue
        template = templates[int(rng.integers(0, len(templates)))]
        y = answer(task, x)
        out.append({"prompt": template.format(x=x) + "\n", "response": y + "\n", "task": task, "answer": y})
    return out


def instruction_dataset(tasks=TASKS, n_per_task: int = 100, seed: int = 0, split: str = "train",
                        phrasing: str = "train") -> list[dict]:
    """n_per_task records of each task, interleaved in a seeded shuffle."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    rng = np.random.default_rng([seed, len(tasks)])
    records = [r for task in tasks for r in make_examples(task, n_per_task, rng, split, phrasing)]
    return [records[i] for i in rng.permutation(len(records))]


def write_jsonl(records, path) -> Path:
    """One JSON object a line, as `tinyllm finetune --data FILE.jsonl` reads them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def alphabet() -> str:
    """Every character a record can hold: what a tokenizer needs to encode the dataset."""
    chars = set(LETTERS + LETTERS.upper() + "0123456789+:\n ")
    for train, held in PHRASINGS.values():
        for t in train + held:
            chars |= set(t.replace("{x}", ""))
    return "".join(sorted(chars))

"""Self-instruct: a trained model writes new prompt/response records from a few of its own examples.

Self-Instruct (Wang et al. 2022) grows an instruction dataset from a small seed
set: show the model a few records, let it write a new prompt, then a response;
keep the pair only if it passes filters; add it to the pool; repeat. Each round:

    demos     k records drawn from the pool (seeds + records kept so far), written out as
              prompt line, response line, prompt line, response line, ...
    prompt    the model continues the demos with one new line                (stage 1)
    response  the model continues demos + new prompt with one more line        (stage 2)
    filters   in order, the first failure removes the pair (the report counts each):
                complete     both lines ended (a newline came before max_new_tokens ran out)
                length       min_chars <= len(line) <= max_chars, for each
                not_copy     the response is not the prompt; the prompt is not a demo's
                repetition   no word repeated over half the words (a sampler stuck in a loop)
                novel        word-bigram Jaccard with every pool prompt < `novelty` (0.7, the paper's
                             ROUGE-L bound, here as set overlap)
                verify       verify(prompt, response) is True, when a verifier is given (e.g.
                             verifiable.verify: the prompt is a task's template and the response
                             its answer; None, a prompt no verifier understands, is removed too)
                score        score(prompt, response) >= min_score, when a scorer is given (e.g. the
                             reward model of tinyllm/train/rlhf/reward.py)
    dedup     at the end, exact and near-duplicate records are dropped (tinyllm/data/dedup.py)

Every kept record says where it came from:

    {"prompt": "...\\n", "response": "...\\n",
     "provenance": {"generator": "self-instruct", "model": NAME, "seed": S, "round": r, "demos": [pool ids],
                    "temperature": T, "top_k": K, "score": s or None}}

The model enters only through a *sampler*: ``sampler(prompts, max_new_tokens, rng)``
-> one (text, stopped) per prompt, the text cut at the first newline. ``ModelSampler``
wraps a GPT and its tokenizer; tests pass scripted samplers to check the filters.

``sample_documents`` uses the same sampler for pretraining-style synthetic text:
continuations of prompts (e.g. the openings of real documents), each with its
provenance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tinyllm.data.dedup import dedup
from tinyllm.data.jaccard import jaccard

FILTERS = ("complete", "length", "not_copy", "repetition", "novel", "verify", "score", "duplicate")


class ModelSampler:
    """``sampler(prompts, max_new_tokens, rng, stop)`` -> [(continuation, stopped)] from a GPT and its tokenizer.

    Prompts of the same token length are generated together (a batch of up to batch_size rows). A prompt
    longer than context_length - max_new_tokens keeps its last tokens. The continuation is cut at `stop`
    (None: kept whole); stopped says whether `stop` appeared.
    """

    def __init__(self, model, tok, temperature: float = 1.0, top_k: int | None = None, batch_size: int = 32,
                 name: str = "model"):
        self.model, self.tok, self.batch_size, self.name = model, tok, batch_size, name
        self.knobs = dict(temperature=temperature, top_k=top_k)

    def __call__(self, prompts: list[str], max_new_tokens: int, rng: np.random.Generator,
                 stop: str | None = "\n") -> list[tuple[str, bool]]:
        keep = self.model.config.context_length - max_new_tokens
        if keep < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
                             f"context of {self.model.config.context_length} tokens")
        ids = [self.tok.encode(p)[-keep:] or self.tok.encode("\n") for p in prompts]
        out: list[tuple[str, bool]] = [("", False)] * len(prompts)
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(i)
        for length in sorted(by_length):
            rows = by_length[length]
            for s in range(0, len(rows), self.batch_size):
                chunk = rows[s:s + self.batch_size]
                batch = np.array([ids[i] for i in chunk], dtype=np.int64)          # (B, T)
                new = self.model.generate(batch, max_new_tokens, seed=rng, **self.knobs)[:, length:]  # (B, n)
                for i, row in zip(chunk, new):
                    text = self.tok.decode(row.tolist())
                    out[i] = (text.split(stop, 1)[0], True) if stop and stop in text else (text, False)
        return out


def _demo_text(records) -> str:
    return "".join(r["prompt"].rstrip("\n") + "\n" + r["response"].rstrip("\n") + "\n" for r in records)


def _bigrams(text: str) -> set:
    words = text.lower().split()
    return set(zip(words, words[1:])) or set(words)


def _repetitive(text: str) -> bool:
    words = text.lower().split()
    return len(words) >= 4 and max(words.count(w) for w in set(words)) > len(words) / 2


@dataclass
class SynthReport:
    """What a self-instruct run did: candidates made, the removals per filter, records kept."""

    generated: int = 0
    removed: dict = field(default_factory=lambda: {name: 0 for name in FILTERS})
    kept: int = 0
    examples: dict = field(default_factory=dict)  # filter -> a few removed (prompt, response)

    def summary(self) -> str:
        removed = ", ".join(f"{k} {v}" for k, v in self.removed.items() if v)
        return f"{self.generated} candidates -> {self.kept} kept; removed by: {removed or 'none'}"


def self_instruct(sampler, seeds: list[dict], n: int, *, seed: int = 0, n_demos: int = 3, max_rounds: int | None = None,
                  max_new_tokens: int = 48, min_chars: int = 2, max_chars: int = 200, novelty: float = 0.7,
                  verify=None, score=None, min_score: float = 0.0, batch: int = 16, model_name: str | None = None):
    """Up to `n` new {"prompt", "response", "provenance"} records grown from `seeds` (module docstring).

    sampler: ModelSampler or any callable with its signature; verify(prompt, response) -> bool | None and
    score(prompt, response) -> float, optional.
    Runs rounds of `batch` candidates until n are kept or max_rounds (default 10 * ceil(n / batch) + 10)
    pass. -> (records, SynthReport).
    """
    if not seeds:
        raise ValueError("self_instruct needs seed records ({'prompt': ..., 'response': ...}) to show the model")
    for s in seeds:
        if not isinstance(s.get("prompt"), str) or not isinstance(s.get("response"), str):
            raise ValueError(f"a seed record needs string 'prompt' and 'response' fields, got {sorted(s)}")
    rng = np.random.default_rng(seed)
    pool = [dict(prompt=s["prompt"], response=s["response"]) for s in seeds]
    pool_grams = [_bigrams(r["prompt"]) for r in pool]
    knobs = getattr(sampler, "knobs", {})
    report, kept = SynthReport(), []
    rounds = max_rounds if max_rounds is not None else 10 * math.ceil(n / batch) + 10

    def remove(name, prompt, response):
        report.removed[name] += 1
        shown = report.examples.setdefault(name, [])
        if len(shown) < 3:
            shown.append((prompt, response))

    for r in range(rounds):
        if len(kept) >= n:
            break
        demos = [rng.choice(len(pool), size=min(n_demos, len(pool)), replace=False).tolist() for _ in range(batch)]
        heads = [_demo_text([pool[i] for i in d]) for d in demos]
        prompts = sampler(heads, max_new_tokens, rng)                                             # stage 1
        responses = sampler([h + p + "\n" for h, (p, _) in zip(heads, prompts)], max_new_tokens, rng)  # stage 2
        for d, (prompt, p_done), (response, r_done) in zip(demos, prompts, responses):
            report.generated += 1
            prompt, response = prompt.strip(), response.strip()
            grams = _bigrams(prompt)
            if not (p_done and r_done):
                remove("complete", prompt, response)
            elif not all(min_chars <= len(x) <= max_chars for x in (prompt, response)):
                remove("length", prompt, response)
            elif response == prompt or any(prompt == pool[i]["prompt"].strip() for i in d):
                remove("not_copy", prompt, response)
            elif _repetitive(prompt) or _repetitive(response):
                remove("repetition", prompt, response)
            elif any(jaccard(grams, g) >= novelty for g in pool_grams):
                remove("novel", prompt, response)
            elif verify is not None and verify(prompt, response) is not True:
                remove("verify", prompt, response)
            else:
                value = None if score is None else float(score(prompt + "\n", response + "\n"))
                if value is not None and value < min_score:
                    remove("score", prompt, response)
                    continue
                record = {"prompt": prompt + "\n", "response": response + "\n",
                          "provenance": {"generator": "self-instruct", "model": model_name or getattr(
                              sampler, "name", "model"), "seed": seed, "round": r, "demos": d, **knobs,
                              "score": value}}
                pool.append(record)
                pool_grams.append(grams)
                kept.append(record)
    kept = kept[:n]
    mask = dedup([k["prompt"] + k["response"] for k in kept], threshold=0.8, ngram=2) if len(kept) > 1 else \
        np.ones(len(kept), dtype=bool)
    for k, ok in zip(kept, mask):
        if not ok:
            remove("duplicate", k["prompt"], k["response"])
    kept = [k for k, ok in zip(kept, mask) if ok]
    report.kept = len(kept)
    return kept, report


def sample_documents(sampler, prompts: list[str], n_docs: int, max_new_tokens: int, *, seed: int = 0,
                     keep_prompt: bool = True, model_name: str | None = None) -> list[dict]:
    """`n_docs` {"text", "provenance"} records: continuations of prompts (cycled), sampled without a stop.

    keep_prompt: the text starts with its prompt (False: the continuation alone).
    """
    if not prompts:
        raise ValueError("sample_documents needs at least one prompt")
    rng = np.random.default_rng(seed)
    chosen = [prompts[i % len(prompts)] for i in range(n_docs)]
    out = sampler(chosen, max_new_tokens, rng, stop=None)
    knobs = getattr(sampler, "knobs", {})
    return [{"text": (p if keep_prompt else "") + text,
             "provenance": {"generator": "model-samples", "model": model_name or getattr(sampler, "name", "model"),
                            "seed": seed, "index": i, "prompt_chars": len(p), **knobs}}
            for i, (p, (text, _)) in enumerate(zip(chosen, out))]

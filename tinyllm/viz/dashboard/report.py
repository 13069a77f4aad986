"""What the dashboard shows for a prompt and a setting of the knobs, as a JSON-able dict.

With z the model's next-token logits for the prompt (the last context_length tokens):

    p_model  = softmax(z)                     the model's own distribution (temperature 1)
    p_before = softmax(z / T)                 after temperature, before any token is removed
    p_after  = softmax(filter_logits(z, T, top_k, top_p, min_p))   what a token is drawn from
    entropy  = -Σ p log p  (nats) of each;    kept_mass = Σ_{j kept} p_before[j]

so top_p = 0.9 keeps the fewest tokens whose kept_mass reaches 0.9, and
top_k = 1 keeps one token with kept_mass = max p_before. The tokens are
listed in the order of z (the same order for all three distributions, since
temperature keeps it), the first ``n_top`` of them.

Bad input raises ``BadRequest`` with a message for the page (the server
answers 400) that names the field and what it may hold (ALLOWED): an empty
prompt, characters a character-level tokenizer never saw, a knob of the wrong
type, NaN, inf or out of range (1e400, a 5000-digit integer), an unknown field.
A prompt longer than the model's context is not an error: the model reads its
last context_length tokens, and the answer says so (cropped).
"""

from __future__ import annotations

import math
import time

import numpy as np

from tinyllm.data import encode_text
from tinyllm.inference.sampling import check_sampling_args, entropy, filter_logits, softmax

LIMITS = dict(n_samples=(0, 8), max_new_tokens=(1, 200), n_top=(1, 100), prompt_chars=(1, 4000))
DEFAULTS = dict(temperature=1.0, top_k=None, top_p=None, min_p=None, n_samples=3, max_new_tokens=40, seed=0,
                n_top=20)


# what each field may hold, as the 400 answers say it: "top_k must be an integer >= 1, or none (off), got 0.5"
ALLOWED = dict(prompt="text of 1 to 4000 characters", temperature="a finite number >= 0 (0 = greedy)",
               top_k="an integer >= 1, or none (off)", top_p="a number in (0, 1], or none (off)",
               min_p="a number in [0, 1], or none (off)", n_samples="an integer in [0, 8]",
               max_new_tokens="an integer in [1, 200]", n_top="an integer in [1, 100]", seed="an integer in [0, 2**63)")
MAX_DIGITS = 40  # a number written with more characters is refused before Python converts it


class BadRequest(ValueError):
    """Input the dashboard cannot use; its message is shown on the page."""


class BigNumber:
    """A JSON integer of more than MAX_DIGITS digits, kept as its length (the server's parse_int makes these):
    int() of a 5000-digit string raises past Python's 4300-digit limit, and no knob wants one."""

    def __init__(self, digits: str):
        self.n = len(digits.lstrip("-"))

    def __repr__(self) -> str:
        return f"a {self.n}-digit number (numbers here have at most {MAX_DIGITS} digits)"


def parse_int(digits: str):
    """json.loads's parse_int: an int, or a BigNumber past MAX_DIGITS digits."""
    return int(digits) if len(digits) <= MAX_DIGITS else BigNumber(digits)


def _show(raw) -> str:
    """The value as an error message quotes it, cut to 40 characters."""
    text = repr(raw)
    return text if len(text) <= 40 or isinstance(raw, BigNumber) else text[:37] + "..."


def _number(params, name, kind):
    """params[name] as kind (int or float), None when off ('none', 'off', '' or JSON null); BadRequest naming
    the field and ALLOWED[name] for anything else: booleans, lists, NaN, inf, 1.5 for an integer, 1e400, 10**5000."""
    raw = params.get(name, DEFAULTS.get(name))
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "off")):
        return None
    bad = BadRequest(f"{name} must be {ALLOWED[name]}, got {_show(raw)}")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise bad
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_DIGITS:
            raise BadRequest(f"{name} must be {ALLOWED[name]} (at most {MAX_DIGITS} characters), got {_show(raw)}")
        try:
            raw = int(text)
        except ValueError:
            try:
                raw = float(text)
            except ValueError:
                raise bad from None
    if kind is float:
        try:
            value = float(raw)  # subtle: float(10**400) raises OverflowError
        except OverflowError:
            raise bad from None
        if not math.isfinite(value):
            raise bad
        return value
    if isinstance(raw, float) and not (math.isfinite(raw) and raw.is_integer()):
        raise bad  # inf (1e400), nan, 1.5
    return int(raw)


def parse_knobs(params: dict) -> dict:
    """Query/JSON parameters (strings or numbers) -> checked knobs; 'none', '' or absent = the default (off).

    parse_knobs({"prompt": "To be", "temperature": "0.7", "top_k": "none"})
      -> {"prompt": "To be", "temperature": 0.7, "top_k": None, "top_p": None, "min_p": None, ...}

    Every other input raises BadRequest naming the field and what it may hold (ALLOWED), an unknown field too.
    """
    unknown = sorted(set(params) - set(ALLOWED), key=str)
    if unknown:
        raise BadRequest(f"unknown field {_show(unknown[0])}; the fields are {', '.join(ALLOWED)}")
    prompt = params.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadRequest(f"prompt must be {ALLOWED['prompt']}, got {_show(prompt)}")
    if not prompt:
        raise BadRequest("the prompt is empty: type some text for the model to continue")
    lo, hi = LIMITS["prompt_chars"]
    if len(prompt) > hi:
        raise BadRequest(f"the prompt has {len(prompt)} characters; the dashboard takes at most {hi}")
    knobs = dict(prompt=prompt)
    for name, kind in (("temperature", float), ("top_k", int), ("top_p", float), ("min_p", float)):
        knobs[name] = _number(params, name, kind)
    if knobs["temperature"] is None:
        knobs["temperature"] = 1.0
    try:
        check_sampling_args(knobs["temperature"], knobs["top_k"], knobs["top_p"], knobs["min_p"])
    except ValueError as e:
        raise BadRequest(str(e)) from None
    for name in ("n_samples", "max_new_tokens", "n_top", "seed"):
        value = _number(params, name, int)
        knobs[name] = DEFAULTS[name] if value is None else value
        if name in LIMITS and not LIMITS[name][0] <= knobs[name] <= LIMITS[name][1]:
            raise BadRequest(f"{name} must be {ALLOWED[name]}, got {knobs[name]}")
    if not 0 <= knobs["seed"] < 2**63:
        raise BadRequest(f"seed must be {ALLOWED['seed']}, got {knobs['seed']}")
    return knobs


def token_label(tok, token_id: int) -> str:
    """How one token is shown: its text, controls escaped (\\n), a space as ␣, broken UTF-8 as <0xNN>."""
    from tinyllm.tokenizer.visualize import token_label as label

    return label(tok.token_bytes(token_id)).replace(" ", "␣")


def encode_prompt(tok, prompt: str) -> list[int]:
    try:
        ids = encode_text(tok, prompt)
    except (KeyError, ValueError) as e:
        raise BadRequest(f"the prompt cannot be encoded: {e}") from None
    if not ids:
        raise BadRequest("the prompt encodes to no tokens: type some text for the model to continue")
    return ids


def default_prompt(tok) -> str:
    """The page's first prompt: "ROMEO:\n" if the tokenizer can encode it, else a newline, else its first token."""
    for text in ("ROMEO:\n", "\n"):
        try:
            if encode_prompt(tok, text):
                return text
        except BadRequest:
            pass
    return tok.decode([0])


def info(model, tok) -> dict:
    c = model.config
    return dict(vocab_size=c.vocab_size, context_length=c.context_length, n_layer=c.n_layer, d_model=c.d_model,
                parameters=model.num_parameters(), tokenizer=type(tok).__name__, limits=LIMITS, defaults=DEFAULTS,
                prompt=default_prompt(tok))


def next_token_report(model, tok, params: dict) -> dict:
    """The dashboard's answer for one request; see the module docstring. Raises BadRequest on bad input."""
    start = time.perf_counter()
    knobs = parse_knobs(params)
    ids = encode_prompt(tok, knobs["prompt"])
    ctx = model.config.context_length
    window = np.asarray([ids[-ctx:]], dtype=np.int64)  # (1, T <= context_length)
    z = np.asarray(model.next_token_logits(window), dtype=np.float64)[0]  # (V,)
    T, k, p, m = knobs["temperature"], knobs["top_k"], knobs["top_p"], knobs["min_p"]
    before = filter_logits(z, temperature=T)
    after = filter_logits(z, T, k, p, m)
    p_model, p_before, p_after = softmax(z), softmax(before), softmax(after)
    kept = np.isfinite(after)
    order = np.argsort(-z, kind="stable")[:knobs["n_top"]]  # most likely first; ties by id
    top = [dict(id=int(j), label=token_label(tok, int(j)), logit=float(z[j]), p_model=float(p_model[j]),
                p_before=float(p_before[j]), p_after=float(p_after[j]), kept=bool(kept[j])) for j in order]
    samples = []
    if knobs["n_samples"]:
        start_ids = np.repeat(window, knobs["n_samples"], axis=0)  # (n, T): one row per continuation
        out = model.generate(start_ids, knobs["max_new_tokens"], temperature=T, top_k=k, top_p=p, min_p=m,
                             seed=knobs["seed"])
        samples = [tok.decode([int(t) for t in row[window.shape[1]:]]) for row in out]
    return dict(
        knobs={key: knobs[key] for key in ("temperature", "top_k", "top_p", "min_p", "n_samples",
                                           "max_new_tokens", "seed", "n_top")},
        prompt_tokens=len(ids), cropped=len(ids) > ctx, vocab_size=int(z.shape[0]),
        entropy_model=float(entropy(z)), entropy_before=float(entropy(before)), entropy_after=float(entropy(after)),
        kept_tokens=int(kept.sum()), kept_mass=float(p_before[kept].sum()),
        greedy=token_label(tok, int(z.argmax())), top=top, samples=samples,
        ms=round(1000 * (time.perf_counter() - start), 1))

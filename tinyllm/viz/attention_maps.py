"""Attention maps: what every head of a trained model looks at, for one prompt (§3).

Each attention head of layer l turns its queries and keys into a (T, T)
matrix of weights, row i a probability distribution over the keys j <= i:

    P[l, h, i, j] = softmax_j(q_i · k_j / √hs + causal mask)        Σ_j P[l, h, i, j] = 1

Drawn as a layers × heads grid of heatmaps (query tokens down, key tokens
across) it shows the heads' habits at a glance; numbers make them exact. Per
head, averaged over query positions i >= 2 (position 0 can only look at
itself, and at position 1 the previous token *is* the first token):

    prev        mean_i P[i, i-1]              attention to the previous token
    first       mean_i P[i, 0]                attention to the first token (an "attention sink",
                                              Xiao et al. 2023: a place to park weight not needed elsewhere)
    current     mean_i P[i, i]                attention to the token itself
    local       mean_i Σ_{j=i-2..i} P[i, j]   attention to the last three tokens
    word_start  mean_i P[i, s(i)]             s(i): the latest key j <= i whose token starts with
                                              whitespace (for characters: the space or newline
                                              before the current word); only with `marks`
    space       mean_i Σ_{j marked} P[i, j]   attention to all whitespace keys (only with `marks`;
                                              "space_uniform" is what uniform attention would give)
    entropy     mean_i H(P[i]) / ln(i+1)      0: one key takes everything; 1: uniform over the window

and a head is labelled by the first rule that holds (the thresholds, stated once here):

    "previous"    prev       >= 0.5    more than half of its weight on the token before
    "first"       first      >= 0.5    more than half parked on the first token
    "current"     current    >= 0.5    more than half on itself
    "word-start"  word_start >= 0.5    more than half on the start of the current word
    "diffuse"     entropy    >= 0.75   spread out, close to a running average (in a short window
                                       uniform weights also put most of their mass on the last three)
    "local"       local      >= 0.5    more than half on the last three tokens, none of them dominant
    "other"       anything else        focused, on something else (content)

For uniform attention prev = first = current = mean_i 1/(i+1) (``stats["uniform"]``).

Example (T = 3, one head that always looks one token back):
    P = [[1, 0, 0], [1, 0, 0], [0, 1, 0]] -> prev 1.0, first 0.0, current 0.0, entropy 0.0 -> "previous"

``tinyllm attention --ckpt DIR --prompt TEXT [--out FILE]`` draws the grid for any prompt.
"""

from __future__ import annotations

import sys

# the classification thresholds (see the module docstring)
MASS_THRESHOLD = 0.5
DIFFUSE_ENTROPY = 0.75
LABELS = ("previous", "first", "current", "word-start", "diffuse", "local", "other")
FIRST_QUERY = 2  # statistics average over query positions i >= FIRST_QUERY


def attention_weights(model, ids):
    """Host float32 attention weights of every layer and head for token ids.

    ids (T,) -> (n_layer, n_head, T, T);  ids (B, T) -> (B, n_layer, n_head, T, T).
    Runs the model once in eval mode without a graph, with attention recording on
    (``tinyllm.nn.attention.record_attention``), then restores both.
    """
    import numpy as np

    from tinyllm.nn.attention import record_attention
    from tinyllm.tensor import no_grad

    ids = np.asarray(ids)
    single = ids.ndim == 1
    batch = ids[None] if single else ids  # (T,) -> (1, T)
    if batch.ndim != 2 or batch.shape[1] == 0:
        raise ValueError(f"attention_weights: ids must be a non-empty (T,) or (B, T) array, got shape {ids.shape}")
    was_training = model.training
    mods = record_attention(model)
    model.eval()
    try:
        with no_grad():
            model(batch.astype(np.int64))
        per_layer = [m.last_weights for m in mods]  # n_layer arrays (B, nh, T, T)
    finally:
        record_attention(model, on=False)
        model.train(was_training)
    w = np.stack(per_layer, axis=1).astype(np.float32)  # (B, n_layer, nh, T, T)
    return w[0] if single else w


def head_stats(weights, marks=None) -> dict:
    """Per-head statistics of attention weights (..., n_layer, n_head, T, T), averaged over every leading
    (batch) axis and over query positions i >= 2; see the module docstring.

    marks: optional bool (..., T) with the weights' leading shape: the tokens that start with whitespace
    (``whitespace_marks``); gives "word_start". Returns float64 arrays (n_layer, n_head) "prev", "first",
    "current", "local", "entropy" (and "word_start", "space"), and the floats "uniform" (and "space_uniform").
    """
    import numpy as np

    w = np.asarray(weights, dtype=np.float64)
    T = w.shape[-1]
    if w.ndim < 4 or w.shape[-2] != T:
        raise ValueError(f"head_stats: expected weights (..., n_layer, n_head, T, T), got shape {w.shape}")
    if T <= FIRST_QUERY:
        raise ValueError(f"head_stats: needs at least {FIRST_QUERY + 1} tokens (statistics use query positions "
                         f"i >= {FIRST_QUERY}), got T={T}; use a longer prompt")
    lead = w.shape[:-4]
    w = w.reshape(-1, *w.shape[-4:])  # (N, L, H, T, T): every leading axis folded into one
    i = np.arange(FIRST_QUERY, T)
    rows = w[..., i, :]  # (N, L, H, T', T): the queries the statistics use
    plogp = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1.0)), 0.0)  # 0 log 0 = 0
    entropy = -plogp.sum(-1) / np.log(i + 1)  # (N, L, H, T'): normalized by the window's uniform entropy
    out = {
        "prev": w[..., i, i - 1].mean(axis=(0, -1)),
        "first": w[..., i, 0].mean(axis=(0, -1)),
        "current": w[..., i, i].mean(axis=(0, -1)),
        "local": (w[..., i, i] + w[..., i, i - 1] + w[..., i, i - 2]).mean(axis=(0, -1)),
        "entropy": entropy.mean(axis=(0, -1)),
        "uniform": float((1.0 / (i + 1)).mean()),
    }
    if marks is not None:
        marks = np.asarray(marks, dtype=bool)
        if marks.shape != (*lead, T):
            raise ValueError(f"head_stats: marks must have shape {(*lead, T)} (the weights' leading dims and T), "
                             f"got {marks.shape}")
        marks = marks.reshape(-1, T)  # (N, T)
        latest = np.maximum.accumulate(np.where(marks, np.arange(T), -1), axis=-1)[:, i]  # (N, T'): s(i) or -1
        at = np.take_along_axis(rows, np.maximum(latest, 0)[:, None, None, :, None], axis=-1)[..., 0]  # (N,L,H,T')
        out["word_start"] = np.where(latest[:, None, None, :] >= 0, at, 0.0).mean(axis=(0, -1))
        out["space"] = (rows * marks[:, None, None, None, :]).sum(-1).mean(axis=(0, -1))
        out["space_uniform"] = float((np.cumsum(marks, axis=-1)[:, i] / (i + 1)).mean())
    return out


def classify_heads(stats: dict) -> list[list[str]]:
    """One label from LABELS per head, ``[layer][head]``, by the rules of the module docstring."""
    rules = [("previous", "prev", MASS_THRESHOLD), ("first", "first", MASS_THRESHOLD),
             ("current", "current", MASS_THRESHOLD), ("word-start", "word_start", MASS_THRESHOLD),
             ("diffuse", "entropy", DIFFUSE_ENTROPY), ("local", "local", MASS_THRESHOLD)]
    n_layer, n_head = stats["prev"].shape
    return [[next((label for label, key, limit in rules if key in stats and stats[key][layer, h] >= limit), "other")
             for h in range(n_head)] for layer in range(n_layer)]


def stats_table(stats: dict, labels: list[list[str]]) -> str:
    """The statistics as a fixed-width text table, one line per head."""
    keys = [k for k in ("prev", "first", "current", "local", "word_start", "space", "entropy") if k in stats]
    uniform = f"prev = first = current = {stats['uniform']:.3f}, entropy = 1" + (
        f", space = {stats['space_uniform']:.3f}" if "space" in stats else "")
    lines = [f"{'layer':>5} {'head':>4} " + " ".join(f"{k:>10}" for k in keys) + "  label",
             f"(uniform attention: {uniform})"]
    for layer, row in enumerate(labels):
        for h, label in enumerate(row):
            lines.append(f"{layer:>5} {h:>4} " + " ".join(f"{stats[k][layer, h]:10.3f}" for k in keys) + f"  {label}")
    return "\n".join(lines)


def whitespace_marks(tokenizer, ids):
    """bool array of ids' shape: True where the token's text starts with whitespace (' x', '\\n', ' ')."""
    import numpy as np

    ids = np.asarray(ids)
    starts = {int(t): tokenizer.decode([int(t)])[:1].isspace() for t in np.unique(ids)}
    return np.vectorize(starts.__getitem__, otypes=[bool])(ids) if ids.size else np.zeros(ids.shape, bool)


def token_labels(tokenizer, ids) -> list[str]:
    """One printable label per token: its text, with space as '␣', newline as '\\n', tab as '\\t'."""
    out = []
    for t in ids:
        text = tokenizer.decode([int(t)])
        out.append(text.replace(" ", "␣").replace("\n", "\\n").replace("\t", "\\t") or "∅")
    return out


def plot_attention_grid(weights, tokens: list[str], path=None, title: str | None = None, labels=None,
                        titles=None):
    """A layers × heads grid of heatmaps of weights (n_layer, n_head, T, T); query tokens label the rows
    (left column), key tokens the columns (bottom row). Each panel is titled "L{l} H{h}" (+ ": label" from
    ``labels[l][h]``), or by ``titles[row][col]`` when given (e.g. a selection of heads stacked as one row).
    Saves to `path` when given; returns the Figure."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: no global backend switched, no figure left open

    w = np.asarray(weights)
    if w.ndim != 4 or w.shape[-1] != w.shape[-2] or len(tokens) != w.shape[-1]:
        raise ValueError(f"plot_attention_grid: expected weights (n_layer, n_head, T, T) and T token labels, "
                         f"got shape {w.shape} and {len(tokens)} labels")
    L, H, T, _ = w.shape
    cell = max(2.0, min(4.5, 0.09 * T + 0.8))
    fig = Figure(figsize=(cell * H + 0.6, cell * L + 0.6), layout="constrained")
    axes = fig.subplots(L, H, squeeze=False)
    font = max(3.0, min(8.0, 0.8 * cell * 72 / T))  # about one row of the heatmap high
    for layer in range(L):
        for h in range(H):
            ax = axes[layer, h]
            ax.imshow(w[layer, h], cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
            head = f"L{layer} H{h}" + (f": {labels[layer][h]}" if labels is not None else "")
            head = titles[layer][h] if titles is not None else head
            ax.set_title(head, fontsize=8)
            ax.set_xticks(range(T))
            ax.set_yticks(range(T))
            ax.set_xticklabels(tokens if layer == L - 1 else [], fontsize=font, rotation=90)
            ax.set_yticklabels(tokens if h == 0 else [], fontsize=font)
            ax.tick_params(length=0, pad=1)
    fig.supxlabel("key (the token attended to)", fontsize=9)
    fig.supylabel("query (the token attending)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig


# ---------------------------------------------------------------------------- `tinyllm attention`


def add_subcommand(sub) -> None:
    """Register ``tinyllm attention --ckpt DIR --prompt TEXT [--out FILE]``."""
    p = sub.add_parser("attention", help="draw every head's attention weights for a prompt (layers × heads grid)",
                       description="Run a prompt through a trained model and draw each head's attention weights "
                                   "as a heatmap (rows: layers, columns: heads), with per-head statistics.")
    p.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (from tinyllm train) or a saved model")
    p.add_argument("--trust-pattern", action="store_true",
                   help="run the tokenizer's split regex even if tinyllm does not know it (only for files you trust)")
    p.add_argument("--prompt", required=True, help="the text to run through the model (at least 3 tokens)")
    p.add_argument("--out", default="attention.png", metavar="FILE", help="the PNG to write (default attention.png)")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"tinyllm attention: {' '.join(str(msg).split())}", file=sys.stderr)  # one line
    return 2


def run(args) -> int:
    from pathlib import Path

    ckpt = Path(args.ckpt)
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        return _fail(f"--out must be a .png file, got {str(out)!r}")

    import numpy as np

    from tinyllm.data import encode_text
    from tinyllm.train import load_run

    try:
        model, tok = load_run(ckpt, trust_pattern=getattr(args, "trust_pattern", False))
    except (OSError, ValueError) as e:
        return _fail(str(e))
    except KeyError as e:  # a config or tokenizer file missing a field
        return _fail(f"cannot load {ckpt}: field {e} is missing from one of its files")
    try:
        ids = encode_text(tok, args.prompt)
    except (KeyError, ValueError) as e:
        return _fail(f"cannot encode the prompt: {e}")
    T = model.config.context_length
    if len(ids) <= FIRST_QUERY:
        return _fail(f"the prompt is {len(ids)} token(s); give at least {FIRST_QUERY + 1}")
    if len(ids) > T:
        print(f"tinyllm attention: the prompt is {len(ids)} tokens; the model sees at most {T}: "
              f"drawing the last {T}", file=sys.stderr)
        ids = ids[-T:]
    ids = np.asarray(ids, dtype=np.int64)
    w = attention_weights(model, ids)  # (L, H, T, T)
    stats = head_stats(w, whitespace_marks(tok, ids))
    labels = classify_heads(stats)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        plot_attention_grid(w, token_labels(tok, ids), out, labels=labels,
                            title=f"attention weights of {ckpt.name or ckpt} ({len(ids)} tokens)")
    except OSError as e:  # a folder that is a file, no permission, a full disk
        return _fail(f"cannot write {out}: {e}")
    print(stats_table(stats, labels))
    print(f"wrote {out}")
    return 0

"""Lab 3: attention, from one dot product to multi-head, and what a trained model's heads do.

1. One query, step by step: the scores q·k_j, the scaling by 1/√d, the softmax,
   the weighted sum of the values, every number printed and drawn, and checked
   against tinyllm's fused F.scaled_dot_product_attention.
2. Multi-head attention is the same computation batched over heads: an explicit
   Python loop over heads (NumPy, one head at a time, grouped-query too) against
   tinyllm's CausalSelfAttention, which does all heads in one reshape and one call.
3. A model trained on tinyshakespeare (shakespeare-char-cpu; shared by the labs):
   the layers × heads grid of attention heatmaps for a prompt, and per-head
   statistics over validation windows (attention to the previous token, the first
   token, the token itself, the last three tokens, the start of the current word;
   entropy), each head labelled by the thresholds of tinyllm.viz.attention_maps;
   the same statistics for the untrained model (its initial weights) as a baseline.

    python examples/03_attention.py              # docs/figures/03-*.png and docs/figures/03_attention.json
    python examples/03_attention.py --quick      # a tiny model, a few steps, for CI (out/labs/03_attention-quick)
    python examples/03_attention.py --ckpt DIR   # analyse a run of `tinyllm train` instead
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import functional as F  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import TokenDataset, load_text, load_tokenizer  # noqa: E402
from tinyllm.nn import GPT, GPTConfig  # noqa: E402
from tinyllm.nn.attention import CausalSelfAttention  # noqa: E402
from tinyllm.train import preset, read_metrics, train_or_load  # noqa: E402
from tinyllm.viz import attention_maps as am  # noqa: E402

PROMPT = "ROMEO:\nWhat light through yonder window breaks?"
PRESET = "shakespeare-char-cpu"
QUICK = dict(max_iters=60, n_layer=2, d_model=64, eval_iters=2)  # --quick: a tiny model, a few steps


def host(t) -> np.ndarray:
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


# ---------------------------------------------------------------------------- part 1: one query


def one_query(log=print) -> dict:
    """Attention of the last of five tokens over all five, one step at a time (d = 4), on readable numbers."""
    rng = np.random.default_rng(3)
    words = ["the", "cat", "sat", "on", "it"]
    d = 4
    K = rng.normal(size=(5, d)).round(1)  # one key per token
    V = rng.normal(size=(5, d)).round(1)  # one value per token
    q = (K[1] + 0.5 * rng.normal(size=d)).round(1)  # the query of "it": built to match the key of "cat" best
    scores = K @ q                        # (5, d) @ (d,) -> (5,): q·k_j
    scaled = scores / math.sqrt(d)
    e = np.exp(scaled - scaled.max())     # subtle: minus the max first; the same softmax, no overflow
    weights = e / e.sum()
    out = weights @ V                     # (5,) @ (5, d) -> (d,): Σ_j w_j v_j
    fused = host(F.scaled_dot_product_attention(tinyllm.tensor(q[None]), tinyllm.tensor(K), tinyllm.tensor(V)))[0]
    diff = float(np.abs(fused - out).max())
    log(f"query q (token 'it') = {q}")
    log(f"  {'key':<4} {'k_j':<26} {'q·k_j':>7} {'/√d':>7} {'softmax':>8}   v_j")
    for j, w in enumerate(words):
        log(f"  {w:<4} {str(K[j]):<26} {scores[j]:7.3f} {scaled[j]:7.3f} {weights[j]:8.4f}   {V[j]}")
    log(f"  output Σ_j w_j v_j = {out.round(4)}   (weights sum to {weights.sum():.6f})")
    log(f"  max |step by step - F.scaled_dot_product_attention| = {diff:.2e}")
    return dict(words=words, q=q.tolist(), K=K.tolist(), V=V.tolist(), scores=scores.tolist(),
                scaled=scaled.tolist(), weights=weights.tolist(), out=out.tolist(), max_diff_fused=diff)


def plot_one_query(r: dict, path: Path) -> None:
    words, V, w, out = r["words"], np.array(r["V"]), np.array(r["weights"]), np.array(r["out"])
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.3]))
    x = np.arange(len(words))
    for ax, key, title in ((axes[0], "scores", "1. scores q·k_j"), (axes[1], "scaled", "2. scaled: q·k_j / √d")):
        vals = np.array(r[key])
        ax.bar(x, vals, color=["tab:red" if v < 0 else "tab:blue" for v in vals])
        for xi, v in zip(x, vals):
            ax.text(xi, v, f"{v:.2f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.margins(y=0.12)
        ax.set_xticks(x, words)
        ax.set_title(title, fontsize=10)
    axes[1].set_ylim(axes[0].get_ylim())  # same axis: the scaling shrinks the gaps
    axes[2].bar(x, w, color="tab:green")
    for xi, v in zip(x, w):
        axes[2].text(xi, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    axes[2].set_xticks(x, words)
    axes[2].set_ylim(0, 1)
    axes[2].set_title("3. softmax: weights sum to 1", fontsize=10)
    rows = np.vstack([V * w[:, None], out[None]])  # each value scaled by its weight, then their sum
    lim = np.abs(rows).max()
    axes[3].imshow(rows, cmap="RdBu_r", vmin=-lim, vmax=lim)
    for (i, j), v in np.ndenumerate(rows):
        axes[3].text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                     color="w" if abs(v) > 0.6 * lim else "k")
    axes[3].set_yticks(range(len(words) + 1), [f"{a:.3f}·v({s})" for a, s in zip(w, words)] + ["output = Σ"])
    axes[3].axhline(len(words) - 0.5, color="k", lw=1.5)
    axes[3].set_xticks(range(V.shape[1]))
    axes[3].set_xlabel("dimension of the value vectors")
    axes[3].set_title("4. weighted sum of the values", fontsize=10)
    fig.suptitle("one query ('it') attending over five keys, d = 4", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- part 2: heads


def one_head(q, k, v) -> np.ndarray:
    """Causal attention of one head in NumPy: q, k, v (T, hs) -> (T, hs)."""
    T, hs = q.shape
    S = q @ k.T / math.sqrt(hs)                       # (T, hs) @ (hs, T) -> (T, T)
    S = np.where(np.tril(np.ones((T, T), bool)), S, -np.inf)  # query i sees keys j <= i
    P = np.exp(S - S.max(-1, keepdims=True))
    P /= P.sum(-1, keepdims=True)
    return P @ v                                      # (T, T) @ (T, hs) -> (T, hs)


def heads_loop(attn: CausalSelfAttention, x: np.ndarray) -> np.ndarray:
    """CausalSelfAttention's output for x (B, T, C), one batch row and one head at a time (NumPy)."""
    nh, nkv, hs = attn.n_head, attn.n_kv_head, attn.head_dim
    B, T, C = x.shape
    W, Wp = host(attn.c_attn.weight), host(attn.c_proj.weight)  # (C + 2·nkv·hs, C), (C, C)
    b = host(attn.c_attn.bias) if attn.c_attn.bias is not None else 0.0
    bp = host(attn.c_proj.bias) if attn.c_proj.bias is not None else 0.0
    qkv = x @ W.T + b                                 # (B, T, C + 2·nkv·hs): [q heads | k heads | v heads]
    heads = np.zeros((B, T, C), dtype=x.dtype)
    for row in range(B):
        for h in range(nh):
            g = h // (nh // nkv)                      # the key/value head this query head reads
            q = qkv[row, :, h * hs:(h + 1) * hs]
            k = qkv[row, :, C + g * hs:C + (g + 1) * hs]
            v = qkv[row, :, C + (nkv + g) * hs:C + (nkv + g + 1) * hs]
            heads[row, :, h * hs:(h + 1) * hs] = one_head(q, k, v)  # heads side by side
    return heads @ Wp.T + bp


def multi_head(log=print) -> dict:
    """max |loop over heads - CausalSelfAttention| for multi-head and grouped-query layouts."""
    out = {}
    for nh, nkv in ((4, 4), (4, 2), (4, 1)):
        tinyllm.manual_seed(0)
        cfg = GPTConfig(vocab_size=1, context_length=8, n_layer=1, n_head=nh, n_kv_head=nkv, d_model=16)
        attn = CausalSelfAttention(cfg)
        x = np.random.default_rng(0).normal(size=(2, 8, 16)).astype(np.float32)
        with tinyllm.no_grad():
            batched = host(attn(tinyllm.tensor(x)))
        diff = float(np.abs(heads_loop(attn, x) - batched).max())
        name = {nh: "multi-head", 1: "multi-query"}.get(nkv, "grouped-query")
        log(f"  n_head={nh} n_kv_head={nkv} ({name}): max |loop over heads - CausalSelfAttention| = {diff:.2e}")
        out[f"{nh}/{nkv}"] = diff
    return out


# ---------------------------------------------------------------------------- part 3: a trained model


def get_model(ckpt: Path | None, quick: bool, run_dir: Path):
    """(model, tokenizer, info): a run folder given by --ckpt, else the labs' shared shakespeare model
    (trained on first use), or with --quick a tiny one trained into run_dir."""
    if ckpt is not None:
        if not (ckpt / "config.json").exists():
            raise SystemExit(f"--ckpt {ckpt}: no model there (config.json missing); train one with "
                             f"`tinyllm train --preset {PRESET} --out {ckpt}`")
        evals = [r for r in read_metrics(ckpt / "metrics.jsonl") if "val_loss" in r] \
            if (ckpt / "metrics.jsonl").exists() else []
        val = evals[-1]["val_loss"] if evals else None
        return GPT.from_pretrained(ckpt), load_tokenizer(ckpt), dict(source=str(ckpt), val_loss=val)
    out_dir = run_dir if quick else Path("out/labs/shakespeare-char")
    r = train_or_load(*preset(PRESET, out_dir=str(out_dir), sample_tokens=0, **(QUICK if quick else {})),
                      progress=False, log=print)
    return r.model, r.tokenizer, dict(source=str(out_dir), val_loss=r.val_loss,
                                      preset=PRESET + (f" with {QUICK}" if quick else ""))


def val_windows(tok, T: int, n: int, seed: int = 0) -> np.ndarray:
    """n random windows of T tokens (int64 (n, T)) from tinyshakespeare's validation split (its last 10%)."""
    val = np.asarray(TokenDataset.from_text(load_text("tinyshakespeare"), tok, 0.1).val)
    starts = np.random.default_rng(seed).integers(0, len(val) - T, size=n)
    return np.stack([val[s:s + T] for s in starts]).astype(np.int64)


def rounded(stats: dict) -> dict:
    return {k: (np.round(v, 4).tolist() if isinstance(v, np.ndarray) else round(v, 4)) for k, v in stats.items()}


def key_profile(weights, windows, tok, top: int = 3) -> list[list[list]]:
    """[layer][head] -> the `top` key tokens that get the most attention beyond what a uniform head gives them:
    [token, share of the head's attention mass on that token, share under uniform attention], ranked by the
    difference of the two shares, over query positions i >= 2 of every window."""
    w = np.asarray(weights, dtype=np.float64)  # (N, L, H, T, T)
    N, L, H, T, _ = w.shape
    i = np.arange(am.FIRST_QUERY, T)
    mass_per_key = w[..., i, :].sum(-2)  # (N, L, H, T): attention each key position receives
    uniform_per_key = np.tril(np.ones((T, T)))[i].__truediv__((i + 1)[:, None]).sum(0)  # (T,)
    V = tok.vocab_size
    out = []
    for layer in range(L):
        row = []
        for h in range(H):
            got = np.bincount(windows.ravel(), weights=mass_per_key[:, layer, h].ravel(), minlength=V)
            base = np.bincount(windows.ravel(), weights=np.broadcast_to(uniform_per_key, windows.shape).ravel(),
                               minlength=V)
            got, base = got / got.sum(), base / base.sum()
            best = np.argsort(-(got - base), kind="stable")[:top]
            row.append([[am.token_labels(tok, [t])[0], round(float(got[t]), 3), round(float(base[t]), 3)]
                        for t in best])
        out.append(row)
    return out


def plot_stats(stats: dict, labels, path: Path, title: str) -> None:
    keys = ["prev", "first", "current", "local", "word_start", "space", "entropy"]
    L, H = stats["prev"].shape
    fig, axes = plt.subplots(1, len(keys), figsize=(2.3 * len(keys), 0.55 * L + 1.6))
    for ax, key in zip(axes, keys):
        ax.imshow(stats[key], cmap="Blues", vmin=0, vmax=1)
        for (layer, h), v in np.ndenumerate(stats[key]):
            ax.text(h, layer, f"{v:.2f}", ha="center", va="center", fontsize=8, color="k" if v < 0.6 else "w")
        ax.set_title(key, fontsize=10)
        ax.set_xticks(range(H), [f"H{h}" for h in range(H)], fontsize=8)
        ax.set_yticks(range(L), [f"L{layer}" for layer in range(L)], fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def trained_heads(model, tok, info: dict, out: Path, n_windows: int, log=print) -> dict:
    T = model.config.context_length
    ids = np.asarray(tok.encode(PROMPT), dtype=np.int64)[-T:]
    windows = val_windows(tok, T, n_windows)
    marks = am.whitespace_marks(tok, windows)
    weights = am.attention_weights(model, windows)  # (n_windows, L, H, T, T)
    stats = am.head_stats(weights, marks)
    labels = am.classify_heads(stats)
    profile = key_profile(weights, windows, tok)
    del weights
    tinyllm.manual_seed(0)
    untrained = GPT(model.config).to(model.device)  # the same architecture at GPT-2's initialization
    stats0 = am.head_stats(am.attention_weights(untrained, windows), marks)
    log(f"per-head statistics over {n_windows} validation windows of {T} characters (query positions >= 2):")
    log(am.stats_table(stats, labels))
    log("the key tokens each head attends to most, relative to a uniform head (share of its attention / "
        "share under uniform attention):")
    for layer, row in enumerate(profile):
        for h, best in enumerate(row):
            log(f"  L{layer} H{h} ({labels[layer][h]}): " + ", ".join(f"'{t}' {g:.2f}/{b:.2f}" for t, g, b in best))
    log(f"untrained (initial weights): entropy {stats0['entropy'].min():.3f}..{stats0['entropy'].max():.3f}, "
        f"prev {stats0['prev'].min():.3f}..{stats0['prev'].max():.3f}")

    w = am.attention_weights(model, ids)  # (L, H, T, T)
    tokens = am.token_labels(tok, ids)
    am.plot_attention_grid(w, tokens, out / "03-heads.png", labels=labels,
                           title=f"attention weights for {PROMPT!r}: rows layers, columns heads "
                                 f"(labels from {n_windows} validation windows)")
    plot_stats(stats, labels, out / "03-head-stats.png",
               f"per-head statistics, mean over {n_windows} validation windows "
               f"(uniform attention: prev = first = current = {stats['uniform']:.3f}, space = "
               f"{stats['space_uniform']:.3f}, entropy = 1)")
    # the clearest head of each label, bigger
    picks = []
    for label in am.LABELS:
        score = {"previous": "prev", "first": "first", "current": "current", "word-start": "word_start",
                 "local": "local", "diffuse": "entropy"}.get(label)
        cands = [(stats[score][layer, h] if score else -stats["entropy"][layer, h], layer, h)
                 for layer, row in enumerate(labels) for h, lab in enumerate(row) if lab == label]
        if cands:
            _, layer, h = max(cands)
            picks.append((layer, h, label))
    am.plot_attention_grid(w[[p[0] for p in picks], [p[1] for p in picks]][None], tokens,
                           out / "03-head-examples.png", titles=[[f"L{a} H{b}: {c}" for a, b, c in picks]],
                           title="the clearest head of each kind, for the prompt")
    counts = {label: sum(row.count(label) for row in labels) for label in am.LABELS}
    log("heads per label: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return dict(model=info, config=model.config.to_dict(), prompt=PROMPT, n_windows=n_windows, window=T,
                thresholds=dict(mass=am.MASS_THRESHOLD, diffuse_entropy=am.DIFFUSE_ENTROPY,
                                first_query=am.FIRST_QUERY),
                stats=rounded(stats), labels=labels, counts=counts, key_profile=profile, untrained=rounded(stats0),
                prompt_stats=rounded(am.head_stats(w, am.whitespace_marks(tok, ids))),
                examples=[dict(layer=a, head=b, label=c) for a, b, c in picks])


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model trained for a few steps (CI)")
    p.add_argument("--ckpt", type=Path, default=None, help="a run folder of `tinyllm train` to analyse")
    p.add_argument("--out", type=Path, default=None, help="folder for the figures and the JSON (default docs/figures; "
                   "--quick: out/labs/03_attention-quick, so a quick run never replaces the committed figures)")
    p.add_argument("--run-dir", type=Path, default=Path("out/labs/03-attention-quick"),
                   help="where --quick trains its tiny model")
    args = p.parse_args(argv)
    args.out = args.out or Path("out/labs/03_attention-quick" if args.quick else "docs/figures")
    runtime.keep_host_memory()  # a process-wide malloc setting: reuse freed memory between training steps
    args.out.mkdir(parents=True, exist_ok=True)

    print("== 1. one query, step by step")
    single = one_query()
    plot_one_query(single, args.out / "03-single-query.png")
    print("== 2. multi-head attention = the same computation batched over heads")
    heads = multi_head()
    print("== 3. the heads of a model trained on tinyshakespeare")
    model, tok, info = get_model(args.ckpt, args.quick, args.run_dir)
    val = "?" if info["val_loss"] is None else f"{info['val_loss']:.4f}"
    print(f"model: {info['source']} (val loss {val})")
    trained = trained_heads(model, tok, info, args.out, n_windows=8 if args.quick else 64)
    report = dict(command="python examples/03_attention.py" + (" --quick" if args.quick else ""),
                  single_query=single, multi_head=heads, trained=trained)
    (args.out / "03_attention.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}/03-single-query.png, 03-heads.png, 03-head-stats.png, 03-head-examples.png, "
          f"03_attention.json")
    return report


if __name__ == "__main__":
    main()

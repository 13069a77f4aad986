"""Lab 3: attention, from one dot product to multi-head, and what a trained model's heads do.

1. One query, step by step: the scores q·k_j, the scaling by 1/√d, the softmax,
   the weighted sum of the values, every number printed and drawn, and checked
   against tinyllm's fused F.scaled_dot_product_attention.
2. Multi-head attention is the same computation batched over heads: an explicit
   Python loop over heads (NumPy, one head at a time, grouped-query too) against
   tinyllm's CausalSelfAttention, which does all heads in one reshape and one call.
3. The causal mask, shown: change every token after position t of a validation window and
   the trained model's logits at positions <= t stay identical, bit for bit; with an
   off-by-one mask (query i also sees key i + 1) they move, one position per layer. Two
   small models trained with each mask show what training does with such a leak: it reads
   the next token and its loss falls, except at the last position, where generation predicts.
4. A model trained on tinyshakespeare (shakespeare-char-cpu; shared by the labs):
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
from tinyllm.optim import AdamW  # noqa: E402
from tinyllm.train import preset, read_metrics, train_or_load  # noqa: E402
from tinyllm.viz import attention_maps as am  # noqa: E402

PROMPT = "ROMEO:\nWhat light through yonder window breaks?"
PRESET = "shakespeare-char-cpu"
QUICK = dict(max_iters=60, n_layer=2, d_model=64, eval_iters=2)  # --quick: a tiny model, a few steps
LEAK_STEPS = 400  # part 3: steps for each of the two small models (--quick: 40)


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


# ---------------------------------------------------------------------------- part 3: the causal mask, shown


class PeekAttention(CausalSelfAttention):
    """CausalSelfAttention with an off-by-one causal mask: query i also sees key i + 1 (a bug, on purpose)."""

    def forward(self, x, cache=None, layer: int = 0):
        if cache is not None or self.pos_encoding == "alibi":
            raise ValueError("PeekAttention is a lab-3 demonstration: no KV cache, and no ALiBi bias")
        B, T, C = x.shape
        q, k, v = self.qkv(x)                                                      # (B, nh, T, hs) each
        peek = tinyllm.tensor(np.tril(np.ones((T, T), dtype=bool), k=1), device=x.device)  # the bug: j <= i + 1
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=peek, enable_gqa=self.n_kv_head != self.n_head)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))                     # (B,nh,T,hs) -> (B,T,C)


def with_peek(model) -> GPT:
    """A copy of the GPT, same weights, whose every block attends through PeekAttention."""
    broken = GPT(model.config).to(model.device)
    broken.load_state_dict(model.state_dict())
    for block in broken.transformer.h:
        peek = PeekAttention(model.config).to(model.device)
        peek.load_state_dict(block.attn.state_dict())
        block.attn = peek
    return broken.eval()


def change_the_future(model, ids: np.ndarray, t: int, seed: int = 0) -> np.ndarray:
    """max over the vocabulary of |logits(changed) - logits(ids)| at each position (T,), where `changed` is
    ids with every token after position t replaced by another one."""
    V = model.config.vocab_size
    changed = ids.copy()
    changed[t + 1:] = (ids[t + 1:] + np.random.default_rng(seed).integers(1, V, size=len(ids) - t - 1)) % V
    with tinyllm.no_grad():
        a, _ = model(tinyllm.tensor(ids[None]))
        b, _ = model(tinyllm.tensor(changed[None]))
    return np.abs(host(a)[0].astype(np.float64) - host(b)[0]).max(-1)


def train_small(tok, leak: bool, steps: int, seed: int = 0):
    """A 2-layer model of tinyshakespeare trained `steps` AdamW steps, with the real mask or the off-by-one one."""
    tinyllm.manual_seed(seed)
    cfg = GPTConfig(vocab_size=tok.vocab_size, context_length=64, n_layer=2, n_head=4, d_model=64, bias=False)
    model = GPT(cfg)
    if leak:
        model = with_peek(model)
    model.train()
    data = TokenDataset.from_text(load_text("tinyshakespeare"), tok, 0.1)
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x, y = data.get_batch("train", 16, cfg.context_length, rng)
        _, loss = model(tinyllm.tensor(x), targets=tinyllm.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def loss_per_position(model, tok, n: int = 256) -> np.ndarray:
    """Mean cross-entropy (nats) at each position (T,) over n validation windows, every target seen in one forward."""
    T = model.config.context_length
    w = val_windows(tok, T + 1, n, seed=1)
    with tinyllm.no_grad():
        logits, _ = model(tinyllm.tensor(w[:, :-1]))
    z = host(logits).astype(np.float64)                                          # (n, T, V)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, w[:, 1:, None], axis=-1)[..., 0].mean(0)  # (T,)


def causal_mask_shown(model, tok, steps: int, log=print) -> dict:
    """The future does not change the past (and an off-by-one mask does); what training does with a leak."""
    T, L = model.config.context_length, model.config.n_layer
    ids = val_windows(tok, T, 1, seed=2)[0]
    t = T // 2 - 1
    real = change_the_future(model, ids, t)
    peek = change_the_future(with_peek(model), ids, t)
    moved = [int(i) for i in np.flatnonzero(peek[:t + 1])]
    log(f"  the trained model, one validation window of {T}; every token after position {t} replaced:")
    log(f"    causal mask:    max |change| at positions 0..{t} = {real[:t + 1].max():.1e} (bit for bit "
        f"{'identical' if real[:t + 1].max() == 0 else 'DIFFERENT'}), at {t + 1}..{T - 1} = {real[t + 1:].min():.2f} "
        f"to {real[t + 1:].max():.2f}")
    log(f"    off-by-one mask (query i also sees key i+1), the same weights: positions "
        f"{moved[0] if moved else '-'}..{moved[-1] if moved else '-'} of 0..{t} change, by up to "
        f"{peek[:t + 1].max():.2f}: one position per layer, {L} layers")
    log(f"  two small models (2 layers, d_model 64) trained {steps} steps from the same seed, one with each mask:")
    honest = loss_per_position(train_small(tok, leak=False, steps=steps), tok)
    leaky_model = train_small(tok, leak=True, steps=steps)
    leaky = loss_per_position(leaky_model, tok)
    for name, c in (("causal mask", honest), ("off-by-one mask", leaky)):
        log(f"    {name:<16} val loss over positions 0..{T - 2} {c[:-1].mean():.3f}, at the last position {T - 1} "
            f"(no later token to read, as in generation) {c[-1]:.3f}")
    prompt = np.asarray(tok.encode("ROMEO:\n"), dtype=np.int64)[None]
    text = tok.decode(leaky_model.generate(prompt, 40, temperature=0, use_cache=False)[0].tolist())
    log(f"    the off-by-one model, greedy: {text!r}")
    return dict(window=T, t=t, n_layer=L, real=real.tolist(), peek=peek.tolist(), peek_changed=moved,
                steps=steps, loss_honest=honest.tolist(), loss_leaky=leaky.tolist(), leaky_sample=text)


def plot_causality(r: dict, path: Path) -> None:
    T, t = r["window"], r["t"]
    pos = np.arange(T)
    floor = 1e-9  # exact zeros drawn here, on a log axis
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    ax = axes[0]
    for key, color, label, z in (("peek", "tab:red", "off-by-one mask (query i sees key i+1)", 2),
                                 ("real", "tab:blue", "causal mask", 3)):
        ax.plot(pos, np.maximum(r[key], floor), "o-", ms=3, color=color, label=label, zorder=z)
    ax.axvline(t + 0.5, color="k", lw=1, ls="--")
    ax.text(t + 2, 1e-7, "tokens changed  →", fontsize=10)
    ax.text(t - 1, 1e-7, "←  tokens kept", fontsize=10, ha="right")
    ax.set_yscale("log")
    ax.set_ylim(floor / 3, None)
    ax.set_yticks([floor, 1e-6, 1e-3, 1], ["0 (exact)", "1e-6", "1e-3", "1"])
    ax.set_xlabel("position")
    ax.set_ylabel("max |change in the logits|")
    ax.set_title(f"change the tokens after position {t}: what moves (trained model)", fontsize=11)
    ax.legend(fontsize=9, loc="center left")
    ax = axes[1]
    ax.plot(pos, r["loss_honest"], color="tab:blue", label="trained with the causal mask")
    ax.plot(pos, r["loss_leaky"], color="tab:red", label="trained with the off-by-one mask")
    ax.set_xlabel("position in the window")
    ax.set_ylabel("val loss (nats)")
    ax.set_title(f"what training does with a leak ({r['steps']} steps, 2 layers)", fontsize=11)
    ax.legend(fontsize=9)
    ax.set_ylim(0, 1.15 * max(max(r["loss_leaky"]), max(r["loss_honest"])))
    ax.annotate("last position: no next token\nto read (as in generation)", xy=(T - 1, r["loss_leaky"][-1]),
                xytext=(T * 0.3, 0.45 * ax.get_ylim()[1]), fontsize=10, arrowprops=dict(arrowstyle="->"))
    for a in axes:
        a.tick_params(labelsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- part 4: a trained model


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


def word_ticks(fig, tokens: list[str], path: Path, size: float = 13.0) -> None:
    """Relabel a layers x heads grid (plot_attention_grid's Figure) with the prompt's words, one tick at the
    token each word starts on, and save it `size` inches wide: one tick per character is too small to read
    at the size a 16-panel figure is shown."""
    starts = [i for i, t in enumerate(tokens)
              if i == 0 or tokens[i - 1] in ("␣", "\\n") or (t.startswith("␣") and len(t) > 1)]
    words = ["".join(tokens[a:b]).replace("␣", " ").replace("\\n", " ").strip()
             for a, b in zip(starts, starts[1:] + [len(tokens)])]
    axes = [ax for ax in fig.axes if ax.get_images()]
    H = sum(1 for ax in axes if ax.get_subplotspec().rowspan.start == 0)
    L = len(axes) // H
    for k, ax in enumerate(axes):
        layer, h = divmod(k, H)
        ax.set_xticks(starts, words if layer == L - 1 else [], fontsize=10, rotation=90)
        ax.set_yticks(starts, words if h == 0 else [], fontsize=10)
        ax.tick_params(length=3, pad=2)
        ax.title.set_fontsize(11)
    fig.supxlabel("key (the token attended to; a tick where each word starts)", fontsize=11)
    fig.supylabel("query (the token attending)", fontsize=11)
    fig.suptitle(fig.get_suptitle(), fontsize=11)
    fig.set_size_inches(size, size * L / H + 0.4)
    fig.savefig(path, dpi=130)


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
    grid = am.plot_attention_grid(w, tokens, labels=labels,
                                  title=f"attention weights for {PROMPT!r}: rows layers, columns heads "
                                        f"(labels from {n_windows} validation windows)")
    word_ticks(grid, tokens, out / "03-heads.png")
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
    model, tok, info = get_model(args.ckpt, args.quick, args.run_dir)
    val = "?" if info["val_loss"] is None else f"{info['val_loss']:.4f}"
    print(f"model: {info['source']} (val loss {val})")
    print("== 3. the causal mask, shown")
    mask = causal_mask_shown(model, tok, steps=40 if args.quick else LEAK_STEPS)
    plot_causality(mask, args.out / "03-causality.png")
    print("== 4. the heads of a model trained on tinyshakespeare")
    trained = trained_heads(model, tok, info, args.out, n_windows=8 if args.quick else 64)
    report = dict(command="python examples/03_attention.py" + (" --quick" if args.quick else ""),
                  single_query=single, multi_head=heads, causal_mask=mask, trained=trained)
    (args.out / "03_attention.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}/03-single-query.png, 03-causality.png, 03-heads.png, 03-head-stats.png, "
          f"03-head-examples.png, 03_attention.json")
    return report


if __name__ == "__main__":
    main()

"""See the prefix cache work: for a sequence of requests, which positions were reused (hit) and which computed (miss).

    simulate(model, requests, block_size, max_bytes) -> ([RequestStats], PrefixCache)   one cache, in order
    hit_figure(stats, block_size=...)   -> matplotlib Figure   top: one row per request, a cell per position
                                                               (green = K/V copied, orange = computed);
                                                               bottom: each request's hit rate and the running total
    hit_html(stats, pieces=...)         -> str                 the same as a standalone HTML page, each position
                                                               shown as its text (a character, a token) and colored
    tinyllm kv-viz --ckpt DIR --prompts FILE [--out FILE] [--block-size N] [--max-bytes N]

The running hit rate after request r is (positions reused in requests 1..r) / (positions in requests 1..r).
Example, block_size=4: requests A (10 tokens), A again, B (10 other tokens) reuse 0, 8 (A's two full blocks)
and 0 positions -> running hit rate 0/10 = 0.0, 8/20 = 0.40, 8/30 = 0.27.

Only the standard library is imported at the top of this module (``tinyllm --help`` stays instant);
NumPy, matplotlib and the model load inside the functions.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

HIT, MISS = "#4caf50", "#ff9800"  # green: reused, orange: computed


def _hit_rows(stats) -> list:
    """Each request's hit mask as a 1-D bool array (row 0 of a batch)."""
    import numpy as np

    rows = []
    for s in stats:
        hit = getattr(s, "hit", s)
        hit = np.asarray(hit, dtype=bool)
        rows.append(hit[0] if hit.ndim == 2 else hit)
    return rows


def running_hit_rate(stats) -> list[float]:
    """The share of positions reused over requests 1..r, for every r:
    running_hit_rate([[0, 0], [1, 0]]) -> [0, 0.25]."""
    hits = total = 0
    out = []
    for row in _hit_rows(stats):
        hits += int(row.sum())
        total += len(row)
        out.append(hits / total if total else 0.0)
    return out


def simulate(model, requests, block_size: int = 16, max_bytes: int = 64 << 20):
    """Prefill every request (a 1-D id sequence) in order through one PrefixCache -> ([RequestStats], the cache)."""
    from tinyllm.inference.prefix_cache import PrefixCache

    pc = PrefixCache(model, block_size=block_size, max_bytes=max_bytes)
    return [pc.prefill(ids)[2] for ids in requests], pc


def hit_figure(stats, block_size: int | None = None, labels=None, title: str = "prefix cache: reused vs computed"):
    """A two-panel matplotlib Figure (see the module docstring); labels name the requests on the y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    rows = _hit_rows(stats)
    if not rows:
        raise ValueError("hit_figure: no requests to draw")
    R, T = len(rows), max(len(r) for r in rows)
    grid = np.zeros((R, T))  # 0: no token, 1: computed, 2: reused
    for i, row in enumerate(rows):
        grid[i, :len(row)] = np.where(row, 2, 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 3 + 0.22 * R), height_ratios=[max(R, 4), 4],
                                      constrained_layout=True)
    top.imshow(grid, aspect="auto", interpolation="nearest", cmap=ListedColormap(["white", MISS, HIT]),
               vmin=0, vmax=2, extent=(-0.5, T - 0.5, R - 0.5, -0.5))
    if block_size:
        for x in range(block_size, T, block_size):
            top.axvline(x - 0.5, color="black", lw=0.4, alpha=0.4)
    top.set_yticks(range(R))
    top.set_yticklabels(labels if labels is not None else [str(i + 1) for i in range(R)], fontsize=7)
    top.set_xlabel("position in the request" + (f" (lines: blocks of {block_size})" if block_size else ""))
    top.set_ylabel("request (in order)")
    top.set_title(title)
    top.legend(handles=[Patch(color=HIT, label="reused (hit)"), Patch(color=MISS, label="computed (miss)")],
               loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    x = np.arange(1, R + 1)
    bottom.bar(x, [r.mean() for r in rows], color=HIT, alpha=0.6, label="this request")
    bottom.plot(x, running_hit_rate(stats), "k.-", label="running total")
    bottom.set_xlim(0.5, R + 0.5)
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("request")
    bottom.set_ylabel("hit rate (positions)")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    return fig


def hit_html(stats, pieces=None, block_size: int | None = None, title: str = "prefix cache: reused vs computed") -> str:
    """A standalone HTML page: every request's positions colored hit/miss, and the running hit rate as an SVG line.

    ``pieces[r][t]``: the text shown for position t of request r (default: the position number).
    """
    rows = _hit_rows(stats)
    running = running_hit_rate(stats)
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
           "body{font-family:sans-serif;margin:1.5em} .req{font-family:monospace;white-space:pre-wrap;"
           "line-height:1.9;margin:0.2em 0 0.8em} .req span{padding:1px 0} .b{border-left:1px solid #555}"
           f".h{{background:{HIT}80}} .m{{background:{MISS}80}} td,th{{padding:2px 10px;text-align:right}}"
           "</style></head><body>", f"<h2>{html.escape(title)}</h2>",
           "<p><span class='h'>&nbsp;reused (hit)&nbsp;</span> <span class='m'>&nbsp;computed (miss)&nbsp;</span>"
           + (f" &mdash; a line marks each block of {block_size} positions" if block_size else "") + "</p>"]
    W, H = 600, 120  # the running hit rate, as an inline SVG polyline
    R = len(rows)
    pts = " ".join(f"{20 + (W - 40) * (i / max(R - 1, 1)):.1f},{H - 10 - (H - 20) * r:.1f}"
                   for i, r in enumerate(running))
    out.append(f"<svg width='{W}' height='{H}' style='border:1px solid #ccc'><text x='22' y='14' font-size='11'>"
               f"running hit rate (0 to 1) over {R} requests; final {running[-1] if running else 0:.2f}</text>"
               f"<polyline fill='none' stroke='black' stroke-width='1.5' points='{pts}'/></svg>")
    out.append("<table><tr><th>request</th><th>positions</th><th>reused</th><th>computed</th><th>hit rate</th>"
               "<th>running</th></tr>")
    for i, (row, run) in enumerate(zip(rows, running)):
        n = int(row.sum())
        out.append(f"<tr><td>{i + 1}</td><td>{len(row)}</td><td>{n}</td><td>{len(row) - n}</td>"
                   f"<td>{n / max(len(row), 1):.2f}</td><td>{run:.2f}</td></tr>")
    out.append("</table>")
    for i, row in enumerate(rows):
        texts = pieces[i] if pieces is not None else [f"{t} " for t in range(len(row))]
        spans = []
        for t, h in enumerate(row):
            cls = ("h" if h else "m") + (" b" if block_size and t and t % block_size == 0 else "")
            spans.append(f"<span class='{cls}' title='position {t}: {'reused' if h else 'computed'}'>"
                         f"{html.escape(texts[t])}</span>")
        out.append(f"<div>request {i + 1}: {int(row.sum())}/{len(row)} reused</div>"
                   f"<div class='req'>{''.join(spans)}</div>")
    out.append("</body></html>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- `tinyllm kv-viz`


def add_subcommand(sub) -> None:
    p = sub.add_parser("kv-viz", help="run prompts through a prefix cache and draw which positions were reused",
                       description="Prefill each prompt (one per line) in order through one block prefix cache; "
                                   "write an HTML page and a PNG of reused (hit) and computed (miss) positions.")
    p.add_argument("--ckpt", required=True, metavar="DIR", help="a run folder (from tinyllm train) or a saved model")
    p.add_argument("--trust-pattern", action="store_true",
                   help="run the tokenizer's split regex even if tinyllm does not know it (only for files you trust)")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help="a text file, one prompt per line (blank lines skipped)")
    p.add_argument("--out", default="kv_viz.html", metavar="FILE",
                   help="the HTML page (FILE.html) and the figure (FILE.png) are written side by side; FILE may end "
                        "in either (default kv_viz.html)")
    p.add_argument("--block-size", type=int, default=16, metavar="N", help="positions per cache block (default 16)")
    p.add_argument("--max-bytes", type=int, default=64 << 20, metavar="N",
                   help="the cache's byte budget, least recently used blocks evicted beyond it (default 64 MiB)")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"tinyllm kv-viz: {' '.join(str(message).split())}", file=sys.stderr)  # one line
    return 2


def run(args) -> int:
    ckpt, prompts_path, out = Path(args.ckpt), Path(args.prompts), Path(args.out)
    if not (ckpt / "config.json").is_file():  # checked first: before the prompts file
        return _fail(f"{ckpt} holds no model (config.json missing); train one with `tinyllm train --out {ckpt}`")
    if not prompts_path.is_file():
        return _fail(f"prompts file {prompts_path} not found; write one prompt per line")
    if args.block_size < 1 or args.max_bytes < 0:
        return _fail(f"--block-size must be >= 1 and --max-bytes >= 0, got {args.block_size} and {args.max_bytes}")
    try:
        text = prompts_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:  # a binary file, or another encoding
        data = prompts_path.read_bytes()
        line = data.count(b"\n", 0, e.start) + 1
        return _fail(f"{prompts_path} is not UTF-8 text: byte 0x{data[e.start]:02X} at offset {e.start} (line {line}, "
                     f"{e.reason}); write the prompts as UTF-8 text, one per line")
    except OSError as e:
        return _fail(f"cannot read prompts file {prompts_path}: {e}")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return _fail(f"{prompts_path} holds no prompt (every line is blank); write one prompt per line")

    from tinyllm.data import encode_text
    from tinyllm.train import load_run

    try:
        model, tok = load_run(ckpt, trust_pattern=getattr(args, "trust_pattern", False))
    except (OSError, ValueError) as e:
        return _fail(str(e))
    except KeyError as e:  # a config or tokenizer file missing a field
        return _fail(f"cannot load {ckpt}: field {e} is missing from one of its files")
    ctx = model.config.context_length
    requests = []
    for n, line in lines:
        try:
            ids = encode_text(tok, line)
        except (KeyError, ValueError) as e:
            return _fail(f"line {n} of {prompts_path}: {e}")
        if len(ids) > ctx:
            return _fail(f"line {n} of {prompts_path} is {len(ids)} tokens long but the model's context_length is "
                         f"{ctx}; shorten it")
        requests.append(ids)
    stats, pc = simulate(model, requests, args.block_size, args.max_bytes)
    pieces = [[tok.decode([t]) for t in ids] for ids in requests]
    # subtle: --out heads.png must not get the HTML written into it (and then overwritten by the figure)
    page, png = (out.with_suffix(".html"), out) if out.suffix.lower() == ".png" else (out, out.with_suffix(".png"))
    from tinyllm.serialization import write_atomic

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(page, hit_html(stats, pieces, args.block_size,
                                    title=f"prefix cache, blocks of {args.block_size}: {ckpt}").encode("utf-8"))
        fig = hit_figure(stats, args.block_size, labels=[str(n) for n, _ in lines])
        fig.savefig(png, dpi=120)
    except OSError as e:  # a folder that is a file, no permission, a full disk
        return _fail(f"cannot write {page} and {png}: {e}")
    print(f"{'line':>5} {'tokens':>7} {'reused':>7} {'computed':>9} {'hit rate':>9}")
    for (n, _), s in zip(lines, stats):
        print(f"{n:>5} {s.n_tokens:>7} {s.n_reused:>7} {s.n_computed:>9} {s.hit_rate:>9.2f}")
    t = pc.stats
    print(f"total: {t.hit_tokens}/{t.tokens} positions reused (hit rate {t.hit_rate:.3f}), {t.block_hits} block hits, "
          f"{t.block_misses} misses, {t.evicted} evicted; {len(pc)} blocks, {pc.nbytes:,} bytes held")
    print(f"wrote {page} and {png}")
    return 0

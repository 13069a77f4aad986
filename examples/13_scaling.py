"""Lab 13: scaling — loss, time and memory against model size, and the law fitted to them.

1. The sweep: sizes of one family (tinyllm/scaling/family.py) trained on the same tokens of
   tinyshakespeare, each in its own run folder (a sweep stopped halfway continues where it
   stopped: run the same command again).
2. Profile per size: tokens/s, FLOPs per token (6N + 6·L·T·d), the achieved FLOP/s against this
   machine's measured matrix-product peak (MFU), and the memory of one step split into
   parameters, gradients, optimizer state, activations and workspace, the activations against
   a count of what forward keeps.
3. The fit: L(N) = E + A / N^α by least squares in log space, with bootstrap 95% intervals
   and the residuals.
4. (Not in --quick) An IsoFLOP mini-sweep: three compute budgets C, four sizes each at
   D = C / (6N) tokens; a parabola in log N per budget puts the compute-optimal size at its
   bottom, and N_opt ∝ C^a gives a, against Hoffmann et al.'s ~0.5 and Kaplan et al.'s 0.73.

    python examples/13_scaling.py            # all seven sizes at 2M tokens and the IsoFLOP runs: hours on 2 cores
    python examples/13_scaling.py --quick    # three tiny sizes at 100K tokens: about two minutes
    python examples/13_scaling.py --sizes xs,s,m,l --tokens 500000 --no-isoflop
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinyllm import runtime  # noqa: E402
from tinyllm.nn import GPTConfig  # noqa: E402
from tinyllm.scaling import (  # noqa: E402
    SIZES,
    fit_power_law,
    isoflop,
    matmul_peak,
    memory_split,
    non_embedding_params,
    size_fields,
    sweep,
)

ISOFLOP_BUDGETS = (3e13, 1e14, 3e14)  # FLOPs per run (6 · N · D)
ISOFLOP_SIZES = ("s", "m", "l", "xl")


def profile(rows: list, context_length: int, batch_size: int, vocab_size: int) -> dict:
    """MFU per size against the measured peak, and one step's memory split per size."""
    peak = matmul_peak(2.0)
    print(f"\n2. profile: this machine's float32 matmul peak {peak / 1e9:.1f} GFLOP/s (1024 x 1024, NumPy's BLAS)")
    print(f"   {'size':5s} {'N':>11s} {'tokens/s':>9s} {'ms/step':>8s} {'GFLOP/s':>8s} {'MFU':>6s} "
          f"{'peak MiB':>9s} {'act MiB':>8s} {'counted':>8s}")
    for r in rows:
        r["mfu"] = r["flops_per_s"] / peak
        cfg = GPTConfig(vocab_size=vocab_size, **size_fields(r["size"], context_length))
        r["memory"] = memory_split(cfg, batch_size)
        m = r["memory"]
        print(f"   {r['size']:5s} {r['non_embedding_params']:11,d} {r['tokens_per_s']:9,.0f} "
              f"{1e3 * r['seconds_per_step']:8.1f} {r['flops_per_s'] / 1e9:8.2f} {r['mfu']:6.1%} "
              f"{m['peak'] / 2**20:9.1f} {m['activations'] / 2**20:8.1f} {m['activations_counted'] / 2**20:8.1f}")
    return dict(matmul_peak_flops=peak)


def run_isoflop(out: Path, settings: dict) -> dict:
    runs = []
    for c in ISOFLOP_BUDGETS:
        for name in ISOFLOP_SIZES:
            n = non_embedding_params(*SIZES[name])
            tokens = int(c / (6 * n))
            row = sweep([name], tokens, out / f"isoflop-{c:.0e}", log=print, **settings)[0]
            runs.append(dict(flops=c, params=n, loss=row["val_loss"], size=name, tokens=row["tokens"]))
    result = isoflop(runs)
    result["runs"] = runs
    print(f"\n4. IsoFLOP: N_opt ∝ C^{result.get('exponent', float('nan')):.2f} "
          "(Hoffmann et al. ~0.5, Kaplan et al. 0.73)")
    for o in result["optima"]:
        print(f"   C = {o['flops']:.0e}: N_opt = {o['n_opt']:,.0f}, loss there {o['loss_opt']:.3f}")
    return result


def figures(rows: list, fit: dict, iso: dict | None, out: Path) -> None:
    n = np.array([r["non_embedding_params"] for r in rows], float)
    loss = np.array([r["val_loss"] for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    ax = axes[0]
    ax.loglog(n, loss - fit["E"], "o", label="val loss − E (measured)")
    grid = np.geomspace(n.min() / 2, n.max() * 2, 100)
    ax.loglog(grid, fit["A"] * grid ** -fit["alpha"], "-",
              label=f"A / N^α, α = {fit['alpha']:.3f}" + (f" [{fit['alpha_ci'][0]:.2f}, {fit['alpha_ci'][1]:.2f}]"
                                                          if "alpha_ci" in fit else ""))
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel(f"val loss − E  (E = {fit['E']:.3f} nats)")
    ax.set_title("loss against size")
    ax.legend(fontsize=9)
    ax = axes[1]
    for r in rows:
        steps, vals = zip(*r["curve"])
        ax.plot(np.array(steps) * r["tokens"] / max(r["steps"], 1), vals, marker=".", label=r["size"])
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("val loss (nats)")
    ax.set_title("learning curves")
    ax.legend(fontsize=9)
    ax = axes[2]
    ax.loglog(n, [r["seconds_per_step"] * 1e3 for r in rows], "o-", label="ms per step")
    ax.loglog(n, [r["memory"]["peak"] / 2**20 for r in rows], "s-", label="peak MiB of a step")
    ax.loglog(n, [r["memory"]["activations"] / 2**20 for r in rows], "^-", label="activations MiB")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_title("time and memory")
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "13_scaling.png", dpi=110)
    plt.close(fig)
    if iso:
        fig, ax = plt.subplots(figsize=(6.5, 4.6))
        for o in iso["optima"]:
            at = [r for r in iso["runs"] if r["flops"] == o["flops"]]
            x = np.array([r["params"] for r in at], float)
            ax.semilogx(x, [r["loss"] for r in at], "o", label=f"C = {o['flops']:.0e}")
            g = np.geomspace(x.min(), x.max(), 50)
            ax.semilogx(g, np.polyval(o["parabola"], np.log(g)), "-", color=ax.lines[-1].get_color())
            ax.axvline(o["n_opt"], color=ax.lines[-1].get_color(), ls=":")
        ax.set_xlabel("non-embedding parameters N")
        ax.set_ylabel("val loss (nats)")
        ax.set_title(f"IsoFLOP: N_opt ∝ C^{iso.get('exponent', float('nan')):.2f}")
        ax.legend(fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "13_isoflop.png", dpi=110)
        plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="three tiny sizes at 100K tokens, no IsoFLOP runs")
    p.add_argument("--sizes", default=None, help=f"from {', '.join(SIZES)} (default all; --quick: xs,s,m)")
    p.add_argument("--tokens", type=int, default=None, help="tokens per size (default 2M; --quick: 100K)")
    p.add_argument("--no-isoflop", action="store_true", help="skip the IsoFLOP runs")
    p.add_argument("--runs", type=Path, default=None, help="where the runs go (default out/labs/13_scaling[-quick])")
    p.add_argument("--out", type=Path, default=None, help="figures and JSON (default docs/figures; "
                   "--quick: out/labs/13_scaling-quick)")
    args = p.parse_args(argv)
    quick = args.quick
    sizes = (args.sizes or ("xs,s,m" if quick else ",".join(SIZES))).split(",")
    tokens = args.tokens or (100_000 if quick else 2_000_000)
    runs = args.runs or Path("out/labs/13_scaling-quick" if quick else "out/labs/13_scaling")
    out = args.out or Path("out/labs/13_scaling-quick" if quick else "docs/figures")
    out.mkdir(parents=True, exist_ok=True)
    runtime.keep_host_memory()
    t0 = time.perf_counter()
    settings = dict(data="tinyshakespeare", batch_size=16, context_length=128, eval_iters=5 if quick else 20)

    print(f"1. the sweep: {', '.join(sizes)} at {tokens:,} tokens each, in {runs}/<size>")
    rows = sweep(sizes, tokens, runs, log=print, **settings)
    for r in rows:
        print(f"   {r['size']:5s} N = {r['non_embedding_params']:>11,d}  val loss {r['val_loss']:.4f}  "
              f"({r['steps']} steps, lr {r['learning_rate']:.2e})")
    machine = profile(rows, settings["context_length"], settings["batch_size"], vocab_size=65)

    # three sizes pin E, A and α exactly (zero residuals, nothing to resample): the interval needs four or more
    fit = fit_power_law([r["non_embedding_params"] for r in rows], [r["val_loss"] for r in rows],
                        bootstrap=1000 if len(rows) >= 4 else 0)
    print(f"\n3. L(N) = E + A / N^α: E = {fit['E']:.3f}, A = {fit['A']:.3g}, α = {fit['alpha']:.3f}"
          + (f" (95% interval {fit['alpha_ci'][0]:.3f} .. {fit['alpha_ci'][1]:.3f}, "
             f"{fit['bootstrap_draws']} resamples)" if "alpha_ci" in fit else ""))
    print("   residuals: " + ", ".join(f"{r['size']} {e:+.4f}" for r, e in zip(rows, fit["residuals"])))
    if len(rows) < 4:
        print("   (three sizes determine the three numbers exactly: no test of the form, no interval)")
    iso = None if (quick or args.no_isoflop) else run_isoflop(runs, settings)
    figures(rows, fit, iso, out)
    report = dict(sizes=sizes, tokens=tokens, rows=rows, fit=fit, isoflop=iso, **machine,
                  seconds=time.perf_counter() - t0)
    (out / "13_scaling.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"\nfigures and 13_scaling.json in {out}; total {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()

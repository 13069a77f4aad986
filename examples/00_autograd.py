"""Lab 0: reverse-mode autograd, drawn.

Builds one neuron, o = tanh(x1·w1 + x2·w2 + b), runs backward, and draws the
graph tinyllm recorded: every tensor with its value (data) and dL/d(tensor)
(grad), every Function as the op between them. Then checks each gradient
against a central finite difference.

    python examples/00_autograd.py            # writes docs/figures/00_autograd_graph.png and 00_autograd.json
    python examples/00_autograd.py --quick    # the same (it is already quick); for CI
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tinyllm  # noqa: E402


def neuron(values: dict) -> dict:
    """Forward pass of o = tanh(x1*w1 + x2*w2 + b); returns every named tensor."""
    t = {k: tinyllm.tensor(v, dtype="float64", requires_grad=True) for k, v in values.items()}
    t["x1*w1"] = t["x1"] * t["w1"]
    t["x2*w2"] = t["x2"] * t["w2"]
    t["x1w1+x2w2"] = t["x1*w1"] + t["x2*w2"]
    t["n"] = t["x1w1+x2w2"] + t["b"]
    t["o"] = t["n"].tanh()
    return t


def finite_difference(values: dict, name: str, eps: float = 1e-6) -> float:
    up, down = dict(values), dict(values)
    up[name] += eps
    down[name] -= eps
    return (neuron(up)["o"].item() - neuron(down)["o"].item()) / (2 * eps)


def draw(t: dict, path: Path) -> None:
    """Lay the graph out left to right by depth (leaves at depth 0) and draw it."""
    names = {id(v): k for k, v in t.items()}
    depth = {}
    for k, v in t.items():  # insertion order is already topological
        ctx = v.grad_fn
        depth[k] = 0 if ctx is None else 1 + max(depth[names[id(x)]] for x in ctx.inputs)
    columns: dict = {}
    for k, d in depth.items():
        columns.setdefault(d, []).append(k)
    pos = {}
    for d, ks in columns.items():
        for i, k in enumerate(ks):
            pos[k] = (d * 3.2, (len(ks) - 1) / 2 - i * 1.3)

    fig, ax = plt.subplots(figsize=(13, 5.5))
    for k, v in t.items():
        x, y = pos[k]
        ctx = v.grad_fn
        if ctx is not None:  # the op node sits just left of its output
            ox, oy = x - 1.25, y
            ax.add_patch(plt.Circle((ox, oy), 0.32, color="#fde68a", zorder=2))
            op = {"Mul": "*", "Add": "+", "Tanh": "tanh"}.get(type(ctx).__name__, type(ctx).__name__)
            ax.text(ox, oy, op, ha="center", va="center", fontsize=10, zorder=3)
            ax.annotate("", xy=(x - 0.95, y), xytext=(ox + 0.32, oy),
                        arrowprops=dict(arrowstyle="->", color="#555"))
            for inp in ctx.inputs:
                ix, iy = pos[names[id(inp)]]
                ax.annotate("", xy=(ox - 0.32, oy), xytext=(ix + 0.95, iy),
                            arrowprops=dict(arrowstyle="->", color="#555"))
        grad = v.grad.item() if v.grad is not None else float("nan")
        ax.text(x, y, f"{k}\ndata {v.item():+.4f}\ngrad {grad:+.4f}", ha="center", va="center",
                fontsize=9, family="monospace", zorder=3,
                bbox=dict(boxstyle="round", fc="#dbeafe" if ctx is None else "#e5e7eb", ec="#334155"))
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("o = tanh(x1·w1 + x2·w2 + b): values forward, gradients dO/d(·) backward")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="no-op: this lab is already quick")
    p.add_argument("--out", type=Path, default=Path("docs/figures/00_autograd_graph.png"))
    args = p.parse_args(argv)

    values = {"x1": 2.0, "w1": -3.0, "x2": 0.0, "w2": 1.0, "b": 6.881373587019543}
    t = neuron(values)
    for v in t.values():
        if v.grad_fn is not None:
            v.retain_grad()  # keep intermediate gradients for the picture
    t["o"].backward(retain_graph=True)  # retain the graph so we can draw it
    print(f"o = {t['o'].item():.6f}")
    print(f"{'input':>6} {'backward':>12} {'finite diff':>12}")
    report = {}
    for name in values:
        fd = finite_difference(values, name)
        report[name] = (t[name].grad.item(), fd)
        print(f"{name:>6} {t[name].grad.item():+12.6f} {fd:+12.6f}")
    draw(t, args.out)
    numbers = args.out.with_name("00_autograd.json")  # the numbers, next to the figure
    numbers.write_text(json.dumps(dict(command="python examples/00_autograd.py", values=values, o=t["o"].item(),
                                       gradients={k: dict(backward=b, finite_difference=fd)
                                                  for k, (b, fd) in report.items()}), indent=1) + "\n")
    print(f"wrote {args.out} and {numbers}")
    return report


if __name__ == "__main__":
    main()

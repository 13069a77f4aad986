"""Scaled dot-product attention, one query at a time, then the causal mask (Manim Community).

    tinyllm render attention            # or: manim render -qm animations/attention.py AttentionScene

What it shows (Vaswani et al. 2017, "Attention is all you need", eq. 1):

    scores_j  = q . k_j / sqrt(d)            one number per key
    a         = softmax(scores)              a_j = exp(scores_j) / sum_l exp(scores_l)
    o         = sum_j a_j v_j                the output: a weighted average of the values

for the last token of a five-token sequence, then the same computation for every token at
once (Q K^T / sqrt(d), a T x T matrix) with the causal mask: row t may only look at keys
0..t, so the entries above the diagonal become -inf before the softmax and get weight 0.
The mask fills in row by row, and the last row is the very softmax drawn on the left.

The numbers are a small fixed example (integer Q, K, V with d = 4, so 1/sqrt(d) = 1/2)
that a reader can check by hand; `attention_example()` computes them with NumPy and the
scene draws what it returns (tests check it against PyTorch's scaled_dot_product_attention).
"""

from __future__ import annotations

import numpy as np
from manim import (
    BLUE_C,
    DOWN,
    GREEN_C,
    GREY_B,
    GREY_D,
    LEFT,
    ORANGE,
    RIGHT,
    UP,
    WHITE,
    YELLOW,
    Create,
    FadeIn,
    FadeOut,
    GrowFromEdge,
    Indicate,
    LaggedStart,
    Line,
    ManimColor,
    Rectangle,
    ReplacementTransform,
    Scene,
    SurroundingRectangle,
    Text,
    Transform,
    VGroup,
    Write,
    interpolate_color,
)

from tinyllm.functional.softmax import softmax_forward

TOKENS = ["the", "cat", "sat", "on", "mat"]
# one row per token; d = 4 so that the scale 1/sqrt(d) is exactly 1/2
Q = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, -1], [0, -1, 1, 1], [1, 2, 0, -1]], dtype=np.float64)
K = np.array([[1, 0, 1, 0], [0, 2, 0, 1], [0, 1, 1, 0], [-1, 0, 1, 1], [0, 1, -1, 0]], dtype=np.float64)
V = np.array([[1, 0, 2, 0], [0, 2, 1, 0], [2, 1, 0, 1], [0, 0, 1, 2], [1, 1, 0, 0]], dtype=np.float64)

MONO = "DejaVu Sans Mono"
SANS = "DejaVu Sans"
C_Q, C_K, C_V, C_O = YELLOW, BLUE_C, GREEN_C, ORANGE


def attention_example(q=Q, k=K, v=V) -> dict:
    """Every number the scene draws. For T tokens of width d:

    dots    (T, T)  Q K^T                     raw dot products
    scores  (T, T)  Q K^T / sqrt(d)
    masked  (T, T)  scores with -inf above the diagonal (key j > query t)
    weights (T, T)  softmax(masked) row by row; lower triangular, rows sum to 1
    out     (T, d)  weights @ V

    Example (the last row, the query "mat"): dots = [1, 3, 2, -2, 2], scores = dots / 2,
    weights = softmax(scores) = [0.14, 0.38, 0.23, 0.03, 0.23] (rounded; they sum to 1).
    """
    T, d = q.shape
    dots = q @ k.T                                   # (T,d) @ (d,T) -> (T,T)
    scores = dots / np.sqrt(d)
    allowed = np.tril(np.ones((T, T), dtype=bool))   # key j visible from query t iff j <= t
    masked = np.where(allowed, scores, -np.inf)
    weights = softmax_forward(masked, axis=-1)     # tinyllm's own: exp(x - max) / sum, -inf -> 0
    return dict(dots=dots, scores=scores, masked=masked, weights=weights, out=weights @ v, allowed=allowed)


def _vec(values, color, size=18) -> Text:
    """A row vector as text, integers without decimals: [ 1  0 -1  2]."""
    body = " ".join(f"{x:2.0f}" if float(x).is_integer() else f"{x:.2f}" for x in values)
    return Text(f"[{body}]", font=MONO, font_size=size, color=color)


def _num(x: float) -> str:
    """An integer for a sum written out: 2, (-1)."""
    return f"{x:.0f}" if x >= 0 else f"({x:.0f})"


def _heat(w: float) -> ManimColor:
    """0 -> near-black, 1 -> orange: the color of an attention weight."""
    return interpolate_color(ManimColor("#1d1d28"), C_O, 0.15 + 0.85 * min(1.0, w / 0.8))


class AttentionScene(Scene):
    def construct(self):
        ex = attention_example()
        T, d = Q.shape
        t = T - 1                                   # the query drawn on the left: the last token
        dots, scores, w = ex["dots"][t], ex["scores"][t], ex["weights"][t]

        title = Text("Scaled dot-product attention", font=SANS, font_size=34).to_edge(UP, buff=0.25)
        self.play(Write(title), run_time=0.8)

        # ---- left panel: one query over all keys -------------------------------------------------
        step = 0.7                                  # row spacing, = the matrix cell on the right
        row_y = [1.55 - step * j for j in range(T)]
        x_tok, x_k, x_v, x_s, x_bar = -6.5, -5.05, -2.8, -1.35, -0.75
        header = VGroup(
            Text("token", font=SANS, font_size=18, color=GREY_B).move_to([x_tok, 2.2, 0]),
            Text("key k", font=SANS, font_size=18, color=C_K).move_to([x_k, 2.2, 0]),
            Text("value v", font=SANS, font_size=18, color=C_V).move_to([x_v, 2.2, 0]),
            Text("q·k", font=SANS, font_size=18, color=GREY_B).move_to([x_s, 2.2, 0]),
        )
        toks = VGroup(*[Text(s, font=MONO, font_size=22).move_to([x_tok, y, 0]) for s, y in zip(TOKENS, row_y)])
        keys = VGroup(*[_vec(K[j], C_K).move_to([x_k, y, 0]) for j, y in enumerate(row_y)])
        vals = VGroup(*[_vec(V[j], C_V).move_to([x_v, y, 0]) for j, y in enumerate(row_y)])
        query = VGroup(Text(f'query q ("{TOKENS[t]}") =', font=SANS, font_size=22, color=C_Q), _vec(Q[t], C_Q, size=22))
        query.arrange(RIGHT, buff=0.2).move_to([-3.4, 2.85, 0])
        self.play(FadeIn(header), LaggedStart(*[FadeIn(m) for m in toks], lag_ratio=0.1),
                  FadeIn(keys), FadeIn(vals), run_time=1.2)
        self.play(FadeIn(query, shift=DOWN * 0.2), run_time=0.6)

        # 1. dot products q.k_j, one key at a time
        dot_txt = VGroup(*[Text(f"{dots[j]:.0f}", font=MONO, font_size=22).move_to([x_s, y, 0])
                           for j, y in enumerate(row_y)])
        calc = None
        for j in range(T):
            box = SurroundingRectangle(keys[j], color=C_Q, buff=0.06)
            terms = " + ".join(f"{_num(qa)}·{_num(ka)}" for qa, ka in zip(Q[t], K[j]))
            new = Text(f'q·k("{TOKENS[j]}") = {terms} = {dots[j]:.0f}', font=MONO, font_size=18, color=GREY_B)
            new.move_to([-3.0, -1.95, 0])
            swap = [FadeIn(new)] if calc is None else [FadeOut(calc), FadeIn(new)]
            self.play(Create(box), FadeIn(dot_txt[j]), *swap, run_time=0.5)
            self.wait(0.35)
            self.remove(box)
            calc = new
        # 2. scale by 1/sqrt(d)
        head_s = Text(f"q·k/√{d}", font=SANS, font_size=18, color=GREY_B).move_to(header[3])
        scaled = VGroup(*[Text(f"{scores[j]:.1f}", font=MONO, font_size=22).move_to([x_s, y, 0])
                          for j, y in enumerate(row_y)])
        note = Text(f"divide by √d = √{d} = {np.sqrt(d):.0f}", font=SANS, font_size=18, color=GREY_B)
        note.move_to([-3.0, -1.95, 0])
        self.play(Transform(header[3], head_s), ReplacementTransform(dot_txt, scaled), FadeOut(calc), FadeIn(note),
                  run_time=0.9)
        self.wait(0.4)

        # 3. softmax as bars
        bar_w = 1.9                                  # a weight of 1 would be this wide
        head_a = Text("softmax a", font=SANS, font_size=18, color=C_O).move_to([x_bar + 0.75, 2.2, 0])
        bars = VGroup(*[Rectangle(width=max(bar_w * w[j], 0.02), height=0.36, stroke_width=0, fill_color=C_O,
                                  fill_opacity=0.85).move_to([x_bar, y, 0], aligned_edge=LEFT)
                        for j, y in enumerate(row_y)])
        wtxt = VGroup(*[Text(f"{w[j]:.2f}", font=MONO, font_size=20).next_to(bars[j], RIGHT, buff=0.08)
                        for j in range(T)])
        note2 = Text(f"a = exp(s) / Σ exp(s)   (sum = {w.sum():.2f})", font=SANS, font_size=18, color=GREY_B)
        note2.move_to(note)
        self.play(FadeIn(head_a), LaggedStart(*[GrowFromEdge(b, LEFT) for b in bars], lag_ratio=0.15),
                  FadeIn(wtxt), ReplacementTransform(note, note2), run_time=1.4)
        self.wait(0.4)

        # 4. the output: weighted sum of the values
        out_lbl = Text("output o = Σ a·v =", font=SANS, font_size=22, color=C_O)
        out_vec = _vec(ex["out"][t], C_O, size=22)
        VGroup(out_lbl, out_vec).arrange(RIGHT, buff=0.2).move_to([-3.0, -2.7, 0])
        copies = VGroup(*[vals[j].copy().set_opacity(0.25 + 0.75 * w[j] / w.max()) for j in range(T)])
        self.play(FadeIn(out_lbl), LaggedStart(*[c.animate.move_to(out_vec).set_opacity(0) for c in copies],
                                               lag_ratio=0.12), run_time=1.4)
        self.remove(copies)
        self.play(FadeIn(out_vec), run_time=0.5)
        self.wait(0.5)

        # ---- right panel: every token is a query; the causal mask fills in row by row -------------
        cell = step
        x0, y0 = 2.6, row_y[0]                          # centre of cell (0, 0)
        rtitle = Text("every token is a query:\nsoftmax(QKᵀ/√d + causal mask)", font=SANS, font_size=20,
                      line_spacing=0.8)
        rtitle.move_to([x0 + 2 * cell, 2.95, 0])
        divider = Line([1.15, 2.5, 0], [1.15, -3.3, 0], color=GREY_D, stroke_width=2)
        col_lbl = VGroup(*[Text(s, font=MONO, font_size=18, color=C_K).move_to([x0 + j * cell, 2.2, 0])
                           for j, s in enumerate(TOKENS)])
        row_lbl = VGroup(*[Text(s, font=MONO, font_size=18, color=C_Q).move_to([x0 - 0.75, y0 - i * cell, 0])
                           for i, s in enumerate(TOKENS)])
        grid = VGroup(*[Rectangle(width=cell, height=cell, stroke_color=GREY_D, stroke_width=1.5)
                        .move_to([x0 + j * cell, y0 - i * cell, 0]) for i in range(T) for j in range(T)])
        axis_note = Text("keys →", font=SANS, font_size=16, color=GREY_B).next_to(col_lbl, RIGHT, buff=0.25)
        self.play(Create(divider), FadeIn(rtitle), FadeIn(col_lbl), FadeIn(row_lbl), Create(grid),
                  FadeIn(axis_note), run_time=1.2)

        W = ex["weights"]
        for i in range(T):
            masked_cells = VGroup(*[
                VGroup(Rectangle(width=cell, height=cell, stroke_width=0, fill_color=GREY_D, fill_opacity=0.9),
                       Text("-∞", font=MONO, font_size=16, color=GREY_B)).move_to([x0 + j * cell, y0 - i * cell, 0])
                for j in range(i + 1, T)])
            visible = VGroup(*[
                VGroup(Rectangle(width=cell, height=cell, stroke_width=0, fill_color=_heat(W[i, j]), fill_opacity=1),
                       Text(f"{W[i, j]:.2f}", font=MONO, font_size=16,
                            color=WHITE if W[i, j] < 0.5 else "#111111")).move_to([x0 + j * cell, y0 - i * cell, 0])
                for j in range(i + 1)])
            self.play(FadeIn(masked_cells), FadeIn(visible), run_time=0.55)
        self.bring_to_front(grid)

        # the last row is the softmax on the left
        last = SurroundingRectangle(VGroup(*[grid[t * T + j] for j in range(T)]), color=C_Q, buff=0.04)
        link = Text(f'row "{TOKENS[t]}" = the bars on the left', font=SANS, font_size=18, color=C_Q)
        link.next_to(last, DOWN, buff=0.2).align_to(row_lbl, LEFT)
        rule = Text("keys after the query: score −∞, weight 0\n(no token sees the future); rows sum to 1",
                    font=SANS, font_size=18, color=GREY_B, line_spacing=0.8)
        rule.next_to(link, DOWN, buff=0.3).align_to(link, LEFT)
        self.play(Create(last), FadeIn(link), Indicate(bars, color=C_Q, scale_factor=1.05), run_time=1.0)
        self.play(FadeIn(rule), run_time=0.6)
        self.wait(1.5)

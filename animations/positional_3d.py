"""Position encodings in 3D: sinusoidal curves, then RoPE rotating q and k (Manim Community).

    tinyllm render positional --quality l   # or: manim render -ql animations/positional_3d.py Positional3DScene

Attention by itself sees a set, not a sequence; a position encoding tells it where each
token is. This scene draws the two classic answers for a toy sequence of 8 tokens.

1. Sinusoidal (Vaswani et al. 2017, section 3.5), added to the token embeddings:

       PE[pos, 2i]   = sin(pos / 10000^(2i/d))
       PE[pos, 2i+1] = cos(pos / 10000^(2i/d))

   Each dimension is a curve over the position axis; the 3D plot puts position on one
   axis, dimension on another and the value up. Token m's encoding is the slice through
   all curves at pos = m: the first dimensions turn fast (a new value every token), the
   last barely move over 8 tokens (they tell far-apart positions apart).

2. RoPE (Su et al. 2021, RoFormer), applied to queries and keys: the head vector is cut
   into d/2 planes (pairs (x[2i], x[2i+1]), the paper's adjacent layout) and the pair i of
   a vector at position m is rotated by the angle m * theta_i, theta_i = base^(-2i/d):

       q_m . k_n = sum_i |q_i| |k_i| cos(phi_q,i - phi_k,i + (m - n) theta_i)

   so the score depends on the positions only through m - n. The scene shifts m and n
   together and the angle between q and k in every plane, and the score, stay put.

The numbers come from tinyllm itself (`tinyllm.nn.positional`: the sinusoidal table
and RoPE in the paper's interleaved layout), wrapped by `sinusoidal_table` and
`rope_rotate` below; tests check them against the closed forms and the
relative-position property.
"""

from __future__ import annotations

import numpy as np
from manim import (
    BLUE_C,
    DEGREES,
    DOWN,
    GREY_B,
    GREY_D,
    LEFT,
    ORIGIN,
    OUT,
    PI,
    RIGHT,
    UP,
    WHITE,
    YELLOW,
    Arc,
    Arrow,
    Circle,
    Create,
    Dot,
    FadeIn,
    FadeOut,
    LaggedStart,
    Line,
    ParametricFunction,
    Text,
    ThreeDScene,
    ValueTracker,
    VGroup,
    Write,
    color_gradient,
    linear,
)

from tinyllm.nn import positional

TOKENS = ["to", "be", "or", "not", "to", "be", "that", "is"]   # "to" and "be" twice: same token, new position
D_SIN = 16            # width of the sinusoidal encoding drawn
D_HEAD = 8            # RoPE head dimension: 4 planes
BASE = 10000.0
Q_VEC = np.array([1.0, 0.25, 0.7, 0.7, 0.2, 1.0, -0.6, 0.8])    # a query and a key, fixed
K_VEC = np.array([-0.05, 0.9, 1.0, 0.0, -0.5, 0.8, 0.9, 0.4])

MONO, SANS = "DejaVu Sans Mono", "DejaVu Sans"
C_Q, C_K = YELLOW, BLUE_C


def sinusoidal_table(positions, d: int) -> np.ndarray:
    """(T, d): PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(same): tinyllm's table, in float64.

    sinusoidal_table([0, 1], 4)[1] = [sin 1, cos 1, sin 0.01, cos 0.01] = [0.841, 0.540, 0.010, 1.000]
    """
    return positional.sinusoidal_table(positions, d, base=BASE, dtype=np.float64)


def rope_angles(d: int, base: float = BASE) -> np.ndarray:
    """(d/2,): theta_i = base^(-2i/d), the labels of the planes.  rope_angles(8) = [1, 0.1, 0.01, 0.001]."""
    return base ** (-np.arange(0, d, 2) / d)


def rope_rotate(x: np.ndarray, m: float) -> np.ndarray:
    """Rotate each adjacent pair (x[2i], x[2i+1]) of a (d,) vector by m * theta_i (RoFormer eq. 13):
    tinyllm's interleaved-layout RoPE at the (possibly fractional, mid-animation) position m."""
    return positional.apply_rope_interleaved(np.asarray(x, dtype=np.float64)[None], [m], BASE)[0]


# ---- where things go in the 3D scene -------------------------------------------------------------
SX, SY, SZ = 1.0, 0.3, 0.9         # position, dimension, value -> scene units
ORG = np.array([-3.5, -2.2, 0.0])   # (pos 0, dim 0, value 0): the plot is centred on the origin


def sin_point(pos: float, dim: float, value: float) -> np.ndarray:
    return ORG + np.array([pos * SX, dim * SY, value * SZ])


# plate centres (x, z) in the x-z plane, standing up; a 2 x 2 grid on the right of the frame
PLATES = [(1.7, 0.75), (4.6, 0.75), (1.7, -1.75), (4.6, -1.75)]
R = 0.85


def plate_mobject(i: int, m: float, n: float) -> VGroup:
    """Plane i of RoPE: circle, q rotated by m*theta_i, k rotated by n*theta_i, the arc between them."""
    qi, ki = rope_rotate(Q_VEC, m)[2 * i:2 * i + 2], rope_rotate(K_VEC, n)[2 * i:2 * i + 2]
    scale = R / max(np.linalg.norm(Q_VEC.reshape(-1, 2), axis=1).max(),
                    np.linalg.norm(K_VEC.reshape(-1, 2), axis=1).max())
    q_end, k_end = np.array([*qi * scale, 0]), np.array([*ki * scale, 0])
    a_q, a_k = np.arctan2(qi[1], qi[0]), np.arctan2(ki[1], ki[0])
    delta = (a_q - a_k + PI) % (2 * PI) - PI                            # signed angle k -> q in (-pi, pi]
    g = VGroup(
        Circle(radius=R, color=GREY_D, stroke_width=2),
        Line(LEFT * R, RIGHT * R, color=GREY_D, stroke_width=1), Line(DOWN * R, UP * R, color=GREY_D, stroke_width=1),
        Arc(radius=0.28, start_angle=a_k, angle=delta, color=WHITE, stroke_width=3),
        Arrow(ORIGIN, k_end, buff=0, color=C_K, stroke_width=5, max_tip_length_to_length_ratio=0.25),
        Arrow(ORIGIN, q_end, buff=0, color=C_Q, stroke_width=5, max_tip_length_to_length_ratio=0.25),
    )
    # built flat in the xy plane, then stood up in the x-z plane facing the camera
    return g.rotate(PI / 2, axis=RIGHT, about_point=ORIGIN).shift([PLATES[i][0], 0, PLATES[i][1]])


class Positional3DScene(ThreeDScene):
    def fixed(self, *mobs):
        self.add_fixed_in_frame_mobjects(*mobs)
        return mobs

    def live_text(self, key, make) -> Text:
        """A Text built once per key: Text is slow to build (Pango -> SVG -> paths) and slower to copy
        (a deepcopy per glyph), so live readouts reuse these instead of rebuilding every frame."""
        if key not in self._live:
            self._live[key] = make()
        return self._live[key]

    def live(self, pieces) -> VGroup:
        """A frame-fixed group that shows pieces() (live_text's) on every frame."""
        box = VGroup(*[p.copy() for p in pieces()])
        self.fixed(box)

        def update(b):
            for child, piece in zip(b.submobjects, pieces()):
                child.become(piece)   # copies points and colours, no deepcopy
            # subtle: become() may pad a child with new glyph submobjects; fix those in frame too
            self.camera.add_fixed_in_frame_mobjects(b)

        box.add_updater(update)
        return box

    def construct(self):
        # subtle: no frame_center here: in a ThreeDScene it also shifts the fixed-in-frame texts
        self._live = {}
        self.set_camera_orientation(phi=66 * DEGREES, theta=-68 * DEGREES, zoom=1.0)
        T = len(TOKENS)
        pe = sinusoidal_table(np.arange(T), D_SIN)

        title = Text("Sinusoidal position encoding", font=SANS, font_size=30).to_corner(UP + LEFT, buff=0.3)
        formula = Text("PE[pos, 2i] = sin(pos / 10000^(2i/d))    PE[pos, 2i+1] = cos(pos / 10000^(2i/d))    d = 16",
                       font=MONO, font_size=17, color=GREY_B).to_edge(DOWN, buff=0.25)
        self.fixed(title, formula)
        self.play(Write(title), FadeIn(formula), run_time=1.0)

        # axes: position (with the tokens), dimension, value
        pos_axis = Line(sin_point(-0.3, -0.8, 0), sin_point(T - 0.5, -0.8, 0), color=GREY_B, stroke_width=2)
        dim_axis = Line(sin_point(-0.4, 0, 0), sin_point(-0.4, D_SIN - 1, 0), color=GREY_B, stroke_width=2)
        toks = VGroup(*[Text(s, font=MONO, font_size=24).rotate(PI / 2, axis=RIGHT).rotate(22 * DEGREES, axis=OUT)
                        .move_to(sin_point(p, -1.9, 0)) for p, s in enumerate(TOKENS)])
        lbl_pos = Text("position →", font=SANS, font_size=22, color=GREY_B).rotate(PI / 2, axis=RIGHT)
        lbl_pos.rotate(22 * DEGREES, axis=OUT).move_to(sin_point(T + 0.4, -1.2, 0))
        lbl_dim = Text("dimension →", font=SANS, font_size=26, color=GREY_B).rotate(PI / 2, axis=RIGHT)
        lbl_dim.rotate(90 * DEGREES, axis=OUT).move_to(sin_point(-1.1, D_SIN / 2, 0))
        self.play(Create(pos_axis), Create(dim_axis), LaggedStart(*[FadeIn(t) for t in toks], lag_ratio=0.1),
                  FadeIn(lbl_pos), FadeIn(lbl_dim), run_time=1.2)

        colors = color_gradient([YELLOW, "#ff7f50", "#c050e0", BLUE_C], D_SIN)
        curves = VGroup()
        for k in range(D_SIN):
            freq = BASE ** (-(k // 2) * 2 / D_SIN)
            f = np.sin if k % 2 == 0 else np.cos
            curves.add(ParametricFunction(lambda p, k=k, f=f, w=freq: sin_point(p, k, f(p * w)),
                                          t_range=[0, T - 1, 0.1], color=colors[k], stroke_width=3))
        self.play(LaggedStart(*[Create(c) for c in curves], lag_ratio=0.15), run_time=3.0)

        # token m's encoding: the slice through every curve at pos = m
        m = ValueTracker(0)

        def slice_at():
            p = m.get_value()
            row = sinusoidal_table([p], D_SIN)[0]                        # (d,) the encoding at pos = p
            dots = VGroup(*[Dot(sin_point(p, k, row[k]), radius=0.08, color=colors[k]) for k in range(D_SIN)])
            stems = VGroup(*[Line(sin_point(p, k, 0), sin_point(p, k, row[k]), color=colors[k], stroke_width=2)
                             for k in range(D_SIN)])
            floor = Line(sin_point(p, 0, 0), sin_point(p, D_SIN - 1, 0), color=WHITE, stroke_width=2,
                         stroke_opacity=0.5)
            for j, t in enumerate(toks):
                t.set_color(YELLOW if j == int(round(p)) else WHITE)
            return VGroup(floor, stems, dots)

        def pe_text():
            j = int(round(m.get_value()))
            body = " ".join(f"{x:+.2f}" for x in pe[j])
            return [self.live_text(("pe", j), lambda: Text(f'PE[{j}] ("{TOKENS[j]}") = [{body}]', font=MONO,
                                                           font_size=14, color=YELLOW).next_to(formula, UP, buff=0.15))]

        slc = slice_at()
        slc.add_updater(lambda s: s.become(slice_at()))
        vec = self.live(pe_text)
        cap = Text("token at position m  →  its encoding is the slice through all d curves at pos = m",
                   font=SANS, font_size=20).next_to(title, DOWN, aligned_edge=LEFT)
        self.fixed(cap)
        self.play(FadeIn(slc), FadeIn(cap), FadeIn(vec), run_time=0.6)
        for j in range(1, T):                                            # token by token
            self.play(m.animate.set_value(j), run_time=0.55)
            self.wait(0.1)
        cap2 = Text("low dimensions turn every token; high ones barely move: together, a unique code per position",
                    font=SANS, font_size=20).move_to(cap)
        self.fixed(cap2)
        self.play(FadeOut(cap), FadeIn(cap2), run_time=0.6)
        self.begin_ambient_camera_rotation(rate=0.06)
        self.wait(2.0)
        self.stop_ambient_camera_rotation()
        slc.clear_updaters()
        vec.clear_updaters()

        # ---- RoPE ---------------------------------------------------------------------------------
        self.play(FadeOut(cap2), FadeOut(formula), FadeOut(title), FadeOut(vec), run_time=0.5)
        sinus = VGroup(pos_axis, dim_axis, toks, lbl_pos, lbl_dim, curves, slc)
        self.move_camera(phi=78 * DEGREES, theta=-84 * DEGREES, zoom=1.0,
                         added_anims=[sinus.animate.scale(0.55, about_point=ORIGIN).rotate(28 * DEGREES, axis=RIGHT)
                                      .shift([-4.3, 0.0, -0.9])], run_time=2.0)
        title2 = Text("RoPE: rotate q and k, pair by pair", font=SANS, font_size=30).to_corner(UP + LEFT, buff=0.3)
        thetas = rope_angles(D_HEAD)
        formula2 = Text("plane i = (x[2i], x[2i+1]) of a vector at position m turns by m·θᵢ,  "
                        "θᵢ = 10000^(−2i/d),  d = 8\n"
                        "q_m·k_n = Σᵢ |qᵢ||kᵢ| cos(φq,ᵢ − φk,ᵢ + (m − n)·θᵢ):  a function of m − n only",
                        font=MONO, font_size=16, color=GREY_B, line_spacing=0.9).to_edge(DOWN, buff=0.2)
        self.fixed(title2, formula2)
        mt, nt = ValueTracker(0), ValueTracker(0)
        plates = VGroup(*[plate_mobject(i, 0, 0) for i in range(D_HEAD // 2)])
        for i, pl in enumerate(plates):
            pl.add_updater(lambda mob, i=i: mob.become(plate_mobject(i, mt.get_value(), nt.get_value())))
        plate_lbl = VGroup(*[Text(f"plane {i}: θ={thetas[i]:g}", font=MONO, font_size=18, color=GREY_B)
                             .rotate(PI / 2, axis=RIGHT).rotate(6 * DEGREES, axis=OUT)
                             .move_to([PLATES[i][0], 0, PLATES[i][1] - R - 0.25]) for i in range(D_HEAD // 2)])
        legend = VGroup(Text("q at position m", font=SANS, font_size=20, color=C_Q),
                        Text("k at position n", font=SANS, font_size=20, color=C_K)).arrange(RIGHT, buff=0.5)
        legend.next_to(title2, DOWN, aligned_edge=LEFT)

        # the live readout: one small Text per slot and value ("m = 7.0"), left-aligned in its slot
        names = ["m =", "n =", "m − n =", "score q·k ="]
        widest = ["0.0", "0.0", "-0.0", "+0.000"]
        slots = VGroup(*[Text(f"{nm} {w}", font=MONO, font_size=20) for nm, w in zip(names, widest)])
        slots.arrange(RIGHT, buff=0.45).next_to(legend, DOWN, aligned_edge=LEFT)

        def readout():
            a, b = mt.get_value(), nt.get_value()
            score = float(rope_rotate(Q_VEC, a) @ rope_rotate(K_VEC, b))
            values = [(f"{a:.1f}", C_Q), (f"{b:.1f}", C_K), (f"{a - b:.1f}", WHITE), (f"{score:+.3f}", WHITE)]
            return [self.live_text(("num", k, v), lambda k=k, v=v, c=c: Text(f"{names[k]} {v}", font=MONO, font_size=20,
                                                                              t2c={v: c}).align_to(slots[k], LEFT + UP))
                    for k, (v, c) in enumerate(values)]

        self.fixed(legend)
        read = self.live(readout)
        sin_lbl = Text("sinusoidal: added to the embeddings (d = 16)", font=SANS, font_size=17, color=GREY_B)
        sin_lbl.move_to([-3.9, 0.95, 0])
        self.fixed(sin_lbl)
        self.play(Write(title2), FadeIn(formula2), FadeIn(sin_lbl), FadeIn(legend), FadeIn(plates), FadeIn(plate_lbl),
                  FadeIn(read), run_time=1.0)
        # q walks along the sequence: plane 0 turns a radian per token, plane 3 a thousandth
        self.play(mt.animate.set_value(T - 1), run_time=3.5, rate_func=linear)
        self.play(mt.animate.set_value(2), run_time=1.2)
        # now move both together: m - n = 2 stays, and so do every angle and the score
        self.play(nt.animate.set_value(0), run_time=0.2)
        self.play(mt.animate.set_value(T - 1), nt.animate.set_value(T - 3), run_time=4.0, rate_func=linear)
        note = Text("shift both positions together: every angle, hence q·k, stays the same",
                    font=SANS, font_size=20, color=C_Q).next_to(read, DOWN, aligned_edge=LEFT)
        self.fixed(note)
        self.play(FadeIn(note), run_time=0.6)
        self.wait(1.5)
        for mob in [read, *plates]:
            mob.clear_updaters()

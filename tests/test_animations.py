"""The Manim scenes (animations/) and `tinyllm render`.

Without manim (the optional `anim` extra) only the command's error paths run; the
rest skips with the install line. With it: the numbers each scene draws are checked
(PyTorch's attention, the closed forms, RoPE's relative-position property), and one
still of each scene is rendered at low quality (slow: ~20-40 s each on a busy core).
"""

import argparse
import importlib.util
import math

import numpy as np
import pytest

from tinyllm import render

HAVE_MANIM = importlib.util.find_spec("manim") is not None
needs_manim = pytest.mark.skipif(not HAVE_MANIM, reason="manim is not installed (optional): "
                                 + render.INSTALL_HINT)


def run_cli(argv) -> int:
    """`tinyllm ARGV` through tinyllm.cli.main once `render` is wired in there, else the same parser locally."""
    from tinyllm import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "render" not in sub.choices:
        parser = argparse.ArgumentParser(prog="tinyllm")
        render.add_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def load_scene_module(name: str):
    path = render.scene_file(name)
    spec = importlib.util.spec_from_file_location(f"tinyllm_scene_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- the command's errors (no manim needed) -------------------------------------------------------

def test_scene_files_are_found_in_the_checkout():
    for name, (filename, scene, _) in render.SCENES.items():
        path = render.scene_file(name)
        assert path.name == filename and path.parent.name == "animations"
        assert f"class {scene}(" in path.read_text(encoding="utf-8")


def test_missing_manim_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(render, "manim_installed", lambda: False)
    assert run_cli(["render", "attention", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "manim is not installed" in err
    assert "apt-get install -y pkg-config libpango1.0-dev" in err and 'pip install -e ".[anim]"' in err
    assert not list(tmp_path.glob("*.mp4"))


def test_unknown_scene_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(["render", "flash-attention"])
    assert exc.value.code == 2
    assert "invalid choice: 'flash-attention'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown scene 'nope'; choose one of attention, positional"):
        render.scene_file("nope")


def test_missing_scene_dir_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "no-scenes"
    empty.mkdir()
    assert run_cli(["render", "positional", "--scene-dir", str(empty), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no scene file {empty / 'positional_3d.py'}" in err
    assert "source checkout" in err and "--scene-dir" in err


def test_out_must_match_what_is_rendered(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(render, "manim_installed", lambda: True)   # fails before manim would run
    assert run_cli(["render", "attention", "--still", "--out", str(tmp_path / "a.mp4")]) == 2
    assert "ends in .mp4 but this renders a .png (--still); name it *.png" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_manim_command_line():
    cmd = render.manim_command(render.scene_file("positional"), "Positional3DScene", "l", "/tmp/m", still=True)
    assert cmd[1:5] == ["-m", "manim", "render", "-ql"]
    assert "-s" in cmd and cmd[-1] == "Positional3DScene" and cmd[-2].endswith("positional_3d.py")
    assert cmd[cmd.index("--media_dir") + 1] == "/tmp/m"


# ---- the numbers the scenes draw --------------------------------------------------------------------

@needs_manim
def test_attention_numbers_match_pytorch(torch):
    a = load_scene_module("attention")
    ex = a.attention_example()
    T, d = a.Q.shape
    q, k, v = (torch.tensor(x)[None, None] for x in (a.Q, a.K, a.V))     # (T,d) -> (1,1,T,d)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)[0, 0].numpy()
    np.testing.assert_allclose(ex["out"], ref, rtol=1e-12, atol=1e-12)
    scores = torch.tensor(a.Q @ a.K.T / math.sqrt(d)).masked_fill(~torch.tensor(ex["allowed"]), float("-inf"))
    np.testing.assert_allclose(ex["weights"], torch.softmax(scores, -1).numpy(), atol=1e-12)
    assert np.all(ex["weights"][np.triu_indices(T, 1)] == 0)             # the future gets exactly 0
    np.testing.assert_allclose(ex["weights"].sum(-1), 1.0, atol=1e-12)
    # the worked example in attention_example's docstring
    np.testing.assert_array_equal(ex["dots"][-1], [1, 3, 2, -2, 2])
    np.testing.assert_allclose(ex["weights"][-1].round(2), [0.14, 0.38, 0.23, 0.03, 0.23])


@needs_manim
def test_sinusoidal_table_is_the_closed_form():
    p = load_scene_module("positional")
    d = 16
    table = p.sinusoidal_table(np.arange(8), d)
    for pos in range(8):
        for i in range(d // 2):
            assert table[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / d)), abs=1e-12)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / d)), abs=1e-12)
    np.testing.assert_allclose(p.sinusoidal_table([1], 4)[0],
                               [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)])
    from tinyllm.nn.positional import sinusoidal_table as lib_table  # the scene wraps it: float64 vs its float32

    np.testing.assert_allclose(np.asarray(lib_table(np.arange(8), d), dtype=np.float64), table, atol=1e-6)


@needs_manim
def test_rope_rotation_matches_complex_numbers_and_depends_on_m_minus_n():
    p = load_scene_module("positional")
    rng = np.random.default_rng(0)
    d = p.D_HEAD
    np.testing.assert_allclose(p.rope_angles(8), [1, 0.1, 0.01, 0.001])
    for _ in range(20):
        x, m = rng.standard_normal(d), rng.uniform(-50, 50)
        z = (x[0::2] + 1j * x[1::2]) * np.exp(1j * m * p.rope_angles(d))     # pair i as a complex number
        got = p.rope_rotate(x, m)
        np.testing.assert_allclose(got[0::2] + 1j * got[1::2], z, atol=1e-12)
    for m, n in rng.integers(0, 4096, size=(20, 2)):
        shift = int(rng.integers(-1000, 1000))
        s1 = p.rope_rotate(p.Q_VEC, m) @ p.rope_rotate(p.K_VEC, n)
        s2 = p.rope_rotate(p.Q_VEC, m + shift) @ p.rope_rotate(p.K_VEC, n + shift)
        assert s1 == pytest.approx(s2, abs=1e-9)
        assert s1 == pytest.approx(p.rope_rotate(p.Q_VEC, m - n) @ p.K_VEC, abs=1e-9)
    from tinyllm.nn.positional import apply_rope_interleaved  # rope_rotate wraps it, one position at a time

    x = rng.standard_normal((8, d))                                         # (T, hs), positions 0..7
    ref = apply_rope_interleaved(x, np.arange(8), theta=p.BASE)
    np.testing.assert_allclose(np.stack([p.rope_rotate(x[t], t) for t in range(8)]), ref, atol=1e-12)


# ---- one rendered frame of each scene ----------------------------------------------------------------

def _looks_drawn(png):
    import matplotlib.pyplot as plt

    img = plt.imread(png)                     # (H, W, 3 or 4) floats in [0, 1]
    rgb = img[..., :3]
    lit = (rgb.max(-1) > 0.2).mean()          # share of pixels that are not the black background
    return img.shape[:2], float(rgb.std()), float(lit)


@needs_manim
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(render.SCENES))
def test_a_still_of_each_scene_renders(name, tmp_path):
    png = render.render(name, quality="l", out=tmp_path, still=True, quiet=True)
    assert png == tmp_path / f"{name}.png" and png.is_file()
    (h, w), std, lit = _looks_drawn(png)
    assert (w, h) == (854, 480)               # -ql is 854x480
    assert std > 0.05 and lit > 0.02, f"{png} looks blank (std {std:.3f}, lit share {lit:.3f})"
    assert not [p for p in tmp_path.iterdir() if p.name != png.name], "the manim media folder was left behind"


@needs_manim
@pytest.mark.slow
def test_render_to_a_file_name(tmp_path):
    """--out FILE.png: how docs/figures/*-animation.png are made. A stand-in scene keeps it quick."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "attention.py").write_text("from manim import Scene, Square\n\nclass AttentionScene(Scene):\n"
                                         "    def construct(self):\n"
                                         "        self.add(Square(color='#ff8800', fill_opacity=1))\n")
    target = tmp_path / "figs" / "03-attention-animation.png"
    assert run_cli(["render", "attention", "--still", "--quality", "l", "--scene-dir", str(scenes),
                    "--out", str(target)]) == 0
    (h, w), std, lit = _looks_drawn(target)
    assert (w, h) == (854, 480) and std > 0.05 and lit > 0.02
    assert [p.name for p in target.parent.iterdir()] == [target.name]


@needs_manim
@pytest.mark.slow
def test_a_failing_scene_is_reported(tmp_path, capsys):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "attention.py").write_text("from manim import Scene\n\nclass AttentionScene(Scene):\n"
                                         "    def construct(self):\n        raise ValueError('boom in the scene')\n")
    rc = run_cli(["render", "attention", "--still", "--quality", "l", "--scene-dir", str(scenes),
                  "--out", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "manim failed" in err and "AttentionScene" in err

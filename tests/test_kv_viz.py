"""kv_viz: the hit/miss figure and HTML page, the running hit rate, and `tinyllm kv-viz` (its errors exit with 2)."""

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm.data import CharTokenizer, save_tokenizer
from tinyllm.nn import GPT, GPTConfig
from tinyllm.viz import kv_viz

TEXT = "abcdefgh ijklmnop\n"


def test_running_hit_rate_counts_positions_over_all_requests_so_far():
    assert kv_viz.running_hit_rate([[0, 0], [1, 0]]) == [0.0, 0.25]
    assert kv_viz.running_hit_rate([np.zeros(10, bool), np.r_[np.ones(8, bool), np.zeros(2, bool)],
                                    np.zeros(10, bool)]) == pytest.approx([0.0, 0.4, 8 / 30])


def make_model():
    tinyllm.manual_seed(0)
    return GPT(GPTConfig(vocab_size=len(set(TEXT)), context_length=32, n_layer=1, n_head=2, d_model=8)).eval()


def test_simulate_then_draw_the_figure_and_the_page():
    model = make_model()
    rng = np.random.default_rng(0)
    shared = rng.integers(0, 10, 12)
    requests = [np.r_[shared, rng.integers(0, 10, 5)] for _ in range(4)]  # 12 shared: 3 blocks of 4
    stats, pc = kv_viz.simulate(model, requests, block_size=4)
    assert [s.n_reused for s in stats] == [0, 12, 12, 12]
    assert kv_viz.running_hit_rate(stats)[-1] == pytest.approx(36 / 68)
    fig = kv_viz.hit_figure(stats, block_size=4, labels=list("abcd"))
    top = fig.axes[0]
    grid = top.images[0].get_array()
    assert grid.shape == (4, 17) and (grid[0] == 1).all() and (grid[1, :12] == 2).all() and (grid[1, 12:] == 1).all()
    page = kv_viz.hit_html(stats, pieces=[[chr(97 + t % 26) for t in r] for r in requests], block_size=4)
    assert page.startswith("<!DOCTYPE html>") and page.count(": reused'") == 36 and page.count(": computed'") == 32
    assert "final 0.53" in page and "<script" not in page
    assert "&lt;" in kv_viz.hit_html(stats[:1], pieces=[["<"] * 17])  # text is escaped
    with pytest.raises(ValueError, match="no requests"):
        kv_viz.hit_figure([])


@pytest.fixture
def ckpt(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path / "run")
    save_tokenizer(CharTokenizer.from_text(TEXT), tmp_path / "run")
    return tmp_path / "run"


def cli(argv):
    from tinyllm.cli import main

    return main(argv)


def test_cli_writes_the_page_and_the_figure(ckpt, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("abcdefgh ijk\n\nabcdefgh ilm\nabcdefgh ijk\nponm\n")
    out = tmp_path / "viz" / "page.html"
    assert cli(["kv-viz", "--ckpt", str(ckpt), "--prompts", str(prompts), "--out", str(out), "--block-size", "4"]) == 0
    assert out.read_text().count("request ") >= 4 and out.with_suffix(".png").stat().st_size > 5000
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["1", "12", "0", "12", "0.00"]  # line numbers of the file, blank line skipped
    assert lines[2].split() == ["3", "12", "8", "4", "0.67"]
    assert lines[3].split() == ["4", "12", "11", "1", "0.92"]  # entirely cached: the last token is computed
    assert lines[4].split() == ["5", "4", "0", "4", "0.00"]
    assert "19/40 positions reused (hit rate 0.475)" in lines[5]


def test_cli_out_may_name_the_figure(ckpt, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("abcdefgh ijk\nabcdefgh ilm\n")
    out = tmp_path / "kv.png"
    assert cli(["kv-viz", "--ckpt", str(ckpt), "--prompts", str(prompts), "--out", str(out), "--block-size", "4"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure, not the page written over it
    assert "request " in out.with_suffix(".html").read_text()
    assert f"wrote {out.with_suffix('.html')} and {out}" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("no_ckpt", "holds no model"), ("no_file", "not found"), ("empty", "holds no prompt"),
    ("unknown", "line 2 of"), ("long", "context_length is 32"), ("block", "--block-size must be >= 1"),
    ("binary", "p.txt is not UTF-8 text: byte 0xFF at offset 5 (line 2, invalid start byte); write the prompts"),
])
def test_cli_errors_exit_2_with_a_message(ckpt, tmp_path, capsys, case, message):
    prompts = tmp_path / "p.txt"
    prompts.write_text({"empty": "\n  \n", "unknown": "abc\nabZ\n", "long": "a" * 33 + "\n"}.get(case, "abc\n"))
    if case == "binary":  # e.g. a model file passed by mistake
        prompts.write_bytes(b"abc\nd\xff\x00\x89PNG\n")
    argv = ["kv-viz", "--ckpt", str(tmp_path / "nothing" if case == "no_ckpt" else ckpt),
            "--prompts", str(tmp_path / "missing.txt" if case == "no_file" else prompts),
            "--out", str(tmp_path / "o.html")]
    if case == "block":
        argv += ["--block-size", "0"]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm kv-viz: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    if case == "unknown":
        assert "'Z'" in err or "Z" in err


def test_the_module_imports_only_the_standard_library_at_top_level():
    tree = ast.parse(Path(kv_viz.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom)}
    assert names and names <= set(sys.stdlib_module_names) | {"__future__"}, names


def test_cli_an_unwritable_out_or_a_broken_tokenizer_file_is_one_line_exit_2(ckpt, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("abc\n")
    out = prompts / "kv.html"  # its folder is a file
    assert cli(["kv-viz", "--ckpt", str(ckpt), "--prompts", str(prompts), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinyllm kv-viz: cannot write {out} and {out.with_suffix('.png')}: ")
    assert err.count("\n") == 1
    (ckpt / "tokenizer.json").write_text('{"format": "tinyllm.char", "version": 1}')  # no "chars"
    assert cli(["kv-viz", "--ckpt", str(ckpt), "--prompts", str(prompts), "--out", str(tmp_path / "o.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm kv-viz: ") and "chars" in err and err.count("\n") == 1

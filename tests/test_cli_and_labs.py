"""The command line, the demo behind the README's first command, and the labs' --quick runs."""

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tinyllm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: tinyllm" in out and "demo" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: tinyllm" in capsys.readouterr().out


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "tinyllm", "--version"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("tinyllm ")


def test_unknown_device_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--device", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_demo_learns_the_spirals_and_its_gradient_checks_out():
    from tinyllm.demo import run_demo

    lines = []
    r = run_demo(steps=60, log=lines.append)
    assert r["final_loss"] < 0.5 * r["first_loss"]
    assert r["accuracy"] > 0.6
    assert abs(r["grad_analytic"] - r["grad_numeric"]) <= 1e-6 + 1e-4 * abs(r["grad_numeric"])
    assert any("gradient check" in line for line in lines)


def test_autograd_lab_draws_its_figure_and_matches_finite_differences(tmp_path):
    lab = runpy.run_path(str(ROOT / "examples" / "00_autograd.py"))
    out = tmp_path / "graph.png"
    report = lab["main"](["--quick", "--out", str(out)])
    assert out.stat().st_size > 10_000
    for name, (backward, finite_difference) in report.items():
        assert backward == pytest.approx(finite_difference, abs=1e-6), name
    assert report["x1"][0] == pytest.approx(-1.5) and report["w1"][0] == pytest.approx(1.0)


def test_the_readme_example_runs_and_learns(capsys):
    text = (ROOT / "README.md").read_text()
    block = text.split("## Autograd in ten lines", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len([line for line in block.strip().splitlines() if line.strip()]) <= 14
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    final = float(capsys.readouterr().out.strip())
    assert final < 0.3  # guessing among 3 classes would be ln 3 = 1.10

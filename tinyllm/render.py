"""`tinyllm render`: turn the Manim scenes in animations/ into an mp4 (or a still PNG).

    tinyllm render attention                     # animations/attention.py, 720p
    tinyllm render positional --quality l        # animations/positional_3d.py, 480p (3D: slow)
    tinyllm render attention --still --out DIR   # only the last frame, as DIR/attention.png
    tinyllm render attention --still --out docs/figures/03-attention-animation.png

The scenes are ordinary Manim Community files; this command only finds them and runs

    python -m manim render -q{l,m,h} [-s] animations/FILE.py SceneName --media_dir TMP

in a subprocess, then moves the finished file to --out. Manim is an optional
dependency (the `anim` extra: it needs Cairo and Pango from the system), so it is
looked for only when the command runs; the scenes live in the source checkout (a
wheel does not ship them), so the command looks for them next to the package.

Only the standard library is imported here, so `tinyllm --help` stays instant.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name on the command line -> (file in animations/, Scene class, default quality)
SCENES = {
    "attention": ("attention.py", "AttentionScene", "m"),
    "positional": ("positional_3d.py", "Positional3DScene", "l"),  # 3D, ~2x the 2D scene per frame: 480p
}
QUALITIES = {"l": "480p15", "m": "720p30", "h": "1080p60"}
INSTALL_HINT = 'apt-get install -y pkg-config libpango1.0-dev && pip install -e ".[anim]"'


class ManimMissing(RuntimeError):
    """Manim Community is not importable by this interpreter."""


def default_scene_dir() -> Path:
    """animations/ of the source checkout: the folder beside the `tinyllm` package."""
    import tinyllm  # already imported when this runs as a subcommand; cheap

    return Path(tinyllm.__file__).resolve().parents[1] / "animations"


def manim_installed() -> bool:
    """Whether `python -m manim` can be found by this interpreter (tests monkeypatch this)."""
    return importlib.util.find_spec("manim") is not None


def scene_file(name: str, scene_dir: Path | None = None) -> Path:
    """The scene file for `name`; FileNotFoundError saying where it looked and what to do."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; choose one of {', '.join(SCENES)}")
    folder = Path(scene_dir) if scene_dir is not None else default_scene_dir()
    path = folder / SCENES[name][0]
    if not path.is_file():
        raise FileNotFoundError(
            f"no scene file {path}: the Manim scenes ship with the source checkout "
            f"(git clone the repository and `pip install -e \".[anim]\"`), not with a wheel; "
            f"or point --scene-dir at a folder holding {SCENES[name][0]}")
    return path


def manim_command(path: Path, scene: str, quality: str, media_dir: Path, still: bool = False) -> list[str]:
    """The manim invocation (a list for subprocess; printed for the reader to rerun by hand)."""
    cmd = [sys.executable, "-m", "manim", "render", f"-q{quality}", "--media_dir", str(media_dir)]
    if still:
        cmd.append("-s")  # save only the last frame as a PNG
    return cmd + [str(path), scene]


def render(name: str, quality: str | None = None, out: Path | str = "out/animations",
           still: bool = False, scene_dir: Path | None = None, quiet: bool = False) -> Path:
    """Render scene `name`; return the path of the mp4 (or PNG with still=True).

    `out` is a folder (the file is named after the scene: out/attention.mp4) or a file
    name ending in .mp4 (.png with still=True), e.g. docs/figures/03-attention-animation.png.

    Raises FileNotFoundError (no scene file), ManimMissing, RuntimeError (manim failed).
    """
    path = scene_file(name, scene_dir)
    if not manim_installed():
        raise ManimMissing(f"manim is not installed (it is the optional `anim` extra); install it with:\n"
                           f"    {INSTALL_HINT}")
    _, scene, default_q = SCENES[name]
    quality = quality or default_q
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITIES)}")
    suffix = ".png" if still else ".mp4"
    out = Path(out)
    if out.suffix.lower() in (".png", ".mp4"):
        if out.suffix.lower() != suffix:
            raise ValueError(f"--out {out} ends in {out.suffix} but this renders a {suffix} "
                             f"({'--still' if still else 'a video'}); name it *{suffix}")
        out_dir, target = out.parent, out
    else:
        out_dir, target = out, out / f"{name}{suffix}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".manim-", dir=out_dir.resolve()) as media:
        cmd = manim_command(path, scene, quality, Path(media), still)
        if not quiet:
            print("running:", " ".join(cmd), flush=True)
        # subtle: manim shows progress bars on stderr; pass them through to the terminal unless
        # quiet (then keep the output for the error message instead).
        pipe = subprocess.PIPE if quiet else None
        proc = subprocess.run(cmd, stdout=pipe, stderr=subprocess.STDOUT if quiet else None, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout or "see manim's output above").strip().splitlines()[-15:])
            raise RuntimeError(f"manim failed (exit {proc.returncode}) rendering {scene} from {path}:\n{tail}")
        # manim names the file after the scene (a still also gets a version suffix): find it
        made = sorted(Path(media).rglob(f"{scene}*{suffix}"), key=lambda p: p.stat().st_mtime)
        made = [p for p in made if "partial_movie_files" not in p.parts]
        if not made:
            raise RuntimeError(f"manim exited 0 but wrote no {suffix} file for {scene} under {media}")
        shutil.move(str(made[-1]), target)
    return target


def run(args) -> int:
    start = time.perf_counter()
    try:
        target = render(args.scene, args.quality, args.out, still=args.still, scene_dir=args.scene_dir)
    except (ManimMissing, FileNotFoundError, ValueError) as err:  # nothing ran: a usage/setup error
        print(f"tinyllm render: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # manim ran and failed
        print(f"tinyllm render: {err}", file=sys.stderr)
        return 1
    size = target.stat().st_size
    print(f"wrote {target} ({size / 1e6:.2f} MB) in {time.perf_counter() - start:.0f} s")
    return 0


def add_subcommand(sub) -> None:
    r = sub.add_parser("render", help="render a Manim animation (attention, 3D positional encodings) to mp4",
                       description="Render one of the Manim scenes in animations/ with Manim Community "
                                   f"(optional: {INSTALL_HINT}).")
    r.add_argument("scene", choices=sorted(SCENES), help="attention: a query attending over keys, then the causal "
                   "mask; positional: sinusoidal encodings and RoPE in 3D")
    r.add_argument("--quality", choices=sorted(QUALITIES), default=None,
                   help="l=480p15, m=720p30, h=1080p60 (default: m for attention, l for positional)")
    r.add_argument("--out", default="out/animations", metavar="DIR|FILE",
                   help="a folder for SCENE.mp4 (SCENE.png with --still), or a file name ending in .mp4/.png "
                        "(default out/animations)")
    r.add_argument("--still", action="store_true", help="render only the last frame, as a PNG")
    r.add_argument("--scene-dir", default=None, type=Path, metavar="DIR",
                   help="folder holding the scene files (default: animations/ of the source checkout)")
    r.set_defaults(func=run)

"""The site hook that turns a poster linked to a video into a player (scripts/site_video.py), and the videos
the chapters link: each one there, small, and linked from its poster."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_hook():
    spec = importlib.util.spec_from_file_location("site_video", ROOT / "scripts" / "site_video.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_poster_linked_to_a_video_becomes_a_player_and_nothing_else_changes():
    hook = load_hook()
    page = ('<p><a href="../figures/a.mp4"><img alt="the animation" src="../figures/a.png" /></a></p>'
            '<p><a href="../figures/b.png"><img alt="a still" src="../figures/b.png" /></a></p>'
            '<p><a href="https://example.org/x.webm"><img src="p.png" alt="w"/></a></p>')
    out = hook.video_players(page)
    assert ('<video controls preload="none" playsinline poster="../figures/a.png" title="the animation"'
            in out)
    assert '<source src="../figures/a.mp4" type="video/mp4">' in out
    assert '<a href="../figures/a.mp4">the animation</a></video>' in out  # the fallback link
    assert '<a href="../figures/b.png"><img alt="a still" src="../figures/b.png" /></a>' in out  # not a video
    assert '<source src="https://example.org/x.webm" type="video/webm">' in out and 'poster="p.png"' in out
    assert hook.video_players("<p>no links</p>") == "<p>no links</p>"


def test_every_video_a_page_links_exists_is_small_and_has_a_poster():
    pages = [*ROOT.glob("docs/*.md"), ROOT / "README.md"]
    linked = re.compile(r"\[!\[[^\]]*\]\((?P<poster>[^)\s]+)\)\]\((?P<video>[^)\s]+\.(?:mp4|webm))\)")
    seen = 0
    for page in pages:
        for m in linked.finditer(page.read_text(encoding="utf-8")):
            seen += 1
            video, poster = page.parent / m.group("video"), page.parent / m.group("poster")
            assert video.is_file() and poster.is_file(), f"{page.name}: {m.group(0)}"
            assert video.stat().st_size <= 2 * 2**20, f"{video} is over 2 MiB: render it at --quality l"
    assert seen >= 2, "the chapters link the animations' videos from their posters"

"""A site hook (mkdocs.yml, ``hooks:``): a poster image that links to a video plays the video in the page.

The chapters are Markdown that reads the same on GitHub and on the site, so an animation is written as its
poster (a still frame) linking to its video:

    [![the attention animation](figures/03-attention-animation.png)](figures/03-attention.mp4)

MkDocs resolves and checks both paths (a missing file fails the strict build) and writes
``<a href="../figures/03-attention.mp4"><img alt="..." src="../figures/03-attention-animation.png" /></a>``.
On the site that link becomes a player in the page, with the same poster and a link as fallback:

    <video controls preload="none" poster="../figures/03-attention-animation.png" ...>

A raw ``<video>`` tag written in the Markdown would not do: MkDocs does not rewrite paths inside raw HTML,
and a page's URL (``03-attention/``) is one folder deeper than its file.
"""

from __future__ import annotations

import html
import re

VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}

# <a href="X.mp4"><img alt="A" src="P" /></a>, as Python-Markdown writes a linked image (attributes in any order)
_LINKED_POSTER = re.compile(
    r'<a href="(?P<video>[^"]+(?P<ext>\.mp4|\.webm))"(?P<link_attrs>[^>]*)>\s*<img(?P<img_attrs>[^>]*?)\s*/?>\s*</a>')
_ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')


def video_players(page_html: str) -> str:
    """Each poster image linked to an .mp4/.webm file, replaced by a <video> with that poster."""

    def player(m: re.Match) -> str:
        img = dict(_ATTR.findall(m.group("img_attrs")))
        if "src" not in img:
            return m.group(0)
        alt = img.get("alt", "")
        video, kind = m.group("video"), VIDEO_TYPES[m.group("ext").lower()]
        return (f'<video controls preload="none" playsinline poster="{img["src"]}" title="{alt}" '
                f'style="max-width:100%;height:auto">'
                f'<source src="{video}" type="{kind}">'
                f'<a href="{video}">{alt or html.escape(video)}</a></video>')

    return _LINKED_POSTER.sub(player, page_html)


def on_page_content(page_html: str, page, config, files) -> str:
    return video_players(page_html)

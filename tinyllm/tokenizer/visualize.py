"""The token visualizer: which chunk of a text became which token id.

A tokenizer cuts *bytes*, not characters: with byte-level BPE a token is any
byte string the merges built, so one character can be several tokens and a
token can end in the middle of a character. This file shows that cut three
ways, all from one ``TokenView``:

    view = visualize(tok, "Hello wörld")        # tok: any Tokenizer (BPETokenizer, CharTokenizer)
    print(view.to_terminal(color=False))        # the terminal (`tinyllm tokenize`, tinyllm/viz/tokens.py)
    view                                        # in Jupyter: _repr_html_, hover a token for its id and bytes
    view.to_html("tokens.html")                 # a standalone page
    plot_token_map([view])                      # a matplotlib figure (the docs' pictures)

Worked example with GPT-2's ranks (``BPETokenizer.gpt2()``; ``tinyllm tokenize "Hello wörld 😀" --no-color``)::

    [Hello][ w][ör][ld][ <0xF0><0x9F><0x98>][<0x80>]
    ids: [15496, 266, 30570, 335, 30325, 222]
    6 tokens, 17 bytes, 2.83 bytes/token (gpt2, vocab 50257)

"ö" is 2 bytes (C3 B6) and shares a token with "r"; "😀" is 4 bytes
(F0 9F 98 80) that GPT-2 cuts after the third, so neither token is a whole
character and each shows its bytes. How a token is shown (``token_label``):

* the bytes decode as UTF-8 where they can; a byte that is not part of a whole
  character is written ``<0xE2>``;
* control characters are escaped (``\\n``, ``\\t``, ``\\r``, else ``<0x1B>``),
  so a token never moves the cursor or injects a terminal escape code; a token
  that ends in a newline ends the line of spans after it.

Special tokens in the text (``<|endoftext|>``) are shown as the special token they
are (``allowed_special="all"``), in bold.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from pathlib import Path

# xterm 256-color codes of six pastel backgrounds; the HTML and the figure use the same colors.
_PALETTE = (153, 229, 157, 217, 183, 223)
_SPECIAL_COLOR = 250  # light grey
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def xterm_rgb(code: int) -> tuple[int, int, int]:
    """The RGB of an xterm 256-color code in the 6x6x6 cube (16..231) or the grey ramp (232..255).

    xterm_rgb(153) -> (175, 215, 255);  xterm_rgb(250) -> (188, 188, 188)
    """
    if 16 <= code <= 231:
        levels = (0, 95, 135, 175, 215, 255)
        c = code - 16
        return levels[c // 36], levels[(c // 6) % 6], levels[c % 6]
    if 232 <= code <= 255:
        v = 8 + 10 * (code - 232)
        return v, v, v
    raise ValueError(f"expected an xterm color code in 16..255, got {code}")


def _hex(code: int) -> str:
    return "#%02x%02x%02x" % xterm_rgb(code)


def token_label(data: bytes) -> str:
    """How a token's bytes are shown: UTF-8 where it decodes, <0xNN> for any other byte, controls escaped.

    token_label(b" w") -> " w";  token_label(b"\\xe2\\x82") -> "<0xE2><0x82>";  token_label(b"\\n\\n") -> "\\\\n\\\\n"
    """
    out, i = [], 0
    while i < len(data):
        try:
            text = data[i:].decode("utf-8")
            i = len(data)
        except UnicodeDecodeError as e:  # decode what is whole, then show the broken bytes one by one
            text = data[i:i + e.start].decode("utf-8")
            out.append(_escape_controls(text))
            out.append("".join(f"<0x{b:02X}>" for b in data[i + e.start:i + e.end]))
            i += e.end
            continue
        out.append(_escape_controls(text))
    return "".join(out)


def _escape_controls(text: str) -> str:
    # subtle: C0 controls, DEL and C1 controls (U+0080..U+009F) would move the cursor or start an
    # escape sequence in a terminal; every one is written out instead.
    return "".join(_ESCAPES.get(c) or (f"<0x{ord(c):02X}>" if ord(c) < 32 or 127 <= ord(c) < 160 else c)
                   for c in text)


@dataclass(frozen=True)
class TokenSpan:
    """One token of a text: its id, its bytes, and whether it is a special token."""

    id: int
    bytes: bytes
    special: bool = False

    @property
    def label(self) -> str:
        return token_label(self.bytes)

    @property
    def ends_line(self) -> bool:
        return self.bytes.endswith(b"\n")

    def describe(self) -> str:
        """The hover text: 'id 15496 | 5 bytes: 48 65 6c 6c 6f | Hello'."""
        kind = "special token, " if self.special else ""
        n = len(self.bytes)
        return f"id {self.id} | {kind}{n} byte{'s' * (n != 1)}: {self.bytes.hex(' ')} | {self.label}"


class TokenView:
    """A text cut into tokens: the spans, their ids, and ways to show them (terminal, HTML, figure)."""

    def __init__(self, tokens: list[TokenSpan], name: str = "tokenizer", vocab_size: int | None = None):
        self.tokens = list(tokens)
        self.name = name
        self.vocab_size = vocab_size

    @property
    def ids(self) -> list[int]:
        return [t.id for t in self.tokens]

    @property
    def n_bytes(self) -> int:
        return sum(len(t.bytes) for t in self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def summary(self) -> str:
        """'4 tokens, 12 bytes, 3.00 bytes/token (gpt2, vocab 50257)'."""
        n = len(self.tokens)
        rate = f"{self.n_bytes / n:.2f} bytes/token" if n else "no tokens"
        vocab = f", vocab {self.vocab_size}" if self.vocab_size is not None else ""
        nb = self.n_bytes
        return f"{n} token{'s' * (n != 1)}, {nb} byte{'s' * (nb != 1)}, {rate} ({self.name}{vocab})"

    # ---- terminal -------------------------------------------------------------------------
    def to_terminal(self, color: bool = True) -> str:
        """The spans (ANSI background colors, or [brackets] with color=False), the ids, the summary."""
        spans, ids = [], []
        for k, t in enumerate(self.tokens):
            if color:
                code = _SPECIAL_COLOR if t.special else _PALETTE[k % len(_PALETTE)]
                style = f"\x1b[{'1;' if t.special else ''}30;48;5;{code}m"
                spans.append(f"{style}{t.label}\x1b[0m")
                ids.append(f"{style}{t.id}\x1b[0m")
            else:
                spans.append(f"[{t.label}]")
                ids.append(str(t.id))
            if t.ends_line:
                spans.append("\n")
        sep = " " if color else ", "
        return f"{''.join(spans).rstrip(chr(10))}\nids: [{sep.join(ids)}]\n{self.summary()}"

    def __repr__(self) -> str:
        return f"TokenView({self.summary()})\n{self.to_terminal(color=False)}"

    # ---- HTML -----------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """Each token a <span> with its own background; hover (the title) shows id and bytes."""
        parts = []
        for k, t in enumerate(self.tokens):
            bg = _hex(_SPECIAL_COLOR if t.special else _PALETTE[k % len(_PALETTE)])
            weight = "font-weight:bold;" if t.special else ""
            parts.append(f'<span style="background:{bg};color:#000;{weight}border-radius:3px;padding:1px 0" '
                         f'title="{html.escape(t.describe(), quote=True)}">{html.escape(t.label, quote=False)}</span>')
            if t.ends_line:
                parts.append("<br>")
        ids = ", ".join(str(i) for i in self.ids)
        return ('<div class="tinyllm-tokens">'
                '<div style="font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;line-height:1.8">'
                + "".join(parts) + "</div>"
                f'<div style="color:#555;font-size:90%">{html.escape(self.summary())}</div>'
                f'<details><summary style="color:#555;font-size:90%">ids</summary><code>[{ids}]</code></details>'
                "</div>")

    def to_html(self, path) -> Path:
        """Write a standalone HTML page (UTF-8) with the spans, the ids and the summary; returns the path."""
        path = Path(path)
        title = html.escape(f"tokens: {self.summary()}")
        page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
                f'</head>\n<body style="max-width:60em;margin:2em auto;font-family:sans-serif">\n'
                f"<p>Hover a token to see its id and bytes (made by tinyllm).</p>\n{self._repr_html_()}\n"
                "</body>\n</html>\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        from tinyllm.serialization import write_atomic

        write_atomic(path, page.encode("utf-8"))
        return path

    # ---- figure ---------------------------------------------------------------------------
    def figure(self, title: str | None = None, **kwargs):
        """plot_token_map([self]) with this view's title."""
        return plot_token_map([self], titles=[title or self.name], **kwargs)


# ----------------------------------------------------------------------------- building a view

def visualize_ids(tok, ids) -> TokenView:
    """The view of a sequence of token ids (e.g. what a model generated) under tok, a Tokenizer (base.py).

    Each span holds tok.token_bytes(id); ids in tok.special_tokens are marked special.
    """
    try:
        specials, vocab_size, name = set(tok.special_tokens.values()), tok.vocab_size, tok.name
    except AttributeError as e:  # subtle: base.py imports this file, so the interface is used, not imported
        raise TypeError(f"expected a Tokenizer (BPETokenizer, CharTokenizer), got {type(tok).__name__} ({e})") from None
    tokens = []
    for i in ids:
        i = int(i)
        if not 0 <= i < vocab_size:
            raise ValueError(f"expected token ids in [0, vocab_size={vocab_size}), got {i}")
        tokens.append(TokenSpan(i, tok.token_bytes(i), i in specials))
    return TokenView(tokens, name=name, vocab_size=vocab_size)


def visualize(tok, text: str, allowed_special="all") -> TokenView:
    """Encode text with tok (special tokens in the text become special ids) and return its TokenView.

    visualize(BPETokenizer.gpt2(), "Hello world").ids -> [15496, 995]
    """
    if not isinstance(text, str):
        raise TypeError(f"expected text as str, got {type(text).__name__}")
    return visualize_ids(tok, tok.encode(text, allowed_special=allowed_special))


# ----------------------------------------------------------------------------- the figure

def plot_token_map(views, titles=None, width: int = 64, fontsize: float = 10.0, show_spaces: bool = True, path=None):
    """A matplotlib figure: each view's tokens as colored boxes (the chunk inside, the id below), wrapped
    at `width` characters, views stacked top to bottom; show_spaces draws a space as "␣" so that
    GPT-2's " world" (the space belongs to the word) is visible. Returns the Figure; saves it when path is given.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    views = list(views)
    titles = [v.name for v in views] if titles is None else list(titles)
    if len(titles) != len(views):
        raise ValueError(f"got {len(views)} views but {len(titles)} titles")
    row_h, gap = 2.2, 1.0  # in character heights: the box, the id under it; then space between views

    layout, y = [], 0.0  # (k-th token of its view, token, its label, x, y, w)
    title_at = []
    for v_idx, view in enumerate(views):
        title_at.append(y)
        y -= 1.4
        x = 0.0
        for k, t in enumerate(view.tokens):
            label = t.label.replace(" ", "\u2423") if show_spaces else t.label
            w = max(len(label), len(str(t.id)) * 0.75, 1) + 0.6
            if x > 0 and x + w > width:
                x, y = 0.0, y - row_h
            layout.append((k, t, label, x, y, w))
            x += w + 0.25
            if t.ends_line:
                x, y = 0.0, y - row_h
        y -= row_h + gap

    height = -y
    char_in = fontsize / 72 * 0.62  # the width of a monospace character, in inches
    fig = plt.figure(figsize=(max(4.0, (width + 1) * char_in), max(1.0, height * char_in * 1.75)))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(y + gap, 0.8)
    ax.axis("off")
    for v_idx, top in enumerate(title_at):
        ax.text(0, top, titles[v_idx], fontsize=fontsize, fontweight="bold", va="top", parse_math=False)
    for k, t, label, x, yy, w in layout:
        color = _hex(_SPECIAL_COLOR if t.special else _PALETTE[k % len(_PALETTE)])
        ax.add_patch(FancyBboxPatch((x, yy - 1.0), w, 1.0, boxstyle="round,pad=0,rounding_size=0.2",
                                    fc=color, ec="none"))
        # subtle: parse_math=False, or a "$" in the text would start matplotlib's mathtext
        ax.text(x + w / 2, yy - 0.5, label, ha="center", va="center", family="monospace",
                fontsize=fontsize, parse_math=False)
        ax.text(x + w / 2, yy - 1.45, str(t.id), ha="center", va="center", family="monospace",
                fontsize=fontsize * 0.62, color="#333", parse_math=False)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # a character the font lacks (an emoji) is drawn as a box: say nothing
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig

"""The token view (tinyllm/tokenizer/visualize.py): labels of partial UTF-8 and control bytes, HTML
escaping, the standalone page, the figure; and `tinyllm tokenize` (tinyllm/viz/tokens.py, run through
tinyllm.cli.main)."""

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from shared_data import data_file

from tinyllm.cli import main
from tinyllm.tokenizer import BPETokenizer, CharTokenizer
from tinyllm.tokenizer.visualize import TokenSpan, plot_token_map, token_label, visualize, visualize_ids, xterm_rgb
from tinyllm.viz.tokens import use_color

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TEXT = "Hello <b>world</b> & \"friends\" 'here'\nnew line €uro"


def gpt2_path() -> Path:
    return data_file("gpt2.tiktoken")


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXT * 20 + "<|eot|>", vocab_size=280, special_tokens=["<|eot|>"], progress=False)


def euro_splitter():
    """A vocabulary whose only merge is the first two bytes of '€' (E2 82 AC): every '€' is 2 partial tokens."""
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"\xe2\x82"] = 256
    return BPETokenizer(ranks, pattern=None)


class Spans(HTMLParser):
    """Collects (title, text) of every <span> in a page."""

    def __init__(self):
        super().__init__()
        self.spans, self._open = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self._open = [dict(attrs)["title"], ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(tuple(self._open))
            self._open = None


def parse_spans(page: str):
    p = Spans()
    p.feed(page)
    return p.spans


# ---------------------------------------------------------------------------- labels


def test_labels_decode_utf8_and_show_other_bytes_as_hex():
    assert token_label(b" world") == " world"
    assert token_label("ör".encode()) == "ör"
    assert token_label(b"\xe2\x82") == "<0xE2><0x82>"  # a character cut after 2 of its 3 bytes
    assert token_label(b"\xac") == "<0xAC>"
    assert token_label(b"a\xe2\x82") == "a<0xE2><0x82>"
    assert token_label(b"\xff\xfeab") == "<0xFF><0xFE>ab"
    assert token_label(b"\xf0\x9f\x98") == "<0xF0><0x9F><0x98>"
    assert token_label(b"") == ""


def test_control_characters_are_escaped_never_printed():
    assert token_label(b"\n\n") == "\\n\\n"
    assert token_label(b"\t\r") == "\\t\\r"
    assert token_label(b"\x1b[31m") == "<0x1B>[31m"  # no terminal escape sequence gets through
    assert token_label("\x7f\u0085".encode()) == "<0x7F><0x85>"
    labels = "".join(t.label for t in visualize(CharTokenizer.from_text("a\x1b\x00\n"), "a\x1b\x00\n").tokens)
    assert "\x1b" not in labels and "\x00" not in labels and "\n" not in labels


def test_xterm_colors():
    assert xterm_rgb(16) == (0, 0, 0) and xterm_rgb(231) == (255, 255, 255)
    assert xterm_rgb(153) == (175, 215, 255) and xterm_rgb(250) == (188, 188, 188)
    with pytest.raises(ValueError, match="16..255"):
        xterm_rgb(7)


# ---------------------------------------------------------------------------- views


def test_a_bpe_view_holds_the_encoding_and_its_bytes_rebuild_the_text(bpe):
    view = visualize(bpe, TEXT)
    assert view.ids == bpe.encode(TEXT)
    assert b"".join(t.bytes for t in view.tokens) == TEXT.encode()
    assert view.n_bytes == len(TEXT.encode()) and len(view) == len(view.ids)
    assert view.summary() == f"{len(view)} tokens, {view.n_bytes} bytes, {view.n_bytes / len(view):.2f} bytes/token " \
                             f"(tinyllm-bpe, vocab {bpe.vocab_size})"


def test_special_tokens_show_as_one_special_span(bpe):
    view = visualize(bpe, "hi<|eot|>")
    assert view.tokens[-1] == TokenSpan(bpe.special_tokens["<|eot|>"], b"<|eot|>", special=True)
    assert not any(t.special for t in view.tokens[:-1])
    with pytest.raises(ValueError, match="disallowed"):
        visualize(bpe, "hi<|eot|>", allowed_special=set())


def test_a_char_view_has_one_span_per_character():
    tok = CharTokenizer.from_text("hello wörld")
    view = visualize(tok, "wörld")
    assert [t.label for t in view.tokens] == list("wörld")
    assert view.ids == tok.encode("wörld") == tok.visualize("wörld").ids and view.name == "CharTokenizer"
    assert view.summary() == "5 tokens, 6 bytes, 1.20 bytes/token (CharTokenizer, vocab 9)"


def test_partial_utf8_tokens_render_as_their_bytes():
    view = visualize(euro_splitter(), "€1")
    assert view.ids == [256, 0xAC, ord("1")]
    assert [t.label for t in view.tokens] == ["<0xE2><0x82>", "<0xAC>", "1"]
    assert view.to_terminal(color=False).splitlines()[0] == "[<0xE2><0x82>][<0xAC>][1]"
    spans = parse_spans(view._repr_html_())
    assert [s[1] for s in spans] == ["<0xE2><0x82>", "<0xAC>", "1"]  # escaped, then read back by a parser
    assert spans[0][0] == "id 256 | 2 bytes: e2 82 | <0xE2><0x82>"


def test_visualize_ids_checks_its_ids(bpe):
    assert visualize_ids(bpe, bpe.encode("Hello")).ids == bpe.encode("Hello")
    with pytest.raises(ValueError, match=r"\[0, vocab_size=280\), got 280"):
        visualize_ids(bpe, [1, 280])
    with pytest.raises(TypeError, match=r"expected a Tokenizer \(BPETokenizer, CharTokenizer\), got object"):
        visualize_ids(object(), [1])
    with pytest.raises(TypeError, match="str"):
        visualize(bpe, b"bytes")


# ---------------------------------------------------------------------------- terminal and HTML


def test_terminal_spans_alternate_colors_and_lines_break_after_newline_tokens(bpe):
    view = visualize(bpe, "ab\ncd")
    plain = view.to_terminal(color=False)
    lines = plain.splitlines()
    assert "".join(re.findall(r"\[([^\]]*)\]", lines[0] + lines[1])) == "ab\\ncd"
    assert lines[0].endswith("\\n]") and lines[2] == f"ids: {view.ids}"
    colored = view.to_terminal(color=True)
    codes = re.findall(r"48;5;(\d+)m", colored.split("\nids:")[0])
    assert len(codes) == len(view) and all(a != b for a, b in zip(codes, codes[1:]))
    assert ANSI.sub("", colored.split("\nids:")[0]).replace("\n", "") == "".join(t.label for t in view.tokens)


def test_html_escapes_markup_and_quotes_in_text_and_titles(bpe):
    text = TEXT.replace("€", "E")  # whole characters only: each span reads back as its piece of the text
    view = visualize(bpe, text)
    page = view._repr_html_()
    assert "<b>" not in page and "</b>" not in page  # the text's markup is shown, not rendered
    assert "&lt;" in page and "&amp;" in page and "&quot;" in page  # the titles quote the chunk
    for title in re.findall(r'title="([^"]*)"', page):  # a raw quote would end the attribute early
        assert "<" not in title and ">" not in title
    spans = parse_spans(page)
    assert [s[1] for s in spans] == [t.label for t in view.tokens]
    assert [s[0] for s in spans] == [t.describe() for t in view.tokens]
    assert "".join(s[1] for s in spans) == text.replace("\n", "\\n")
    assert page.count("<br>") == text.count("\n")


def test_to_html_writes_a_page_with_every_token_id(tmp_path, bpe):
    view = visualize(bpe, TEXT + "<|eot|>")
    path = view.to_html(tmp_path / "sub" / "tokens.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    titles = [s[0] for s in parse_spans(page)]
    assert [int(re.match(r"id (\d+) \|", t).group(1)) for t in titles] == view.ids
    assert str(view.ids).replace(" ", "") in page.replace(" ", "")


def test_plot_token_map_draws_every_chunk_and_id(tmp_path, bpe):
    import matplotlib.pyplot as plt

    views = [visualize(bpe, "Hello world\n$5 & $x$"), visualize(CharTokenizer.from_text("Hi $"), "Hi $")]
    fig = plot_token_map(views, titles=["bpe", "char"], width=20, path=tmp_path / "map.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    plt.close(fig)
    assert texts[:2] == ["bpe", "char"]
    for view in views:
        for t in view.tokens:
            assert str(t.id) in texts and t.label.replace(" ", "\u2423") in texts
    assert (tmp_path / "map.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="2 views but 1 titles"):
        plot_token_map(views, titles=["one"])


# ---------------------------------------------------------------------------- the command line


def test_cli_with_a_saved_bpe_vocabulary(tmp_path, capsys, bpe):
    bpe.save(tmp_path / "tokenizer.tiktoken")
    for where in (tmp_path / "tokenizer.tiktoken", tmp_path):  # the file or its run folder
        assert main(["tokenize", "Hello world", "--vocab", str(where)]) == 0
        out = capsys.readouterr().out.splitlines()
        ids = bpe.encode("Hello world")
        assert out[1] == f"ids: {ids}" and "\x1b" not in out[0]  # not a terminal: brackets, no colors
        assert "".join(re.findall(r"\[([^\]]*)\]", out[0])) == "Hello world"
        assert out[2].startswith(f"{len(ids)} tokens, 11 bytes")


def test_cli_with_a_char_vocabulary_and_stdin(tmp_path, capsys, monkeypatch):
    CharTokenizer.from_text("abc\n").save(tmp_path / "tokenizer.json")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"cab\n"), encoding="utf-8"))
    assert main(["tokenize", "-", "--vocab", str(tmp_path / "tokenizer.json"), "--no-color"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["[c][a][b][\\n]", "ids: [3, 1, 2, 0]",
                       "4 tokens, 4 bytes, 1.00 bytes/token (CharTokenizer, vocab 4)"]


def test_cli_gpt2_ranks_and_the_docstring_example(capsys):
    path = gpt2_path()
    assert main(["tokenize", "Hello wörld 😀", "--gpt2-ranks", str(path), "--no-color"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "[Hello][ w][ör][ld][ <0xF0><0x9F><0x98>][<0x80>]",
        "ids: [15496, 266, 30570, 335, 30325, 222]",
        "6 tokens, 17 bytes, 2.83 bytes/token (gpt2, vocab 50257)",
    ]
    import tiktoken

    enc = BPETokenizer.gpt2(path).to_tiktoken()
    assert enc.encode("Hello wörld 😀") == [15496, 266, 30570, 335, 30325, 222]
    assert isinstance(enc, tiktoken.Encoding)


def test_cli_defaults_to_gpt2_from_the_data_dir(capsys):
    gpt2_path()
    assert main(["tokenize", "Hello world<|endoftext|>"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "ids: [15496, 995, 50256]"


def test_cli_writes_html(tmp_path, capsys, bpe):
    bpe.save(tmp_path / "tokenizer.tiktoken")
    html_path = tmp_path / "out.html"
    assert main(["tokenize", "a <tag> & more", "--vocab", str(tmp_path), "--html", str(html_path)]) == 0
    assert f"wrote {html_path}" in capsys.readouterr().out
    page = html_path.read_text(encoding="utf-8")
    assert "<tag>" not in page and "".join(s[1] for s in parse_spans(page)) == "a <tag> & more"


@pytest.mark.parametrize("argv, message", [
    (["tokenize", "x", "--vocab", "/no/such/tokenizer.tiktoken"], "no such file or folder"),
    (["tokenize", "x", "--gpt2-ranks", "/no/such/gpt2.tiktoken"], "no such file"),
])
def test_cli_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm tokenize: ") and message in err and "Traceback" not in err


def test_cli_without_a_tokenizer_says_what_to_pass(capsys, monkeypatch):
    monkeypatch.delenv("TINYLLM_DATA_DIR", raising=False)
    assert main(["tokenize", "x"]) == 2
    assert "pass --vocab FILE" in capsys.readouterr().err


def test_cli_reports_bad_files_and_unknown_characters(tmp_path, capsys, monkeypatch):
    CharTokenizer.from_text("abc").save(tmp_path / "tokenizer.json")
    assert main(["tokenize", "abz", "--vocab", str(tmp_path)]) == 2
    assert "'z' (U+007A) at position 2" in capsys.readouterr().err
    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not base64!! 0\n")
    assert main(["tokenize", "x", "--vocab", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("tinyllm tokenize: ")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ok \xff"), encoding="utf-8"))
    assert main(["tokenize", "-", "--vocab", str(tmp_path)]) == 2
    assert "not UTF-8: byte 0xFF at offset 3" in capsys.readouterr().err


def test_colors_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(False, Tty()) and not use_color(True, Tty()) and not use_color(False, io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(False, Tty())


def test_cli_a_tokenizer_file_missing_a_field_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "tokenizer.json").write_text('{"format": "tinyllm.char", "version": 1}')
    assert main(["tokenize", "ab", "--vocab", str(tmp_path / "tokenizer.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm tokenize: ") and "chars" in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_shows_at_most_max_tokens_and_says_how_many_were_left_out(tmp_path, capsys):
    from argparse import Namespace

    from tinyllm.viz.tokens import MAX_TOKENS, cut_view, tokenize_command

    CharTokenizer.from_text("ab").save(tmp_path / "tokenizer.json")
    text = "ab" * 5000  # 10,000 tokens
    args = Namespace(text=text, vocab=str(tmp_path), gpt2_ranks=None, no_color=True, html=str(tmp_path / "t.html"))
    assert tokenize_command(args) == 0  # without the flags in args: the defaults
    out = capsys.readouterr().out.splitlines()
    assert out[0].count("[") == MAX_TOKENS and out[1].count(",") == MAX_TOKENS - 1
    assert "shown: tokens 0..1,999 of 10,000 (8,000 tokens left out; choose others with --start-token" in out[2]
    page = (tmp_path / "t.html").read_text(encoding="utf-8")
    assert len(parse_spans(page)) == MAX_TOKENS and "8,000 tokens left out" in page and len(page) < 1_000_000
    args.max_tokens, args.start_token = 3, 9998  # the last two: 2 shown, 9,998 left out
    assert tokenize_command(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[a][b]" and "tokens 9,998..9,999 of 10,000 (9,998 tokens left out" in out[2]
    args.max_tokens, args.start_token = 0, 0  # 0: everything, and no note
    assert tokenize_command(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].count("[") == 10_000 and "left out" not in out[2]
    tok = CharTokenizer.from_text("ab")
    assert "left out" not in cut_view(tok, [0, 1], max_tokens=2).summary()
    for bad, message in ((dict(max_tokens=-1), "--max-tokens must be an integer >= 0"),
                         (dict(start_token=5), "--start-token 5 is past the end: the text has 2 tokens")):
        with pytest.raises(ValueError, match=message):
            cut_view(tok, [0, 1], **bad)
    args.start_token = 10_000
    assert tokenize_command(args) == 2
    err = capsys.readouterr().err
    assert err == "tinyllm tokenize: --start-token 10000 is past the end: the text has 10,000 tokens\n"

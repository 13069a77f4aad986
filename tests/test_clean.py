"""tinyllm.data.clean and quality: each normalization step, each Gopher rule on a document made to break
it, the report, corpus files (documents.py) and the `tinyllm clean` command."""

import json

import pytest

from tinyllm.data import clean, quality
from tinyllm.data.documents import DocumentWriter, read_documents
from tinyllm.data.registry import DataError

PROSE = ("The river ran past the old mill and into the town, where children played on its banks every summer. "
         "Nobody remembered who had built the bridge, but everyone agreed that it was older than the church. "
         "In the spring of that year a storm broke two of its stones, and the mayor asked the people to help "
         "with the repairs. They carried rocks from the hills, mixed mortar in buckets, and worked until dark. "
         "When the bridge was finished, the whole town had a party with music and bread and cold cider.")


def test_the_normalization_steps():
    assert clean.normalize_newlines("a\r\nb\rc\u2028d\u0085e") == "a\nb\nc\nd\ne"
    assert clean.nfkc("ﬁne Ｔｅｘｔ\u00a0x") == "fine Text x"
    assert clean.remove_invisible("a\u200bb\ufeffc\u00add\x07e\tf\ng") == "abcde\tf\ng"
    assert clean.remove_invisible("👨\u200d👩 \u200c") == "👨\u200d👩 \u200c"  # ZWJ, ZWNJ kept
    assert clean.normalize_whitespace("  a \t b  \n\n\n\n c \u3000 d \n") == "a b\n\nc d"
    assert clean.normalize("ﬁne\u200b  text\r\n\r\n\r\nnext\t line ") == "fine text\n\nnext line"  # docstring


def test_the_worked_example_and_the_prose_passes():
    doc = quality.Doc("a b c a b c")
    assert quality.dup_ngram_chars(doc, 3) == 1.0
    assert quality.top_ngram_chars(doc, 2) == pytest.approx(4 / 6)
    assert quality.top_ngram_chars(quality.Doc("a b c d"), 2) == 0.0  # nothing repeats
    assert quality.first_failure(clean.default_rules(), PROSE) is None
    assert quality.Doc("“Hello,” she said — twice.").words == ["Hello", "she", "said", "twice"]


BREAKERS = {  # a document made to break each rule (and the value it should measure beyond the threshold)
    "min_chars": "",
    "max_chars": PROSE * 3000,
    "script": "Это совсем другой текст, написанный кириллицей, и в нём нет латинских букв вообще. " * 5,
    "min_words": "The river ran past the old mill and into the town.",
    "max_words": " ".join(f"the word{i} and" for i in range(40_000)),
    "min_mean_word": "a to be of it an is the and by at on " * 6,
    "max_mean_word": "the incomprehensibilities and characteristically extraordinary " * 20,
    "symbol_ratio": PROSE + " #tag #more #news #now #hash #a #b #c #d #e #f #g",
    "bullet_lines": "\n".join(f"- item {i} with the thing and that" for i in range(60)),
    "ellipsis_lines": "\n".join(f"line {i} of the long story goes on and on with that and more words..."
                                 for i in range(20)),
    "alpha_words": PROSE + " " + " ".join(str(i) for i in range(400)),
    "stop_words": " ".join(f"word{i}" for i in range(60)),
    "dup_lines": PROSE + "\n" + "\n".join(["Click here to subscribe."] * 10),
    "dup_line_chars": PROSE.replace(". ", ".\n") + "\n" + "\n".join([PROSE[:300]] * 3),
}


@pytest.mark.parametrize("name", list(BREAKERS))
def test_each_rule_removes_the_document_made_to_break_it(name):
    rules = clean.default_rules(max_chars=1_000_000 if name == "max_chars" else 10**9)
    failure = quality.first_failure(rules, clean.normalize(BREAKERS[name]))
    assert failure is not None and failure[0].name == name, (name, failure and failure[0].name)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 8, 9, 10])
def test_the_ngram_repetition_rules(n):
    repeated = " ".join(["the cat and the dog went home"] * 12)
    top, dup = quality.top_ngram_chars(quality.Doc(repeated), n), quality.dup_ngram_chars(quality.Doc(repeated), n)
    assert dup == 1.0 and top > 0.1
    assert quality.dup_ngram_chars(quality.Doc(PROSE), n) <= (0.15 if n == 2 else 0.05)
    names = {r.name for r in quality.GOPHER_RULES}
    assert (f"top_{n}gram" in names) == (n <= 4) and (f"dup_{n}gram" in names) == (n >= 5)


def test_paragraph_rules_and_thresholds():
    para = PROSE + "\n\n" + "\n\n".join(["The same paragraph again and again."] * 4)
    doc = quality.Doc(para)
    assert quality.dup_paragraphs(doc) == pytest.approx(3 / 5)
    structure = tuple(r for r in quality.GOPHER_RULES if r.name.startswith("dup_") and "gram" not in r.name)
    rules = quality.with_thresholds(structure, {"dup_paragraphs": 0.7, "dup_lines": 0.7,
                                                "dup_line_chars": 0.5, "dup_paragraph_chars": 0.5})
    assert quality.first_failure(quality.GOPHER_RULES, para)[0].name == "dup_lines"
    assert quality.first_failure(rules, para) is None
    with pytest.raises(ValueError, match="unknown rule min_word.*min_words"):
        quality.with_thresholds(quality.GOPHER_RULES, {"min_word": 3})
    with pytest.raises(ValueError, match="unknown Unicode script 'Klingon'"):
        clean.default_rules(scripts=("Klingon",))
    assert [r.name for r in clean.default_rules(scripts=None, gopher=False)] == ["min_chars", "max_chars"]
    assert clean.script_share(("Greek", "Latin"))(quality.Doc("abc αβγ 123")) == 1.0
    assert clean.script_share()(quality.Doc("abc αβγ")) == 0.5


def test_clean_reports_each_rule_with_examples():
    texts = [PROSE, "too short", PROSE.replace("The", "The\u200b"), "", BREAKERS["stop_words"]] * 2
    kept, report = clean.clean(texts)
    assert kept == [PROSE] * 4 and report.documents == 10 and report.kept == 4
    assert report.removed == {"min_chars": 2, "min_words": 2, "stop_words": 2}
    assert report.changed["invisible"] == 2 and report.changed["nfkc"] == 0
    assert report.examples["min_words"] == [(2, "too short"), (2, "too short")]
    summary = report.summary()
    assert "10 documents -> 4 kept" in summary and "removed by stop_words >= 2" in summary


def test_documents_round_trip_and_errors(tmp_path):
    p = tmp_path / "two.txt"
    p.write_text("\ufefffirst doc\r\nstill first\n\n\n\nsecond doc\n")
    assert [r["text"] for r in read_documents(p)] == ["first doc\nstill first", "second doc"]
    with DocumentWriter(tmp_path / "o.txt") as w:
        w.write({"text": "a\n\nb"})  # a blank line inside would split it: dropped
        w.write({"text": "c"})
    assert (tmp_path / "o.txt").read_text() == "a\nb\n\nc\n"
    j = tmp_path / "d.jsonl"
    j.write_text('{"text": "x", "id": 1}\n\n{"body": "y"}\n')
    with pytest.raises(DataError, match=r"line 3: expected a JSON object with a string field 'text'"):
        list(read_documents(j))
    j.write_text('{"body": "y", "text": 3}\n')
    assert list(read_documents(j, field="body")) == [{"body": "y", "text": 3}]
    j.write_text('{"text": "x"\n')
    with pytest.raises(DataError, match="line 1: not JSON"):
        list(read_documents(j))
    (tmp_path / "bin.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="not UTF-8 text"):
        list(read_documents(tmp_path / "bin.txt"))
    with pytest.raises(DataError, match="no corpus file"):
        list(read_documents(tmp_path / "missing.txt"))
    with pytest.raises(ValueError):
        with DocumentWriter(tmp_path / "never.txt") as w:
            w.write({"text": "a"})
            raise ValueError("interrupted")
    assert not (tmp_path / "never.txt").exists() and not list(tmp_path.glob(".never*"))


def test_clean_file_keeps_the_other_fields(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t, "url": f"u{i}"}) + "\n"
                           for i, t in enumerate([PROSE + "\u200b", "short", PROSE])))
    report = clean.clean_file(src, tmp_path / "out.jsonl")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out == [{"id": 0, "text": PROSE, "url": "u0"}, {"id": 2, "text": PROSE, "url": "u2"}]
    assert report.kept == 2 and report.removed == {"min_words": 1}


def test_the_clean_command(tmp_path, capsys):
    from tinyllm.cli import main

    src, out = tmp_path / "c.txt", tmp_path / "o.txt"
    src.write_text(f"{PROSE}\n\nshort one\n\n{BREAKERS['stop_words']}\n")
    assert main(["clean", str(src), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 documents -> 1 kept" in printed and "removed by min_words" in printed
    assert out.read_text() == PROSE + "\n"
    assert main(["clean", str(src), str(out), "--force", "--set", "min_words=2", "--set", "stop_words=0"]) == 0
    assert out.read_text().count("\n\n") == 2
    assert main(["clean", str(src), str(out), "--force", "--no-gopher"]) == 0
    assert out.read_text().count("\n\n") == 2
    for argv in (["--set", "min_wrds=2"], ["--scripts", "Klingon"], ["--min-script", "x"]):
        if argv[0] == "--min-script":  # argparse's own refusal: usage and one error line, status 2
            with pytest.raises(SystemExit, match="2"):
                main(["clean", str(src), str(tmp_path / "x.txt"), *argv])
        else:
            assert main(["clean", str(src), str(tmp_path / "x.txt"), *argv]) == 2
            err = capsys.readouterr().err
            assert err.startswith("tinyllm clean: ") and err.count("\n") == 1, err
    assert not (tmp_path / "x.txt").exists()
    assert main(["clean", str(src), str(out)]) == 2 and "--force" in capsys.readouterr().err


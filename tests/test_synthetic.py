"""tinyllm.data.synthetic: the stories corpus unchanged by its knobs' defaults, the knobs themselves, the
verifiable tasks checked by solvers that read only the prompt, self-instruct's filters and provenance (a
scripted sampler and a real GPT), and `tinyllm synth`."""

import hashlib
import json

import numpy as np
import pytest

from tinyllm.data import generate_stories, load_text, stories
from tinyllm.data.synthetic import self_instruct as si
from tinyllm.data.synthetic import verifiable as vf
from tinyllm.data.synthetic.stories import FULL

# sha256 of the default corpus as it was before it moved to tinyllm/data/synthetic/: the README's job trains on it
STORIES_SHA256 = "200e46e8c9dde2e2ee67440a856b8e340a2d6499d67989bef8cb019fc9776a52"


def test_the_default_stories_corpus_is_unchanged():
    assert hashlib.sha256(load_text("stories").encode()).hexdigest() == STORIES_SHA256
    assert generate_stories(1000, 0, vocabulary=1.0, arcs=1) == generate_stories()
    assert stories.__name__ == "tinyllm.data.synthetic.stories"  # tinyllm.data.stories still names the module


def test_the_vocabulary_and_length_knobs():
    def distinct(text):
        return len(set(text.replace(".", " ").replace(",", " ").split()))

    full, small = generate_stories(300, seed=2), generate_stories(300, seed=2, vocabulary=0.2)
    assert distinct(small) < 0.8 * distinct(full)
    assert {"Oscar", "Noah", "Nell", "Lucy"}.isdisjoint(small.split()) and "Lily" in small
    long = generate_stories(300, seed=2, arcs=3)
    assert 2.2 < len(long) / len(full) < 3.5
    assert long.count("\n\n") == full.count("\n\n") == 299 and "{" not in long
    assert len(FULL.shrink(0.01).names_girl) == 2 and len(FULL.shrink(0.01).places) == 1
    for bad in (dict(vocabulary=0), dict(vocabulary=1.5), dict(arcs=0), dict(arcs=1.5)):
        with pytest.raises(ValueError):
            generate_stories(3, **bad)


@pytest.mark.parametrize("task", vf.TASKS)
@pytest.mark.parametrize("difficulty", vf.DIFFICULTIES)
def test_verifiable_records_check_against_their_prompts(task, difficulty):
    records = vf.generate(task, 60, seed=3, difficulty=difficulty)
    assert records == vf.generate(task, 60, seed=3, difficulty=difficulty)
    assert records != vf.generate(task, 60, seed=4, difficulty=difficulty)
    assert len({r["prompt"] for r in records}) > 50
    for i, r in enumerate(records):
        assert r["prompt"].endswith("\n") and r["response"] == r["answer"] + "\n"
        assert r["provenance"] == {"generator": "verifiable", "task": task, "seed": 3, "index": i,
                                   "difficulty": difficulty}
        assert vf.check(r, r["response"] + "more") and not vf.check(r, r["answer"] + "0")
        assert vf.task_of(r["prompt"]) == task and vf.verify(r["prompt"], r["response"]) is True
        assert vf.verify(r["prompt"], "not " + r["answer"]) is False


def test_verify_knows_only_the_templates():
    assert vf.verify("Calcte: 3 + 2alcularo", "5") is None           # a model's garbled prompt: no template
    assert vf.verify("Sort in in descending order: 9, 30", "30, 9") is None
    assert vf.verify("What is 3 + 4?", "7") is True and vf.verify("What is 3 + 4?", "8") is False
    assert vf.verify("Facts: Ada lives in Oslo. Question: Where does Bo live?", "Oslo") is False  # unanswerable
    assert vf.task_of("What is 3 + 4") is None and vf.task_of("12 * 3 =") == "arithmetic"


def test_the_solvers_on_worked_examples():
    assert vf.solve("arithmetic", "What is 7 + 3 * 2?") == "13"
    assert vf.solve("arithmetic", "Compute 12 - 30 * 2 - 1.") == "-49"
    assert vf.solve("arithmetic", "5 * 0 =") == "0"
    assert vf.solve("sorting", "Sort in ascending order: 42, 7, 19") == "7, 19, 42"
    assert vf.solve("sorting", "Sort in descending order: 42, 7, 19") == "42, 19, 7"
    assert vf.solve("sorting", "Sort alphabetically: pear, apple, fig") == "apple, fig, pear"
    facts = "Facts: Mira lives in Oslo. Ada has a cat. Ada lives in Lima. Mira works as a pilot. Question: "
    assert vf.solve("qa", facts + "Where does Ada live?") == "Lima"
    assert vf.solve("qa", facts + "What does the person who lives in Oslo work as?") == "pilot"
    assert vf.solve("qa", facts + "What pet does the person who lives in Lima have?") == "cat"
    with pytest.raises(ValueError, match="do not say"):
        vf.solve("qa", facts + "What pet does Mira have?")
    for bad in ("What is 2 ** 3?", "Compute __import__('os').", "What is 1 / 2?"):
        with pytest.raises((ValueError, SyntaxError)):
            vf.solve("arithmetic", bad)
    with pytest.raises(ValueError, match="unknown task"):
        vf.generate("poetry", 1)
    kinds = {r["prompt"].split(" Question: ")[1].split(" the person")[0] for r in vf.generate("qa", 200, difficulty=2)}
    assert {"What pet does", "What does"} <= kinds  # two-hop questions appear from difficulty 2


SEEDS = [{"prompt": "add: 1+2\n", "response": "3\n"}, {"prompt": "reverse: cat\n", "response": "tac\n"},
         {"prompt": "sort: dcba\n", "response": "abcd\n"}]


class Scripted:
    """A sampler that answers from a script: stage 1 prompts end with a response line, stage 2 with a prompt."""

    name = "scripted"
    knobs = {"temperature": 1.0}

    def __init__(self, pairs):
        self.pairs, self.i, self.calls = list(pairs), 0, 0

    def __call__(self, prompts, max_new_tokens, rng, stop="\n"):
        self.calls += 1
        out = []
        for k in range(len(prompts)):
            p, r = self.pairs[(self.i + k) % len(self.pairs)]
            out.append(p if self.calls % 2 else r)
        if self.calls % 2 == 0:
            self.i += len(prompts)
        return out


def test_self_instruct_filters_provenance_and_dedup():
    script = [(("count: hello world", True), ("10", True)),            # kept
              (("add: 1+2", True), ("three", True)),                   # a demo's prompt
              (("upper: abc", False), ("ABC", True)),                  # the prompt ran out of tokens
              (("", True), ("x", True)),                               # too short
              (("echo", True), ("echo", True)),                        # response == prompt
              (("go go go go go", True), ("ok", True)),                # a loop
              (("count: hello world", True), ("10", True)),            # the same as the first: novel
              (("reverse: dog", True), ("god", True))]                 # kept
    records, report = si.self_instruct(Scripted(script), SEEDS, n=2, seed=1, batch=8, max_rounds=1)
    assert [r["prompt"] for r in records] == ["count: hello world\n", "reverse: dog\n"]
    assert report.generated == 8 and report.kept == 2
    assert report.removed["complete"] == 1 and report.removed["length"] == 1 and report.removed["repetition"] == 1
    assert report.removed["not_copy"] == 2 and report.removed["novel"] == 1
    prov = records[0]["provenance"]
    assert prov["generator"] == "self-instruct" and prov["model"] == "scripted" and prov["seed"] == 1
    assert prov["round"] == 0 and len(prov["demos"]) == 3 and prov["temperature"] == 1.0 and prov["score"] is None
    # a scorer (the reward model's place) removes what it scores low
    records, report = si.self_instruct(Scripted(script), SEEDS, n=5, batch=8, max_rounds=1,
                                       score=lambda p, r: -1.0 if "dog" in p else 1.0, min_score=0.0)
    assert [r["prompt"] for r in records] == ["count: hello world\n"] and report.removed["score"] == 1
    assert records[0]["provenance"]["score"] == 1.0 and "candidates" in report.summary()
    # a verifier keeps only what it can check: no prompt of the script follows a template (the second
    # "count: hello world" is no longer a near-copy of a kept one, so it reaches the verifier too)
    records, report = si.self_instruct(Scripted(script), SEEDS, n=5, batch=8, max_rounds=1, verify=vf.verify)
    assert records == [] and report.removed["verify"] == 3
    arithmetic = [(("What is 12 + 30?", True), ("42", True)), (("What is 20 * 3?", True), ("61", True))]
    records, report = si.self_instruct(Scripted(arithmetic), SEEDS, n=5, batch=2, max_rounds=1, verify=vf.verify)
    assert [r["prompt"] for r in records] == ["What is 12 + 30?\n"] and report.removed["verify"] == 1
    with pytest.raises(ValueError, match="seed records"):
        si.self_instruct(Scripted(script), [], n=1)
    with pytest.raises(ValueError, match="'prompt' and 'response'"):
        si.self_instruct(Scripted(script), [{"text": "x"}], n=1)


@pytest.fixture(scope="module")
def tiny_model():
    import tinyllm
    from tinyllm.nn.config import GPTConfig
    from tinyllm.nn.gpt import GPT
    from tinyllm.tokenizer import CharTokenizer

    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz0123456789 :+\n")
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, d_model=16, context_length=32))
    return model.eval(), tok


def test_the_model_sampler_and_samples(tiny_model):
    model, tok = tiny_model
    sampler = si.ModelSampler(model, tok, temperature=1.0, batch_size=2, name="tiny")
    prompts = ["ab", "abc", "xy", "add: 1+2\n3\n" * 5]  # lengths 2, 3, 2 and one longer than the context
    a = sampler(prompts, 12, np.random.default_rng(0))
    assert a == sampler(prompts, 12, np.random.default_rng(0)) and len(a) == 4
    for text, stopped in a:
        assert "\n" not in text and (stopped or len(tok.encode(text)) == 12)
    whole = sampler(prompts, 12, np.random.default_rng(0), stop=None)
    assert all(len(tok.encode(t)) == 12 for t, _ in whole)
    with pytest.raises(ValueError, match="no room"):
        sampler(prompts, 32, np.random.default_rng(0))
    docs = si.sample_documents(sampler, ["ab", "cd"], 3, 10, seed=5)
    assert [d["text"][:2] for d in docs] == ["ab", "cd", "ab"] and all(len(d["text"]) == 12 for d in docs)
    assert docs[2]["provenance"] == {"generator": "model-samples", "model": "tiny", "seed": 5, "index": 2,
                                     "prompt_chars": 2, "temperature": 1.0, "top_k": None}
    records, report = si.self_instruct(sampler, SEEDS, n=2, batch=4, max_rounds=2, max_new_tokens=8)
    assert report.generated == 8 and len(records) == report.kept <= 2  # a random model rarely passes


def test_the_synth_command(tmp_path, capsys):
    from tinyllm.cli import main

    out = tmp_path / "s.jsonl"
    assert main(["synth", "stories", "--n", "5", "--out", str(out), "--seed", "0"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert "\n\n".join(r["text"] for r in records) + "\n" == generate_stories(5, 0)
    assert records[4]["provenance"] == {"generator": "stories", "seed": 0, "vocabulary": 1.0, "arcs": 1, "index": 4}
    assert main(["synth", "qa", "--n", "4", "--out", str(out)]) == 2 and "--force" in capsys.readouterr().err
    assert main(["synth", "qa", "--n", "4", "--out", str(out), "--force", "--difficulty", "2", "--seed", "9"]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == vf.generate("qa", 4, 9, 2)
    for argv in (["self-instruct", "--n", "2"], ["samples", "--n", "2"], ["stories", "--n", "0"],
                 ["stories", "--n", "2", "--vocabulary", "2"]):
        assert main(["synth", *argv, "--out", str(tmp_path / "x.jsonl")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinyllm synth: ") and err.count("\n") == 1
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_synth_from_a_trained_run(tmp_path, capsys):
    from tinyllm.cli import main

    run = tmp_path / "run"
    text = "".join(r["prompt"] + r["response"] for task in vf.TASKS for r in vf.generate(task, 100))
    (tmp_path / "corpus.txt").write_text(text)  # every character of the default seed records
    assert main(["train", "--out", str(run), "--data", str(tmp_path / "corpus.txt"), "--n-layer", "1", "--n-head",
                 "2", "--d-model", "16", "--context-length", "64", "--batch-size", "4", "--max-iters", "3",
                 "--eval-interval", "3", "--eval-iters", "1", "--sample-tokens", "0", "--no-progress"]) == 0
    out = tmp_path / "si.jsonl"
    assert main(["synth", "self-instruct", "--ckpt", str(run), "--n", "3", "--out", str(out),
                 "--max-new-tokens", "12"]) == 0
    assert "candidates ->" in capsys.readouterr().out and out.exists()
    (tmp_path / "p.txt").write_text("What is\nSort\n")
    assert main(["synth", "samples", "--ckpt", str(run), "--n", "3", "--out", str(out), "--force",
                 "--prompts", str(tmp_path / "p.txt"), "--max-new-tokens", "20"]) == 0
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["text"][:4] for d in docs] == ["What", "Sort", "What"] and docs[0]["provenance"]["model"] == str(run)

"""The sampling dashboard: its JSON endpoint against sampling.filter_logits, bad input, the CLI, a real browser.

The browser test drives Debian's chromium (/usr/bin/chromium) through
Playwright's Python API and skips with the reason when either is missing
(pip install playwright; apt-get install chromium; never `playwright install`).
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm.data import CharTokenizer, save_tokenizer
from tinyllm.inference.sampling import entropy, filter_logits, softmax
from tinyllm.nn import GPT, GPTConfig
from tinyllm.viz.dashboard.report import BadRequest, parse_knobs
from tinyllm.viz.dashboard.server import serve

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TEXT = "to be, or not to be: that is the question.\nwhether 'tis nobler in the mind to suffer\n"


@pytest.fixture(scope="module")
def tiny():
    """A 1-layer char model with large random weights, so its next-token distributions are far from uniform."""
    tok = CharTokenizer.from_text(TEXT)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=32, n_layer=1, n_head=2, d_model=32))
    rng = np.random.default_rng(0)
    for p in model.parameters():  # a tied lm_head is wte: set once
        p.data[...] = tinyllm.tensor(rng.normal(0.0, 0.6, p.shape).astype(np.float32), device=p.device).data
    return model.eval(), tok


@pytest.fixture(scope="module")
def server(tiny):
    s = serve(*tiny)
    yield s
    s.stop()


def get(server, **params):
    """(status, JSON body) of GET /api/next with these parameters."""
    try:
        with urllib.request.urlopen(server.url + "api/next?" + urllib.parse.urlencode(params), timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def direct(tiny, prompt, temperature=1.0, top_k=None, top_p=None, min_p=None):
    model, tok = tiny
    z = model.next_token_logits(np.asarray([tok.encode(prompt)[-32:]]))[0].astype(np.float64)
    return z, filter_logits(z, temperature=temperature), filter_logits(z, temperature, top_k, top_p, min_p)


# ---------------------------------------------------------------------------- the endpoint


@pytest.mark.parametrize("knobs", [dict(), dict(temperature=0.5), dict(top_k=3), dict(top_p=0.8),
                                   dict(min_p=0.2), dict(temperature=1.7, top_k=10, top_p=0.9, min_p=0.05),
                                   dict(temperature=0.0)])
def test_numbers_match_filter_logits(tiny, server, knobs):
    status, r = get(server, prompt="to be, or not", n_samples=0, n_top=100, **knobs)
    assert status == 200, r
    z, before, after = direct(tiny, "to be, or not", **knobs)
    kept = np.isfinite(after)
    assert r["kept_tokens"] == kept.sum() and r["vocab_size"] == len(z)
    np.testing.assert_allclose(r["kept_mass"], softmax(before)[kept].sum(), rtol=1e-12)
    np.testing.assert_allclose([r["entropy_model"], r["entropy_before"], r["entropy_after"]],
                               [entropy(z), entropy(before), entropy(after)], rtol=1e-12, atol=1e-15)
    ids = [t["id"] for t in r["top"]]
    assert ids == np.argsort(-z, kind="stable").tolist()  # every token, most likely first
    np.testing.assert_allclose([t["p_after"] for t in r["top"]], softmax(after)[ids], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose([t["p_before"] for t in r["top"]], softmax(before)[ids], rtol=1e-12, atol=1e-300)
    assert [t["kept"] for t in r["top"]] == kept[ids].tolist()


def test_the_knobs_do_what_the_math_says(server):
    _, plain = get(server, prompt="the qu", n_samples=0)
    assert 0.3 < plain["entropy_model"] < np.log(plain["vocab_size"]) - 0.3  # neither peaked nor uniform
    _, k1 = get(server, prompt="the qu", top_k=1, n_samples=0)
    assert k1["kept_tokens"] == 1 and k1["entropy_after"] == 0.0
    assert k1["kept_mass"] == pytest.approx(plain["top"][0]["p_before"], rel=1e-12)
    _, p9 = get(server, prompt="the qu", top_p=0.9, n_samples=0, n_top=100)
    kept = sorted((t["p_before"] for t in p9["top"] if t["kept"]), reverse=True)
    assert p9["kept_mass"] >= 0.9 > sum(kept[:-1])  # the fewest tokens that reach p
    _, cold = get(server, prompt="the qu", temperature=0.3, n_samples=0)
    assert cold["entropy_before"] < plain["entropy_model"]
    _, greedy = get(server, prompt="the qu", temperature=0, n_samples=3, max_new_tokens=12)
    assert len(set(greedy["samples"])) == 1 and greedy["kept_mass"] == 1.0
    assert greedy["samples"][0][0] == plain["greedy"].replace("␣", " ")


def test_samples_are_seeded_and_equal_generate(tiny, server):
    model, tok = tiny
    knobs = dict(temperature=0.9, top_p=0.95, n_samples=2, max_new_tokens=15, seed=3)
    _, a = get(server, prompt="whether", **knobs)
    _, b = get(server, prompt="whether", **knobs)
    assert a["samples"] == b["samples"] and len(a["samples"]) == 2
    ids = np.asarray([tok.encode("whether")] * 2)
    out = model.generate(ids, 15, temperature=0.9, top_p=0.95, seed=3)
    assert a["samples"] == [tok.decode(row[7:].tolist()) for row in out]


@pytest.mark.parametrize("params, message", [
    (dict(prompt=""), "the prompt is empty"),
    (dict(prompt="to ΩΩ"), r"character 'Ω' \(U\+03A9\) at position 3 is not in this tokenizer's vocabulary"),
    (dict(prompt="to", temperature=-1), "temperature must be a finite number >= 0"),
    (dict(prompt="to", temperature="nan"), "temperature must be a finite number"),
    (dict(prompt="to", top_k=0), "top_k must be None or an integer >= 1"),
    (dict(prompt="to", top_k="many"), "top_k must be an integer"),
    (dict(prompt="to", top_p=1.5), r"top_p must be None or a number in \(0, 1\]"),
    (dict(prompt="to", min_p=-0.5), r"min_p must be None or a number in \[0, 1\]"),
    (dict(prompt="to", n_samples=99), r"n_samples must be an integer in \[0, 8\]"),
    (dict(prompt="to", max_new_tokens=0), r"max_new_tokens must be an integer in \[1, 200\]"),
    (dict(prompt="x" * 5000), "at most 4000"),
])
def test_bad_input_is_a_400_with_a_message(server, params, message):
    status, r = get(server, **params)
    assert status == 400
    import re
    assert re.search(message, r["error"]), r["error"]
    assert get(server, prompt="to", n_samples=0)[0] == 200  # and the server keeps serving


def test_post_json_and_unknown_paths(server):
    def post(body, path="api/next"):
        req = urllib.request.Request(server.url + path, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    status, r = post(json.dumps(dict(prompt="to be", top_k=2, n_samples=0)).encode())
    assert status == 200 and r["kept_tokens"] == 2
    assert post(b"{not json")[0] == 400 and "not JSON" in post(b"{not json")[1]["error"]
    assert post(b"[1, 2]")[1]["error"].startswith("the request body must be a JSON object")
    assert post(b"{}", path="elsewhere")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + "nothing-here")
    assert e.value.code == 404
    page = urllib.request.urlopen(server.url).read().decode()
    assert 'id="top_p"' in page and "/api/next" in page
    info = json.load(urllib.request.urlopen(server.url + "api/info"))
    assert info["vocab_size"] == len(set(TEXT)) and info["context_length"] == 32


def test_a_bug_is_a_500_and_the_server_survives(tiny, capsys):
    class Broken:
        vocab_size = tiny[1].vocab_size

        def encode_ordinary(self, text):  # what a prompt is encoded with
            raise RuntimeError("tokenizer on fire")

        encode = encode_ordinary

    s = serve(tiny[0], Broken())
    try:
        status, r = get(s, prompt="to")
        assert status == 500 and r["error"] == "internal error: RuntimeError: tokenizer on fire"
        assert get(s, prompt="to")[0] == 500  # still answering
    finally:
        s.stop()
    assert "tokenizer on fire" in capsys.readouterr().err  # the traceback goes to the server's log


def test_a_byte_level_bpe_model_works_too():
    from tinyllm.data.dataset import build_tokenizer
    from tinyllm.viz.dashboard.report import next_token_report, token_label

    with pytest.warns(UserWarning, match="training stopped"):  # the text runs out of pairs: fine here
        tok = build_tokenizer("bpe:300", "to be, or not to be: héllo wörld 😀\n" * 10)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=16))
    r = next_token_report(model, tok, dict(prompt="to be 😀 Ω", n_samples=2, max_new_tokens=4, n_top=100))
    assert r["vocab_size"] == tok.vocab_size and len(r["samples"]) == 2  # any text encodes: bytes
    (be,) = tok.encode_ordinary(" be")
    assert token_label(tok, be) == "␣be"
    assert token_label(tok, 0xC3) == "<0xC3>"  # a lone lead byte of a 2-byte character
    assert token_label(tok, ord("\n")) == "\\n"


def test_parse_knobs_defaults_and_off_values():
    k = parse_knobs(dict(prompt="hi", temperature="0.7", top_k="none", top_p="", min_p="off"))
    assert (k["temperature"], k["top_k"], k["top_p"], k["min_p"]) == (0.7, None, None, None)
    assert (k["n_samples"], k["max_new_tokens"], k["seed"]) == (3, 40, 0)
    assert parse_knobs(dict(prompt="hi", top_k=5, top_p=0.5))["top_k"] == 5
    with pytest.raises(BadRequest, match="prompt must be text"):
        parse_knobs(dict(prompt=3))


BIG = "1" * 5000


@pytest.mark.parametrize("body, message", [
    ('{"prompt": "to", "top_k": 1e400}', r"top_k must be an integer >= 1, or none \(off\), got inf"),
    ('{"prompt": "to", "n_top": -1e400}', r"n_top must be an integer in \[1, 100\], got -inf"),
    ('{"prompt": "to", "seed": NaN}', r"seed must be an integer in \[0, 2\*\*63\), got nan"),
    ('{"prompt": "to", "temperature": Infinity}', r"temperature must be a finite number >= 0 \(0 = greedy\), got inf"),
    ('{"prompt": "to", "top_k": %s}' % BIG, r"top_k must be .*, got a 5000-digit number \(numbers here have at most"),
    ('{"prompt": "to", "temperature": %s}' % ("9" * 400), "temperature must be .*, got a 400-digit number"),
    ('{"prompt": "to", "top_p": "%s"}' % BIG, r"top_p must be a number in \(0, 1\], or none \(off\) \(at most 40"),
    ('{"prompt": %s}' % BIG, "prompt must be text of 1 to 4000 characters, got a 5000-digit number"),
    ('{"prompt": "to", "top_k": true}', "top_k must be an integer >= 1, or none .*, got True"),
    ('{"prompt": "to", "top_k": 2.5}', "top_k must be an integer >= 1, or none .*, got 2.5"),
    ('{"prompt": "to", "min_p": [0.1]}', r"min_p must be a number in \[0, 1\], or none \(off\), got \[0.1\]"),
    ('{"prompt": "to", "max_new_tokens": {"a": 1}}', r"max_new_tokens must be an integer in \[1, 200\]"),
    ('{"prompt": ["to"]}', "prompt must be text of 1 to 4000 characters, got \\['to'\\]"),
    ('{"prompt": "to", "topk": 3}', "unknown field 'topk'; the fields are prompt, temperature, top_k"),
    ("[" * 50_000, "the request body nests too deeply"),
    ('{"prompt": "to"', "the request body is not JSON"),
    (b"\xff\xfe{}", "the request body is not JSON"),
    ("null", "the request body must be a JSON object, got NoneType"),
], ids=lambda x: x[:40] if isinstance(x, str) else None)
def test_every_malformed_body_is_a_400_naming_the_field(tiny, body, message):
    import re

    from tinyllm.viz.dashboard.server import answer, parse_body

    raw = body if isinstance(body, bytes) else body.encode()
    status, out = answer(*tiny, lambda: parse_body(raw))
    error = json.loads(out)["error"]
    assert status == 400 and re.search(message, error), error
    assert len(error) < 300  # a 5000-digit value is not echoed back


def test_numbers_that_are_integers_in_any_spelling_are_taken(tiny):
    from tinyllm.viz.dashboard.server import answer, parse_body

    status, out = answer(*tiny, lambda: parse_body(b'{"prompt": "to", "top_k": "2.0", "seed": 1e18, "n_samples": 0}'))
    r = json.loads(out)
    assert status == 200 and r["knobs"]["top_k"] == 2 and r["knobs"]["seed"] == 10**18 and r["kept_tokens"] == 2


def test_oversized_bodies_and_query_values_are_a_400_over_http(server):
    def post(body, headers=()):
        req = urllib.request.Request(server.url + "api/next", data=body, headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    from tinyllm.viz.dashboard.server import MAX_BODY

    status, r = post(b" " * (MAX_BODY + 1))
    assert status == 400 and r["error"] == f"the request body must be at most {MAX_BODY} bytes, got {MAX_BODY + 1}"
    status, r = post(b" " * (1 << 21))  # far past the socket buffers: the server drains it, the client reads the 400
    assert status == 400 and "at most" in r["error"]
    status, r = post(b'{"prompt": "to", "top_k": 1e400}')
    assert status == 400 and "top_k must be an integer >= 1" in r["error"]
    for params in (dict(top_k="1e400"), dict(top_k=BIG[:100]), dict(temperature="inf"), dict(n_top="1.5"),
                   dict(seed="-1"), dict(colour="red")):
        status, r = get(server, prompt="to", n_samples=0, **params)
        assert status == 400 and next(iter(params)) in r["error"], (params, r)
    import http.client

    conn = http.client.HTTPConnection(server.server_address[0], server.server_address[1], timeout=60)
    conn.request("POST", "/api/next", body=iter([b'{"prompt": "to"}']), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 400 and "Content-Length" in json.load(r)["error"]
    conn.close()
    assert get(server, prompt="to", n_samples=0)[0] == 200  # and the server keeps serving


def test_a_body_shorter_than_its_content_length_is_a_400_after_the_timeout(tiny, monkeypatch):
    import socket

    from tinyllm.viz.dashboard.server import Handler

    monkeypatch.setattr(Handler, "timeout", 0.5)
    s = serve(*tiny)
    try:
        with socket.create_connection(s.server_address[:2], timeout=60) as sock:
            sock.sendall(b"POST /api/next HTTP/1.0\r\nContent-Length: 1000\r\n\r\n{\"prompt\"")
            answer = sock.makefile("rb").read().decode()
        assert answer.startswith("HTTP/1.0 400") and "ended before its Content-Length of 1000 bytes" in answer
    finally:
        s.stop()


def test_a_prompt_longer_than_the_context_is_cropped_not_refused(tiny):
    from tinyllm.viz.dashboard.report import next_token_report

    r = next_token_report(*tiny, dict(prompt="to be " * 100, n_samples=1, max_new_tokens=5))
    assert r["cropped"] and r["prompt_tokens"] == 600 and len(r["samples"]) == 1


def test_random_json_bodies_are_answered_200_or_400_never_500(tiny):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tinyllm.viz.dashboard.server import answer, parse_body

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**60), 10**60),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                        st.sampled_from(["none", "off", "", "1e400", "nan", "-0", "0x10", " 3 ", "1_000", "٣"]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                                                inner, max_size=3),
                          max_leaves=6)
    valid = dict(prompt=st.text(alphabet=TEXT, min_size=1, max_size=40), temperature=st.floats(0, 3),
                 top_k=st.integers(1, 30) | st.just("none"), top_p=st.floats(0.01, 1), min_p=st.floats(0, 1),
                 n_samples=st.integers(0, 2), max_new_tokens=st.integers(1, 4), n_top=st.integers(1, 100),
                 seed=st.integers(0, 2**63 - 1) | st.just("7"))
    # each field present or not, mostly valid (so that some bodies are 200s), else anything; now and then a stranger
    def mostly(v, other):  # v 7 times in 8 (one_of would draw each branch equally often)
        return st.integers(0, 7).flatmap(lambda i: v if i else other)

    fields = {k: mostly(v, values) for k, v in valid.items()}
    bodies = st.fixed_dictionaries(dict(prompt=fields.pop("prompt")), optional=fields)
    strangers = st.dictionaries(st.sampled_from(["", "bogus", "__proto__", "Top_k"]), values, max_size=1)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, stranger=mostly(st.just({}), strangers), big=st.integers(0, 4))
    def check(body, stranger, big):
        body = {**body, **stranger}
        raw = json.dumps(body).encode()
        if big == 0:  # now and then a value spelled as a huge literal
            raw = raw.replace(b"{", b'{"n_top": ' + BIG.encode() + b", ", 1)
        status, out = answer(*tiny, lambda: parse_body(raw))
        assert status in (200, 400), out
        if status == 400:
            assert json.loads(out)["error"]

    check()


# ---------------------------------------------------------------------------- the command


def _save_run(tiny, out):
    model, tok = tiny
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    return out


def test_cli_without_a_model_or_a_port_says_so(tiny, tmp_path, capsys):
    from tinyllm.cli import main

    assert main(["dashboard", "--ckpt", str(tmp_path / "none")]) == 2
    assert "holds no model (config.json missing)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dashboard", "--ckpt", str(tmp_path), "--port", "70000"])
    assert "must be in 0..65535" in capsys.readouterr().err
    taken = serve(*tiny)  # a port in use: a message, not a traceback
    try:
        port = str(taken.server_address[1])
        assert main(["dashboard", "--ckpt", str(_save_run(tiny, tmp_path / "run")), "--port", port]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        taken.stop()
    (tmp_path / "run" / "tokenizer.json").write_text('{"format": "tinyllm.char", "version": 1}')  # no "chars"
    assert main(["dashboard", "--ckpt", str(tmp_path / "run"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyllm dashboard: ") and "chars" in err and err.count("\n") == 1


@pytest.mark.slow
def test_cli_serves_the_page(tiny, tmp_path):
    ckpt = _save_run(tiny, tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "tinyllm", "dashboard", "--ckpt", str(ckpt), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("tinyllm dashboard: http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[2]
        info = json.load(urllib.request.urlopen(url + "api/info", timeout=30))
        assert info["vocab_size"] == tiny[1].vocab_size
        with urllib.request.urlopen(url + "api/next?prompt=to&top_k=1&n_samples=0", timeout=60) as r:
            assert json.load(r)["kept_tokens"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


# ---------------------------------------------------------------------------- a real browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _settle(page, after: int):
    """Wait until the page shows the answer to a request made after `after` requests."""
    page.wait_for_function(f"Number(document.body.dataset.seq) > {after}", timeout=30000)
    return int(page.evaluate("document.body.dataset.seq"))


def _value(page, element_id: str) -> float:
    return float(page.get_attribute(f"#{element_id}", "data-value"))


@pytest.mark.slow
def test_sliders_move_the_chart_and_the_numbers(server, browser, tmp_path):
    page = browser.new_page()
    try:
        page.goto(server.url)
        seq = _settle(page, 0)
        assert page.input_value("#prompt") == "\n"  # "ROMEO:" has letters this model never saw
        assert not page.is_visible("#error")
        prompt = "to be, or not"
        page.fill("#prompt", prompt)
        seq = _settle(page, seq)
        _, want = get(server, prompt=prompt)
        assert _value(page, "entropy-after") == want["entropy_after"]  # the page shows what the endpoint says
        assert page.text_content("#entropy-after") == f"{want['entropy_after']:.3f}"
        n_all = page.locator("#chart .bar.after").count()
        assert n_all == len(want["top"]) == 20

        page.fill("#top_k", "1")  # move the top-k slider to 1: one bar after filtering
        seq = _settle(page, seq)
        assert page.locator("#chart .bar.after").count() == 1
        assert page.text_content("#top_k-label") == "1"
        _, k1 = get(server, prompt=prompt, top_k=1, n_samples=0)
        assert _value(page, "kept-mass") == k1["kept_mass"] == pytest.approx(want["top"][0]["p_before"], rel=1e-12)
        assert _value(page, "entropy-after") == 0.0 and _value(page, "kept-tokens") == 1

        # top-k off again; a nucleus a little above the top token's probability needs a second token
        top_p = min(1.0, np.ceil(100 * want["top"][0]["p_before"] + 2) / 100)
        page.fill("#top_k", "0")
        page.fill("#top_p", str(top_p))
        seq = _settle(page, seq)
        _, p5 = get(server, prompt=prompt, top_p=top_p, n_samples=0)
        assert page.locator("#chart .bar.after").count() == p5["kept_tokens"] > 1
        assert _value(page, "kept-mass") == p5["kept_mass"] >= top_p
        widths = page.eval_on_selector_all("#chart .bar.after", "els => els.map(e => Number(e.dataset.p))")
        np.testing.assert_allclose(sum(widths), 1.0, rtol=1e-12)  # the kept bars are the whole distribution

        page.fill("#top_p", "1")
        page.fill("#temperature", "0.25")  # colder: lower entropy after temperature
        seq = _settle(page, seq)
        assert _value(page, "entropy-before") < want["entropy_before"]
        assert _value(page, "entropy-before") == get(server, prompt=prompt, temperature=0.25,
                                                      n_samples=0)[1]["entropy_before"]

        page.fill("#prompt", "to Ω")  # a character the model never saw: a message, and the server lives on
        seq = _settle(page, seq)
        assert page.is_visible("#error")
        assert "'Ω' (U+03A9) at position 3 is not in this tokenizer's vocabulary" in page.text_content("#error")
        page.fill("#prompt", "")
        seq = _settle(page, seq)
        assert "the prompt is empty" in page.text_content("#error")
        page.fill("#prompt", "to be")
        seq = _settle(page, seq)
        assert not page.is_visible("#error")
        assert page.locator("#samples li").count() == 3
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    finally:
        page.close()

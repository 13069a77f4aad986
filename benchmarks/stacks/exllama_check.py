"""ExLlamaV2 (CUDA only): a tinyllm model loaded by ExLlamaV2 as FP16 and converted to EXL2, set beside tinyllm.

ExLlamaV2 runs Llama-architecture models on NVIDIA GPUs with its own CUDA kernels; importing it
builds them, so this script runs only on a machine with a GPU and the CUDA toolkit
(`pip install exllamav2`). It is prepared, not run, wherever the book's numbers were measured
on CPUs: the chapter's table says "not run" for ExLlamaV2 and shows this file.

    1. a Llama-style tinyllm model (RoPE, RMSNorm, SwiGLU, grouped-query, no biases; a shape the
       EXL2 kernels take: d_model 512, 8 heads of 64, 2 KV heads) -> save_hf (tinyllm/interop/hf.py)
    2. ExLlamaV2 loads that folder unquantized (FP16): logits against tinyllm's float32 ones,
       greedy tokens against tinyllm's
    3. EXL2 conversion at 8.0 bits per weight (python -m exllamav2.conversion.convert_exl2, its
       built-in calibration text), loaded again: the same comparisons, now with quantization error

    python benchmarks/stacks/exllama_check.py --out /tmp/exl2 [--json results.json]

Expect (FP16): |logit difference| ~1e-3 (half precision), greedy tokens equal except where two
logits lie within that of each other; EXL2 8 bpw a little more. Random weights give flat logits,
so --steps trains the model first (tinyllm on the default device, CuPy on a GPU) to make greedy
choices decisive.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

SHAPE = dict(context_length=256, n_layer=4, n_head=8, n_kv_head=2, d_model=512, pos_encoding="rope", norm="rmsnorm",
             activation="swiglu", bias=False, tie_embeddings=False)


def build(out: pathlib.Path, steps: int):
    """A (briefly trained) Llama-style tinyllm model and its BPE tokenizer, exported to out/hf."""
    from tinyllm.interop import save_hf
    from tinyllm.train import preset, train_or_load

    train_cfg, model_cfg = preset("shakespeare-char-cpu", out_dir=str(out / "run"), max_iters=steps,
                                  tokenizer="bpe:1024", sample_tokens=0, eval_interval=max(steps, 1), **SHAPE)
    run = train_or_load(train_cfg, model_cfg, progress=False, log=print)
    model, tok = run.model.to("cpu").eval(), run.tokenizer
    save_hf(model, tok, out / "hf")
    return model, tok


def exllama(folder: pathlib.Path):
    """A function ids (1, T) -> ExLlamaV2's logits (1, T, V) as float32, for the model in `folder` (loaded once)."""
    import torch
    from exllamav2 import ExLlamaV2, ExLlamaV2Cache, ExLlamaV2Config

    config = ExLlamaV2Config(str(folder))
    model = ExLlamaV2(config)
    cache = ExLlamaV2Cache(model, max_seq_len=SHAPE["context_length"], lazy=True)
    model.load_autosplit(cache)

    def forward(ids):
        with torch.inference_mode():
            return model.forward(torch.tensor(ids, dtype=torch.long)).float().cpu().numpy()
    return forward


def greedy(forward, ids, n: int) -> list[int]:
    """Greedy tokens by full recomputation (the simplest loop both sides can run)."""
    import numpy as np

    seq = list(ids[0])
    for _ in range(n):
        seq.append(int(np.asarray(forward(np.asarray([seq])))[0, -1].argmax()))
    return seq[len(ids[0]):]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=300, help="training steps before the comparison (0: random weights)")
    p.add_argument("--bits", type=float, default=8.0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import numpy as np

    import tinyllm

    model, tok = build(out, args.steps)
    ids = np.asarray([tok.encode("ROMEO:\nBut soft, what light through yonder window breaks?")], dtype=np.int64)

    def ours(x):
        return tinyllm.to_numpy(model(x)[0].data)

    want = ours(ids)
    want_tokens = greedy(ours, ids, 32)
    results = {"shape": SHAPE, "steps": args.steps}
    subprocess.run([sys.executable, "-m", "exllamav2.conversion.convert_exl2", "-i", str(out / "hf"), "-o",
                    str(out / "work"), "-cf", str(out / "exl2"), "-b", str(args.bits), "-hb", "8", "-nr"], check=True)
    for name, folder in (("fp16", out / "hf"), (f"exl2_{args.bits}bpw", out / "exl2")):
        forward = exllama(folder)
        got = forward(ids)
        tokens = greedy(forward, ids, 32)
        results[name] = {"max_abs_diff": float(np.abs(got - want).max()), "logit_range": float(np.ptp(want)),
                         "greedy_equal": tokens == want_tokens,
                         "greedy_agreement": float(np.mean(np.asarray(tokens) == np.asarray(want_tokens)))}
    print(json.dumps(results, indent=1))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

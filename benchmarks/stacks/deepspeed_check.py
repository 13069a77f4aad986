"""DeepSpeed on CPU: a tinyllm model exported to transformers trains with ZeRO and serves with tensor parallelism.

Two ranks on gloo, launched by DeepSpeed's own launcher (`deepspeed --num_gpus 2`, which on a
machine without a GPU starts CPU processes). Each check compares against one process of plain
PyTorch on the same numbers:

    train   ZeRO stage 2 (gradients and optimizer state split over the ranks) and stage 3 (the
            parameters too): the global batch is cut in two, each rank takes half; AdamW, the
            gradient clipped to norm 1 (DeepSpeed clips at 1.0 unless told otherwise: set here
            explicitly, and the same in the reference). The loss of every step (the ranks' mean)
            must match one PyTorch process training the same transformers model on the whole
            batch, step for step.
    import  the model trained under ZeRO-3, gathered and saved by rank 0 as a transformers folder,
            comes back with `tinyllm import hf` (load_hf) and gives transformers' logits.
    infer   deepspeed.init_inference with AutoTP, tp_size=2: each rank holds half of every
            attention and MLP matrix (column- then row-parallel, one all-reduce per pair);
            the logits must equal one transformers process's.

    python benchmarks/stacks/deepspeed_check.py --out /tmp/ds            # all three, ~2-3 min on 2 cores
    python benchmarks/stacks/deepspeed_check.py --out /tmp/ds --json docs/figures/15_deepspeed.json

Needs `DS_BUILD_OPS=0 pip install deepspeed` after torch (no compiled op is used: the optimizer
is torch's AdamW). The model is Llama-shaped (RoPE, RMSNorm, SwiGLU, grouped-query), so the
check covers tinyllm's export of the modern architecture; --gpt2 takes the GPT-2 shape instead.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

STEPS, BATCH, SEQ, LR, CLIP = 6, 8, 32, 3e-3, 1.0


def build(out: pathlib.Path, gpt2: bool) -> None:
    """A random tinyllm model and its batches: out/hf (transformers folder), out/batches.npy."""
    import numpy as np

    import tinyllm
    from tinyllm.interop import save_hf
    from tinyllm.nn import GPT, GPTConfig

    tinyllm.manual_seed(0)
    shape = dict(vocab_size=256, context_length=SEQ, n_layer=2, n_head=4, d_model=64)
    cfg = GPTConfig(**shape, activation="gelu_tanh") if gpt2 else GPTConfig(
        **shape, n_kv_head=2, pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False,
        tie_embeddings=False)
    save_hf(GPT(cfg), None, out / "hf")
    rng = np.random.default_rng(0)  # counting sequences (t, t+1, ...) from random starts: learnable, so the loss falls
    start = rng.integers(0, 256, (STEPS, BATCH, 1))
    np.save(out / "batches.npy", (start + np.arange(SEQ + 1)) % 256)


def _loss(model, batch):
    import torch

    x, y = batch[:, :-1], batch[:, 1:]
    logits = model(input_ids=x).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _optimizer(model):
    import torch

    return torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def reference(out: pathlib.Path) -> list[float]:
    """One PyTorch process, the whole batch each step."""
    import numpy as np
    import torch
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(out / "hf").train()
    opt = _optimizer(model)
    losses = []
    for batch in torch.from_numpy(np.load(out / "batches.npy")):
        loss = _loss(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        losses.append(loss.item())
    return losses


def worker_train(out: pathlib.Path, stage: int) -> None:
    """One rank of `deepspeed --num_gpus 2 ... --worker-train S`: ZeRO stage S on its half of each batch."""
    import deepspeed
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    model = transformers.AutoModelForCausalLM.from_pretrained(out / "hf").train()
    config = {"train_batch_size": BATCH, "train_micro_batch_size_per_gpu": BATCH // world,
              "gradient_accumulation_steps": 1, "zero_optimization": {"stage": stage}, "gradient_clipping": CLIP,
              "zero_allow_untested_optimizer": True, "steps_per_print": 10**9, "wall_clock_breakdown": False}
    engine, *_ = deepspeed.initialize(model=model, optimizer=_optimizer(model), config=config)
    losses = []
    half = BATCH // world
    for batch in torch.from_numpy(np.load(out / "batches.npy")):
        loss = _loss(engine, batch[rank * half:(rank + 1) * half])
        engine.backward(loss)
        engine.step()
        mean = loss.detach().clone()
        torch.distributed.all_reduce(mean)
        losses.append(mean.item() / world)
    folder = out / f"trained_zero{stage}"
    if stage == 3:  # the parameters live in pieces on the ranks: gather them (every rank takes part)
        state = engine._zero3_consolidated_16bit_state_dict()
    else:
        state = engine.module.state_dict()
    if rank == 0:
        engine.module.save_pretrained(folder, state_dict=state, safe_serialization=True)
        (out / f"losses_zero{stage}.json").write_text(json.dumps(losses))
    torch.distributed.barrier()


def worker_infer(out: pathlib.Path) -> None:
    """One rank of `deepspeed --num_gpus 2 ... --worker-infer`: AutoTP tensor parallel 2, logits of fixed ids."""
    import deepspeed
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    model = transformers.AutoModelForCausalLM.from_pretrained(out / "hf").eval()
    engine = deepspeed.init_inference(model, tensor_parallel={"tp_size": 2}, dtype=torch.float32,
                                      replace_with_kernel_inject=False)
    ids = torch.from_numpy(np.load(out / "batches.npy")[0, :, :-1])
    with torch.no_grad():
        logits = engine(input_ids=ids).logits.numpy()
    if torch.distributed.get_rank() == 0:
        np.save(out / "logits_tp2.npy", logits)
        whole = transformers.AutoModelForCausalLM.from_pretrained(out / "hf").state_dict()
        split = {n: {"whole": list(whole[n].shape), "rank 0 holds": list(p.shape)}  # block 0's sharded matrices
                 for n, p in engine.module.named_parameters()
                 if (".0." in n) and n in whole and tuple(p.shape) != tuple(whole[n].shape)}
        (out / "tp2_shapes.json").write_text(json.dumps(split))


def launch(script_args: list[str], out: pathlib.Path) -> float:
    """Run this script under `deepspeed --num_gpus 2` -> wall seconds; its output goes to out/launcher.log."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    t = time.perf_counter()
    with open(out / "launcher.log", "a") as log:
        cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(29500 + os.getpid() % 1000),
               os.path.abspath(__file__), "--out", str(out), *script_args]
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=900)
    if done.returncode:
        tail = (out / "launcher.log").read_text()[-3000:]
        raise SystemExit(f"deepspeed {' '.join(script_args)} failed ({done.returncode}):\n{tail}")
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="a work folder (created)")
    p.add_argument("--gpt2", action="store_true", help="the GPT-2 shape instead of the Llama one")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--worker-train", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-infer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # the launcher passes it
    args = p.parse_args()
    out = pathlib.Path(args.out)
    if args.worker_train is not None:
        worker_train(out, args.worker_train)
        return 0
    if args.worker_infer:
        worker_infer(out)
        return 0

    import numpy as np
    import torch
    import transformers

    import tinyllm
    from tinyllm.interop import load_hf

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    build(out, args.gpt2)
    want = reference(out)
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "steps": STEPS, "batch": BATCH, "seq": SEQ,
               "reference_losses": want}
    for stage in (2, 3):
        results[f"zero{stage}_seconds"] = launch(["--worker-train", str(stage)], out)
        got = json.loads((out / f"losses_zero{stage}.json").read_text())
        results[f"zero{stage}_losses"] = got
        results[f"zero{stage}_max_loss_diff"] = float(np.abs(np.subtract(got, want)).max())
    trained = transformers.AutoModelForCausalLM.from_pretrained(out / "trained_zero3").eval()
    ids = np.load(out / "batches.npy")[0, :, :-1]
    with torch.no_grad():
        want_logits = trained(input_ids=torch.from_numpy(ids)).logits.numpy()
    model, _ = load_hf(out / "trained_zero3")
    results["import_max_logit_diff"] = float(np.abs(tinyllm.to_numpy(model(ids)[0].data) - want_logits).max())
    results["infer_tp2_seconds"] = launch(["--worker-infer"], out)
    base = transformers.AutoModelForCausalLM.from_pretrained(out / "hf").eval()
    with torch.no_grad():
        base_logits = base(input_ids=torch.from_numpy(ids)).logits.numpy()
    results["tp2_max_logit_diff"] = float(np.abs(np.load(out / "logits_tp2.npy") - base_logits).max())
    results["tp2_shapes"] = json.loads((out / "tp2_shapes.json").read_text())
    print(json.dumps(results, indent=1))
    ok = (results["zero2_max_loss_diff"] < 1e-4 and results["zero3_max_loss_diff"] < 1e-4
          and results["import_max_logit_diff"] < 1e-4 and results["tp2_max_logit_diff"] < 1e-4)
    results["ok"] = ok
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print("all checks pass" if ok else "A CHECK FAILED")
    return 0 if ok else 1


def machine() -> str:
    import deepspeed
    import torch
    import transformers

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"DeepSpeed {deepspeed.__version__}")


if __name__ == "__main__":
    sys.exit(main())

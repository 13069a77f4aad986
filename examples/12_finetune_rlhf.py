"""Lab 12: after pretraining — finetuning (all weights or LoRA), instruction tuning, RLHF with PPO, and DPO.

0. A base model: a small GPT pretrained on the built-in stories with a byte-level tokenizer
   (bpe:256, the 256 single bytes: it can encode any text the later parts bring).
1. Finetuning, forgetting vs adaptation: the base finetuned on a multi-task instruction dataset
   (tinyllm/data/instructions.py), all weights or LoRA adapters (rank 8 on c_attn and c_fc); the loss
   on the stories' val split (what it forgets) and on the tasks' val split (what it learns),
   before and after; trainable parameters and the memory of a training step, measured.
2. Instruction tuning: exact-match accuracy per task (reverse, sort, capitalize, count, add) on
   held-out inputs, for the base model, for one model finetuned on each task alone, and for the
   multi-task model (full and LoRA); and the same multi-task models on phrasings never seen in training.
3. RLHF: a programmatic judge scores story continuations (words from a positive list count +1,
   from a negative list −1, any word the stories never use −1: fluency). Four continuations per
   prompt by the base model, ranked by the judge, give pairs (every two that differ) that train a
   reward model (Bradley-Terry; its accuracy on held-out pairs of two); PPO tunes the base
   against it with a KL penalty (adaptive β) and without one; DPO learns from the same pairs.
   Each is measured on held-out prompts: the reward model's score, the judge's true reward, the
   KL to the base. Without the penalty, watch for reward hacking: the score rising while the
   true reward falls.

    python examples/12_finetune_rlhf.py          # the chapter's numbers and figures (docs/figures/12_*.png,
                                                 # 12_finetune_rlhf.json); runs kept in out/labs/12_finetune_rlhf
                                                 # (about 30 min on 2 shared cores, plus 34 for the base model)
    python examples/12_finetune_rlhf.py --summary   # the tables of the saved JSON, without running anything
    python examples/12_finetune_rlhf.py --parts 3   # only part 3 again, from the saved base model, into the JSON
    python examples/12_finetune_rlhf.py --quick  # tiny models and runs, for CI (to out/labs/12_finetune_rlhf-quick)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
import tracemalloc
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import runtime  # noqa: E402
from tinyllm.data import encode_text, load_text, load_tokenizer  # noqa: E402
from tinyllm.data.instructions import TASKS, instruction_dataset, write_jsonl  # noqa: E402
from tinyllm.data.sft import PromptResponseData  # noqa: E402
from tinyllm.nn import GPT  # noqa: E402
from tinyllm.nn.lora import apply_lora, parameter_counts  # noqa: E402
from tinyllm.train import TrainConfig, load_checkpoint, train_or_load  # noqa: E402
from tinyllm.train.exact_match import exact_match  # noqa: E402
from tinyllm.train.finetune import FinetuneSpec, finetune, finetune_config, read_spec  # noqa: E402
from tinyllm.train.loop import make_optimizer  # noqa: E402
from tinyllm.train.rlhf import (  # noqa: E402
    PPOConfig,
    PreferencePairs,
    RewardModel,
    copy_model,
    evaluate_policy,
    generate_rollout,
    ppo_train,
    reward_accuracy,
    train_dpo,
    train_reward_model,
)

SETTINGS = {
    # a budget cut to fit two shared cores in about half an hour after the base model: 600 finetuning steps of
    # 16 records, 60 PPO steps of 64 responses; the preference pairs from 6800 prompts x 4 responses
    "full": dict(model=dict(n_layer=3, n_head=4, d_model=96, context_length=64, dropout=0.0, bias=False),
                 base_iters=1000, ft_iters=600, ft_batch=16, ft_lr=3e-3, lora_lr=1e-2, n_train=2000, n_eval=20,
                 prompt_tokens=16, response_tokens=24, pair_prompts=6800, pair_samples=4, rm_val_prompts=600,
                 rm_epochs=2, rm_lr=3e-4, ppo_steps=60, ppo_batch=64, ppo_lr=1e-4, dpo_epochs=2, eval_prompts=512,
                 eval_iters=10),
    "quick": dict(model=dict(n_layer=2, n_head=2, d_model=32, context_length=48, dropout=0.0, bias=False),
                  base_iters=60, ft_iters=20, ft_batch=16, ft_lr=1e-3, lora_lr=3e-3, n_train=40, n_eval=4,
                  prompt_tokens=12, response_tokens=16, pair_prompts=64, pair_samples=2, rm_val_prompts=32,
                  rm_epochs=1, rm_lr=3e-4, ppo_steps=3, ppo_batch=8, ppo_lr=5e-5, dpo_epochs=1, eval_prompts=16,
                  eval_iters=2),
}
RLHF_SETTINGS = ("prompt_tokens", "response_tokens", "pair_prompts", "pair_samples", "rm_val_prompts", "rm_epochs",
                 "rm_lr", "ppo_steps", "ppo_batch", "ppo_lr", "dpo_epochs", "eval_prompts")  # what part 3 reads
LORA = dict(lora_r=8, lora_alpha=16.0, lora_targets=("c_attn", "c_fc"))

# the judge's word lists: words the stories use, one list for each mood
POSITIVE = ("happy", "glad", "fun", "smile", "smiled", "laughed", "loved", "proud", "beautiful", "best", "good",
            "sunny")
NEGATIVE = ("sad", "scared", "cry", "bad", "sorry", "lonely", "ruined", "tired", "dark", "worry", "forgot",
            "spilled")
WORD = re.compile(r"[a-z']+")


# ---------------------------------------------------------------------------- 0. the base model


def base_model(s: dict, runs: Path):
    cfg = TrainConfig(data="stories", tokenizer="bpe:256", out_dir=str(runs / "base"), batch_size=16,
                      max_iters=s["base_iters"], learning_rate=3e-3, min_lr=3e-4, warmup_iters=s["base_iters"] // 20,
                      eval_interval=s["base_iters"], eval_iters=s["eval_iters"], sample_tokens=0, seed=0)
    run = train_or_load(cfg, s["model"], log=print)
    return runs / "base", run.tokenizer, {"val_loss": run.val_loss, "steps": run.step,
                                          "parameters": run.model.num_parameters()}


# ---------------------------------------------------------------------------- 1-2. finetuning, instruction tuning


def finetune_or_load(spec: FinetuneSpec, cfg: TrainConfig):
    """(model, finetune.json's record): the finished run in cfg.out_dir when it is this one, else trained there."""
    out = Path(cfg.out_dir)
    try:
        rec = read_spec(out)
        if rec["after"] and rec["spec"] == spec.to_dict() and load_checkpoint(out)["train_config"] == cfg.to_dict():
            print(f"reusing the finetune in {out}")
            return GPT.from_pretrained(out), rec
    except (OSError, ValueError, KeyError):
        pass
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = finetune(spec, cfg, log=print)
    rec = {**read_spec(out), "seconds": time.perf_counter() - t0}
    return result.model.eval(), rec


def step_memory(base_dir: Path, tok, data_path: Path, lora: bool, batch_size: int) -> dict:
    """Trainable and total parameters; the bytes of weights, gradients and AdamW state after one step; the step's
    peak of newly allocated bytes (tracemalloc: NumPy reports its arrays to it)."""
    model = GPT.from_pretrained(base_dir).train()
    if lora:
        apply_lora(model, r=LORA["lora_r"], alpha=LORA["lora_alpha"], targets=LORA["lora_targets"])
    cfg = TrainConfig(data=str(data_path), out_dir="unused", batch_size=batch_size)
    opt, _ = make_optimizer(model, cfg)
    from tinyllm.data.sft import read_records

    data = PromptResponseData(read_records(data_path), tok)
    x, y = data.batch("train", batch_size, model.config.context_length, np.random.default_rng(0))
    tracemalloc.start()
    _, loss = model(x, y)
    loss.backward()
    opt.step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    params = list(model.parameters())
    state = sum(a.nbytes for st in opt.state.values() for a in st.values() if hasattr(a, "nbytes"))
    trainable, total = parameter_counts(model)
    return {"trainable": trainable, "total": total, "weights_bytes": sum(p.data.nbytes for p in params),
            "grad_bytes": sum(p.grad.data.nbytes for p in params if p.grad is not None), "adam_bytes": state,
            "step_peak_bytes": peak}


def instruction_part(s: dict, runs: Path, base_dir: Path, tok) -> dict:
    data_dir = runs / "data"
    all_path = write_jsonl(instruction_dataset(TASKS, s["n_train"], seed=0), data_dir / "tasks-all.jsonl")
    task_paths = {t: write_jsonl(instruction_dataset((t,), s["n_train"], seed=0), data_dir / f"tasks-{t}.jsonl")
                  for t in TASKS}
    test = instruction_dataset(TASKS, s["n_eval"], seed=1, split="test")
    test_phrased = instruction_dataset(TASKS, s["n_eval"], seed=2, split="test", phrasing="held-out")

    def run(name, path, lora=False, iters=s["ft_iters"]):
        spec = FinetuneSpec(base=str(base_dir), **(LORA if lora else {}))
        cfg = finetune_config(spec, str(path), str(runs / name), learning_rate=s["lora_lr" if lora else "ft_lr"],
                              max_iters=iters, eval_interval=iters, eval_iters=s["eval_iters"],
                              batch_size=s["ft_batch"], seed=0)
        return finetune_or_load(spec, cfg)

    base = GPT.from_pretrained(base_dir)
    report = {"exact_match": {"base": exact_match(base, tok, test)},
              "held_out_phrasing": {"base": exact_match(base, tok, test_phrased)}, "runs": {}}
    print(f"base model: exact match {report['exact_match']['base']}")
    for name, lora in (("multi-full", False), ("multi-lora", True)):
        model, rec = run(name, all_path, lora)
        report["runs"][name] = rec
        report["exact_match"][name] = exact_match(model, tok, test)
        report["held_out_phrasing"][name] = exact_match(model, tok, test_phrased)
        print(f"{name}: exact match {report['exact_match'][name]}, held-out phrasing "
              f"{report['held_out_phrasing'][name]}")
    for task in TASKS:  # a fifth of the steps each: as many examples of its task as the multi-task run saw
        model, rec = run(f"single-{task}", task_paths[task], iters=s["ft_iters"] // len(TASKS))
        report["runs"][f"single-{task}"] = rec
        report["exact_match"][f"single-{task}"] = exact_match(model, tok, test)
        print(f"single-{task}: exact match {report['exact_match'][f'single-{task}']}")
    report["memory"] = {name: step_memory(base_dir, tok, all_path, lora, s["ft_batch"])
                        for name, lora in (("full", False), ("lora", True))}
    return report


# ---------------------------------------------------------------------------- 3. RLHF


def lexicon(text: str) -> set:
    return set(WORD.findall(text.lower()))


def true_reward(text: str, known: set) -> float:
    """+1 per positive word, −1 per negative word, −1 per word the stories never use (the last, cut-off word of a
    response that does not end in a space or punctuation is left out): true_reward("a happy dog zzz.") = 1 − 1 = 0."""
    words = WORD.findall(text.lower())
    if words and text and text[-1].isalpha():
        words = words[:-1]
    pos, neg = set(POSITIVE), set(NEGATIVE)
    return float(sum((w in pos) - (w in neg) - (w not in known) for w in words))


def make_judge(tok, known: set):
    def judge(rollout) -> np.ndarray:
        P = rollout.prompt_len
        texts = [tok.decode([int(t) for t, m in zip(row[P:], mask) if m]) for row, mask in
                 zip(rollout.sequences, rollout.mask)]
        return np.array([true_reward(t, known) for t in texts])
    return judge


def story_prompts(text: str, tok, n: int, P: int, seed: int) -> np.ndarray:
    """n prompts of P tokens: the openings of random sentences of `text` (after ". ")."""
    starts = [m.end() for m in re.finditer(r"\. ", text)]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(starts), size=min(n, len(starts)), replace=False)
    return np.asarray([encode_text(tok, text[starts[i]:starts[i] + 4 * P])[:P] for i in picks], dtype=np.int64)


def preference_pairs(gpt, prompts, R: int, judge, seed: int, k: int = 2) -> tuple[PreferencePairs, dict]:
    """k sampled responses per prompt, ranked by the judge; every two of them with different true rewards make a
    pair, the better one chosen (InstructGPT's k responses ranked, k(k − 1)/2 comparisons); ties dropped."""
    rng = np.random.default_rng(seed)
    seqs, masks, rewards = [[] for _ in range(k)], [[] for _ in range(k)], [[] for _ in range(k)]
    for i in range(0, len(prompts), 256):  # a step costs little more for 256 rows than for 64
        for j in range(k):
            ro = generate_rollout(gpt, prompts[i:i + 256], R, rng)
            seqs[j].append(ro.sequences)
            masks[j].append(ro.mask)
            rewards[j].append(judge(ro))
    seqs, masks, rewards = ([np.concatenate(a) for a in lists] for lists in (seqs, masks, rewards))
    parts = [[], [], [], []]  # chosen, rejected, their masks
    ties = 0
    for a in range(k):
        for b in range(a + 1, k):
            keep = rewards[a] != rewards[b]
            first = (rewards[a] > rewards[b])[:, None]
            for out, (x, y) in zip(parts, ((seqs[a], seqs[b]), (seqs[b], seqs[a]), (masks[a], masks[b]),
                                           (masks[b], masks[a]))):
                out.append(np.where(first, x, y)[keep])
            ties += int((~keep).sum())
    pairs = PreferencePairs(*(np.concatenate(x) for x in parts), prompts.shape[1])
    return pairs, {"prompts": len(prompts), "samples": k, "pairs": len(pairs), "ties": ties,
                   "mean_true_reward": float(np.mean(rewards))}


def rlhf_part(s: dict, runs: Path, base_dir: Path, tok) -> dict:
    text = load_text("stories")
    known = lexicon(text)
    judge = make_judge(tok, known)
    cut = int(0.9 * len(text))
    P, R = s["prompt_tokens"], s["response_tokens"]
    train_prompts = story_prompts(text[:cut], tok, s["pair_prompts"], P, seed=0)
    eval_prompts = story_prompts(text[cut:], tok, s["eval_prompts"], P, seed=1)  # held-out stories
    val_prompts = story_prompts(text[cut:], tok, s["rm_val_prompts"], P, seed=3)  # the reward model's yardstick
    base = GPT.from_pretrained(base_dir)
    report = {}
    train_pairs, report["pairs"] = preference_pairs(base, train_prompts, R, judge, seed=0, k=s["pair_samples"])
    val_pairs, report["val_pairs"] = preference_pairs(base, val_prompts, R, judge, seed=4)
    print(f"preference pairs: {report['pairs']}; held-out: {report['val_pairs']}")
    rm = RewardModel(GPT.from_pretrained(base_dir))
    report["reward_model"] = {"val_accuracy_before": reward_accuracy(rm, val_pairs),
                              "history": train_reward_model(rm, train_pairs, val_pairs, epochs=s["rm_epochs"],
                                                            batch_size=32, learning_rate=s["rm_lr"], log=print)}
    ref = copy_model(base)
    ev = lambda g: evaluate_policy(g, ref, rm, eval_prompts, R, judge=judge, seed=2)  # noqa: E731
    report["eval"] = {"base": ev(base)}
    report["ppo"] = {}
    for name, kl in (("ppo", 0.1), ("ppo-no-kl", 0.0)):
        policy = GPT.from_pretrained(base_dir)
        cfg = PPOConfig(steps=s["ppo_steps"], batch_size=s["ppo_batch"], minibatch_size=s["ppo_batch"] // 2,
                        ppo_epochs=2, response_tokens=R, learning_rate=s["ppo_lr"], init_kl_coef=kl, target_kl=3.0,
                        seed=0)
        t0 = time.perf_counter()
        result = ppo_train(policy, rm, train_prompts, cfg, ref=ref, judge=judge, out_dir=runs / name, log=print)
        report["ppo"][name] = {"history": result.history, "seconds": time.perf_counter() - t0}
        report["eval"][name] = ev(policy)
    policy = GPT.from_pretrained(base_dir)
    t0 = time.perf_counter()
    report["dpo"] = {"history": train_dpo(policy, train_pairs, ref, beta=0.1, epochs=s["dpo_epochs"], batch_size=64,
                                          learning_rate=s["ppo_lr"], log=print), "seconds": time.perf_counter() - t0}
    report["eval"]["dpo"] = ev(policy)
    for name, e in report["eval"].items():
        print(f"{name:10s} score {e['score']:+.3f}  true reward {e['true_reward']:+.3f}  KL {e['kl']:.2f}")
    report["samples"] = samples(tok, eval_prompts[:3], R, {"base": base, "dpo": policy})
    return report


def samples(tok, prompts, R, models) -> dict:
    out = {}
    for name, g in models.items():
        ro = generate_rollout(g, prompts, R, np.random.default_rng(3))
        out[name] = [tok.decode([int(t) for t in row]) for row in ro.sequences]
    return out


# ---------------------------------------------------------------------------- figures


def plot_forgetting(report: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    names = ["multi-full", "multi-lora"]
    labels = ["stories (forgetting)", "tasks (adaptation)"]
    width = 0.2
    for k, key in enumerate(("base", "new")):
        before = report["runs"][names[0]]["before"][key]
        ax.bar(k - 1.5 * width, before, width, color="#9e9e9e", label="before" if k == 0 else None)
        for j, name in enumerate(names):
            label = ("after: all weights", "after: LoRA r=8")[j] if k == 0 else None
            ax.bar(k + (j - 0.5) * width, report["runs"][name]["after"][key], width, color=("#1e88e5", "#fb8c00")[j],
                   label=label)
    ax.set_xticks(range(2), labels)
    ax.set_ylabel("val loss (nats / token)")
    ax.legend(frameon=False)
    ax.set_title("finetuning on the tasks: what is learned, what is forgotten")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_exact_match(report: dict, path: Path) -> None:
    rows = ["base"] + [f"single-{t}" for t in TASKS] + ["multi-full", "multi-lora"]
    rows_held = ["multi-full", "multi-lora"]
    cols = list(TASKS) + ["all"]
    grid = [[report["exact_match"][r][c] for c in cols] for r in rows]
    grid += [[report["held_out_phrasing"][r][c] for c in cols] for r in rows_held]
    labels = rows + [f"{r}, new phrasing" for r in rows_held]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(labels)), labels)
    ax.axhline(len(rows) - 0.5, color="white", lw=2)
    fig.colorbar(im, ax=ax, label="exact match on held-out inputs")
    ax.set_title("instruction tuning: one task at a time vs all at once")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rlhf(report: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    colors = {"ppo": "#1e88e5", "ppo-no-kl": "#e53935"}
    for name, run in report["ppo"].items():
        h = run["history"]
        steps = [r["step"] for r in h]
        axes[0].plot(steps, [r["score"] for r in h], color=colors[name], label=f"{name}: reward model")
        axes[0].plot(steps, [r["true_reward"] for r in h], color=colors[name], ls="--", label=f"{name}: true")
        axes[1].plot(steps, [r["kl"] for r in h], color=colors[name], label=name)
        axes[2].plot(steps, [r["entropy"] for r in h], color=colors[name], label=name)
    axes[0].set_title("reward during PPO (training prompts)")
    axes[1].set_title("KL to the base per response (nats)")
    axes[2].set_title("entropy per token (nats)")
    for ax in axes:
        ax.set_xlabel("PPO step")
        ax.legend(frameon=False, fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_compare(report: dict, path: Path) -> None:
    names = list(report["eval"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    for ax, key, title in zip(axes, ("true_reward", "score", "kl"),
                              ("true reward (the judge)", "reward model score", "KL to the base (nats)")):
        ax.bar(names, [report["eval"][n][key] for n in names], color=["#9e9e9e", "#1e88e5", "#e53935", "#43a047"])
        ax.set_title(title)
        ax.axhline(0, color="black", lw=0.6)
    fig.suptitle("held-out prompts: base vs PPO (with and without the KL penalty) vs DPO")
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------- the numbers, as the chapter quotes them


def summary(report: dict) -> str:
    """The report's numbers as tables: losses before and after, memory, exact match, the reward model, RLHF."""
    ins, rl, out = report["instruct"], report["rlhf"], []
    out.append("val loss (nats / token)        stories before -> after   tasks before -> after   seconds")
    for name, r in ins["runs"].items():
        b, a = r["before"], r["after"]
        out.append(f"  {name:26s} {b['base']:8.3f} -> {a['base']:6.3f}   {b['new']:9.3f} -> {a['new']:6.3f}"
                   f"   {r.get('seconds', float('nan')):7.0f}")
    out.append("one training step         trainable      total  weights B  grads B  AdamW B  step peak B")
    for name, m in ins["memory"].items():
        out.append(f"  {name:22s} {m['trainable']:11,d} {m['total']:10,d} {m['weights_bytes']:10,d} "
                   f"{m['grad_bytes']:8,d} {m['adam_bytes']:8,d} {m['step_peak_bytes']:12,d}")
    full, lora = ins["memory"]["full"], ins["memory"]["lora"]
    state = {k: m["grad_bytes"] + m["adam_bytes"] for k, m in (("full", full), ("lora", lora))}
    out.append(f"  LoRA trains {lora['trainable'] / full['trainable']:.1%} of the parameters; gradients + AdamW state "
               f"{state['full']:,} -> {state['lora']:,} bytes ({state['full'] / state['lora']:.1f}x less); the step's "
               f"peak {lora['step_peak_bytes'] / full['step_peak_bytes']:.2f}x full finetuning's")
    cols = list(TASKS) + ["all"]
    out.append("exact match (held-out inputs)  " + " ".join(f"{c:>10s}" for c in cols))
    table = [(n, v) for n, v in ins["exact_match"].items()]
    table += [(f"{n}, new phrasing", v) for n, v in ins["held_out_phrasing"].items()]
    for name, v in table:
        out.append(f"  {name:28s} " + " ".join(f"{v.get(c, float('nan')):10.2f}" for c in cols))
    pairs, rm = rl["pairs"], rl["reward_model"]
    out.append(f"preference pairs: {pairs['pairs']} from {pairs['prompts']} prompts x {pairs.get('samples', 2)} "
               f"responses ({pairs['ties']} ties dropped); the base's mean true reward "
               f"{pairs['mean_true_reward']:+.3f}")
    if "val_pairs" in rl:
        v = rl["val_pairs"]
        out.append(f"held-out pairs: {v['pairs']} from {v['prompts']} prompts of the held-out stories x 2 responses "
                   f"({v['ties']} ties dropped)")
    out.append(f"reward model, held-out pairs: accuracy {rm['val_accuracy_before']:.3f} before training, then " +
               ", ".join(f"{h['val_accuracy']:.3f}" for h in rm["history"]) + " after each epoch (on its training "
               "pairs: " + ", ".join(f"{h['train_accuracy']:.3f}" for h in rm["history"]) + ")")
    out.append("held-out prompts    reward model score   true reward   KL to the base (nats / response)")
    for name, e in rl["eval"].items():
        out.append(f"  {name:18s} {e['score']:+18.3f} {e['true_reward']:+13.3f} {e['kl']:12.2f}")
    for name, run in rl["ppo"].items():
        h = run["history"]
        first, last = h[0], h[-1]
        out.append(f"{name}: {len(h)} steps in {run['seconds']:.0f} s; score {first['score']:+.3f} -> "
                   f"{last['score']:+.3f}, true reward {first['true_reward']:+.3f} -> {last['true_reward']:+.3f}, "
                   f"KL {last['kl']:.2f}, beta {last['kl_coef']:.4f}, entropy {first['entropy']:.2f} -> "
                   f"{last['entropy']:.2f}, clipfrac {np.mean([r['clipfrac'] for r in h]):.3f} (mean)")
        ten = min(10, len(h))  # one step's 64 responses are noisy: the means of the first and last ten steps
        out.append(f"  means of the first and last {ten} steps: score "
                   f"{np.mean([r['score'] for r in h[:ten]]):+.3f} -> {np.mean([r['score'] for r in h[-ten:]]):+.3f}, "
                   f"true reward {np.mean([r['true_reward'] for r in h[:ten]]):+.3f} -> "
                   f"{np.mean([r['true_reward'] for r in h[-ten:]]):+.3f}")
    d = rl["dpo"]
    out.append(f"dpo: {len(d['history'])} epochs in {d['seconds']:.0f} s; " + ", ".join(
        f"epoch {h['epoch']}: loss {h['loss']:.3f}, accuracy {h['accuracy']:.3f}, margin {h['margin']:.3f}"
        for h in d["history"]))
    out.append(f"RLHF (part 3) {rl.get('seconds', float('nan')):.0f} s; the last full run {report['seconds']:.0f} s")
    return "\n".join(out)


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    runtime.keep_host_memory()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny models and runs (CI)")
    p.add_argument("--out", type=Path, default=None, help="figures and JSON (default docs/figures; --quick: the runs' "
                   "folder)")
    p.add_argument("--summary", action="store_true", help="print the tables of the saved 12_finetune_rlhf.json "
                   "(in --out) and stop")
    p.add_argument("--parts", choices=("all", "3"), default="all", help="3: rerun only the RLHF part, from the base "
                   "model the last full run saved, into that run's 12_finetune_rlhf.json (in --out)")
    args = p.parse_args(argv)
    s = SETTINGS["quick" if args.quick else "full"]
    runs = Path("out/labs/12_finetune_rlhf" + ("-quick" if args.quick else ""))
    out = args.out or (runs if args.quick else Path("docs/figures"))
    path = out / "12_finetune_rlhf.json"
    if args.summary:
        report = json.loads(path.read_text())
        print(summary(report))
        return report
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tinyllm.manual_seed(0)
    if args.parts == "3":
        base_dir = runs / "base"
        if not (path.is_file() and (base_dir / "model.safetensors").is_file()):
            raise SystemExit(f"--parts 3 needs a full run's {path} and its base model in {base_dir}: run the lab "
                             f"without --parts first")
        report, tok = json.loads(path.read_text()), load_tokenizer(base_dir)
        report["settings"] = {**report["settings"], **{k: s[k] for k in RLHF_SETTINGS}}
    else:
        print("0. The base model: stories, byte-level tokenizer")
        base_dir, tok, report = base_model(s, runs)
        report = {"base": report, "settings": s}
        print("\n1-2. Finetuning and instruction tuning")
        report["instruct"] = instruction_part(s, runs, base_dir, tok)
        plot_forgetting(report["instruct"], out / "12_forgetting.png")
        plot_exact_match(report["instruct"], out / "12_exact_match.png")
    print("\n3. RLHF: a reward model, PPO with and without the KL penalty, DPO")
    t3 = time.perf_counter()
    report["rlhf"] = {**rlhf_part(s, runs, base_dir, tok), "seconds": time.perf_counter() - t3}
    plot_rlhf(report["rlhf"], out / "12_rlhf_curves.png")
    plot_compare(report["rlhf"], out / "12_rlhf_compare.png")
    if args.parts == "all":
        report["seconds"] = time.perf_counter() - t0
    path.write_text(json.dumps(report, indent=1) + "\n")
    print("\n" + summary(report))
    print(f"\nfigures and 12_finetune_rlhf.json in {out}")
    return report


if __name__ == "__main__":
    main()

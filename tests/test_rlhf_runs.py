"""RLHF runs on a toy problem (tinyllm/train/rlhf/): the value head, rollouts, the reward model, PPO and DPO.

The toy: a vocabulary of 8 tokens, prompts of 4 random tokens, responses of 6; the true reward of a
response is the share of its tokens equal to GOOD. A random policy scores about 1/8.
"""

import numpy as np
import pytest

import tinyllm
from tinyllm.nn import GPT, GPTConfig
from tinyllm.train.rlhf.dpo import sequence_logprobs, train_dpo
from tinyllm.train.rlhf.policy import (
    PolicyWithValue,
    copy_model,
    evaluate_policy,
    generate_rollout,
    response_mask,
    sequence_kl,
)
from tinyllm.train.rlhf.ppo import PPOConfig, ppo_train
from tinyllm.train.rlhf.reward import (
    PreferencePairs,
    RewardModel,
    bradley_terry_loss,
    reward_accuracy,
    train_reward_model,
)

GOOD, P, R = 3, 4, 6
CFG = GPTConfig(vocab_size=8, context_length=12, n_layer=1, n_head=2, d_model=16, dropout=0.0)


def _gpt(seed=0):
    tinyllm.manual_seed(seed)
    return GPT(CFG)


def judge(ro):
    return (ro.sequences[:, ro.prompt_len:] == GOOD).mean(1)


class ProgrammaticReward:
    """A stand-in reward model: the judge itself, as a Tensor of scores."""

    def eval(self):
        return self

    def __call__(self, x, last):
        return tinyllm.tensor((np.asarray(x)[:, P:] == GOOD).mean(1).astype(np.float32))


def _prompts(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 8, (n, P))


def _host(t):
    return tinyllm.to_numpy(t.data)


def test_the_value_head_reads_every_position_causally_and_learns():
    policy = PolicyWithValue(_gpt())
    x = _prompts(3)
    logits, values = policy(x)
    assert logits.shape == (3, P, 8) and values.shape == (3, P)
    y = x.copy()
    y[:, -1] = (y[:, -1] + 1) % 8
    _, values2 = policy(y)  # changing the last token changes only the last value
    np.testing.assert_allclose(_host(values2)[:, :-1], _host(values)[:, :-1], atol=1e-6)
    assert abs(_host(values)).max() < 0.5  # a fresh head: values near 0
    values.sum().backward()
    assert policy.v_head.weight.grad is not None and policy.gpt.transformer.wte.weight.grad is not None


def test_rollouts_mask_after_the_stop_token_and_read_the_last_one():
    assert response_mask(np.array([[5, 9, 5], [1, 2, 3]]), 9).tolist() == [[1, 1, 0], [1, 1, 1]]
    ro = generate_rollout(_gpt(), _prompts(16), R, np.random.default_rng(0), stop_id=GOOD)
    assert ro.sequences.shape == (16, P + R) and ro.mask.shape == (16, R)
    for row, m, last in zip(ro.sequences[:, P:], ro.mask, ro.last):
        n = int(m.sum())
        assert (m[:n] == 1).all() and (m[n:] == 0).all() and last == P + n - 1
        assert GOOD not in row[:n - 1] and (row[n - 1] == GOOD or n == R)


def test_the_kl_of_a_copy_is_zero_and_grows_as_the_policy_moves():
    gpt = _gpt()
    ref = copy_model(gpt)
    ro = generate_rollout(gpt, _prompts(32), R, np.random.default_rng(1))
    assert np.abs(sequence_kl(gpt, ref, ro)).max() < 1e-5
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
    with tinyllm.no_grad():
        gpt.lm_head.weight.data *= 4.0  # sharper next-token distributions (tied: wte too)
    ro = generate_rollout(gpt, _prompts(256), R, np.random.default_rng(2))
    assert sequence_kl(gpt, ref, ro).mean() > 0.1


def _toy_pairs(n, seed):
    """Pairs of random responses; the one with more GOOD tokens is chosen (ties dropped)."""
    rng = np.random.default_rng(seed)
    a = np.concatenate([_prompts(n, seed), rng.integers(0, 8, (n, R))], 1)
    b = np.concatenate([a[:, :P], rng.integers(0, 8, (n, R))], 1)
    sa, sb = (a[:, P:] == GOOD).sum(1), (b[:, P:] == GOOD).sum(1)
    keep = sa != sb
    chosen, rejected = np.where((sa > sb)[:, None], a, b)[keep], np.where((sa > sb)[:, None], b, a)[keep]
    ones = np.ones((int(keep.sum()), R), dtype=np.float32)
    return PreferencePairs(chosen, rejected, ones, ones.copy(), P)


def test_the_reward_model_learns_the_preferences_and_saves(tmp_path):
    assert bradley_terry_loss(tinyllm.tensor([1.0]), tinyllm.tensor([1.0])).item() == pytest.approx(np.log(2))
    train, val = _toy_pairs(600, 0), _toy_pairs(200, 1)
    rm = RewardModel(_gpt())
    before = reward_accuracy(rm, val)
    history = train_reward_model(rm, train, val, epochs=4, batch_size=32, learning_rate=3e-3)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["val_accuracy"] > 0.85 > before
    rm.save(tmp_path / "rm")
    again = RewardModel.load(tmp_path / "rm")
    x = val.chosen[:8]
    np.testing.assert_allclose(_host(again(x, val.last("chosen")[:8])), _host(rm(x, val.last("chosen")[:8])),
                               atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no reward model"):
        RewardModel.load(tmp_path)


def test_ppo_raises_the_reward_and_the_kl_penalty_holds_the_policy_back():
    prompts = _prompts()
    runs = {}
    for beta in (0.0, 0.1):
        gpt = _gpt()
        cfg = PPOConfig(steps=16, batch_size=16, minibatch_size=8, ppo_epochs=2, response_tokens=R,
                        learning_rate=3e-3, init_kl_coef=beta, adaptive_kl=False, seed=0)
        result = ppo_train(gpt, ProgrammaticReward(), prompts, cfg, judge=judge)
        runs[beta] = evaluate_policy(gpt, copy_model(_gpt()), ProgrammaticReward(), prompts, R, judge=judge)
        assert [r["step"] for r in result.history] == list(range(16))
        rec = result.history[-1]
        assert {"score", "true_reward", "kl", "kl_coef", "entropy", "clipfrac", "vf_loss", "pg_loss"} <= set(rec)
    assert runs[0.0]["true_reward"] > 0.45  # from about 1/8
    assert runs[0.1]["kl"] < runs[0.0]["kl"] / 4 and runs[0.1]["true_reward"] > 0.2


def test_dpo_moves_the_policy_towards_the_chosen_responses():
    pairs = _toy_pairs(400, 0)
    gpt = _gpt()
    ref = copy_model(gpt)
    history = train_dpo(gpt, pairs, ref, beta=0.5, epochs=3, batch_size=32, learning_rate=3e-3)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["accuracy"] > 0.8
    with tinyllm.no_grad():
        gained = (sequence_logprobs(gpt, pairs.chosen, pairs.chosen_mask, P)
                  - sequence_logprobs(ref, pairs.chosen, pairs.chosen_mask, P)
                  - sequence_logprobs(gpt, pairs.rejected, pairs.rejected_mask, P)
                  + sequence_logprobs(ref, pairs.rejected, pairs.rejected_mask, P))
    assert (_host(gained) > 0).mean() > 0.8  # log π/π_ref rose more for y_w than for y_l (both may fall)
    after = evaluate_policy(gpt, ref, ProgrammaticReward(), _prompts(), R, judge=judge)
    assert after["true_reward"] > 0.3


def test_the_rlhf_command_tunes_a_policy_and_logs_every_step(tmp_path, capsys):
    from tinyllm.cli import main
    from tinyllm.train import TrainConfig, read_metrics, train

    (tmp_path / "corpus.txt").write_text("the cat sat on the mat. the dog ran to the cat.\n" * 40)
    train(TrainConfig(data=str(tmp_path / "corpus.txt"), out_dir=str(tmp_path / "base"), batch_size=4, max_iters=3,
                      warmup_iters=0, eval_interval=3, eval_iters=1, sample_tokens=0),
          dict(context_length=24, n_layer=1, n_head=2, d_model=16, dropout=0.0))
    RewardModel(GPT.from_pretrained(tmp_path / "base")).save(tmp_path / "rm")
    (tmp_path / "prompts.txt").write_text("the cat sat\nthe dog ran to\n\nthe mat\n")
    argv = ["rlhf", "--policy", str(tmp_path / "base"), "--reward", str(tmp_path / "rm"), "--prompts",
            str(tmp_path / "prompts.txt"), "--out", str(tmp_path / "ppo"), "--steps", "2", "--batch-size", "4",
            "--minibatch-size", "2", "--ppo-epochs", "1", "--response-tokens", "8", "--stop", "."]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ppo step 1: score" in out and "KL to the start" in out
    records = read_metrics(tmp_path / "ppo" / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1] and all(np.isfinite(r["kl"]) for r in records)
    assert GPT.from_pretrained(tmp_path / "ppo").config == GPT.from_pretrained(tmp_path / "base").config
    assert main(["sample", "--ckpt", str(tmp_path / "ppo"), "--prompt", "the", "--max-new-tokens", "4"]) == 0
    capsys.readouterr()
    # refusals: one line, nothing written
    assert main(argv) == 2 and "already holds files" in capsys.readouterr().err
    assert main([a for i, a in enumerate(argv) if argv[i - 1] != "--out" and a != "--out"]
                + ["--out", str(tmp_path / "x"), "--prompt-tokens", "9"]) == 2
    assert "fewer than --prompt-tokens 9" in capsys.readouterr().err
    assert main(["rlhf", "--policy", str(tmp_path / "base"), "--reward", str(tmp_path / "base"), "--prompts",
                 str(tmp_path / "prompts.txt"), "--out", str(tmp_path / "y")]) == 2
    assert "no reward model" in capsys.readouterr().err and not (tmp_path / "x").exists()

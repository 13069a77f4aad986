"""RLHF's pieces (tinyllm/train/rlhf/): GAE, whitening, log-probs and KL, the PPO loss, the KL controller, DPO."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
from tinyllm.train.rlhf.dpo import dpo_loss
from tinyllm.train.rlhf.gae import compute_gae, masked_whiten
from tinyllm.train.rlhf.kl_control import AdaptiveKLController, FixedKLController
from tinyllm.train.rlhf.logprobs import entropy, kl_exact, token_logprobs
from tinyllm.train.rlhf.ppo_loss import ppo_loss


def _arr(x, dtype=np.float64):
    return tinyllm.tensor(np.asarray(x, dtype=dtype)).data  # on the test device


def _host(x):
    return tinyllm.to_numpy(x.data if hasattr(x, "data") else x)


# ----------------------------------------------------------------------------- GAE


def test_gae_of_the_worked_example():
    adv, ret = compute_gae(_arr([[0, 1]]), _arr([[0.5, 0.2]]), _arr([[1, 1]]), gamma=1.0, lam=1.0)
    np.testing.assert_allclose(_host(adv), [[0.5, 0.8]])
    np.testing.assert_allclose(_host(ret), [[1.0, 1.0]])


@given(seed=st.integers(0, 2**16), B=st.integers(1, 4), T=st.integers(1, 9),
       gamma=st.floats(0.5, 1.0), lam=st.floats(0.0, 1.0))
def test_gae_equals_the_direct_sum_of_discounted_td_residuals(seed, B, T, gamma, lam):
    rng = np.random.default_rng(seed)
    r, v = rng.normal(size=(B, T)), rng.normal(size=(B, T))
    lengths = rng.integers(0, T + 1, size=B)  # a response may stop early (or be empty)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float64)
    adv, ret = compute_gae(_arr(r), _arr(v), _arr(mask), gamma, lam)
    expected = np.zeros((B, T))
    for b in range(B):
        n = lengths[b]
        nxt = np.append(v[b, 1:n], 0.0)          # the value after the last real token is 0
        delta = r[b, :n] + gamma * nxt - v[b, :n]
        for t in range(n):
            expected[b, t] = sum((gamma * lam) ** k * delta[t + k] for k in range(n - t))
    np.testing.assert_allclose(_host(adv), expected, atol=1e-10)
    np.testing.assert_allclose(_host(ret), (expected + v) * mask, atol=1e-10)


def test_whitening_over_the_real_tokens():
    rng = np.random.default_rng(0)
    x, mask = rng.normal(3.0, 5.0, size=(4, 6)), np.ones((4, 6))
    mask[0, 3:] = mask[2, 1:] = 0
    w = _host(masked_whiten(_arr(x), _arr(mask)))
    real = w[mask == 1]
    assert abs(real.mean()) < 1e-12 and abs(real.std(ddof=1) - 1) < 1e-6 and (w[mask == 0] == 0).all()


# ----------------------------------------------------------------------------- log-probs, entropy, KL


def test_logprobs_entropy_and_the_sampled_kl_estimate():
    rng = np.random.default_rng(1)
    z, zr = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))
    toks = rng.integers(0, 5, size=(2, 3))
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    logq = zr - np.log(np.exp(zr).sum(-1, keepdims=True))
    got = token_logprobs(tinyllm.tensor(z), tinyllm.tensor(toks))
    np.testing.assert_allclose(_host(got), np.take_along_axis(logp, toks[..., None], -1)[..., 0], atol=1e-12)
    np.testing.assert_allclose(_host(entropy(tinyllm.tensor(z))), -(np.exp(logp) * logp).sum(-1), atol=1e-12)
    exact = (np.exp(logp) * (logp - logq)).sum(-1)
    np.testing.assert_allclose(_host(kl_exact(tinyllm.tensor(z), tinyllm.tensor(zr))), exact, atol=1e-12)
    # k1 = log π(a) − log π_ref(a) with a ~ π: its mean is the exact KL
    p = np.exp(logp[0, 0])
    a = rng.choice(5, size=200_000, p=p)
    k1 = logp[0, 0, a] - logq[0, 0, a]
    assert abs(k1.mean() - exact[0, 0]) < 5 * k1.std() / np.sqrt(len(a))
    # the docstring's example
    pi, ref = np.log([0.5, 0.5]), np.log([0.9, 0.1])
    assert abs(0.5 * (pi[0] - ref[0]) + 0.5 * (pi[1] - ref[1]) - 0.511) < 1e-3


# ----------------------------------------------------------------------------- the PPO loss


def test_ppo_loss_of_a_hand_computed_case():
    # three tokens: A = +1 with ρ = 1.5 (clipped), A = −1 with ρ = 1.5 (not clipped), a padded one
    logp = tinyllm.tensor(np.log([[1.5, 1.5, 7.0]]), requires_grad=True)
    old = tinyllm.tensor(np.zeros((1, 3)))
    adv = tinyllm.tensor(np.array([[1.0, -1.0, 5.0]]))
    mask = tinyllm.tensor(np.array([[1.0, 1.0, 0.0]]))
    values = tinyllm.tensor(np.array([[0.5, 0.0, 9.0]]), requires_grad=True)
    old_values = tinyllm.tensor(np.array([[0.0, 0.0, 0.0]]))
    returns = tinyllm.tensor(np.array([[1.0, 0.3, 0.0]]))
    loss, stats = ppo_loss(logp, values, old, old_values, adv, returns, mask, cliprange=0.2, cliprange_value=0.2,
                           vf_coef=0.1)
    # L_pg = mean(max(−1.5, −1.2), max(1.5, 1.2)) = (−1.2 + 1.5) / 2
    assert stats["pg_loss"] == pytest.approx(0.15)
    # token 1: V = 0.5 clipped to 0.2: max((0.5 − 1)², (0.2 − 1)²) = 0.64; token 2: max(0.09, 0.09) = 0.09
    assert stats["vf_loss"] == pytest.approx(0.5 * (0.64 + 0.09) / 2)
    assert stats["clipfrac"] == pytest.approx(0.5) and stats["vf_clipfrac"] == pytest.approx(0.5)
    assert stats["approx_kl"] == pytest.approx(0.5 * np.log(1.5) ** 2)
    assert loss.item() == pytest.approx(0.15 + 0.1 * 0.5 * (0.64 + 0.09) / 2)
    loss.backward()
    # ∂/∂log π: the clipped token 0; the other −A·ρ / 2 = 1.5 / 2; the padded one 0
    np.testing.assert_allclose(_host(logp.grad), [[0.0, 0.75, 0.0]], atol=1e-12)
    # ∂/∂V: token 1 is clipped (the clipped branch is larger): 0; token 2: 0.1 · 0.5 · 2(0 − 0.3) / 2
    np.testing.assert_allclose(_host(values.grad), [[0.0, -0.015, 0.0]], atol=1e-12)


def test_an_entropy_bonus_lowers_the_loss():
    z = tinyllm.tensor(np.zeros((1, 2, 4)), requires_grad=True)
    ones, zeros = tinyllm.tensor(np.ones((1, 2))), tinyllm.tensor(np.zeros((1, 2)))
    lp = token_logprobs(z, tinyllm.tensor(np.zeros((1, 2), dtype=np.int64)))
    base, _ = ppo_loss(lp, zeros, lp.detach(), zeros, ones, zeros, ones)
    bonus, stats = ppo_loss(lp, zeros, lp.detach(), zeros, ones, zeros, ones, entropy=entropy(z), ent_coef=0.5)
    assert stats["entropy"] == pytest.approx(np.log(4))
    assert bonus.item() == pytest.approx(base.item() - 0.5 * np.log(4))


# ----------------------------------------------------------------------------- the KL coefficient


def test_the_adaptive_kl_controller_follows_ziegler():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(9.0, 32)
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 32 / 10_000))
    ctl.update(5.4, 32)  # e = −0.1
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 32 / 10_000) * (1 - 0.1 * 32 / 10_000))
    fixed = FixedKLController(0.0)
    fixed.update(100.0, 32)
    assert fixed.value == 0.0
    with pytest.raises(ValueError):
        FixedKLController(-1.0)


# ----------------------------------------------------------------------------- DPO


def test_dpo_loss_of_the_worked_example():
    loss, rc, rr = dpo_loss(tinyllm.tensor([-10.0]), tinyllm.tensor([-12.0]), tinyllm.tensor([-11.0]),
                            tinyllm.tensor([-11.0]), beta=0.1)
    assert loss.item() == pytest.approx(-np.log(1 / (1 + np.exp(-0.2))))
    assert _host(rc)[0] == pytest.approx(0.1) and _host(rr)[0] == pytest.approx(-0.1)


def test_dpo_loss_and_gradient_match_pytorch(torch):
    rng = np.random.default_rng(3)
    pc, pr, rc, rr = (rng.normal(-20, 4, size=6) for _ in range(4))
    ours = [tinyllm.tensor(pc, requires_grad=True), tinyllm.tensor(pr, requires_grad=True)]
    loss, _, _ = dpo_loss(ours[0], ours[1], tinyllm.tensor(rc), tinyllm.tensor(rr), beta=0.3)
    loss.backward()
    theirs = [torch.tensor(pc, requires_grad=True), torch.tensor(pr, requires_grad=True)]
    z = 0.3 * ((theirs[0] - torch.tensor(rc)) - (theirs[1] - torch.tensor(rr)))
    ref = -torch.nn.functional.logsigmoid(z).mean()  # TRL's "sigmoid" DPO loss
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(_host(a.grad), b.grad.numpy(), rtol=1e-10, atol=1e-14)

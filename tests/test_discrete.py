"""Discrete-state diffusion (ddpm_scratch.discrete, lecture 6), against independent computations: the one-step
matrices written entry by entry, Qbar as a loop of matrix products, posteriors by enumerating Bayes' rule, KL
divergences from torch.distributions, and the exact reverse process of a small categorical law (whose x0 posterior
is known), which the sampler must reproduce and whose bound must equal the entropy."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Categorical, kl_divergence

from ddpm_scratch.discrete import (
    KINDS,
    CategoricalDiffusion,
    bound_bits,
    categorical,
    cosine_mask_schedule,
    cumulative,
    hybrid_loss,
    maskgit_sample,
    num_states,
    p_posterior,
    prior_kl,
    q_posterior,
    q_probs,
    q_sample,
    sample,
    transition,
    vb_term,
)

F64 = torch.float64


def entrywise(kind: str, beta: float, K: int) -> torch.Tensor:
    """Q_t written entry by entry from the lecture's definitions (an independent reference)."""
    n = K + (kind == "absorbing")
    Q = torch.zeros(n, n, dtype=F64)
    for i in range(n):
        for j in range(n):
            if kind == "uniform":
                Q[i, j] = (1 - beta) * (i == j) + beta / K
            elif kind == "absorbing":
                Q[i, j] = (1 - beta) * (i == j) + beta * (j == K) if i < K else float(j == K)
            else:
                Z = sum(math.exp(-4 * d * d / ((K - 1) ** 2 * beta)) for d in range(-(K - 1), K))
                Q[i, j] = math.exp(-4 * (i - j) ** 2 / ((K - 1) ** 2 * beta)) / Z if i != j else 0.0
        if kind == "gaussian":
            Q[i, i] = 1 - Q[i].sum()
    return Q


def running_product(process: CategoricalDiffusion) -> torch.Tensor:
    n = process.num_states
    out, Q = [torch.eye(n, dtype=F64)], torch.eye(n, dtype=F64)
    for t in range(1, process.T + 1):
        Q = Q @ entrywise(process.kind, float(process.betas[t]), process.K)
        out.append(Q)
    return torch.stack(out)


# ------------------------------------------------------------------------------------------------ kernels
@given(kind=st.sampled_from(KINDS), K=st.integers(2, 20), beta=st.floats(1e-3, 1.0))
def test_transition_is_the_lectures_matrix_and_its_rows_are_distributions(kind, K, beta):
    Q = transition(kind, beta, K)
    torch.testing.assert_close(Q, entrywise(kind, beta, K), rtol=0, atol=1e-12)
    assert (Q >= 0).all()
    assert (Q.sum(1) - 1).abs().max() <= 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_stationary_law_is_kept_by_every_step(kind):
    process = CategoricalDiffusion.default(kind, 17, T=100)
    for t in (1, 37, 100):
        Q = transition(kind, float(process.betas[t]), 17)
        torch.testing.assert_close(process.pi @ Q, process.pi, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("K", [2, 17])
def test_cumulative_equals_the_product_of_the_one_step_matrices(kind, K):
    process = CategoricalDiffusion.default(kind, K, T=200)
    torch.testing.assert_close(cumulative(kind, process.betas, K), running_product(process), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
@pytest.mark.parametrize("T, K", [(1000, 64), (100, 256)])
def test_closed_form_rows_sum_to_one_for_long_chains_and_many_categories(kind, T, K):
    Q_bar = cumulative(kind, CategoricalDiffusion.default(kind, K, T).betas, K)
    assert Q_bar.shape == (T + 1, num_states(kind, K), num_states(kind, K))
    assert (Q_bar >= 0).all()
    assert (Q_bar.sum(-1) - 1).abs().max() <= 1e-12


def test_gaussian_rows_sum_to_one_for_a_long_chain():
    Q_bar = CategoricalDiffusion.default("gaussian", 64, T=1000).Q_bar
    assert (Q_bar.sum(-1) - 1).abs().max() <= 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_the_forward_marginal_reaches_the_stationary_law(kind):
    process = CategoricalDiffusion.default(kind, 17, T=1000)
    Q_bar_T = cumulative(kind, process.betas, 17)[-1]
    gap = (Q_bar_T - process.pi).abs().max().item()
    if kind == "absorbing":  # beta_T = 1: everything is masked at t = T
        assert gap == 0
    elif kind == "uniform":  # Qbar_T - 1 pi^T = alpha_bar_T (I - 1 pi^T)
        assert gap <= process.alpha_bars[-1].item() + 1e-12
    else:  # doubly stochastic, mixing: close to uniform after DDPM's linear schedule
        assert gap < 1e-3


def test_absorbing_schedule_masks_a_fraction_t_over_T():
    process = CategoricalDiffusion.default("absorbing", 5, T=40)
    torch.testing.assert_close(1 - process.alpha_bars, torch.arange(41, dtype=F64) / 40, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ q and posterior
@pytest.mark.parametrize("kind", KINDS)
def test_q_probs_are_rows_of_cumulative(kind):
    process = CategoricalDiffusion.default(kind, 6, T=30)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 6, (5, 3, 2), generator=g)
    t = torch.tensor([0, 1, 7, 29, 30])
    Q_bar = cumulative(kind, process.betas, 6)
    expected = torch.stack([Q_bar[t[b]][x0[b]] for b in range(5)])
    torch.testing.assert_close(q_probs(process, x0, t), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(q_probs(process, x0, 7), Q_bar[7][x0], rtol=0, atol=1e-12)


def bayes(kind: str, process: CategoricalDiffusion, x_t: int, t: int, p0: torch.Tensor) -> torch.Tensor:
    """sum_x0 p0(x0) q(x_{t-1} | x_t, x0), each posterior by Bayes' rule over the enumerated x_{t-1}."""
    n = process.num_states
    Q_bar = running_product(process)
    Q_t = entrywise(kind, float(process.betas[t]), process.K)
    out = torch.zeros(n, dtype=F64)
    for x0 in range(process.K):
        if p0[x0] == 0 or Q_bar[t][x0, x_t] == 0:
            continue
        joint = torch.tensor([Q_bar[t - 1][x0, i] * Q_t[i, x_t] for i in range(n)], dtype=F64)
        out += p0[x0] * joint / joint.sum()
    return out / out.sum()


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_equals_bayes_rule_by_enumeration(kind):
    process = CategoricalDiffusion.default(kind, 5, T=12)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randint(0, 5, (6, 4), generator=g)
    t = torch.tensor([1, 2, 5, 9, 12, 12])
    x_t = q_sample(process, x0, t, generator=g)
    post = q_posterior(process, x_t, t, x0=x0)
    p0 = torch.rand(6, 4, 5, generator=g, dtype=F64).softmax(-1)
    mixed = q_posterior(process, x_t, t, x0=p0)
    for b in range(6):
        for d in range(4):
            one_hot = torch.nn.functional.one_hot(x0[b, d], 5).double()
            expected = bayes(kind, process, int(x_t[b, d]), int(t[b]), one_hot)
            torch.testing.assert_close(post[b, d], expected, rtol=0, atol=1e-10)
            expected = bayes(kind, process, int(x_t[b, d]), int(t[b]), p0[b, d])
            torch.testing.assert_close(mixed[b, d], expected, rtol=0, atol=1e-10)


@given(kind=st.sampled_from(KINDS), K=st.integers(2, 9), batch=st.integers(1, 4), dims=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_posteriors_are_distributions_for_any_shape(kind, K, batch, dims, seed):
    process = CategoricalDiffusion.default(kind, K, T=20)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, K, (batch, dims), generator=g)
    t = torch.randint(1, 21, (batch,), generator=g)
    x_t = q_sample(process, x0, t, generator=g)
    for x in (x0, torch.rand(batch, dims, K, generator=g).softmax(-1)):
        post = q_posterior(process, x_t, t, x0=x)
        assert post.shape == (batch, dims, process.num_states)
        torch.testing.assert_close(post.sum(-1), torch.ones(batch, dims, dtype=F64), rtol=0, atol=1e-12)
    if kind == "absorbing":  # an unmasked token stays as it is
        kept = x_t != process.mask
        assert (post.argmax(-1)[kept] == x_t[kept]).all()


def test_categorical_never_draws_a_state_of_probability_zero(monkeypatch):
    probs = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    for u in (0.0, 0.5, 1 - 2**-53):  # the edges of the inverse CDF, u = 0 included
        monkeypatch.setattr(torch, "rand", lambda shape, u=u, **kw: torch.full(shape, u, dtype=kw.get("dtype")))
        assert categorical(probs).tolist() == [1, 2], u


def test_a_model_that_rules_out_every_possible_x0_still_gets_a_distribution():
    process = CategoricalDiffusion.default("absorbing", 4, T=10)
    x_t = torch.tensor([[2, 4]])  # an unmasked 2 can only come from x0 = 2; the mask from anything
    p0 = torch.tensor([[[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]], dtype=F64)  # all on x0 = 1
    post = q_posterior(process, x_t, 5, x0=p0)
    torch.testing.assert_close(post.sum(-1), torch.ones(1, 2, dtype=F64), rtol=0, atol=1e-12)
    assert post[0, 0].argmax() == 2 and post[0, 0, 2] == 1  # never the mask, never a zero row


def test_q_sample_draws_from_q_probs():
    process = CategoricalDiffusion.default("uniform", 4, T=10)
    n = 40_000
    x0 = torch.full((n, 1), 2)
    x_t = q_sample(process, x0, 3, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(x_t.flatten(), minlength=4).double() / n
    p = q_probs(process, x0[:1], 3)[0, 0]
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / n).sqrt()).all(), (freq, p)


# ------------------------------------------------------------------------------------------------ an exact model
PRIOR = torch.tensor([0.1, 0.2, 0.3, 0.4])


def exact_model(process: CategoricalDiffusion):
    """p(x0 | x_t) of independent tokens with law PRIOR, by Bayes: PRIOR(x0) q(x_t | x0), as logits."""
    Q_bar = running_product(process).float()

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        likelihood = Q_bar[t][:, :process.K, :]  # (B, K, K')
        likelihood = likelihood.gather(2, x_t.reshape(len(t), 1, -1).expand(-1, process.K, -1))  # (B, K, D)
        return torch.log(PRIOR[None, :, None] * likelihood + 1e-30).transpose(1, 2).reshape(*x_t.shape, process.K)

    return model


@pytest.mark.parametrize("kind, num_steps", [("uniform", None), ("absorbing", None), ("gaussian", None),
                                             ("uniform", 7), ("absorbing", 7)])
def test_with_the_exact_x0_posterior_the_sampler_draws_the_data_law(kind, num_steps):
    process = CategoricalDiffusion.default(kind, 4, T=25)
    n = 20_000
    x = sample(exact_model(process), process, (n, 1), num_steps=num_steps, generator=torch.Generator().manual_seed(2))
    freq = torch.bincount(x.flatten(), minlength=process.num_states).double() / n
    assert freq[4:].sum() == 0  # never the mask
    freq = freq[:4]
    se = (PRIOR.double() * (1 - PRIOR.double()) / n).sqrt()
    assert ((freq - PRIOR.double()).abs() <= 5 * se).all(), (freq, PRIOR)


@pytest.mark.parametrize("kind", KINDS)
def test_with_the_exact_model_the_bound_is_the_entropy_plus_the_prior_gap(kind):
    """-ELBO = H(x0) + KL(q(x_T) || pi) when every reverse step is exact (a single token)."""
    process = CategoricalDiffusion.default(kind, 4, T=20)
    n = 4000
    g = torch.Generator().manual_seed(3)
    x0 = torch.multinomial(PRIOR, n, replacement=True, generator=g)[:, None]
    bits = bound_bits(exact_model(process), process, x0, generator=g).double()
    q_T = PRIOR.double() @ running_product(process)[-1][:4]
    pi = process.pi
    gap = (torch.xlogy(q_T, q_T) - torch.xlogy(q_T, pi)).sum() / math.log(2)
    expected = -(PRIOR * PRIOR.log2()).sum().double() + gap
    assert abs(bits.mean() - expected) <= 5 * bits.std() / math.sqrt(n) + 1e-6, (bits.mean(), expected)


def test_vb_terms_are_kl_divergences_and_the_decoder_likelihood():
    process = CategoricalDiffusion.default("uniform", 5, T=10)
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 5)

    def model(x_t, t):
        features = torch.cat([torch.nn.functional.one_hot(x_t, 5).float(), t.float()[:, None, None].expand(
            *x_t.shape, 1) / 10], -1)
        return net(features)

    g = torch.Generator().manual_seed(4)
    x0 = torch.randint(0, 5, (3, 7), generator=g)
    for t in (1, 4, 10):
        x_t = q_sample(process, x0, t, generator=g)
        p = p_posterior(model, process, x_t, t)
        if t == 1:
            expected = -p.gather(-1, x0[..., None]).squeeze(-1).log().mean(1)
        else:
            q = q_posterior(process, x_t, t, x0=x0)
            expected = kl_divergence(Categorical(probs=q), Categorical(probs=p)).mean(1)
        torch.testing.assert_close(vb_term(model, process, x0, x_t, t), expected, rtol=1e-5, atol=1e-6)
    prior = kl_divergence(Categorical(probs=q_probs(process, x0, 10)),
                          Categorical(probs=process.pi.float().expand(3, 7, 5))).mean(1)
    torch.testing.assert_close(prior_kl(process, x0), prior, rtol=1e-5, atol=1e-7)


def test_hybrid_loss_vanishes_for_an_oracle_and_trains_a_model():
    process = CategoricalDiffusion.default("absorbing", 3, T=10)
    x0 = torch.randint(0, 3, (16, 4), generator=torch.Generator().manual_seed(5))
    oracle = lambda x_t, t: 50.0 * torch.nn.functional.one_hot(x0, 3).float()  # noqa: E731 (knows x0)
    assert hybrid_loss(oracle, process, x0, generator=torch.Generator().manual_seed(0)).item() < 1e-6
    logits = torch.zeros(4, 3, requires_grad=True)
    loss = hybrid_loss(lambda x_t, t: logits.expand(*x_t.shape, 3), process, x0,
                       generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() > 0 and logits.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ samplers
def test_sample_calls_the_hook_after_every_step_and_starts_where_asked():
    process = CategoricalDiffusion.default("absorbing", 4, T=12)
    seen = []

    def hook(x, t):
        seen.append(t)
        return x

    x = sample(exact_model(process), process, (3, 2), hook=hook, generator=torch.Generator().manual_seed(0))
    assert seen == list(range(11, -1, -1)) and x.shape == (3, 2) and x.max() < 4
    seen.clear()
    x0 = torch.tensor([[0, 1], [2, 3], [1, 1]])
    x_5 = q_sample(process, x0, 5, generator=torch.Generator().manual_seed(1))
    sample(exact_model(process), process, (3, 2), x_T=x_5, t_start=5, hook=hook)
    assert seen == [4, 3, 2, 1, 0]
    seen.clear()
    sample(exact_model(process), process, (3, 2), num_steps=4, hook=hook)
    assert seen == [9, 6, 3, 0]


def test_samplers_follow_their_generator():
    process = CategoricalDiffusion.default("absorbing", 4, T=12)
    for run in (sample, maskgit_sample):
        a, b = (run(exact_model(process), process, (5, 6), generator=torch.Generator().manual_seed(7))
                for _ in range(2))
        c = run(exact_model(process), process, (5, 6), generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("num_steps", [1, 4, 12])
def test_maskgit_unmasks_on_its_cosine_schedule(num_steps):
    process = CategoricalDiffusion.default("absorbing", 4, T=50)
    N = 30
    masked_after = []

    def hook(x, t):
        masked_after.append(int((x == process.mask).sum(1)[0]))
        assert 1 - process.alpha_bars[t] >= masked_after[-1] / N - 1e-9  # t's masked fraction covers x's
        return x

    x = maskgit_sample(exact_model(process), process, (3, N), num_steps=num_steps, hook=hook,
                       generator=torch.Generator().manual_seed(0))
    expected, left = [], N
    for k in range(1, num_steps + 1):
        left = max(0, min(left - 1, math.floor(N * cosine_mask_schedule(k / num_steps))))
        expected.append(left)
    assert masked_after == expected and (x != process.mask).all() and x.max() < 4


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("call, message", [
    (lambda: transition("normal", 0.1, 4), "kind"),
    (lambda: transition("uniform", 1.5, 4), "beta"),
    (lambda: transition("gaussian", 0.0, 4), "beta"),
    (lambda: transition("uniform", 0.1, 1), "K"),
    (lambda: cumulative("uniform", torch.tensor([0.1, 0.2]), 4), "betas\\[0\\]"),
    (lambda: CategoricalDiffusion.default("gaussian", 4, 10).respace([2, 5, 10]), "gaussian"),
    (lambda: q_probs(CategoricalDiffusion.default("uniform", 4, 10), torch.tensor([[4]]), 1), "x0"),
    (lambda: q_probs(CategoricalDiffusion.default("uniform", 4, 10), torch.tensor([[1.0]]), 1), "x0"),
    (lambda: q_probs(CategoricalDiffusion.default("uniform", 4, 10), torch.tensor([[1]]), 11), "t"),
    (lambda: q_posterior(CategoricalDiffusion.default("absorbing", 4, 10), torch.tensor([[5]]), 1,
                         x0=torch.tensor([[1]])), "x_t"),
    (lambda: q_posterior(CategoricalDiffusion.default("absorbing", 4, 10), torch.tensor([[4]]), 1,
                         x0=torch.ones(1, 1, 5) / 5), "x0"),
    (lambda: maskgit_sample(lambda x, t: None, CategoricalDiffusion.default("uniform", 4, 10), (2, 3)), "absorbing"),
    (lambda: sample(lambda x, t: torch.zeros(*x.shape, 3), CategoricalDiffusion.default("uniform", 4, 10), (2, 3)),
     "logits"),
    (lambda: sample(lambda x, t: None, CategoricalDiffusion.default("uniform", 4, 10), (2, 3), t_start=4), "x_T"),
    (lambda: sample(lambda x, t: None, CategoricalDiffusion.default("uniform", 4, 10), (2, 3), device="meta"),
     "device"),
])
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()

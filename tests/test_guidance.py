"""Guidance wrappers (ddpm_scratch.guidance) against exact references: a 2-D Gaussian mixture whose components are
the classes gives, by Bayes' rule, the exact conditional and unconditional eps and the exact p_t(y | x_t); the
guided scores are checked against autograd of the tilted noised densities, computed here from log-densities only."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.guidance import (
    ClassifierFree,
    ClassifierGuided,
    Thresholded,
    classifier_free_eps,
    classifier_guided_eps,
    dynamic_threshold,
    mixture_conditional_eps_model,
    mixture_log_prob_y,
    static_threshold,
)
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture

F64 = torch.float64
SCHEDULE = NoiseSchedule.cosine(200)
MIXTURE = GaussianMixture([0.5, 0.3, 0.2], [[-1.0, 0.2], [1.2, 0.8], [0.3, -1.1]],
                          [[0.10, 0.05], [0.08, 0.12], [0.15, 0.06]])  # 3 classes, diagonal covariances
K = MIXTURE.K
STEPS = torch.tensor([1, 7, 40, 90, 150, 199])  # from almost clean to almost pure noise


def points(n: int, seed: int = 0) -> torch.Tensor:
    return 1.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def noised_log_prob(x: torch.Tensor, t: torch.Tensor, weights: list[float] | None = None,
                    component: int | None = None) -> torch.Tensor:
    """log q_t(x) of the diffused mixture (or of one component), written out from the Gaussians' densities."""
    abar = SCHEDULE.alpha_bars.to(F64)[t][:, None]
    terms = []
    for k in range(K) if component is None else [component]:
        mean = abar.sqrt() * MIXTURE.means[k]
        var = abar * torch.diagonal(MIXTURE.covs[k]) + (1 - abar)  # the covariances are diagonal
        log_normal = -0.5 * (((x - mean) ** 2 / var).sum(1) + var.log().sum(1) + 2 * math.log(2 * math.pi))
        w = 1.0 if component is not None else (weights or MIXTURE.weights.tolist())[k]
        terms.append(math.log(w) + log_normal)
    return torch.logsumexp(torch.stack(terms, 1), 1)


def score_of(log_density, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(log_density(x).sum(), x)
    return grad


def eps_of(score: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -(1 - SCHEDULE.alpha_bars.to(F64)[t])[:, None].sqrt() * score


# ---------------------------------------------------------------------------------- the exact references

def test_exact_references_are_bayes_rule():
    x = points(len(STEPS), 1)
    net = mixture_conditional_eps_model(MIXTURE, SCHEDULE)
    for k in range(K):
        y = torch.full((len(STEPS),), k)
        want = eps_of(score_of(lambda z, k=k: noised_log_prob(z, STEPS, component=k), x), STEPS)
        torch.testing.assert_close(net(x, STEPS, y), want, rtol=1e-9, atol=1e-12)
    want = eps_of(score_of(lambda z: noised_log_prob(z, STEPS), x), STEPS)
    torch.testing.assert_close(net(x, STEPS, torch.full((len(STEPS),), K)), want, rtol=1e-9, atol=1e-12)
    log_p_y = mixture_log_prob_y(MIXTURE, SCHEDULE)
    total = torch.stack([log_p_y(x, STEPS, torch.full((len(STEPS),), k)).exp() for k in range(K)]).sum(0)
    torch.testing.assert_close(total, torch.ones(len(STEPS), dtype=F64))
    k = 2  # log p(y | x) = log pi_y + log q_t(x | y) - log q_t(x)
    want = math.log(MIXTURE.weights[k]) + noised_log_prob(x, STEPS, component=k) - noised_log_prob(x, STEPS)
    torch.testing.assert_close(log_p_y(x, STEPS, torch.full((len(STEPS),), k)), want, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------- classifier-free guidance

@given(gamma=st.floats(0, 10), seed=st.integers(0, 10_000))
def test_classifier_free_eps_is_the_lectures_combination(gamma, seed):
    g = torch.Generator().manual_seed(seed)
    eps_uncond, eps_cond = torch.randn(2, 3, 4, generator=g, dtype=F64)
    got = classifier_free_eps(eps_uncond=eps_uncond, eps_cond=eps_cond, gamma=gamma)
    torch.testing.assert_close(got, (1 - gamma) * eps_uncond + gamma * eps_cond)
    torch.testing.assert_close(classifier_free_eps(eps_uncond=eps_uncond, eps_cond=eps_cond, gamma=0.0), eps_uncond)
    torch.testing.assert_close(classifier_free_eps(eps_uncond=eps_uncond, eps_cond=eps_cond, gamma=1.0), eps_cond)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.0, 7.5])
def test_cfg_is_the_score_of_the_tilted_noised_densities(gamma):
    """CFG with the exact networks: eps of p_t(x)^(1 - gamma) p_t(x | y)^gamma, at every noise level."""
    x, y = points(len(STEPS), 2), torch.tensor([0, 1, 2, 0, 1, 2])
    guided = ClassifierFree(mixture_conditional_eps_model(MIXTURE, SCHEDULE), y, gamma=gamma, num_classes=K)

    def tilted(z):
        conditional = torch.stack([noised_log_prob(z[i:i + 1], STEPS[i:i + 1], component=int(y[i]))
                                   for i in range(len(y))]).squeeze(1)
        return (1 - gamma) * noised_log_prob(z, STEPS) + gamma * conditional

    torch.testing.assert_close(guided(x, STEPS), eps_of(score_of(tilted, x), STEPS), rtol=1e-8, atol=1e-10)


def test_classifier_free_makes_one_network_call_on_2b_rows():
    calls = []
    exact = mixture_conditional_eps_model(MIXTURE, SCHEDULE)

    def network(x_t, t, y):
        calls.append((x_t.shape[0], t.tolist(), y.tolist()))
        return exact(x_t, t, y)

    x, t = points(3, 3), torch.tensor([5, 50, 150])
    got = ClassifierFree(network, 1, gamma=2.0, num_classes=K)(x, t)
    assert calls == [(6, [5, 50, 150, 5, 50, 150], [1, 1, 1, K, K, K])]
    want = classifier_free_eps(eps_uncond=exact(x, t, torch.full((3,), K)),
                               eps_cond=exact(x, t, torch.ones(3, dtype=torch.long)), gamma=2.0)
    torch.testing.assert_close(got, want)
    one_step = ClassifierFree(network, 1, gamma=2.0, num_classes=K)(x, 50)  # an int t: the same step for every row
    torch.testing.assert_close(one_step, ClassifierFree(network, 1, gamma=2.0, num_classes=K)(x, torch.full((3,), 50)))


def test_classifier_free_checks_its_arguments():
    net = mixture_conditional_eps_model(MIXTURE, SCHEDULE)
    with pytest.raises(ValueError, match="y must hold classes in 0..2"):
        ClassifierFree(net, K, gamma=1.0, num_classes=K)  # the "no label" token is not a class to guide towards
    with pytest.raises(ValueError, match="gamma"):
        ClassifierFree(net, 0, gamma=-1.0, num_classes=K)
    with pytest.raises(TypeError, match="y must be an int"):
        ClassifierFree(net, 1.0, gamma=1.0, num_classes=K)
    with pytest.raises(ValueError, match="labels y have shape"):
        ClassifierFree(net, torch.tensor([0, 1]), gamma=1.0, num_classes=K)(points(3), torch.tensor([1, 2, 3]))


# ---------------------------------------------------------------------------------- classifier guidance

@pytest.mark.parametrize("gamma", [0.0, 1.0, 4.0])
def test_classifier_guidance_with_the_exact_classifier_is_cfg_with_the_exact_networks(gamma):
    """Bayes' rule: grad log p_t(y | x) = grad log p_t(x | y) - grad log p_t(x), so both guidances agree."""
    x, y = points(len(STEPS), 4), torch.tensor([2, 2, 1, 0, 1, 0])
    net = mixture_conditional_eps_model(MIXTURE, SCHEDULE)
    unconditional = ClassifierFree(net, 0, gamma=0.0, num_classes=K)  # gamma = 0: the network without a label
    guided = ClassifierGuided(unconditional, mixture_log_prob_y(MIXTURE, SCHEDULE), y, SCHEDULE, gamma=gamma)
    cfg = ClassifierFree(net, y, gamma=gamma, num_classes=K)
    with torch.no_grad():  # as the samplers call it: the wrapper takes its gradient all the same
        torch.testing.assert_close(guided(x, STEPS), cfg(x, STEPS), rtol=1e-8, atol=1e-10)


def test_classifier_guided_eps_scales_the_gradient_by_the_noise_std():
    x, t = points(2, 5), torch.tensor([10, 100])
    eps, grad = torch.randn(2, 2, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    got = classifier_guided_eps(SCHEDULE, x, t, eps=eps, grad_log_p_y=grad, gamma=3.0)
    std = (1 - SCHEDULE.alpha_bars.to(F64)[t])[:, None].sqrt()
    torch.testing.assert_close(got, eps - 3.0 * std * grad)


# ---------------------------------------------------------------------------------- thresholding

@given(seed=st.integers(0, 10_000), scale=st.floats(0.1, 5.0), percentile=st.floats(0.5, 1.0))
def test_dynamic_threshold_keeps_x0_in_range_and_leaves_in_range_samples_alone(seed, scale, percentile):
    x0 = scale * torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(seed), dtype=F64)
    out = dynamic_threshold(x0, percentile=percentile)
    assert out.shape == x0.shape and out.dtype == x0.dtype and out.abs().max() <= 1 + 1e-12
    inside = x0.reshape(4, -1).abs().max(1).values <= 1  # every value in range: s = 1 and nothing clipped
    torch.testing.assert_close(out[inside], x0[inside])
    s = torch.quantile(x0.reshape(4, -1).abs(), percentile, dim=1).clamp(min=1)[:, None, None]
    torch.testing.assert_close(out, x0.clamp(-s, s) / s)  # independent of the clipping order


def test_static_threshold_clips_to_the_data_range():
    x0 = torch.tensor([[-3.0, -0.5, 0.0, 0.7, 2.0]])
    torch.testing.assert_close(static_threshold(x0), torch.tensor([[-1.0, -0.5, 0.0, 0.7, 1.0]]))


@pytest.mark.parametrize("method", ["static", "dynamic"])
def test_thresholded_model_predicts_the_thresholded_x0(method):
    x, t = points(6, 7) * 3, torch.tensor([3, 20, 60, 100, 160, 199])
    model = mixture_conditional_eps_model(GaussianMixture([1.0], [[2.5, -2.5]], [0.2]), SCHEDULE)
    eps_model = ClassifierFree(model, 0, gamma=0.0, num_classes=1)
    wrapped = Thresholded(eps_model, SCHEDULE, method=method)
    abar = SCHEDULE.alpha_bars.to(F64)[t][:, None]
    x0 = (x - (1 - abar).sqrt() * eps_model(x, t)) / abar.sqrt()
    x0_wrapped = (x - (1 - abar).sqrt() * wrapped(x, t)) / abar.sqrt()
    assert x0.abs().max() > 1.5 and x0_wrapped.abs().max() <= 1 + 1e-9
    want = static_threshold(x0) if method == "static" else dynamic_threshold(x0)
    torch.testing.assert_close(x0_wrapped, want)
    if method == "dynamic":  # the wrapper's percentile reaches the thresholding
        other = Thresholded(eps_model, SCHEDULE, method=method, percentile=0.6)
        x0_other = (x - (1 - abar).sqrt() * other(x, t)) / abar.sqrt()
        torch.testing.assert_close(x0_other, dynamic_threshold(x0, percentile=0.6))
        assert not torch.allclose(x0_other, want)
    with pytest.raises(ValueError, match="method"):
        Thresholded(eps_model, SCHEDULE, method="soft")


# ---------------------------------------------------------------------------------- every sampler takes them

@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_takes_the_guided_models_unchanged(sampler):
    """A guided model is an eps-model: each registered sampler runs it, and guided (gamma 2) towards a class far from
    the others it lands in that class's component."""
    net = mixture_conditional_eps_model(MIXTURE, SCHEDULE)
    model = ClassifierFree(net, 1, gamma=2.0, num_classes=K)
    x0 = sample(model, SCHEDULE, (64, 2), sampler=sampler, num_steps=20, dtype=F64,
                generator=torch.Generator().manual_seed(8))
    assert x0.shape == (64, 2) and torch.isfinite(x0).all()
    nearest = torch.cdist(x0, MIXTURE.means).argmin(1)
    # class 1's own law puts all but about 1e-3 of its mass nearest its mean (the others are 7 of its stds away),
    # and guidance only sharpens it; 0.9 leaves room for 20 steps' discretisation error
    assert (nearest == 1).double().mean() > 0.9, f"{sampler}: {(nearest == 1).double().mean():.2f} in class 1"


# ---------------------------------------------------------------------------------- what guidance samples

@pytest.mark.slow
def test_guided_samplers_do_not_sample_the_tilted_density_and_langevin_correctors_close_most_of_the_gap():
    """1-D, p(x) = 0.5 N(-1, 0.35^2) + 0.5 N(1, 0.35^2), the right component as the class, gamma = 3, exact networks.
    The guided score is the tilted noised densities' at every level, yet the probability-flow ODE and ancestral
    sampling land far from p(x)^(1 - gamma) p(x | y)^gamma (its mean and sd on a grid): by more than 10 standard
    errors. One Langevin corrector step at every level (the pc sampler) closes most of the gap: its mean is within
    a fifth of the ODE's and ddpm's distance (a small bias remains, about 0.008 in the mean over seeds).
    (benchmarks/guidance_exact.py prints the table with more samples.)"""
    std, gamma, n = 0.35, 3.0, 4000
    mixture = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [std**2, std**2])
    schedule = NoiseSchedule.linear(1000)
    grid = torch.linspace(-5.0, 6.0, 200_001, dtype=F64)[:, None]
    log_conditional = -0.5 * ((grid[:, 0] - 1.0) / std) ** 2  # N(1, std^2), up to a constant
    weights = torch.softmax((1 - gamma) * mixture.log_prob(grid) + gamma * log_conditional, dim=0)
    mean = (weights * grid[:, 0]).sum().item()
    sd = math.sqrt((weights * (grid[:, 0] - mean) ** 2).sum().item())
    se_mean, se_sd = sd / math.sqrt(n), sd / math.sqrt(2 * n)
    model = ClassifierFree(mixture_conditional_eps_model(mixture, schedule), 1, gamma=gamma, num_classes=2)

    def moments(sampler, **options):
        x = sample(model, schedule, (n, 1), sampler=sampler, dtype=F64, generator=torch.Generator().manual_seed(1),
                   **options)
        return x.mean().item(), x.std().item()

    gaps = {}
    for sampler in ("ode", "ddpm"):
        got_mean, _ = moments(sampler)
        gaps[sampler] = got_mean - mean
        assert gaps[sampler] > 10 * se_mean, f"{sampler}: mean {got_mean:.3f}, the tilted density's {mean:.3f}"
    got_mean, got_sd = moments("pc", corrector_steps=1)
    assert abs(got_mean - mean) < min(gaps.values()) / 5 and abs(got_sd - sd) < 10 * se_sd, (
        f"pc: mean {got_mean:.4f}, sd {got_sd:.4f}; the tilted density's {mean:.4f}, {sd:.4f}; gaps {gaps}")


# ---------------------------------------------------------------------------------- a noise-aware classifier

def test_noisy_classifier_reads_vectors_and_images_and_checks_them():
    from ddpm_scratch.nets import NoisyClassifier

    vectors = NoisyClassifier((2,), 3, hidden=16)
    assert vectors(points(5).float(), torch.tensor([1, 2, 3, 4, 5])).shape == (5, 3)
    images = NoisyClassifier((1, 8, 8), 10, hidden=16, depth=3)
    assert images(torch.randn(4, 1, 8, 8), 7).shape == (4, 10)
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 1, 8, 8\)"):
        images(torch.randn(4, 1, 16, 16), 7)
    with pytest.raises(ValueError, match="shape must be"):
        NoisyClassifier((1, 8), 10)


def test_classifier_loss_is_the_cross_entropy_on_noisy_data():
    """With logits = log p_t(y | x_t) of the exact classifier, classifier_loss is the mean of -log p_t(y | x_t) over
    the t and x_t it draws (redrawn here from a generator in the same state), and beats a uniform guess."""
    g = torch.Generator().manual_seed(9)
    x0 = MIXTURE.sample(512, g)
    y = torch.cdist(x0, MIXTURE.means).argmin(1)  # a labelling of the draws (any fixed labels will do)
    exact = mixture_log_prob_y(MIXTURE, SCHEDULE)

    def logits(x_t, t):
        return torch.stack([exact(x_t, t, torch.full((len(t),), k)) for k in range(K)], dim=1)

    from ddpm_scratch.guidance import classifier_loss
    from ddpm_scratch.losses import sample_timesteps

    got = classifier_loss(logits, SCHEDULE, x0, y, generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    t = sample_timesteps(SCHEDULE.T, len(x0), generator=replay)
    abar = SCHEDULE.alpha_bars.to(F64)[t][:, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * torch.randn(x0.shape, generator=replay, dtype=F64)
    torch.testing.assert_close(got, -exact(x_t, t, y).mean())
    assert got < math.log(K)


def test_guidance_functions_check_their_arguments():
    eps = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="same shape"):
        classifier_free_eps(eps_uncond=eps, eps_cond=eps[:1], gamma=2.0)
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        classifier_free_eps(eps_uncond=eps, eps_cond=eps, gamma=float("nan"))
    with pytest.raises(ValueError, match="percentile"):
        dynamic_threshold(eps, percentile=99.5)  # a quantile in (0, 1], not a percentage


def labelled_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws of the labelled mixture: a class y ~ pi, then x0 from its component (diagonal covariances)."""
    y = torch.multinomial(MIXTURE.weights, n, replacement=True, generator=generator)
    std = torch.diagonal(MIXTURE.covs, dim1=1, dim2=2)[y].sqrt()
    return MIXTURE.means[y] + torch.randn(n, 2, generator=generator, dtype=F64) * std, y


def trained(model: torch.nn.Module, loss, seed: int) -> torch.nn.Module:
    """model trained 300 Adam steps (lr 3e-3) on batches of 256 of the labelled mixture with loss(model, schedule,
    x0, y, *, generator); returned in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(300):
        x0, y = labelled_batch(256, g)
        value = loss(model, SCHEDULE, x0, y, generator=g)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    return model.eval()


def shares_of_class_2(log_prob_y, seed: int, n: int = 600) -> tuple[float, float, float]:
    """(unguided share, guided share, standard error of their difference) of n DDIM samples nearest class 2, from
    the exact unconditional eps, and from it guided by log_prob_y (ClassifierGuided, gamma 3)."""
    unconditional = ClassifierFree(mixture_conditional_eps_model(MIXTURE, SCHEDULE), 0, gamma=0.0, num_classes=K)

    def share(model):
        x0 = sample(model, SCHEDULE, (n, 2), sampler="ddim", num_steps=40, dtype=F64,
                    generator=torch.Generator().manual_seed(seed))
        return (torch.cdist(x0, MIXTURE.means).argmin(1) == 2).double().mean().item()

    before, after = share(unconditional), share(ClassifierGuided(unconditional, log_prob_y, 2, SCHEDULE, gamma=3.0))
    return before, after, math.sqrt(before * (1 - before) / n + after * (1 - after) / n)


def test_a_trained_classifier_guides_samples_towards_its_class():
    """A NoisyClassifier trained a few hundred steps on the labelled mixture, used by ClassifierGuided (gamma 3) on
    the exact unconditional eps: the share of samples nearest class 2 (weight 0.2) rises well above the unguided
    share, by more than 10 standard errors of the difference of two proportions."""
    from ddpm_scratch.guidance import classifier_log_prob_y, classifier_loss
    from ddpm_scratch.nets import NoisyClassifier

    torch.manual_seed(0)
    classifier = trained(NoisyClassifier((2,), K, hidden=64).double(), classifier_loss, seed=10)
    before, after, se = shares_of_class_2(classifier_log_prob_y(classifier), seed=11)
    assert after - before > 10 * se, f"class 2's share: {before:.3f} unguided, {after:.3f} guided (se {se:.3f})"


# ---------------------------------------------------------------------------------- a toy CLIP

def test_clip_losses_minimiser_is_the_pointwise_mutual_information():
    """The contrastive loss (guidance.clip_loss) over batches of the labelled mixture, with three critics written
    from the exact p_t(c | x): the pointwise mutual information log p_t(c | x) - log p(c) scores lower than the
    classifier's log p_t(c | x) (which misses -log p(c)) and than the PMI with noise added, each by more than 4
    standard errors of the difference of the batch means (paired: the same batches for all three)."""
    from ddpm_scratch.guidance import clip_loss

    exact = mixture_log_prob_y(MIXTURE, SCHEDULE)
    log_prior = MIXTURE.weights.log()
    noise = torch.randn(K, generator=torch.Generator().manual_seed(12), dtype=F64)

    class Critic:
        def __init__(self, kind):
            self.kind = kind

        def similarities(self, x_t, t, c):
            log_post = torch.stack([exact(x_t, t, torch.full((len(t),), k)) for k in range(K)], dim=1)  # (B, K)
            s = {"pmi": log_post - log_prior, "posterior": log_post, "noisy": log_post - log_prior + noise}[self.kind]
            return s[:, c]  # s(x_i, c_j)

    g = torch.Generator().manual_seed(13)
    losses = {kind: [] for kind in ("pmi", "posterior", "noisy")}
    for _ in range(200):
        x0, ys = labelled_batch(64, g)
        state = g.get_state()
        for kind in losses:  # the same t and noise for the three critics
            g.set_state(state)
            losses[kind].append(clip_loss(Critic(kind), SCHEDULE, x0, ys, generator=g).item())
    pmi = torch.tensor(losses["pmi"])
    for kind in ("posterior", "noisy"):
        gap = torch.tensor(losses[kind]) - pmi
        assert gap.mean() > 4 * gap.std() / math.sqrt(len(gap)), (
            f"{kind}: mean loss gap {gap.mean():.4f} over the PMI critic, se {gap.std() / math.sqrt(len(gap)):.4f}")


def test_a_trained_toy_clip_guides_samples_towards_its_class():
    """CLIP guidance is ClassifierGuided with the CLIP similarity in place of log p_t(y | x_t): a ToyCLIP trained a
    few hundred steps with clip_loss raises class 2's share of guided samples above the unguided share by more than
    10 standard errors of the difference of two proportions."""
    from ddpm_scratch.guidance import clip_loss
    from ddpm_scratch.nets import ToyCLIP

    torch.manual_seed(0)
    clip = trained(ToyCLIP((2,), K, embed_dim=16, hidden=64).double(), clip_loss, seed=14)
    before, after, se = shares_of_class_2(clip, seed=15)  # the CLIP similarity in place of log p_t(y | x_t)
    assert after - before > 10 * se, f"class 2's share: {before:.3f} unguided, {after:.3f} CLIP-guided (se {se:.3f})"

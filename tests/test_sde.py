"""Lecture 3: the VP and VE SDEs, their marginals, the reverse SDE and the probability-flow ODE.

References are computed here from the equations (beta(t), sigma(t), the Gaussian marginals of Gaussian data) and
the simulations are written here, so a slip in sde.py cannot hide in its own reference. Statistical checks use
fixed seeds and tolerances z * (standard error) + (a bias computed exactly in the test), with z = 4.
"""

import math

import pytest
import torch
from drifts import pf_drift, rev_drift
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.sde import (
    VESDE,
    VPSDE,
    evaluate_score,
    step_from_time,
    time_from_step,
)

Z = 4.0  # two-sided normal quantile: a correct implementation fails one check with probability 6e-5
F64 = torch.float64


def vp_beta(beta_min, beta_max, t):
    return beta_min + t * (beta_max - beta_min)


def ve_sigma(sigma_min, sigma_max, t):
    return sigma_min * (sigma_max / sigma_min) ** t


def formulas(sde):
    """f(t) and g(t) of dx = f(t) x dt + g(t) dw, written from Song et al. 2021 eqs. 9 and 11."""
    if isinstance(sde, VPSDE):
        def beta(t):
            return vp_beta(sde.beta_min, sde.beta_max, t)
        return (lambda t: -0.5 * beta(t)), (lambda t: beta(t) ** 0.5)
    log_ratio = math.log(sde.sigma_max / sde.sigma_min)
    return (lambda t: 0.0 * t), (lambda t: ve_sigma(sde.sigma_min, sde.sigma_max, t) * math.sqrt(2 * log_ratio))


vp_sdes = st.builds(lambda lo, span: VPSDE(lo, lo + span), st.floats(0.01, 2.0), st.floats(0.0, 40.0))
ve_sdes = st.builds(lambda lo, ratio: VESDE(lo, lo * ratio), st.floats(1e-3, 1.0), st.floats(1.5, 1e4))


# ------------------------------------------------------------------------------------------ coefficients, marginal
@given(st.one_of(vp_sdes, ve_sdes), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_drift_and_diffusion_follow_eqs_9_and_11(sde, times):
    f, g = formulas(sde)
    t = torch.tensor(times, dtype=F64)
    x = torch.randn(len(times), 3, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(sde.drift(x, t), f(t).view(-1, 1, 1) * x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.as_tensor(sde.diffusion(t), dtype=F64), g(t), rtol=1e-12, atol=0)
    # a float t gives floats, the same values
    assert isinstance(sde.diffusion(times[0]), float)
    assert sde.diffusion(times[0]) == pytest.approx(float(g(t[0])), rel=1e-12)
    torch.testing.assert_close(sde.drift(x, times[0]), f(t[0]) * x, rtol=1e-12, atol=1e-12)
    mean_coef, std = sde.marginal(times[0])
    assert isinstance(mean_coef, float) and isinstance(std, float)
    assert (mean_coef, std) == pytest.approx(tuple(float(v[0]) for v in sde.marginal(t)), rel=1e-12, abs=1e-300)


@given(st.one_of(vp_sdes, ve_sdes))
def test_the_marginal_solves_the_moment_equations(sde):
    """For dx = f x dt + g dw from a point x0, m = E[x_t]/x0 and v = Var[x_t] obey dm/dt = f m, dv/dt = 2 f v + g^2.

    The marginal must solve them with m(0) = 1 and v(0) = 0 (VP) or v(0) = sigma_min^2 (VE's convention: std is
    sigma(t)); a linear ODE with its initial value has one solution, so this pins the marginal down. VP in the
    lecture's form: dm/dt = -1/2 beta m, d(std^2)/dt = -beta std^2 + beta; VE: d(std^2)/dt = g^2. Derivatives by
    autograd in float64; the drift and diffusion used are the module's, so they are checked to agree with the marginal.
    """
    t = torch.linspace(0.01, 1.0, 41, dtype=F64, requires_grad=True)
    mean_coef, std = sde.marginal(t)
    var = std ** 2

    def d_dt(y):
        return torch.autograd.grad(y.sum(), t, retain_graph=True)[0] if y.requires_grad else torch.zeros_like(t)

    with torch.no_grad():
        f = sde.drift(torch.ones(len(t), 1, dtype=F64), t)[:, 0]
        g = sde.diffusion(t)
    scale = float(var.detach().max()) * (1 + float(f.abs().max())) + float((g ** 2).max())
    torch.testing.assert_close(d_dt(mean_coef), f * mean_coef, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(d_dt(var), 2 * f * var + g ** 2, rtol=1e-9, atol=1e-12 * scale)
    f_formula, g_formula = formulas(sde)
    if isinstance(sde, VPSDE):
        beta = vp_beta(sde.beta_min, sde.beta_max, t.detach())
        torch.testing.assert_close(d_dt(mean_coef), -0.5 * beta * mean_coef, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(d_dt(var), -beta * var + beta, rtol=1e-9, atol=1e-12 * scale)
        assert sde.marginal(0.0) == (1.0, 0.0)
    else:
        torch.testing.assert_close(d_dt(var), g_formula(t.detach()) ** 2, rtol=1e-9, atol=1e-12 * scale)
        assert sde.marginal(0.0) == pytest.approx((1.0, sde.sigma_min), rel=1e-15)


def test_vp_std_keeps_its_digits_near_t0_in_float32():
    """std = sqrt(-expm1(2 log m)): float32 1 - m^2 at t = 1e-5 keeps only the leading digit or two."""
    sde = VPSDE()
    t = torch.tensor([1e-6, 1e-5, 1e-4, 1e-3], dtype=torch.float32)
    log_m = [-0.25 * float(s) ** 2 * 19.9 - 0.5 * float(s) * 0.1 for s in t]
    reference = torch.tensor([math.sqrt(-math.expm1(2 * lm)) for lm in log_m], dtype=F64)
    _, std = sde.marginal(t)
    assert std.dtype == torch.float32
    tolerance = 4 * torch.finfo(torch.float32).eps  # a few roundings of float32
    assert ((std.double() - reference).abs() / reference).max() < tolerance
    naive = (1 - torch.exp(torch.tensor(log_m, dtype=torch.float32)) ** 2).sqrt()  # what the test would catch
    assert ((naive.double() - reference).abs() / reference).max() > 100 * tolerance


@pytest.mark.parametrize("sde", [VPSDE(), VESDE()], ids=["VP", "VE"])
def test_euler_maruyama_of_the_forward_sde_matches_the_marginal(sde):
    """Simulate dx = f x dt + g dw from x0 with Euler-Maruyama (2,000 steps, 20,000 paths) and compare with marginal(t).

    The Euler-Maruyama law of a linear SDE is Gaussian with moments from the recursion mean' = (1 + f dt) mean,
    var' = (1 + f dt)^2 var + g^2 dt (f, g from the equations). Its distance to the marginal is the discretisation
    bias, computed exactly and added to the CLT tolerance (and checked to be small, so the test keeps its teeth).
    VE starts from N(x0, sigma_min^2): its marginal counts the data as already noised by sigma_min.
    """
    n, steps, x0 = 20_000, 2_000, 1.5
    dt = 1.0 / steps
    generator = torch.Generator().manual_seed(1)
    f, g = formulas(sde)
    start_var = sde.sigma_min ** 2 if isinstance(sde, VESDE) else 0.0
    x = x0 + math.sqrt(start_var) * torch.randn(n, 1, generator=generator, dtype=F64)
    em_mean, em_var = x0, start_var
    checked = 0
    for k in range(steps):
        t = k * dt
        x = x + sde.drift(x, t) * dt + sde.diffusion(t) * math.sqrt(dt) * torch.randn(n, 1, generator=generator,
                                                                                     dtype=F64)
        em_mean, em_var = (1 + f(t) * dt) * em_mean, (1 + f(t) * dt) ** 2 * em_var + g(t) ** 2 * dt
        if k + 1 in (200, 1000, 2000):  # t = 0.1, 0.5, 1
            mean_coef, std = sde.marginal((k + 1) * dt)
            mean_bias, var_bias = abs(em_mean - mean_coef * x0), abs(em_var - std ** 2)
            se_mean, se_var = math.sqrt(em_var / n), em_var * math.sqrt(2 / (n - 1))
            assert mean_bias < se_mean and var_bias < se_var  # the simulation is fine enough
            assert abs(x.mean().item() - mean_coef * x0) <= Z * se_mean + mean_bias
            assert abs(x.var().item() - std ** 2) <= Z * se_var + var_bias
            checked += 1
    assert checked == 3


# ------------------------------------------------------------------------------------- DDPM as the discretised VP
def test_discretize_gives_ddpm_linear_schedule():
    torch.testing.assert_close(VPSDE().discretize(1000).betas, NoiseSchedule.linear().betas, rtol=1e-15, atol=0)
    sde, T = VPSDE(0.3, 7.0), 50
    tau = torch.arange(T, dtype=F64) / (T - 1)  # beta_i = beta(tau_i) / T, tau_i = (i - 1) / (T - 1), i = 1..T
    torch.testing.assert_close(sde.discretize(T).betas[1:], vp_beta(0.3, 7.0, tau) / T, rtol=1e-12, atol=0)


def test_discrete_alpha_bar_converges_to_the_continuous_one_at_rate_one_over_T():
    """e(T) = max_i |alpha_bar_i - mean_coef(i / T)^2| ~ C / T, with C derived here.

    With beta_i = beta(tau_i)/T, tau_i = (i-1)/(T-1), and t = i/T:
      log alpha_bar_i = -sum_{j<=i} beta_j - 1/2 sum_{j<=i} beta_j^2 + O(T^-2)
      sum_{j<=i} beta_j = int_0^t beta - 1/2 (beta_max - beta_min) t (1 - t) / (T - 1)          (exact)
      1/2 sum_{j<=i} beta_j^2 = 1/(2T) int_0^t beta^2 + O(T^-2)
    so alpha_bar_i = mean_coef(t)^2 (1 + c(t)/T + O(T^-2)) with
      c(t) = 1/2 (beta_max - beta_min) t (1 - t) - (beta(t)^3 - beta_min^3) / (6 (beta_max - beta_min)),
    and T e(T) -> C = max_t mean_coef(t)^2 |c(t)| (= 0.809 for the defaults, at t = 0.14). Measured: T e(T) / C - 1
    = 3.1e-2, 3.1e-3, 3.1e-4 at T = 100, 1000, 10000 (an O(1/T) correction); e(T) / e(10 T) = 10.3, 10.03. T = 10
    cannot be built: beta_T = 20 / T must stay below 1.
    """
    beta_min, beta_max = 0.1, 20.0
    span = beta_max - beta_min
    grid = torch.linspace(0, 1, 200_001, dtype=F64)
    m2 = torch.exp(-0.5 * grid ** 2 * span - grid * beta_min)
    c = 0.5 * span * grid * (1 - grid) - (vp_beta(beta_min, beta_max, grid) ** 3 - beta_min ** 3) / (6 * span)
    C = (m2 * c).abs().max().item()
    sde, errors = VPSDE(beta_min, beta_max), {}
    for T in (100, 1000, 10_000):
        steps = torch.arange(T + 1)
        mean_coef, _ = sde.marginal(time_from_step(steps, T))
        errors[T] = (sde.discretize(T).alpha_bars - mean_coef ** 2).abs().max().item()
        assert abs(T * errors[T] / C - 1) < 5 / T
    assert 9.5 < errors[100] / errors[1000] < 11 and 9.9 < errors[1000] / errors[10_000] < 10.1


@given(st.integers(1, 5000), st.data())
def test_time_maps_are_t_equals_i_over_T(T, data):
    i = data.draw(st.integers(0, T))
    assert time_from_step(i, T) == i / T
    assert step_from_time(time_from_step(i, T), T) == i
    steps = torch.tensor([0, i, T])
    torch.testing.assert_close(time_from_step(steps, T), steps.double() / T)
    assert step_from_time(time_from_step(steps, T), T).tolist() == [0, i, T]


# ------------------------------------------------------------------------------------------------- reverse time
def gaussian_data_score(sde, mu, s):
    """Exact score of p_t for data N(mu, s^2 I): x_t ~ N(m mu, (m^2 s^2 + std^2) I), score = -(x - m mu) / var."""
    def score_fn(x, t):
        mean_coef, std = sde.marginal(t)
        m, var = mean_coef.view(-1, 1), (mean_coef ** 2 * s ** 2 + std ** 2).view(-1, 1)
        return -(x - m * mu) / var
    return score_fn


def marginal_var(sde, s, t):
    mean_coef, std = sde.marginal(t)
    return mean_coef, mean_coef ** 2 * s ** 2 + std ** 2


MU, S, N_SAMPLES = torch.tensor([1.0, -0.5], dtype=F64), 0.5, 20_000
# VP: t_min = 1e-3 (score_sde's sampling cut-off); VE: t_min = 1e-5 and sigma_max = 1000, so that the prior mismatch
# (the ODE's mean is off by about |mu| s / sigma_max = 5e-4, a seventh of the standard error s / sqrt(n) = 3.5e-3)
# is negligible; score_sde's sigma_max = 50 would shift it by 1e-2.
CASES = [(VPSDE(), 1e-3), (VESDE(sigma_max=1000.0), 1e-5)]


def assert_moments(x, mean, var, target_mean, target_var):
    """Sample moments of x (n, D) against N(target_mean, target_var): |error| <= Z se + |exact bias|."""
    n = x.shape[0]
    se_mean, se_var = math.sqrt(var / n), var * math.sqrt(2 / (n - 1))
    mean_bias, var_bias = (mean - target_mean).abs(), abs(var - target_var)
    assert ((x.mean(0) - target_mean).abs() <= Z * se_mean + mean_bias).all(), (x.mean(0), target_mean, mean_bias)
    assert ((x.var(0) - target_var).abs() <= Z * se_var + var_bias).all(), (x.var(0), target_var, var_bias)
    return mean_bias, var_bias


@pytest.mark.parametrize(("sde", "t_min"), CASES, ids=["VP", "VE"])
def test_probability_flow_ode_with_the_exact_score_transports_the_prior_to_the_data(sde, t_min):
    """RK4 on dx/dt = f - 1/2 g^2 score from t = 1 to t_min (200 steps) carries N(0, prior_std^2 I) to N(mu, s^2 I).

    The data are Gaussian, so the ODE is affine in x and its exact flow maps the true p_1 = N(m_1 mu, v_1) onto
    p_tmin = N(m_min mu, v_min): x(t_min) = m_min mu + k (x(1) - m_1 mu), k = sqrt(v_min / v_1). Started from the
    prior instead of p_1, the output is N(m_min mu - k m_1 mu, k^2 prior_std^2): the exact bias from the prior
    mismatch and the cut-off, added to the CLT tolerance. RK4 (error O(h^4)) follows the exact flow to 1e-6 here.
    """
    score_fn = gaussian_data_score(sde, MU, S)

    def rk4(x, steps):
        h = -(1.0 - t_min) / steps
        for k in range(steps):
            t = 1.0 + k * h
            k1 = pf_drift(sde, score_fn, x, t)
            k2 = pf_drift(sde, score_fn, x + 0.5 * h * k1, t + 0.5 * h)
            k3 = pf_drift(sde, score_fn, x + 0.5 * h * k2, t + 0.5 * h)
            k4 = pf_drift(sde, score_fn, x + h * k3, t + h)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x

    x1 = sde.prior_sample((N_SAMPLES, 2), generator=torch.Generator().manual_seed(2), dtype=F64)
    x = rk4(x1, 200)
    m1, v1 = marginal_var(sde, S, 1.0)
    m_min, v_min = marginal_var(sde, S, t_min)
    k = math.sqrt(v_min / v1)
    # the exact flow, sample by sample (measured: 2e-9 VP, 1e-6 VE; both shrink 16x per halving of h)
    assert (x - (m_min * MU + k * (x1 - m1 * MU))).abs().max().item() < 1e-5
    mean_bias, var_bias = assert_moments(x, m_min * MU - k * m1 * MU, k ** 2 * sde.prior_std ** 2, MU, S ** 2)
    assert mean_bias.max() < 5e-3 and var_bias < 1e-3  # measured: VP 3.3e-3 and 9e-5 (m_1 = 0.0066), VE 5e-4 and 1e-4


@pytest.mark.parametrize(("sde", "t_min"), CASES, ids=["VP", "VE"])
def test_reverse_sde_with_the_exact_score_transports_the_prior_to_the_data(sde, t_min):
    """Euler-Maruyama on dx = [f - g^2 score] dt + g dw_bar from t = 1 to t_min (1,000 steps) returns N(mu, s^2 I).

    With the score of Gaussian data the reverse drift is affine, a x + b with a = f + g^2 / v and b = -g^2 m mu / v,
    so the Euler-Maruyama law is Gaussian with moments from mean' = (1 - a dt) mean - b dt,
    var' = (1 - a dt)^2 var + g^2 dt (going down in t). Its distance to N(mu, s^2) -- prior mismatch, cut-off and
    time steps together -- is the exact bias added to the CLT tolerance.
    """
    score_fn = gaussian_data_score(sde, MU, S)
    f, g = formulas(sde)
    steps = 1000
    dt = (1.0 - t_min) / steps
    generator = torch.Generator().manual_seed(3)
    x = sde.prior_sample((N_SAMPLES, 2), generator=generator, dtype=F64)
    em_mean, em_var = torch.zeros(2, dtype=F64), sde.prior_std ** 2
    for k in range(steps):
        t = 1.0 - k * dt
        z = torch.randn(x.shape, generator=generator, dtype=F64)
        x = x - rev_drift(sde, score_fn, x, t) * dt + sde.diffusion(t) * math.sqrt(dt) * z
        m, v = marginal_var(sde, S, t)
        a, b = f(t) + g(t) ** 2 / v, -g(t) ** 2 * m * MU / v
        em_mean, em_var = (1 - a * dt) * em_mean - b * dt, (1 - a * dt) ** 2 * em_var + g(t) ** 2 * dt
    mean_bias, var_bias = assert_moments(x, em_mean, em_var, MU, S ** 2)
    assert mean_bias.max() < 1e-3 and var_bias < 1e-3  # measured: VP 5e-4 and 4e-4, VE 2e-7 and 1e-4


@pytest.mark.parametrize("sde", [VPSDE(0.2, 12.0), VESDE(0.05, 30.0)], ids=["VP", "VE"])
@pytest.mark.parametrize("kind", ["(B,) tensor", "() tensor", "float"])
def test_reverse_drift_and_probability_flow_drift_follow_eqs_6_and_13(sde, kind):
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, 4, 4, generator=generator, dtype=F64)
    t_batch = torch.full((5,), 0.37, dtype=F64)
    if kind == "(B,) tensor":
        t_batch = torch.rand(5, generator=generator, dtype=F64)
    t = {"(B,) tensor": t_batch, "() tensor": torch.tensor(0.37, dtype=F64), "float": 0.37}[kind]
    seen = []

    def score_fn(x_t, t_in):  # any function of (x, t): here a nonlinear one
        seen.append(t_in)
        return torch.sin(x_t) * (1 + t_in.view(-1, 1, 1, 1)) - x_t ** 2

    f, g = formulas(sde)
    score = torch.sin(x) * (1 + t_batch.view(-1, 1, 1, 1)) - x ** 2
    f_x, g2 = f(t_batch).view(-1, 1, 1, 1) * x, (g(t_batch) ** 2).view(-1, 1, 1, 1)
    torch.testing.assert_close(rev_drift(sde, score_fn, x, t), f_x - g2 * score, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pf_drift(sde, score_fn, x, t), f_x - 0.5 * g2 * score,
                               rtol=1e-12, atol=1e-12)
    for t_in in seen:  # score_fn always gets a (B,) float tensor on x's device
        assert t_in.shape == (5,) and t_in.is_floating_point() and t_in.device == x.device
        torch.testing.assert_close(t_in.double(), t_batch)


# --------------------------------------------------------------------------------------------- prior, bad input
@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_max=50.0)], ids=["VP", "VE"])
def test_prior_sample_and_log_prob(sde):
    n, D = 4000, 8
    x = sde.prior_sample((n, D), generator=torch.Generator().manual_seed(5))
    assert x.shape == (n, D) and x.dtype == torch.float32
    same = sde.prior_sample((n, D), generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, same)
    var = sde.prior_std ** 2  # N(0, prior_std^2): pooled over n D values
    assert abs(x.double().mean().item()) <= Z * math.sqrt(var / (n * D))
    assert abs(x.double().var().item() - var) <= Z * var * math.sqrt(2 / (n * D - 1))
    images = sde.prior_sample((3, 1, 4, 4), generator=torch.Generator().manual_seed(6), dtype=F64)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), sde.prior_std)  # float64 all through
    reference = normal.log_prob(images).sum(dim=(1, 2, 3))
    torch.testing.assert_close(sde.prior_log_prob(images), reference, rtol=1e-12, atol=1e-12)


X = torch.zeros(4, 2)
BAD_INPUTS = [
    (lambda: VPSDE(beta_min=0.0), ValueError, "^beta_min"),
    (lambda: VPSDE(beta_min=1.0, beta_max=0.5), ValueError, "^beta_max"),
    (lambda: VPSDE(beta_min="0.1"), TypeError, "^beta_min"),
    (lambda: VESDE(sigma_min=0.0), ValueError, "^sigma_min"),
    (lambda: VESDE(sigma_min=1.0, sigma_max=1.0), ValueError, "^sigma_max"),
    (lambda: VPSDE().marginal(1.5), ValueError, "^t "),
    (lambda: VPSDE().marginal(-0.1), ValueError, "^t "),
    (lambda: VPSDE().marginal(float("nan")), ValueError, "^t "),
    (lambda: VESDE().marginal(1), TypeError, "^t is continuous time"),
    (lambda: VPSDE().diffusion(torch.tensor([0.5, 2.0])), ValueError, "^t is continuous time"),
    (lambda: VESDE().marginal(torch.tensor([3, 4])), TypeError, "^t is continuous time"),
    (lambda: VPSDE().marginal(torch.zeros(2, 2)), ValueError, "^t must have shape"),
    (lambda: VPSDE().drift("x", 0.5), TypeError, "^x "),
    (lambda: VPSDE().drift(torch.zeros(4, dtype=torch.long), 0.5), ValueError, "^x "),
    (lambda: VPSDE().drift(X, torch.rand(3)), ValueError, "^t has 3 entries"),
    (lambda: evaluate_score("score", X, 0.5), TypeError, "^score_fn"),
    (lambda: evaluate_score(lambda x, t: x[:, :1], X, 0.5), ValueError, "^score_fn"),
    (lambda: evaluate_score(lambda x, t: 0.0, X, 0.5), ValueError, "^score_fn"),
    (lambda: evaluate_score(lambda x, t: x, X, 1.5), ValueError, "^t "),
    (lambda: VPSDE().prior_sample((0, 2)), ValueError, r"^shape\[0\]"),
    (lambda: VPSDE().prior_sample("ab"), TypeError, "^shape"),
    (lambda: VPSDE().prior_log_prob([1.0]), TypeError, "^x "),
    (lambda: VPSDE().discretize(20), ValueError, "^T must be > beta_max"),
    (lambda: VPSDE().discretize(0), ValueError, "^T "),
    (lambda: VPSDE().discretize(100.0), TypeError, "^T "),
    (lambda: time_from_step(1001, 1000), ValueError, "^step "),
    (lambda: time_from_step(-1, 1000), ValueError, "^step "),
    (lambda: time_from_step(0.5, 1000), TypeError, "^step "),
    (lambda: time_from_step(torch.tensor([3, 2000]), 1000), ValueError, "^step "),
    (lambda: step_from_time(1.5, 10), ValueError, "^t "),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()

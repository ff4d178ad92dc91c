"""sampling.sample and the SAMPLERS registry: every registered sampler, given the exact eps of Gaussian data,
returns that Gaussian. A new sampler joins these tests by being registered.

Besides: the hook (called after every step with the training step x is now at; its return replaces x), the start
part-way at t_start (SDEdit), the registry's rules, `trajectory`, and the model adapters a sampler takes unchanged
(`forward.as_eps_model` for x0- and v-networks, `nets.protocol.LabelBound` for a conditional one): all over every
registered sampler.
"""

import inspect
import math

import pytest
import torch

from ddpm_scratch.forward import EpsFromPrediction, as_eps_model, convert, q_sample
from ddpm_scratch.nets.protocol import LabelBound
from ddpm_scratch.sampling import SAMPLERS, Option, Sampler, register, sample, trajectory
from ddpm_scratch.schedules import NoiseSchedule, karras_timesteps, respaced

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.6, 0.25], [0.25, 0.9]], dtype=torch.float64)  # eigenvalues 0.47 and 1.03, correlated
NAMES = sorted(SAMPLERS)


def gaussian_eps(schedule, mu, cov):
    """Exact E[eps | x_t] for data N(mu, cov): x_t ~ N(sqrt(ab) mu, S_t) with S_t = ab cov + (1 - ab) I and
    Cov(eps, x_t) = sqrt(1 - ab) I, so E[eps | x_t] = sqrt(1 - ab) S_t^{-1} (x_t - sqrt(ab) mu).
    S_t^{-1} = Q diag(1 / (ab l + 1 - ab)) Q^T with cov = Q diag(l) Q^T. t: the training steps of `schedule`."""
    lam, Q = torch.linalg.eigh(cov)

    def eps_model(x_t, t):
        ab = schedule.alpha_bars[t].to(x_t.dtype)[:, None]
        r = (x_t - ab.sqrt() * mu.to(x_t.dtype)) @ Q.to(x_t.dtype)
        return (1 - ab).sqrt() * (r / (ab * lam.to(x_t.dtype) + 1 - ab)) @ Q.T.to(x_t.dtype)
    return eps_model


def assert_gaussian(x, mu, cov):
    """Sample mean within 5 standard errors sqrt(cov_ii / n); sample covariance entries within 5 standard errors
    sqrt((cov_ii cov_jj + cov_ij^2) / n) (the variance of a sample covariance of Gaussian data)."""
    n = len(x)
    mean_se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mu).abs() < 5 * mean_se).all(), (x.mean(0), mu)
    cov_se = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    assert ((torch.cov(x.T) - cov).abs() < 5 * cov_se).all(), (torch.cov(x.T), cov)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_returns_gaussian_data_with_the_exact_eps(name):
    """All T = 1000 steps of DDPM's schedule; the sampler's default options."""
    s, n = NoiseSchedule.linear(), 20_000
    x = sample(gaussian_eps(s, MU, COV), s, (n, 2), sampler=name, generator=seeded(0), dtype=torch.float64)
    assert x.shape == (n, 2) and x.dtype == torch.float64
    assert_gaussian(x, MU, COV)


def test_fewer_ddpm_steps_are_exact_for_unit_variance_data():
    """On a respaced schedule each DDPM step with sigma^2 = beta' is an exact draw of q(x_{t'} | x_t) for data
    N(mu, I) (lecture 2), whatever the jump, except the last: it returns the mean of x0 | x_{s_1} with no noise
    (Algorithm 2, line 3), which lacks the step's variance beta'_1 = 1 - alpha_bar_{s_1}. So 10 steps (s_1 = 100)
    return N(mu, alpha_bar_100 I). The eps-model reads the original schedule at the step it is called with: were
    it called at the respaced indices, the mean would move."""
    s, n = NoiseSchedule.linear(), 20_000
    eye = torch.eye(2, dtype=torch.float64)
    x = sample(gaussian_eps(s, MU, eye), s, (n, 2), num_steps=10, generator=seeded(1), dtype=torch.float64)
    assert_gaussian(x, MU, s.alpha_bars[100].item() * eye)


def test_sample_is_seeded_and_checks_its_arguments():
    s = NoiseSchedule.linear(T=30, rescale=True)
    model = gaussian_eps(s, MU, COV)
    a, b = (sample(model, s, (5, 2), generator=seeded(3)) for _ in range(2))
    assert torch.equal(a, b) and torch.isfinite(a).all()
    x_T = torch.randn(5, 2)
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample(model, s, (5, 2), sampler="euler")
    with pytest.raises(ValueError, match="takes the options variance; got unknown eta"):
        sample(model, s, (5, 2), eta=0.5)
    with pytest.raises(ValueError, match="variance must be"):
        sample(model, s, (5, 2), variance="large")
    with pytest.raises(ValueError, match="num_steps must be <= T=30"):
        sample(model, s, (5, 2), num_steps=31)
    with pytest.raises(ValueError, match="got unknown prediction"):  # x0/v networks go through as_eps_model
        sample(model, s, (5, 2), prediction="x0")
    with pytest.raises(ValueError, match="x_T has shape"):
        sample(model, s, (4, 2), x_T=x_T)
    with pytest.raises(ValueError, match="x_T must be a floating tensor"):
        sample(model, s, (5, 2), x_T=torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="cannot be combined with num_steps"):
        sample(model, s, (5, 2), num_steps=10, variance=torch.full((31,), 0.01, dtype=torch.float64))
    assert sample(model, s, (5, 2), x_T=x_T).shape == (5, 2)


def test_every_sampler_is_described():
    for name, sampler in SAMPLERS.items():
        assert sampler.name == name and sampler.description and math.isfinite(len(sampler.options))


@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_names_a_schedule_that_is_not_one(name):
    """Through `sample` and through the registered function: a TypeError naming `schedule`, not an AttributeError
    from deep inside."""
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule, got str"):
        sample(model, "linear", (2, 2), sampler=name, num_steps=4)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule, got str"):
        SAMPLERS[name].run(model, "linear", torch.zeros(2, 2), generator=None, hook=None, progress=False,
                           **SAMPLERS[name].defaults)


@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_checks_its_model_and_x_T_and_shows_progress(name):
    s = NoiseSchedule.linear(T=25, rescale=True)
    run = SAMPLERS[name].run
    with pytest.raises(TypeError, match="eps_model must be callable"):
        run("model", s, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="x_T must have shape \\(B, ...\\)"):
        run(lambda x, t: x, s, torch.zeros(2))
    with pytest.raises(TypeError, match="x_T must be a torch.Tensor"):
        run(lambda x, t: x, s, [[0.0, 0.0]])
    x = sample(gaussian_eps(s, MU, COV), s, (3, 2), sampler=name, progress=True, generator=seeded(0))
    assert x.shape == (3, 2) and torch.isfinite(x).all()


# ---------------------------------------------------------------------------------------------------- the hook
@pytest.mark.parametrize("name", NAMES)
def test_an_identity_hook_changes_nothing(name):
    """hook = lambda x, t: x gives bit-identical samples to no hook from the same seed: all steps of a short
    schedule, and a respaced run started part-way."""
    s = NoiseSchedule.linear(T=40, rescale=True)
    model = gaussian_eps(s, MU, COV)
    x_T = torch.randn(16, 2, generator=seeded(5))
    for settings in ({}, {"num_steps": 7, "t_start": 25, "x_T": x_T}):
        plain = sample(model, s, (16, 2), sampler=name, generator=seeded(6), **settings)
        hooked = sample(model, s, (16, 2), sampler=name, generator=seeded(6), hook=lambda x, t: x, **settings)
        assert torch.equal(plain, hooked), settings


@pytest.mark.parametrize("name", NAMES)
def test_a_hook_that_clamps_a_coordinate_holds_it_at_the_end_and_its_return_replaces_x(name):
    """A hook that sets coordinate 0 of vectors (or the top rows of images, an inpainting-style mask) to 0.25: the
    output holds exactly 0.25 there, the last call being at t = 0. Its return replaces x: the next step starts from
    exactly the tensor the hook returned, so the first model call after every hook call sees it (UniPC: its next
    predictor step starts from it, `test_unipcs_next_predictor_starts_from_the_hooks_return`). Without the hook the
    coordinate is not 0.25."""
    s = NoiseSchedule.linear(T=30, rescale=True)
    for shape, where in (((8, 2), (slice(None), 0)), ((4, 1, 4, 4), (slice(None), slice(None), slice(0, 2)))):
        events = []

        def model(x, t, events=events):
            events.append(("model", x.clone()))
            return 0.3 * x  # any model: the hook's promise does not depend on it

        def hook(x, t, where=where, events=events):
            x = x.clone()
            x[where] = 0.25
            events.append(("hook", x.clone()))
            return x

        x = sample(model, s, shape, sampler=name, num_steps=6, hook=hook, generator=seeded(2))
        assert torch.equal(x[where], torch.full_like(x[where], 0.25)), x
        assert events[-1][0] == "hook" and torch.equal(events[-1][1], x)
        followed = [after for (kind, _), (after_kind, after) in zip(events, events[1:], strict=False)
                    if kind == "hook" and after_kind == "model"]
        returned = [out for (kind, out), (after_kind, _) in zip(events, events[1:], strict=False)
                    if kind == "hook" and after_kind == "model"]
        # every hook call but the last (t = 0) is followed by a model call; UniPC's at t_1 by its last predictor step
        assert len(followed) == (4 if name == "unipc" else 5)
        if name != "unipc":  # UniPC calls the network at its predicted points, after the hook and a predictor step
            assert all(torch.equal(a, b) for a, b in zip(followed, returned, strict=True))
        free = sample(model, s, shape, sampler=name, num_steps=6, generator=seeded(2))
        assert not torch.equal(free[where], torch.full_like(free[where], 0.25))


def test_unipcs_next_predictor_starts_from_the_hooks_return(monkeypatch):
    """UniPC's state after a step is the corrected one (its corrector needs the network at the predicted point, one
    call later): the hook is given that state, and the next predictor step (unipc_step without x0_s) starts from
    exactly what the hook returned, so a hook that pins a coordinate holds it at the start of every step."""
    import ddpm_scratch.eps_solvers as eps_solvers

    starts, returned = [], []
    real_step = eps_solvers.unipc_step

    def spy(schedule, x_t, t, s, **kwargs):
        if kwargs.get("x0_s") is None:
            starts.append(x_t)
        return real_step(schedule, x_t, t, s, **kwargs)

    def hook(x, t):
        x = x.clone()
        x[:, 0] = 0.25
        returned.append(x)
        return x

    monkeypatch.setattr(eps_solvers, "unipc_step", spy)
    s = NoiseSchedule.linear(T=30, rescale=True)
    sample(lambda x, t: 0.3 * x, s, (8, 2), sampler="unipc", num_steps=6, hook=hook, generator=seeded(2))
    assert len(starts) == 6 and len(returned) == 6
    assert all(torch.equal(start, back) for start, back in zip(starts[1:], returned[:-1], strict=True))
    assert all(torch.equal(start[:, 0], torch.full((8,), 0.25)) for start in starts[1:])


HOOK_CASES = {  # (T, num_steps, spacing, t_start): the training steps the hook sees, written out where short
    "all steps": ((60, None, "uniform", None), list(range(59, -1, -1))),
    "uniform 10": ((1000, 10, "uniform", None), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
    "quadratic 10": ((1000, 10, "quadratic", None), [810, 640, 490, 360, 250, 160, 90, 40, 10, 0]),
    "karras 10": ((1000, 10, "karras", None), None),
    "t_start, all steps": ((60, None, "uniform", 37), list(range(36, -1, -1))),
    "t_start, uniform 10": ((1000, 10, "uniform", 500), [450, 400, 350, 300, 250, 200, 150, 100, 50, 0]),
    "t_start, quadratic 10": ((1000, 10, "quadratic", 500), [405, 320, 245, 180, 125, 80, 45, 20, 5, 0]),
    "t_start, karras 10": ((1000, 10, "karras", 500), None),
}


@pytest.mark.parametrize("case", HOOK_CASES)
@pytest.mark.parametrize("name", NAMES)
def test_the_hook_sees_the_respaced_schedules_steps_down_to_0(name, case):
    """The hook is called once per step with the training step x is now at: strictly decreasing, ending at 0, the
    respaced schedule's steps below its top (where x_T is: T, or t_start). Karras's steps are karras_timesteps' (the
    ones its own test checks against a scan of every step). The model is first called at the top, and only ever at
    the steps of the run (never 0, never between)."""
    (T, num_steps, spacing, t_start), expected = HOOK_CASES[case]
    s = NoiseSchedule.linear() if T == 1000 else NoiseSchedule.linear(T=T, rescale=True)
    top = t_start or T
    if expected is None:
        expected = karras_timesteps(s, num_steps, t_max=top).flip(0).tolist()[1:] + [0]
    assert respaced(s, num_steps, spacing, t_start=t_start).timesteps.flip(0).tolist() == [top] + expected
    seen, called = [], []

    def hook(x, t):
        assert isinstance(t, int) and x.shape == (4, 2)
        seen.append(t)
        return x

    def model(x, t):
        assert t.shape == (4,) and t.dtype == torch.long and (t == t[0]).all()
        called.append(int(t[0]))
        return gaussian_eps(s, MU, COV)(x, t)

    x_T = torch.randn(4, 2, generator=seeded(0))
    x = sample(model, s, (4, 2), sampler=name, num_steps=num_steps, spacing=spacing, t_start=t_start, x_T=x_T,
               hook=hook, generator=seeded(1))
    assert seen == expected and torch.isfinite(x).all()
    assert called[0] == top and set(called) <= set(expected[:-1]) | {top}


# --------------------------------------------------------------------------------------- a start part-way: t_start
@pytest.mark.parametrize("name", NAMES)
def test_a_start_at_t_start_from_q_returns_the_data(name):
    """x0 ~ N(MU, COV), x_T = q_sample(schedule, x0, 300) ~ q(x_300) exactly, then every step of 1..300 with the
    exact eps: the reverse process maps q(x_300) back to q(x0) = N(MU, COV) (the discretisation error of the full
    run's steps, which the all-steps test bounds). 20,000 samples; tolerances from n (assert_gaussian)."""
    s, n, t_start = NoiseSchedule.linear(), 20_000, 300
    x0 = MU + torch.randn(n, 2, generator=seeded(10), dtype=torch.float64) @ torch.linalg.cholesky(COV).T
    x_T = q_sample(s, x0, t_start, generator=seeded(11))
    x = sample(gaussian_eps(s, MU, COV), s, (n, 2), sampler=name, x_T=x_T, t_start=t_start, generator=seeded(12))
    assert x.dtype == torch.float64
    assert_gaussian(x, MU, COV)


@pytest.mark.parametrize("name", sorted(set(NAMES) - {"pc"}))
def test_a_start_at_a_small_t_start_stays_near_its_input(name):
    """SDEdit's other half: from x_50 = q_sample(x0, 50) (alpha_bar_50 = 0.971) the output stays near x0. A sampler
    of the true reverse process draws x from q(x0 | x_50), so E|x - x0|^2 = 2 tr Cov(x0 | x_50) = 0.114 with
    Cov(x0 | x_t) = cov - ab cov S_t^-1 cov (Gaussian conditioning, S_t = ab cov + (1 - ab) I); the
    deterministic ones map x_50 to the posterior's typical point, closer (measured 0.059). Allowed: 1.5 times the
    posterior's value (2,000 samples: the mean of |x - x0|^2 has a relative standard error near 3%). A run that
    ignored t_start and took x_50 for x_T would land 0.64 (ODEs) to 2.9 (DDPM) away.
    "pc" is left out: its Langevin corrector targets the marginal q(x_t), not q(x_t | x0); on this 2-D Gaussian
    the snr step rule gives steps eps ~ 2 r^2 times the data variance, 0.04 per level, which over 50 levels mixes x
    away from its input (measured 2.6, close to the 3.0 of independent draws). It still returns the data
    distribution (the test above)."""
    s, n, t_start = NoiseSchedule.linear(), 2_000, 50
    ab = s.alpha_bars[t_start]
    posterior = COV - ab * COV @ torch.linalg.inv(ab * COV + (1 - ab) * torch.eye(2, dtype=torch.float64)) @ COV
    x0 = MU + torch.randn(n, 2, generator=seeded(13), dtype=torch.float64) @ torch.linalg.cholesky(COV).T
    x_T = q_sample(s, x0, t_start, generator=seeded(14))
    x = sample(gaussian_eps(s, MU, COV), s, (n, 2), sampler=name, x_T=x_T, t_start=t_start, generator=seeded(15))
    assert ((x - x0) ** 2).sum(1).mean().item() < 1.5 * 2 * posterior.trace().item()


def test_t_start_is_checked_and_named():
    s = NoiseSchedule.linear(T=30, rescale=True)
    model, x_T = gaussian_eps(s, MU, COV), torch.zeros(3, 2)
    with pytest.raises(ValueError, match="t_start needs x_T"):
        sample(model, s, (3, 2), t_start=10)
    with pytest.raises(ValueError, match="t_start must lie in 1..T=30, got 31"):
        sample(model, s, (3, 2), t_start=31, x_T=x_T)
    with pytest.raises(ValueError, match="t_start must be >= 1, got 0"):
        sample(model, s, (3, 2), t_start=0, x_T=x_T)
    with pytest.raises(TypeError, match="t_start must be an int"):
        sample(model, s, (3, 2), t_start=10.0, x_T=x_T)
    with pytest.raises(ValueError, match="spacing 'leading' picks steps that end at 13, below t_start=20"):
        sample(model, s, (3, 2), sampler="ddim", num_steps=3, spacing="leading", t_start=20, x_T=x_T)
    with pytest.raises(ValueError, match="num_steps must be <= t_start=20, got 21"):
        sample(model, s, (3, 2), num_steps=21, t_start=20, x_T=x_T)
    with pytest.raises(ValueError, match="num_steps must be <= t_start=20, got 21"):
        sample(model, s, (3, 2), num_steps=21, spacing="karras", t_start=20, x_T=x_T)
    with pytest.raises(ValueError, match="cannot be combined with num_steps or t_start"):
        sample(model, s, (3, 2), variance=torch.full((31,), 0.01, dtype=torch.float64), t_start=20, x_T=x_T)
    # "leading" where it does end at t_start (num_steps = t_start: every step) is allowed
    assert sample(model, s, (3, 2), num_steps=20, spacing="leading", t_start=20, x_T=x_T).shape == (3, 2)


@pytest.mark.parametrize("name", NAMES)
def test_hook_errors_are_named(name):
    """A hook returning another shape (or not a tensor): ValueError naming hook(x, t) and x's shape; a hook that is
    not callable: TypeError naming hook (through sample and the run function alike)."""
    s = NoiseSchedule.linear(T=25, rescale=True)
    model = gaussian_eps(s, MU, COV)
    with pytest.raises(ValueError, match=r"hook\(x, t\) must return a tensor of x's shape \(3, 2\), got \(3, 1\)"):
        sample(model, s, (3, 2), sampler=name, hook=lambda x, t: x[:, :1], generator=seeded(0))
    with pytest.raises(ValueError, match=r"hook\(x, t\) must return a tensor of x's shape \(3, 2\), got NoneType"):
        sample(model, s, (3, 2), sampler=name, hook=lambda x, t: None, generator=seeded(0))
    with pytest.raises(TypeError, match="hook must be None or callable"):
        sample(model, s, (3, 2), sampler=name, hook="inpaint", generator=seeded(0))
    with pytest.raises(TypeError, match="hook must be None or callable"):
        SAMPLERS[name].run(model, s, torch.zeros(3, 2), hook=1)


@pytest.mark.parametrize("name", NAMES)
def test_an_option_of_another_sampler_is_refused(name):
    """Every option of every other sampler that this one does not take: a ValueError naming it and this
    sampler's own options."""
    s = NoiseSchedule.linear(T=25, rescale=True)
    foreign = {option: default for other in NAMES if other != name
               for option, default in SAMPLERS[other].defaults.items() if option not in SAMPLERS[name].options}
    assert foreign  # every sampler lacks some option of another
    own = ", ".join(SAMPLERS[name].options) or "none"
    for option, value in foreign.items():
        with pytest.raises(ValueError, match=rf"sampler '{name}' takes the options {own}; got unknown {option}"):
            sample(gaussian_eps(s, MU, COV), s, (3, 2), sampler=name, **{option: value})


# ------------------------------------------------------------------------------------------------ the registry
@pytest.mark.parametrize("name", NAMES)
def test_every_sampler_declares_its_options_as_keyword_defaults_of_its_run(name):
    """run(eps_model, schedule, x_T, *, generator=None, hook=None, progress=False, **options): the options are
    exactly run's other keyword-only parameters, each with a default (Sampler.defaults), each an Option with a help
    and, where it has choices, a default among them; the spacing is a valid one."""
    sampler = SAMPLERS[name]
    parameters = inspect.signature(sampler.run).parameters
    positional = [k for k, p in parameters.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    keywords = {k: p for k, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert positional == ["eps_model", "schedule", "x_T"]
    assert {k: keywords[k].default for k in ("generator", "hook", "progress")} == {
        "generator": None, "hook": None, "progress": False}
    assert set(keywords) == {"generator", "hook", "progress"} | set(sampler.options)
    assert sampler.defaults == {k: keywords[k].default for k in sampler.options}
    assert all(v is not inspect.Parameter.empty for v in sampler.defaults.values())
    for option, declared in sampler.options.items():
        assert isinstance(declared, Option) and declared.help
        assert declared.choices is None or sampler.defaults[option] in declared.choices
    assert sampler.spacing in ("uniform", "trailing", "leading", "quadratic", "karras")


def test_the_declared_defaults():
    """The defaults the lectures state: DDPM's sigma^2 = beta, DDIM's eta = 0, PC's snr 0.16 with one corrector
    step, UniPC-2 with B(h) = e^-h - 1; the ODE solvers draw nothing after x_T."""
    assert {name: SAMPLERS[name].defaults for name in NAMES} == {
        "ddim": {"eta": 0.0}, "ddpm": {"variance": "beta"}, "dpmpp_2m": {}, "edm": {}, "ode": {}, "ode_euler": {},
        "pc": {"snr": 0.16, "corrector_steps": 1}, "sde": {}, "unipc": {"order": 2, "variant": "bh2"}}
    assert {name for name in NAMES if not SAMPLERS[name].stochastic} == {"dpmpp_2m", "edm", "ode", "ode_euler",
                                                                          "unipc"}


def test_registering_checks_the_run_signature():
    def good(eps_model, schedule, x_T, *, scale=1.0, generator=None, hook=None, progress=False):
        return scale * x_T

    def no_hook(eps_model, schedule, x_T, *, scale=1.0, generator=None, progress=False):
        return x_T

    def no_default(eps_model, schedule, x_T, *, scale, generator=None, hook=None, progress=False):
        return x_T

    options = {"scale": Option("a factor")}
    assert Sampler("t", good, "ok", options=options).defaults == {"scale": 1.0}
    with pytest.raises(ValueError, match=r"missing \['hook'\]"):
        Sampler("t", no_hook, "no hook", options=options)
    with pytest.raises(ValueError, match=r"undeclared \['scale'\]"):
        Sampler("t", good, "scale not declared")
    with pytest.raises(ValueError, match=r"not in run \['eta'\]"):
        Sampler("t", good, "eta not in run", options={**options, "eta": Option("?")})
    with pytest.raises(ValueError, match=r"without a default \['scale'\]"):
        Sampler("t", no_default, "no default", options=options)
    with pytest.raises(ValueError, match="the default spacing of sampler 't' must be one of"):
        Sampler("t", good, "bad spacing", options=options, spacing="linspace")


def test_register_adds_a_sampler_once():
    def run(eps_model, schedule, x_T, *, scale=1.0, generator=None, hook=None, progress=False):
        return scale * x_T

    name = "test-identity"
    try:
        register(Sampler(name, run, "returns x_T scaled", options={"scale": Option("a factor")}, stochastic=False))
        x_T = torch.randn(3, 2)
        s = NoiseSchedule.linear(T=10)
        assert torch.equal(sample(lambda x, t: x, s, (3, 2), sampler=name, x_T=x_T, scale=2.0), 2 * x_T)
        assert torch.equal(sample(lambda x, t: x, s, (3, 2), sampler=name, x_T=x_T), x_T)  # the default, 1.0
        with pytest.raises(ValueError, match="already registered"):
            register(Sampler(name, run, "again", options={"scale": Option("a factor")}))
    finally:
        SAMPLERS.pop(name, None)
    assert name not in SAMPLERS


def test_sample_uses_the_samplers_own_spacing_unless_given():
    """spacing=None: SAMPLERS[name].spacing, here "quadratic" (round(1000 (k/10)^2)); an explicit spacing wins."""
    seen = []

    def run(eps_model, schedule, x_T, *, generator=None, hook=None, progress=False):
        seen.append(schedule.timesteps.tolist())
        return x_T

    name = "test-quadratic"
    try:
        register(Sampler(name, run, "records its schedule", spacing="quadratic", stochastic=False))
        s = NoiseSchedule.linear()
        sample(lambda x, t: x, s, (2, 2), sampler=name, num_steps=10)
        sample(lambda x, t: x, s, (2, 2), sampler=name, num_steps=10, spacing=None)
        sample(lambda x, t: x, s, (2, 2), sampler=name, num_steps=10, spacing="uniform")
        sample(lambda x, t: x, s, (2, 2), sampler=name)  # no num_steps: every step, whatever the spacing
    finally:
        SAMPLERS.pop(name, None)
    quadratic = [0, 10, 40, 90, 160, 250, 360, 490, 640, 810, 1000]
    assert seen == [quadratic, quadratic, list(range(0, 1001, 100)), list(range(1001))]


# ---------------------------------------------------------------------------------------------------- trajectory
@pytest.mark.parametrize("name", NAMES)
def test_trajectory_keeps_x_T_and_the_sample(name):
    """trajectory(..., save_at) from the same seed as sample: x_T at the top step (T, or t_start), the sample itself
    at 0 (bit for bit), and in between the states the hook is given; steps the run does not visit are refused."""
    s = NoiseSchedule.linear(T=40, rescale=True)
    model = gaussian_eps(s, MU, COV)
    x_T = torch.randn(6, 2, generator=seeded(3))
    traj = trajectory(model, s, (6, 2), [40, 20, 0], sampler=name, generator=seeded(4))
    assert traj.shape == (3, 6, 2)
    assert torch.equal(traj[0], torch.randn(6, 2, generator=seeded(4)))  # x_T: the generator's first draw
    assert torch.equal(traj[2], sample(model, s, (6, 2), sampler=name, generator=seeded(4)))
    kept = {}
    sample(model, s, (6, 2), sampler=name, generator=seeded(4), hook=lambda x, t: kept.setdefault(t, x))
    assert torch.equal(traj[1], kept[20])
    # respaced, started part-way; the order of save_at is kept
    options = dict(sampler=name, num_steps=5, spacing="uniform", t_start=30, x_T=x_T)  # steps 6, 12, ..., 30
    traj = trajectory(model, s, (6, 2), [0, 30, 12], generator=seeded(5), **options)
    assert torch.equal(traj[1], x_T)
    assert torch.equal(traj[0], sample(model, s, (6, 2), generator=seeded(5), **options))
    with pytest.raises(ValueError, match=r"save_at asks for steps \[13\] that this run does not visit"):
        trajectory(model, s, (6, 2), [30, 13], **options)
    with pytest.raises(ValueError, match=r"save_at must be a non-empty list of steps in 0..30"):
        trajectory(model, s, (6, 2), [31], **options)
    with pytest.raises(ValueError, match=r"save_at must be a non-empty list of steps in 0..40"):
        trajectory(model, s, (6, 2), [], sampler=name)


def test_trajectory_keeps_what_a_callers_hook_returns():
    s = NoiseSchedule.linear(T=25, rescale=True)
    traj = trajectory(gaussian_eps(s, MU, COV), s, (4, 2), [10, 0], sampler="ddim", hook=lambda x, t: 0 * x + t,
                      generator=seeded(0))
    assert torch.equal(traj[0], torch.full((4, 2), 10.0)) and torch.equal(traj[1], torch.zeros(4, 2))


# ---------------------------------------------------------------------------------- model adapters
def networks(base, eps_model):
    """The same exact model as a network that outputs x0 or v (convert's definitions), for as_eps_model."""
    return {to: (lambda x_t, t, to=to: convert(base, x_t, t, eps=eps_model(x_t, t), to=to)) for to in ("x0", "v")}


@pytest.mark.parametrize("name", NAMES)
def test_x0_and_v_networks_through_as_eps_model_sample_as_the_eps_network(name):
    """An x0- and a v-network built from the exact eps, adapted by as_eps_model on the training schedule, sample the
    same as the eps-network from the same seed, 10 respaced steps (the adapter converts at the training steps the
    sampler calls it at), up to float64 rounding: x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab) and back multiplies the
    round-off of x_t by at most sqrt(ab) / sqrt(ab) = 1, so 1e-9 is 1e6 times the ulp of the samples (|x| < 10).
    The x0-network read as if it predicted eps gives other samples."""
    base = NoiseSchedule.linear()
    eps_model = gaussian_eps(base, MU, COV)
    options = dict(sampler=name, num_steps=10, dtype=torch.float64)
    reference = sample(eps_model, base, (64, 2), generator=seeded(1), **options)
    for prediction, network in networks(base, eps_model).items():
        adapted = as_eps_model(network, base, prediction=prediction)
        assert isinstance(adapted, EpsFromPrediction) and adapted.network is network
        torch.testing.assert_close(sample(adapted, base, (64, 2), generator=seeded(1), **options), reference,
                                   rtol=0, atol=1e-9)
    wrong = sample(networks(base, eps_model)["x0"], base, (64, 2), generator=seeded(1), **options)
    assert not torch.allclose(wrong, reference, atol=1e-2)


def test_as_eps_model_returns_an_eps_network_itself_and_checks_its_arguments():
    s = NoiseSchedule.linear(T=10)

    def network(x, t):
        return x

    assert as_eps_model(network, s) is network and as_eps_model(network, s, prediction="eps") is network
    with pytest.raises(ValueError, match="prediction must be one of 'eps', 'x0', 'v', got 'score'"):
        as_eps_model(network, s, prediction="score")
    with pytest.raises(TypeError, match="network must be callable"):
        as_eps_model("unet", s, prediction="x0")
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        as_eps_model(network, "linear", prediction="x0")


def test_label_bound_calls_the_network_with_the_label():
    """An int label: y = full((B,), label) long on x_t's device; a (B,) tensor: that tensor (on x_t's device). A
    bool, a float tensor or a 2-D tensor is refused."""
    calls = []

    def network(x_t, t, y):
        calls.append(y)
        return x_t

    x, t = torch.zeros(5, 2), torch.full((5,), 3)
    LabelBound(network, 7)(x, t)
    assert calls[-1].dtype == torch.long and calls[-1].shape == (5,) and (calls[-1] == 7).all()
    assert calls[-1].device == x.device
    labels = torch.tensor([0, 1, 2, 1, 0])
    LabelBound(network, labels)(x, t)
    assert torch.equal(calls[-1], labels) and calls[-1].device == x.device
    with pytest.raises(TypeError, match="y must be an int or a \\(B,\\) LongTensor"):
        LabelBound(network, True)
    with pytest.raises(TypeError, match="y must be an int or a \\(B,\\) LongTensor"):
        LabelBound(network, 1.0)
    with pytest.raises(ValueError, match="y must be an int or a \\(B,\\) LongTensor of labels, got torch.float32"):
        LabelBound(network, torch.zeros(5))
    with pytest.raises(ValueError, match=r"LongTensor of labels, got torch.int64 \(5, 1\)"):
        LabelBound(network, torch.zeros(5, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="the bound labels y have 5 rows but x_t has 3"):
        LabelBound(network, labels)(torch.zeros(3, 2), torch.full((3,), 3))


MU_1 = torch.tensor([-1.0, 1.5], dtype=torch.float64)
COV_1 = torch.tensor([[0.4, -0.1], [-0.1, 0.3]], dtype=torch.float64)


def conditional_gaussian_eps(schedule):
    """network(x_t, t, y): the exact eps of N(MU, COV) for y = 0 and of N(MU_1, COV_1) for y = 1, row by row."""
    eps = [gaussian_eps(schedule, MU, COV), gaussian_eps(schedule, MU_1, COV_1)]

    def network(x_t, t, y):
        return torch.where((y == 1)[:, None], eps[1](x_t, t), eps[0](x_t, t))
    return network


@pytest.mark.parametrize("name", NAMES)
def test_a_conditional_model_with_a_bound_label_samples_its_class(name):
    """Two Gaussians selected by the label; the label bound per row (half the rows class 0, half class 1) and
    sampled through the sampler unchanged: each half is its class's Gaussian (4,000 samples each, tolerances from n,
    assert_gaussian). All steps of a rescaled linear schedule of T = 200, 5 times cheaper than DDPM's 1,000: its
    discretisation bias, measured with 100,000 samples of class 1 per sampler, is at most 1.7 standard errors of
    4,000 samples (Euler's ODE; 0.2 to 1.2 for the others), far inside the 5 allowed. The same network adapted
    from x0 (as_eps_model passes the label through) and bound to one int label gives the same samples as the
    eps-network bound to it."""
    s, n = NoiseSchedule.linear(T=200, rescale=True), 8_000
    network = conditional_gaussian_eps(s)
    y = torch.arange(n) % 2
    x = sample(LabelBound(network, y), s, (n, 2), sampler=name, generator=seeded(20), dtype=torch.float64)
    assert_gaussian(x[y == 0], MU, COV)
    assert_gaussian(x[y == 1], MU_1, COV_1)

    def x0_network(x_t, t, y):
        return convert(s, x_t, t, eps=network(x_t, t, y), to="x0")

    options = dict(sampler=name, num_steps=8, dtype=torch.float64)
    one = sample(LabelBound(network, 1), s, (32, 2), generator=seeded(21), **options)
    adapted = sample(LabelBound(as_eps_model(x0_network, s, prediction="x0"), 1), s, (32, 2), generator=seeded(21),
                     **options)
    torch.testing.assert_close(adapted, one, rtol=0, atol=1e-9)


def test_label_bound_moves_a_tensor_label_to_a_device_once():
    """A (B,) label tensor goes to the model's device at the first call and is reused (one copy per device, not one
    per step: a pageable host-to-GPU copy waits for the GPU)."""
    moved = []

    class Labels(torch.Tensor):
        def to(self, *args, **kwargs):
            moved.append(args)
            return super().to(*args, **kwargs)

    labels = torch.tensor([0, 1, 0]).as_subclass(Labels)
    bound = LabelBound(lambda x, t, y: x + y[:, None], labels)
    for _ in range(5):
        bound(torch.zeros(3, 2), torch.full((3,), 2))
    assert len(moved) == 1


def test_as_eps_model_refuses_a_respaced_schedule():
    """The adapter converts at the training steps the samplers call it with, which index the training schedule: a
    respaced one would read the wrong alpha_bar."""
    s = NoiseSchedule.linear(T=100)
    with pytest.raises(ValueError, match="schedule must be the one the network was trained on, not a respaced one"):
        as_eps_model(lambda x, t: x, s.respace([10, 50, 100]), prediction="x0")


def test_a_shared_option_name_must_mean_the_same_and_non_scalar_defaults_need_a_parser():
    """The command line has one --name per option name, so two samplers sharing one must agree on its choices and
    type; a default that is not an int, float or str (a bool: bool("False") is True) needs Option(parse=...)."""
    def run_eta(eps_model, schedule, x_T, *, eta: str = "low", generator=None, hook=None, progress=False):
        return x_T

    def run_flag(eps_model, schedule, x_T, *, flag: bool = False, generator=None, hook=None, progress=False):
        return x_T

    with pytest.raises(ValueError, match="option 'eta' is also an option of 'ddim', with other choices or another"):
        register(Sampler("test-eta", run_eta, "an eta that is a string", options={"eta": Option("a word")}))
    assert "test-eta" not in SAMPLERS
    with pytest.raises(ValueError, match=r"options \['flag'\] need Option\(parse=...\)"):
        Sampler("test-flag", run_flag, "a bool option", options={"flag": Option("on or off")})
    parsed = Sampler("test-flag", run_flag, "a bool option",
                     options={"flag": Option("on or off", parse=lambda text: text == "true")})
    assert parsed.parser("flag")("true") is True and parsed.parser("flag")("False") is False

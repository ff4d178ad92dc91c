"""Plausible wrong submissions of ps4_ddim, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum.
"""

_SIGMA = '''
def ddim_sigma(sched, t, t_prev, eta):
    """sigma of the jump t -> t_prev."""
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if not 0 <= t_prev < t:
        raise ValueError(f"t_prev must be in 0..t-1, got {t_prev}")
    a_t, a_prev = float(sched.alpha_bars[t]), float(sched.alpha_bars[t_prev])'''  # + the return line

_STEP = '''
def ddim_step(sched, x_t, t, t_prev, *, eps, eta=0.0, noise=None, generator=None):
    """One DDIM step x_t -> x_{t_prev}."""
    a_t, a_prev = sched.alpha_bars[t], sched.alpha_bars[t_prev]'''  # + the body

_X0_HAT = '''
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()'''

_NOISE = '''
    sigma = ddim_sigma(sched, t, t_prev, eta)
    if noise is None:
        noise = torch.randn(x_t.shape, generator=generator)'''

_POWER = '''
def power_timesteps(T, num_steps, power=2.0):
    """The power grid of num_steps steps."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in 1..{T}, got {num_steps}")
    if power < 1:
        raise ValueError(f"power must be >= 1, got {power}")'''  # + the body

_SAMPLE = '''
def ddim_sample(eps_model, sched, x_T, *, timesteps):
    """Deterministic DDIM down the grid."""
    steps = timesteps.tolist()
    x = x_T'''  # + the loop

_INVERT = '''
def ddim_invert(eps_model, sched, x0, *, timesteps):
    """DDIM inversion up the grid."""
    steps = timesteps.tolist()
    x = x0'''  # + the loop

MISTAKES = {
    "sigma_eta_on_the_variance": {  # sigma^2 = eta beta_tilde: eta scales the variance, sigma = sqrt(eta) sqrt(...)
        "replace": {"ddim_sigma": _SIGMA + '''
    return math.sqrt(eta * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
'''},
        "must_lose": ["ddim_sigma_tests", "ddim_step_tests"],
    },
    "sigma_alpha_for_alpha_bar": {  # DDIM's paper writes alpha for DDPM's alpha_bar: read as the one-step alpha_t
        "replace": {"ddim_sigma": _SIGMA + '''
    a_t, a_prev = float(sched.alphas[t]), float(sched.alphas[t_prev])
    return eta * math.sqrt(abs((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)))
'''},
        "must_lose": ["ddim_sigma_tests", "ddim_step_tests"],
    },
    "sigma_one_step_beta": {  # DDPM's beta_tilde_t with the step's own beta_t, whatever the size of the jump
        "replace": {"ddim_sigma": _SIGMA + '''
    return eta * math.sqrt((1 - a_prev) / (1 - a_t) * float(sched.betas[t]))
'''},
        "must_lose": ["ddim_sigma_tests", "ddim_step_tests"],
    },
    "sigma_common_slip": {  # (1 - abar_t) / abar_t' in the second root instead of 1 - abar_t / abar_t'
        "replace": {"ddim_sigma": _SIGMA + '''
    return eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(abs(1 - (1 - a_t) / a_prev))
'''},
        "must_lose": ["ddim_sigma_tests"],
    },
    "sigma_ratio_upside_down": {  # sqrt((1 - abar_t) / (1 - abar_t')) in the first root
        "replace": {"ddim_sigma": _SIGMA + '''
    if t_prev == 0:
        return 0.0
    return eta * math.sqrt((1 - a_t) / (1 - a_prev) * (1 - a_t / a_prev))
'''},
        "must_lose": ["ddim_sigma_tests", "ddim_step_tests"],
    },
    "step_direction_without_sqrt": {  # (1 - abar_t' - sigma^2) eps: the direction's weight is a variance
        "replace": {"ddim_step": _STEP + _X0_HAT + '''
    if eta == 0:
        return a_prev.sqrt() * x0_hat + (1 - a_prev) * eps''' + _NOISE + '''
    return a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2) * eps + sigma * noise
'''},
        "must_lose": ["ddim_step_tests"],
    },
    "step_direction_ignores_sigma": {  # sqrt(1 - abar_t') eps + sigma z: the noise is added on top, not traded
        "replace": {"ddim_step": _STEP + _X0_HAT + '''
    if eta == 0:
        return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps''' + _NOISE + '''
    return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps + sigma * noise
'''},
        "must_lose": ["ddim_step_tests"],
    },
    "step_alpha_for_alpha_bar": {  # the one-step alphas where the step needs alpha_bar
        "replace": {"ddim_step": '''
def ddim_step(sched, x_t, t, t_prev, *, eps, eta=0.0, noise=None, generator=None):
    """One DDIM step x_t -> x_{t_prev}."""
    a_t, a_prev = sched.alphas[t], sched.alphas[t_prev]''' + _X0_HAT + '''
    if eta == 0:
        return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps''' + _NOISE + '''
    return a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).sqrt() * eps + sigma * noise
'''},
        "must_lose": ["ddim_step_tests"],
    },
    "step_x0_hat_roots_swapped": {  # x0_hat = (x_t - sqrt(abar_t) eps) / sqrt(1 - abar_t)
        "replace": {"ddim_step": _STEP + '''
    x0_hat = (x_t - a_t.sqrt() * eps) / (1 - a_t).sqrt()
    if eta == 0:
        return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps''' + _NOISE + '''
    return a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).sqrt() * eps + sigma * noise
'''},
        "must_lose": ["ddim_step_tests"],
    },
    "step_draws_noise_at_eta_zero": {  # z drawn before looking at eta: right values, but the generator moves
        "replace": {"ddim_step": _STEP + _X0_HAT + '''
    if noise is None:
        noise = torch.randn(x_t.shape, generator=generator)
    sigma = 0.0 if eta == 0 else ddim_sigma(sched, t, t_prev, eta)
    return a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).sqrt() * eps + sigma * noise
'''},
        "must_lose": ["ddim_step_tests"],
    },
    "step_sigma_even_at_eta_zero": {  # no special case for eta = 0: fine downwards, but inversion's upward jumps fail
        "replace": {"ddim_step": _STEP + _X0_HAT + '''
    sigma = ddim_sigma(sched, t, t_prev, eta)
    if noise is None:
        noise = torch.zeros_like(x_t) if eta == 0 else torch.randn(x_t.shape, generator=generator)
    return a_prev.sqrt() * x0_hat + (1 - a_prev - sigma**2).sqrt() * eps + sigma * noise
'''},
        "must_lose": ["ddim_step_tests", "ddim_invert_tests"],
    },
    "spacing_repeats_steps": {  # the rounded profile without the push: 0, 1, 1, 2, ... for small k
        "replace": {"power_timesteps": _POWER + '''
    return torch.tensor([round(T * (k / num_steps) ** power) for k in range(1, num_steps + 1)])
'''},
        "must_lose": ["power_timesteps_tests"],
    },
    "spacing_starts_at_zero": {  # k = 0..S-1: starts on the data and never reaches T
        "replace": {"power_timesteps": _POWER + '''
    return torch.tensor([max(round(T * (k / num_steps) ** power), k) for k in range(num_steps)])
'''},
        "must_lose": ["power_timesteps_tests"],
    },
    "spacing_truncates": {  # int() rounds down: every step of the profile one too early half of the time
        "replace": {"power_timesteps": _POWER + '''
    steps, last = [], 0
    for k in range(1, num_steps + 1):
        last = max(int(T * (k / num_steps) ** power), last + 1)
        steps.append(last)
    return torch.tensor(steps)
'''},
        "must_lose": ["power_timesteps_tests"],
    },
    "sample_t_prev_off_by_one": {  # DDPM's habit: the step goes to t - 1, not to the previous step of the grid
        "replace": {"ddim_sample": _SAMPLE + '''
    for t in reversed(steps):
        x = ddim_step(sched, x, t, t - 1, eps=eps_model(x, torch.full((x.shape[0],), t)))
    return x
'''},
        "must_lose": ["ddim_sample_tests"],
    },
    "sample_last_step_not_to_zero": {  # only the jumps between grid steps: it stops at tau_1 instead of the data
        "replace": {"ddim_sample": _SAMPLE + '''
    for t, t_prev in zip(steps[::-1], steps[-2::-1]):
        x = ddim_step(sched, x, t, t_prev, eps=eps_model(x, torch.full((x.shape[0],), t)))
    return x
'''},
        "must_lose": ["ddim_sample_tests"],
    },
    "sample_model_at_the_index": {  # the model asked at the grid index k instead of the training step tau_k
        "replace": {"ddim_sample": _SAMPLE + '''
    grid = [0] + steps
    for k in range(len(steps), 0, -1):
        x = ddim_step(sched, x, grid[k], grid[k - 1], eps=eps_model(x, torch.full((x.shape[0],), k)))
    return x
'''},
        "must_lose": ["ddim_sample_tests"],
    },
    "invert_eps_at_the_wrong_end": {  # the model asked at the END's step tau_k with the start's x, not DDIM's choice.
        # Not caught by the round trip: on MIXTURE it is in fact about twice as accurate (median error 0.67 / S
        # against 1.4 / S); caught by the call sequence and the Euler form, which the problem fixes.
        "replace": {"ddim_invert": _INVERT + '''
    start = 0
    for end in steps:
        x = ddim_step(sched, x, start, end, eps=eps_model(x, torch.full((x.shape[0],), end)))
        start = end
    return x
'''},
        "must_lose": ["ddim_invert_tests"],
    },
    "invert_skips_the_first_step": {  # treats x0 as if it were x at tau_1: no jump 0 -> tau_1
        "replace": {"ddim_invert": _INVERT + '''
    for start, end in zip(steps[:-1], steps[1:]):
        x = ddim_step(sched, x, start, end, eps=eps_model(x, torch.full((x.shape[0],), start)))
    return x
'''},
        "must_lose": ["ddim_invert_tests"],
    },
    "invert_asks_the_data_step": {  # the first call at t = 0, a step no network was trained on
        "replace": {"ddim_invert": _INVERT + '''
    start = 0
    for end in steps:
        x = ddim_step(sched, x, start, end, eps=eps_model(x, torch.full((x.shape[0],), start)))
        start = end
    return x
'''},
        "must_lose": ["ddim_invert_tests"],
    },
}

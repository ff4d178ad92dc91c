"""Plausible wrong submissions of ps2_ddpm, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum. With `"visible": True` the visible tests
alone (the student's own run, hidden tests removed) must already fail those cells.

The `copied_from_package_<cell>` entries are what a student gets by calling (or transcribing) the nearest function
of the shipped package, `ddpm_scratch`, instead of answering: the package implements DDPM's variance-preserving chain
(`losses.l_simple`, `ddpm.p_sample_step`, `ddpm.ddpm_sample`, `score.mixture_eps_model`, `reverse_kernel`,
`losses.vlb_weights`, `machinery.loop.optimisation_step`), and the problem set asks for any Gaussian chain, a weight
from the SNRs alone and a step in micro-batches, so each of these loses its cell's points.
"""

# The package's schedule of a problem-set schedule: it holds DDPM's chain only (alpha_bar = m^2, v = 1 - m^2 assumed;
# a chain with m_t = m_{t-1}, like the VE chain, has beta_t = 0, which NoiseSchedule refuses).
_VP_SCHEDULE = '''
    from ddpm_scratch.schedules import NoiseSchedule

    alpha_bar = sched.m**2
    schedule = NoiseSchedule.from_betas(1 - alpha_bar[1:] / alpha_bar[:-1])'''

_STEP = '''
def p_sample_step(sched, x_t, t, *, eps, sigma2, z):
    """x_{t-1} from x_t."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x_t.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x_t.dim() - 1)))
    a, b2, v, s2 = (values[t].reshape(shape).to(x_t.dtype) for values in (sched.a, sched.b2, sched.v, sigma2))
    last = (t == 1).reshape(shape)'''  # + the body

_SAMPLER = '''
def ddpm_sample(eps_model, sched, x_T, *, sigma2, generator=None):
    """Algorithm 2."""
    x = x_T'''  # + the loop

_EPS = '''
def gaussian_eps(sched, x_t, t, *, mu, s2):
    """E[eps | x_t] for Gaussian data."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x_t.shape[0],), t, dtype=torch.long)
    m, v = sched.m[t].unsqueeze(-1), sched.v[t].unsqueeze(-1)'''  # + the return line

_TRAIN = '''
def train_step(eps_model, optimizer, sched, x0, t, *, eps, micro_batch=None):
    """Algorithm 1, one step."""
    B = x0.shape[0]
    k = B if micro_batch is None else micro_batch'''  # + the body

MISTAKES = {
    # ---------------------------------------------------------------------------------------- A: l_simple
    "copied_from_package_l_simple": {  # losses.l_simple: x_t from DDPM's kernel
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.losses import l_simple as package_l_simple

    return package_l_simple(eps_model, schedule, x0, t=t, noise=eps)
'''},
        "must_lose": ["l_simple_tests"],
        "visible": True,
    },
    "l_simple_regresses_x0": {  # the network trained to predict the clean data instead of the noise
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x0.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x0.dim() - 1)))
    x_t = sched.m[t].reshape(shape).to(x0.dtype) * x0 + sched.v[t].sqrt().reshape(shape).to(x0.dtype) * eps
    return (x0 - eps_model(x_t, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    "l_simple_model_sees_x0": {  # the model evaluated on the clean x0 instead of the noisy x_t
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x0.shape[0],), t, dtype=torch.long)
    return (eps - eps_model(x0, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
        "visible": True,
    },
    "l_simple_noise_scaled_by_variance": {  # x_t = m_t x0 + v_t eps: the variance used as the noise's scale
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x0.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x0.dim() - 1)))
    x_t = sched.m[t].reshape(shape).to(x0.dtype) * x0 + sched.v[t].reshape(shape).to(x0.dtype) * eps
    return (eps - eps_model(x_t, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    "l_simple_sums_over_coordinates": {  # mean over examples of the summed squared error: not per coordinate
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x0.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x0.dim() - 1)))
    x_t = sched.m[t].reshape(shape).to(x0.dtype) * x0 + sched.v[t].sqrt().reshape(shape).to(x0.dtype) * eps
    return (eps - eps_model(x_t, t)).pow(2).flatten(1).sum(dim=1).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    "l_simple_passes_an_int_t_to_the_model": {  # an int t reaches the model as it is, not as a (B,) long tensor
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    shape = (-1, *([1] * (x0.dim() - 1)))
    m, s = sched.m[t], sched.v[t].sqrt()
    if isinstance(t, torch.Tensor):
        m, s = m.reshape(shape), s.reshape(shape)
    x_t = m.to(x0.dtype) * x0 + s.to(x0.dtype) * eps
    return (eps - eps_model(x_t, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    "l_simple_x_t_in_float64": {  # float64 coefficients of shape (B, 1) promote float32 data: a float32 net refuses it
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x0.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x0.dim() - 1)))
    x_t = sched.m[t].reshape(shape) * x0 + sched.v[t].sqrt().reshape(shape) * eps
    return (eps - eps_model(x_t, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    # ---------------------------------------------------------------------------------------- B: p_sample_step
    "copied_from_package_p_sample_step": {  # ddpm.p_sample_step: Algorithm 2's mean, DDPM's chain only
        "replace": {"p_sample_step": '''
def p_sample_step(sched, x_t, t, *, eps, sigma2, z):
    """x_{t-1} from x_t."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.ddpm import p_sample_step as package_step

    return package_step(schedule, x_t, t, eps=eps, variance=sigma2, noise=z)
'''},
        "must_lose": ["p_sample_step_tests"],
        "visible": True,
    },
    "missing_division_by_a": {  # the mean without the factor 1 / a_t (1 / sqrt(alpha_t) for DDPM)
        "replace": {"p_sample_step": _STEP + '''
    mean = x_t - b2 / v.sqrt() * eps
    return mean + torch.where(last, 0.0, s2.sqrt()) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "noise_added_at_last_step": {  # z added at t = 1 too
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - b2 / v.sqrt() * eps) / a
    return mean + s2.sqrt() * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "variance_used_as_standard_deviation": {  # sigma_t^2 z instead of sigma_t z
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - b2 / v.sqrt() * eps) / a
    return mean + torch.where(last, 0.0, s2) * z
'''},
        "must_lose": ["p_sample_step_tests", "sampler_tests"],
        "visible": True,
    },
    "noise_subtracted": {  # mean - sigma_t z: the right distribution, but the problem states + sigma_t z for a given z
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - b2 / v.sqrt() * eps) / a
    return mean - torch.where(last, 0.0, s2.sqrt()) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "eps_coefficient_without_sqrt": {  # b_t^2 / v_t instead of b_t^2 / sqrt(v_t)
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - b2 / v * eps) / a
    return mean + torch.where(last, 0.0, s2.sqrt()) * z
'''},
        "must_lose": ["p_sample_step_tests"],
        "visible": True,
    },
    "last_step_tested_on_the_whole_batch": {  # `if (t == 1).all()`: rows at t = 1 get noise when others do not
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - b2 / v.sqrt() * eps) / a
    if bool(last.all()):
        return mean
    return mean + s2.sqrt() * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "step_in_float64": {  # per-row float64 coefficients promote float32 states
        "replace": {"p_sample_step": '''
def p_sample_step(sched, x_t, t, *, eps, sigma2, z):
    """x_{t-1} from x_t."""
    if not isinstance(t, torch.Tensor):
        t = torch.full((x_t.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x_t.dim() - 1)))
    a, b2, v, s2 = (values[t].reshape(shape) for values in (sched.a, sched.b2, sched.v, sigma2))
    mean = (x_t - b2 / v.sqrt() * eps) / a
    return mean + torch.where((t == 1).reshape(shape), 0.0, s2.sqrt()) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    # ---------------------------------------------------------------------------------------- C: gaussian_eps
    "copied_from_package_gaussian_eps": {  # score.mixture_eps_model: the exact eps of a mixture, DDPM's chain only
        "replace": {"gaussian_eps": '''
def gaussian_eps(sched, x_t, t, *, mu, s2):
    """E[eps | x_t] for Gaussian data."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.score import GaussianMixture, mixture_eps_model

    if not isinstance(t, torch.Tensor):
        t = torch.full((x_t.shape[0],), t, dtype=torch.long)
    return mixture_eps_model(GaussianMixture([1.0], mu[None], [float(s2)]), schedule)(x_t, t)
'''},
        "must_lose": ["gaussian_eps_tests"],
        "visible": True,
    },
    "eps_ignores_data_variance": {  # x_t - m_t mu divided by sqrt(v_t), as if x0 = mu were known
        "replace": {"gaussian_eps": _EPS + '''
    return ((x_t - m * mu) / v.sqrt()).to(x_t.dtype)
'''},
        "must_lose": ["gaussian_eps_tests"],
    },
    "eps_with_standard_deviation_of_x_t": {  # divided by sqrt(Var x_t) instead of Var x_t
        "replace": {"gaussian_eps": _EPS + '''
    return (v.sqrt() * (x_t - m * mu) / (m**2 * s2 + v).sqrt()).to(x_t.dtype)
'''},
        "must_lose": ["gaussian_eps_tests"],
        "visible": True,
    },
    "eps_with_ddpm_variance_of_x_t": {  # Var(x_t) = m_t^2 s2 + 1 - m_t^2: DDPM's v_t = 1 - alpha_bar_t assumed
        "replace": {"gaussian_eps": _EPS + '''
    return (v.sqrt() * (x_t - m * mu) / (m**2 * s2 + 1 - m**2)).to(x_t.dtype)
'''},
        "must_lose": ["gaussian_eps_tests"],
    },
    "eps_in_float64": {  # float64 coefficients promote float32 states
        "replace": {"gaussian_eps": _EPS + '''
    return v.sqrt() * (x_t - m * mu) / (m**2 * s2 + v)
'''},
        "must_lose": ["gaussian_eps_tests"],
    },
    # ---------------------------------------------------------------------------------------- D: reverse_variance
    "copied_from_package_reverse_variance": {  # reverse_kernel: the true q(x_{t-1} | x_t) of a mixture, DDPM's chain
        "replace": {"reverse_variance": '''
def gaussian_reverse_variance(sched, t, *, s2):
    """Var(x_{t-1} | x_t) for Gaussian data."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.reverse_kernel import reverse_kernel
    from ddpm_scratch.score import GaussianMixture

    kernel = reverse_kernel(GaussianMixture([1.0], [[0.0]], [float(s2)]), schedule, torch.zeros(1), t)
    return kernel.covs[0, 0, 0].item()
'''},
        "must_lose": ["reverse_variance_tests"],
        "visible": True,
    },
    "reverse_variance_ratio_swapped": {  # b_t^2 V_t / V_{t-1}
        "replace": {"reverse_variance": '''
def gaussian_reverse_variance(sched, t, *, s2):
    """Var(x_{t-1} | x_t) for Gaussian data."""
    V_prev = sched.m[t - 1].item() ** 2 * s2 + sched.v[t - 1].item()
    V_t = sched.m[t].item() ** 2 * s2 + sched.v[t].item()
    return sched.b2[t].item() * V_t / V_prev
'''},
        "must_lose": ["reverse_variance_tests"],
    },
    "reverse_variance_without_signal_coefficient": {  # V_t = s2 + v_t: the data's variance not scaled by m_t^2
        "replace": {"reverse_variance": '''
def gaussian_reverse_variance(sched, t, *, s2):
    """Var(x_{t-1} | x_t) for Gaussian data."""
    V_prev, V_t = s2 + sched.v[t - 1].item(), s2 + sched.v[t].item()
    return sched.b2[t].item() * V_prev / V_t
'''},
        "must_lose": ["reverse_variance_tests"],
    },
    # ---------------------------------------------------------------------------------------- E: sampler
    "copied_from_package_sampler": {  # ddpm.ddpm_sample(eps_model, schedule, x_T, variance=, generator=): DDPM's only
        "replace": {"sampler": '''
def ddpm_sample(eps_model, sched, x_T, *, sigma2, generator=None):
    """Algorithm 2."""''' + _VP_SCHEDULE + '''
    from ddpm_scratch.ddpm import ddpm_sample as package_sample

    sigma2 = sigma2.clone()
    sigma2[1:] = sigma2[1:].clamp(min=1e-300)  # the package wants sigma_t^2 > 0
    return package_sample(eps_model, schedule, x_T, variance=sigma2, generator=generator)
'''},
        "must_lose": ["sampler_tests"],
        "visible": True,
    },
    "sampler_draws_noise_once": {  # one z for the whole chain: the steps' noises are not independent
        "replace": {"sampler": _SAMPLER + '''
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sigma2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
    },
    "sampler_ignores_generator": {  # z from the global random generator: the seeded generator is not used
        "replace": {"sampler": _SAMPLER + '''
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, dtype=x.dtype)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sigma2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
        "visible": True,
    },
    "sampler_seeds_its_own_generator": {  # a fixed private seed: reproducible, but every seed gives the same samples
        "replace": {"sampler": _SAMPLER + '''
    generator = torch.Generator().manual_seed(0)
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sigma2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
        "visible": True,
    },
    "sampler_uses_b2_regardless_of_sigma2": {  # ignores the variances it is given: sigma_t^2 = b_t^2 (beta_t)
        "replace": {"sampler": _SAMPLER + '''
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sched.b2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
    },
    "sampler_model_sees_x_T": {  # a stale state: the model is called on x_T at every step
        "replace": {"sampler": _SAMPLER + '''
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = p_sample_step(sched, x, t, eps=eps_model(x_T, t_batch), sigma2=sigma2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
        "visible": True,
    },
    "sampler_float_t": {  # t as a float tensor: 3.0 == 3, but an embedding or an index needs a long t
        "replace": {"sampler": _SAMPLER + '''
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), float(t))
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sigma2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
        "visible": True,
    },
    "sampler_noise_in_the_default_dtype": {  # torch.randn without dtype: float64 noise turns float32 states to float64
        "replace": {"sampler": _SAMPLER + '''
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sigma2, z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
    },
    # ---------------------------------------------------------------------------------------- F: vlb_weight
    "copied_from_package_vlb_weight": {  # losses.vlb_weights (DDPM eq. 12) on the two-step schedule the SNRs define
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    from ddpm_scratch.losses import vlb_weights
    from ddpm_scratch.schedules import NoiseSchedule

    alpha_bar_prev, alpha_bar = snr_prev / (1 + snr_prev), snr / (1 + snr)
    schedule = NoiseSchedule.from_betas([1 - alpha_bar_prev, 1 - alpha_bar / alpha_bar_prev])
    sigma2 = sigma2_ratio * schedule.posterior_variances
    sigma2[1] = 1.0  # unused: only t = 2 is read
    return vlb_weights(schedule, sigma2)[2].item()
'''},
        "must_lose": ["vlb_weight_tests"],
        "visible": True,
    },
    "lambda_snr_ratio_inverted": {  # SNR(t) / SNR(t-1) - 1: negative, the SNR falls along the chain
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    return (snr / snr_prev - 1) / (2 * sigma2_ratio)
'''},
        "must_lose": ["vlb_weight_tests"],
    },
    "lambda_without_the_half": {  # ||mu - mu_theta||^2 / sigma^2 instead of / (2 sigma^2)
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    return (snr_prev / snr - 1) / sigma2_ratio
'''},
        "must_lose": ["vlb_weight_tests"],
    },
    "lambda_variance_ratio_multiplied": {  # a larger model variance makes the mean term weigh less, not more
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    return sigma2_ratio * (snr_prev / snr - 1) / 2
'''},
        "must_lose": ["vlb_weight_tests"],
    },
    "lambda_not_divided_by_snr": {  # (SNR(t-1) - SNR(t)) / 2: the bound's weight of the x0 error, not of the eps error
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    return (snr_prev - snr) / (2 * sigma2_ratio)
'''},
        "must_lose": ["vlb_weight_tests"],
    },
    "lambda_continuous_time_limit": {  # log(SNR(t-1) / SNR(t)) / 2: right to first order in beta_t only
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    return math.log(snr_prev / snr) / (2 * sigma2_ratio)
'''},
        "must_lose": ["vlb_weight_tests"],
    },
    "lambda_with_alpha_bar_for_alpha": {  # DDPM eq. 12 through alpha_bar, with alpha_bar_t where alpha_t belongs
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    alpha_bar_prev, alpha_bar_t = snr_prev / (1 + snr_prev), snr / (1 + snr)
    beta_t = 1 - alpha_bar_t / alpha_bar_prev
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return beta_t**2 / (2 * sigma2_ratio * beta_tilde * alpha_bar_t * (1 - alpha_bar_t))
'''},
        "must_lose": ["vlb_weight_tests"],
        "visible": True,
    },
    "lambda_unsimplified_fails_without_noise": {  # eq. 12 evaluated through alpha_bar as is: 0 / 0 when beta_t = 0
        "replace": {"vlb_weight": '''
def vlb_weight(snr_prev, snr, *, sigma2_ratio):
    """lambda_t from the SNRs."""
    alpha_bar_prev, alpha_bar_t = snr_prev / (1 + snr_prev), snr / (1 + snr)
    alpha_t = alpha_bar_t / alpha_bar_prev
    beta_t = 1 - alpha_t
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return beta_t**2 / (2 * sigma2_ratio * beta_tilde * alpha_t * (1 - alpha_bar_t))
'''},
        "must_lose": ["vlb_weight_tests"],
    },
    # ---------------------------------------------------------------------------------------- G1: train_step
    "copied_from_package_train_step": {  # machinery.loop.optimisation_step on the whole batch: the model sees B rows
        "replace": {"train_step": '''
def train_step(eps_model, optimizer, sched, x0, t, *, eps, micro_batch=None):
    """Algorithm 1, one step."""
    from ddpm_scratch.machinery.loop import Batch, optimisation_step

    def objective(model, batch, *, generator=None):
        return l_simple(model, sched, batch.x0, t, eps=eps)

    return optimisation_step(eps_model, optimizer, objective, Batch(x0)).item()
'''},
        "must_lose": ["train_step_tests"],
        "visible": True,
    },
    "train_step_without_zero_grad": {  # gradients of earlier batches accumulate into every step
        "replace": {"train_step": _TRAIN + '''
    total = 0.0
    for start in range(0, B, k):
        rows = slice(start, start + k)
        loss = l_simple(eps_model, sched, x0[rows], t[rows], eps=eps[rows]) * (x0[rows].shape[0] / B)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total
'''},
        "must_lose": ["train_step_tests"],
    },
    # the mean of the slices' means: a shorter last slice weighs as much as the others
    "micro_batches_weighted_equally": {
        "replace": {"train_step": _TRAIN + '''
    optimizer.zero_grad()
    starts = range(0, B, k)
    total = 0.0
    for start in starts:
        rows = slice(start, start + k)
        loss = l_simple(eps_model, sched, x0[rows], t[rows], eps=eps[rows]) / len(starts)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total
'''},
        "must_lose": ["train_step_tests"],
    },
    "micro_batch_losses_not_scaled": {  # the slices' mean losses added up: the gradient is (number of slices) too large
        "replace": {"train_step": _TRAIN + '''
    optimizer.zero_grad()
    total = 0.0
    for start in range(0, B, k):
        rows = slice(start, start + k)
        loss = l_simple(eps_model, sched, x0[rows], t[rows], eps=eps[rows])
        loss.backward()
        total += loss.item() * x0[rows].shape[0] / B
    optimizer.step()
    return total
'''},
        "must_lose": ["train_step_tests"],
    },
    "optimizer_step_per_micro_batch": {  # one optimizer step per slice: several small steps, not one
        "replace": {"train_step": _TRAIN + '''
    total = 0.0
    for start in range(0, B, k):
        rows = slice(start, start + k)
        optimizer.zero_grad()
        loss = l_simple(eps_model, sched, x0[rows], t[rows], eps=eps[rows]) * (x0[rows].shape[0] / B)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total
'''},
        "must_lose": ["train_step_tests"],
    },
    "train_step_returns_the_last_slice_loss": {  # the loss of the last micro-batch, not of the whole batch
        "replace": {"train_step": _TRAIN + '''
    optimizer.zero_grad()
    for start in range(0, B, k):
        rows = slice(start, start + k)
        loss = l_simple(eps_model, sched, x0[rows], t[rows], eps=eps[rows])
        (loss * (x0[rows].shape[0] / B)).backward()
    optimizer.step()
    return loss.item()
'''},
        "must_lose": ["train_step_tests"],
    },
}

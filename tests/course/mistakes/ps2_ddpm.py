"""Plausible wrong submissions of ps2_ddpm, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum.
"""

_STEP = '''
def p_sample_step(sched, x_t, t, *, eps, sigma2, z):
    """x_{t-1} from x_t."""
    alpha_t, beta_t, alpha_bar_t = sched.alphas[t], sched.betas[t], sched.alpha_bars[t]'''  # + the body

MISTAKES = {
    "l_simple_regresses_x0": {  # the network trained to predict the clean data instead of the noise
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    coef = sched.alpha_bars[t].reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = coef.sqrt() * x0 + (1 - coef).sqrt() * eps
    return (x0 - eps_model(x_t, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    "l_simple_model_sees_x0": {  # the model evaluated on the clean x0 instead of the noisy x_t
        "replace": {"l_simple": '''
def l_simple(eps_model, sched, x0, t, *, eps):
    """L_simple on a batch."""
    return (eps - eps_model(x0, t)).pow(2).mean()
'''},
        "must_lose": ["l_simple_tests"],
    },
    "missing_inverse_sqrt_alpha": {  # the mean without the factor 1 / sqrt(alpha_t)
        "replace": {"p_sample_step": _STEP + '''
    mean = x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps
    return mean if t == 1 else mean + math.sqrt(sigma2) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "noise_added_at_last_step": {  # z added at t = 1 too
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
    return mean + math.sqrt(sigma2) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "variance_used_as_standard_deviation": {  # sigma_t^2 z instead of sigma_t z
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
    return mean if t == 1 else mean + sigma2 * z
'''},
        "must_lose": ["p_sample_step_tests", "sampler_tests"],
    },
    "noise_subtracted": {  # mean - sigma_t z: the right distribution, but the problem states + sigma_t z for a given z
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
    return mean if t == 1 else mean - math.sqrt(sigma2) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "eps_coefficient_without_sqrt": {  # beta_t / (1 - alpha_bar_t) instead of beta_t / sqrt(1 - alpha_bar_t)
        "replace": {"p_sample_step": _STEP + '''
    mean = (x_t - beta_t / (1 - alpha_bar_t) * eps) / alpha_t.sqrt()
    return mean if t == 1 else mean + math.sqrt(sigma2) * z
'''},
        "must_lose": ["p_sample_step_tests"],
    },
    "eps_ignores_data_variance": {  # x_t - sqrt(abar) mu divided by sqrt(1 - abar), as if x0 = mu were known
        "replace": {"gaussian_eps": '''
def gaussian_eps(sched, x_t, t, *, mu, s2):
    """E[eps | x_t] for Gaussian data."""
    a = sched.alpha_bars[t].unsqueeze(-1)
    return (x_t - a.sqrt() * mu) / (1 - a).sqrt()
'''},
        "must_lose": ["gaussian_eps_tests"],
    },
    "eps_with_standard_deviation_of_x_t": {  # divided by sqrt(Var x_t) instead of Var x_t
        "replace": {"gaussian_eps": '''
def gaussian_eps(sched, x_t, t, *, mu, s2):
    """E[eps | x_t] for Gaussian data."""
    a = sched.alpha_bars[t].unsqueeze(-1)
    return (1 - a).sqrt() * (x_t - a.sqrt() * mu) / (a * s2 + 1 - a).sqrt()
'''},
        "must_lose": ["gaussian_eps_tests"],
    },
    "reverse_variance_ratio_swapped": {  # beta_t v_t / v_{t-1}
        "replace": {"reverse_variance": '''
def gaussian_reverse_variance(sched, t, *, s2):
    """Var(x_{t-1} | x_t) for Gaussian data."""
    a_prev, a_t = sched.alpha_bars[t - 1].item(), sched.alpha_bars[t].item()
    v_prev, v_t = a_prev * s2 + 1 - a_prev, a_t * s2 + 1 - a_t
    return sched.betas[t].item() * v_t / v_prev
'''},
        "must_lose": ["reverse_variance_tests"],
    },
    "sampler_draws_noise_once": {  # one z for the whole chain: the steps' noises are not independent
        "replace": {"sampler": '''
def ddpm_sample(eps_model, sched, x_T, *, sigma2, generator=None):
    """Algorithm 2."""
    x = x_T
    z = torch.randn(x.shape, generator=generator)
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=float(sigma2[t]), z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
    },
    "sampler_ignores_generator": {  # z from the global random generator: the seeded generator is not used
        "replace": {"sampler": '''
def ddpm_sample(eps_model, sched, x_T, *, sigma2, generator=None):
    """Algorithm 2."""
    x = x_T
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=float(sigma2[t]), z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
    },
    "sampler_seeds_its_own_generator": {  # a fixed private seed: reproducible, but every seed gives the same samples
        "replace": {"sampler": '''
def ddpm_sample(eps_model, sched, x_T, *, sigma2, generator=None):
    """Algorithm 2."""
    generator = torch.Generator().manual_seed(0)
    x = x_T
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=float(sigma2[t]), z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
    },
    "sampler_uses_beta_regardless_of_sigma2": {  # ignores the variances it is given
        "replace": {"sampler": '''
def ddpm_sample(eps_model, sched, x_T, *, sigma2, generator=None):
    """Algorithm 2."""
    x = x_T
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=float(sched.betas[t]), z=z)
    return x
'''},
        "must_lose": ["sampler_tests"],
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
    "train_step_without_zero_grad": {  # gradients of earlier batches accumulate into every step
        "replace": {"train_step": '''
def train_step(eps_model, optimizer, sched, x0, t, *, eps):
    """Algorithm 1, one step."""
    loss = l_simple(eps_model, sched, x0, t, eps=eps)
    loss.backward()
    optimizer.step()
    return loss.item()
'''},
        "must_lose": ["train_step_tests"],
    },
}

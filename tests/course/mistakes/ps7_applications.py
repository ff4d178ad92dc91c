"""Plausible wrong submissions of ps7_applications, for the pipeline tests.

Each entry replaces the named answer cells (grade_id -> the student's whole cell) in an otherwise correct
submission; every test cell in `must_lose` must then score below its maximum. With `"visible": True` the visible tests
alone (the student's own run, hidden tests removed) must already fail those cells.

The entries "copied_from_package_<cell>" are what a student gets by calling or transcribing the nearest function of
the shipped package (`ddpm_scratch.applications`, `ddpm_scratch.forward`, `ddpm_scratch.ddim`, `ddpm_scratch.score`),
which noises a clean guide at a step given by hand, inpaints with fresh noise for the known pixels, knows no
Gaussian conditional (only the marginal of its `GaussianMixture`), low-passes with block means and numbers RePaint's
schedule its own way (`jumps` resamplings from the multiples of the jump length): each must lose its cell's points.
"""

# ------------------------------------------------------------------------------------------------ Part A
_SDEDIT_HEAD = '''
def sdedit_start(alpha_bars, guide, snr, *, guide_std=0.0, generator=None):
    """SDEdit's start."""
    abar = alpha_bars.double()
    ratios = abar[1:] / (1 - abar[1:])'''

_FITS = '''
    fits = (ratios <= snr) & (guide_std**2 * ratios <= 1)
    if not bool(fits.any()):
        raise ValueError(f"no step reaches snr = {snr}")
    t0 = int(torch.nonzero(fits)[0, 0]) + 1'''

_DRAW = '''
    eps = torch.randn(guide.shape, generator=generator, dtype=guide.dtype)'''


def _sdedit(fits=_FITS, a="float(abar[t0])", missing="math.sqrt(max(0.0, 1 - a * (1 + guide_std**2)))", draw=_DRAW,
            result="math.sqrt(a) * guide + missing * eps, t0") -> str:
    return f'''{_SDEDIT_HEAD}{fits}
    a = {a}
    missing = {missing}{draw}
    return {result}
'''


# ------------------------------------------------------------------------------------------------ Part B
_INPAINT_HEAD = '''
def inpaint_ddim(eps_model, alpha_bars, known, mask, timesteps, *, x_T):
    """DDIM inpainting, the known pixels put back in x0_hat."""
    steps = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
    T = alpha_bars.numel() - 1'''

_CHECK = '''
    if not steps or not all(1 <= t <= T for t in steps) or any(s <= t for s, t in itertools.pairwise(steps)):
        raise ValueError(f"timesteps must be strictly decreasing in 1..T, got {steps}")'''

_LOOP = '''
    abar = alpha_bars.double().tolist()
    x = x_T
    for t, t_next in itertools.pairwise([*steps, 0]):
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))'''

_PREDICT = '''
        x0_hat = (x - math.sqrt(1 - abar[t]) * eps) / math.sqrt(abar[t])'''

_PUT_BACK = '''
        x0_hat = torch.where(mask, known, x0_hat)
        x = math.sqrt(abar[t_next]) * x0_hat + math.sqrt(1 - abar[t_next]) * eps'''

_RETURN = '''
    return torch.where(mask, known, x)
'''


def _inpaint(check=_CHECK, loop=_LOOP, predict=_PREDICT, put_back=_PUT_BACK, back=_RETURN) -> str:
    return _INPAINT_HEAD + check + loop + predict + put_back + back


# ------------------------------------------------------------------------------------------------ Part C
_CONDITIONAL_HEAD = '''
def gaussian_conditional(mean, cov, known_index, values):
    """x_u | x_k = values."""
    k = torch.as_tensor(known_index, dtype=torch.long).reshape(-1)
    unknown = torch.ones(mean.numel(), dtype=torch.bool)
    unknown[k] = False
    u = torch.nonzero(unknown).reshape(-1)
    cov_uk, cov_uu = cov[u][:, k], cov[u][:, u]'''

_EMPTY = '''
    if k.numel() == 0:
        return mean.expand(*values.shape[:-1], mean.numel()).clone(), cov_uu.clone()'''

_GAIN = '''
    gain = torch.linalg.solve(cov[k][:, k], cov_uk.T).T'''


def _conditional(empty=_EMPTY, gain=_GAIN, mean_u="mean[u] + (values - mean[k]) @ gain.T",
                 cov_u="cov_uu - gain @ cov_uk.T", head=_CONDITIONAL_HEAD) -> str:
    return f'''{head}{empty}{gain}
    return {mean_u}, {cov_u}
'''


# ------------------------------------------------------------------------------------------------ Part D
_STEP = '''


def ilvr_step(x, reference_t, phi):
    """ILVR's update."""
    return x - phi(x) + phi(reference_t)
'''

_FILTER_HEAD = '''
def fourier_low_pass(x, k):
    """The Fourier low-pass."""
    H, W = x.shape[-2:]
    rows, cols = torch.arange(H), torch.arange(W)'''


def _filter(keep="(torch.minimum(rows, H - rows) < k)[:, None] & (torch.minimum(cols, W - cols) < k)[None, :]",
            result="torch.fft.ifft2(torch.fft.fft2(x) * keep).real.to(x.dtype)", step=_STEP) -> str:
    return f'''{_FILTER_HEAD}
    keep = {keep}
    return {result}
{step}'''


# ------------------------------------------------------------------------------------------------ Part E
_ARGUMENTS = '''
    for name, value in (("T", T), ("r", r), ("j", j)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")'''


def _repaint(points="range(1, T - j + 1, j)", climbs="r - 1", check=_ARGUMENTS, visited="visited",
             cost="T + climbs, climbs") -> str:
    return f'''
def repaint_schedule(T, r, j):
    """RePaint's schedule."""{check}
    climbs_left = dict.fromkeys({points}, {climbs})
    visited, t = [T], T
    while t > 0:
        t -= 1
        visited.append(t)
        if climbs_left.get(t, 0) > 0:
            climbs_left[t] -= 1
            visited.extend(range(t + 1, t + j + 1))
            t += j
    return {visited}


def repaint_cost(T, r, j):
    """(network calls, forward steps)."""{check}
    climbs = ({climbs}) * j * len({points})
    return {cost}
'''


MISTAKES = {
    # ------------------------------------------------------------------------------------------------ Part A
    "copied_from_package_sdedit": {  # the package's q_sample on a NoiseSchedule built from alpha_bars, t0 from its snr:
        # a clean guide is assumed, so the guide's own noise is ignored (in the choice of t0 and in the draw)
        "replace": {"sdedit": '''
def sdedit_start(alpha_bars, guide, snr, *, guide_std=0.0, generator=None):
    """The package's SDEdit start."""
    from ddpm_scratch.forward import q_sample
    from ddpm_scratch.schedules import NoiseSchedule

    abar = alpha_bars.double()
    schedule = NoiseSchedule.from_betas(1 - abar[1:] / abar[:-1])
    fits = [t for t in range(1, schedule.T + 1) if float(schedule.snr(t)) <= snr]
    if not fits:
        raise ValueError(f"no step reaches snr = {snr}")
    return q_sample(schedule, guide, fits[0], generator=generator), fits[0]
'''},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_std_as_variance": {  # c^2 = 1 - alpha_bar (1 + s^2) used as the standard deviation
        "replace": {"sdedit": _sdedit(missing="max(0.0, 1 - a * (1 + guide_std**2))")},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_ignores_guide_noise": {  # t0 right, but the full sqrt(1 - alpha_bar) noise added to the noisy guide
        "replace": {"sdedit": _sdedit(missing="math.sqrt(1 - a)")},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_guide_std_not_squared": {  # s SNR_t <= 1 and 1 - alpha_bar (1 + s): the standard deviation as a variance
        "replace": {"sdedit": _sdedit(fits=_FITS.replace("guide_std**2 * ratios", "guide_std * ratios"),
                                      missing="math.sqrt(max(0.0, 1 - a * (1 + guide_std)))")},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_last_step_above_target": {  # the last step whose SNR is still >= snr: one step short of the target
        "replace": {"sdedit": _sdedit(fits='''
    fits = (ratios >= snr) & (guide_std**2 * ratios <= 1)
    if not bool(fits.any()):
        raise ValueError(f"no step reaches snr = {snr}")
    t0 = int(torch.nonzero(fits)[-1, 0]) + 1''')},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_nearest_in_log_snr": {  # the step nearest the target in log-SNR, not the first at or below it
        "replace": {"sdedit": _sdedit(fits='''
    allowed = guide_std**2 * ratios <= 1
    if not bool(allowed.any()):
        raise ValueError(f"no step reaches snr = {snr}")
    gaps = torch.where(allowed, (ratios.log() - math.log(snr)).abs(), torch.full_like(ratios, math.inf))
    t0 = int(torch.argmin(gaps)) + 1''')},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_strict_inequality": {  # SNR_t < snr: a step exactly at the target is skipped
        "replace": {"sdedit": _sdedit(fits=_FITS.replace("(ratios <= snr)", "(ratios < snr)"))},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_off_by_one": {  # index t0 - 1 into alpha_bars for the draw: the noise level of the step before t0
        "replace": {"sdedit": _sdedit(a="float(abar[t0 - 1])")},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_alpha_bar_not_its_root": {  # alpha_bar where sqrt(alpha_bar) belongs in front of the guide
        "replace": {"sdedit": _sdedit(result="a * guide + missing * eps, t0")},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_ignores_generator": {  # torch's global generator
        "replace": {"sdedit": _sdedit(draw='''
    eps = torch.randn(guide.shape, dtype=guide.dtype)''')},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_one_draw_per_position": {  # one eps of shape guide.shape[1:], shared by the whole batch
        "replace": {"sdedit": _sdedit(draw='''
    eps = torch.randn(guide.shape[1:], generator=generator, dtype=guide.dtype)''')},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_in_float64": {  # eps drawn in float64: a float32 guide comes back in float64
        "replace": {"sdedit": _sdedit(draw='''
    eps = torch.randn(guide.shape, generator=generator, dtype=torch.float64)''')},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_t0_as_tensor": {  # t0 returned as a 0-d tensor, not a Python int
        "replace": {"sdedit": _sdedit(fits=_FITS.replace("t0 = int(torch.nonzero(fits)[0, 0]) + 1",
                                                         "t0 = torch.nonzero(fits)[0, 0] + 1"))},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_falls_back_to_T": {  # no ValueError when no step qualifies: t0 = T, silently
        "replace": {"sdedit": _sdedit(fits='''
    fits = (ratios <= snr) & (guide_std**2 * ratios <= 1)
    t0 = int(torch.nonzero(fits)[0, 0]) + 1 if bool(fits.any()) else len(ratios)''')},
        "must_lose": ["sdedit_tests"],
        "visible": True,
    },
    "sdedit_consumes_the_global_generator": {  # draws eps with the generator, but also a global torch.rand for a
        # "random tie-break": the visible tests cannot see it, the hidden ones check the global generator
        "replace": {"sdedit": _sdedit(draw='''
    eps = torch.randn(guide.shape, generator=generator, dtype=guide.dtype)
    _ = torch.rand(1)''')},
        "must_lose": ["sdedit_tests"],
    },
    # ------------------------------------------------------------------------------------------------ Part B
    "copied_from_package_inpaint": {  # the package's DDIM step and replacement hook: fresh noise for the known pixels
        "replace": {"inpaint": '''
def inpaint_ddim(eps_model, alpha_bars, known, mask, timesteps, *, x_T):
    """The package's DDIM steps with its replacement hook."""
    from ddpm_scratch.applications.inpainting import replacement_hook
    from ddpm_scratch.ddim import ddim_step
    from ddpm_scratch.schedules import NoiseSchedule

    steps = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
    abar = alpha_bars.double()
    schedule = NoiseSchedule.from_betas(1 - abar[1:] / abar[:-1])
    hook = replacement_hook(schedule, known, mask)
    x = x_T
    for t, t_prev in itertools.pairwise([*steps, 0]):
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x = hook(ddim_step(schedule, x, t, t_prev, eps=eps), t_prev)
    return x
'''},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_clean_pixels_in_the_state": {  # the state's known pixels set to `known` itself after each step (not
        # noised to the step's level)
        "replace": {"inpaint": _inpaint(put_back='''
        x = math.sqrt(abar[t_next]) * x0_hat + math.sqrt(1 - abar[t_next]) * eps
        x = torch.where(mask, known, x)''')},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_noised_to_the_current_step": {  # the known pixels noised to step t (the state's old level), not t'
        "replace": {"inpaint": _inpaint(put_back='''
        x = math.sqrt(abar[t_next]) * x0_hat + math.sqrt(1 - abar[t_next]) * eps
        x = torch.where(mask, math.sqrt(abar[t]) * known + math.sqrt(1 - abar[t]) * eps, x)''')},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_put_back_after_the_step": {  # plain DDIM steps; the prediction is left alone and only the final x0 gets
        # the known pixels: the unknown ones never see them
        "replace": {"inpaint": _inpaint(put_back='''
        x = math.sqrt(abar[t_next]) * x0_hat + math.sqrt(1 - abar[t_next]) * eps''')},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_last_prediction_not_put_back": {  # the loop stops at the last listed step and returns its prediction
        "replace": {"inpaint": _inpaint(loop='''
    abar = alpha_bars.double().tolist()
    x = x_T
    for t, t_next in itertools.pairwise(steps):
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))''', back='''
    eps = eps_model(x, torch.full((x.shape[0],), steps[-1], dtype=torch.long))
    return (x - math.sqrt(1 - abar[steps[-1]]) * eps) / math.sqrt(abar[steps[-1]])
''')},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_stops_at_the_last_step": {  # never goes from the last listed step to 0: returns x at that step
        "replace": {"inpaint": _inpaint(loop='''
    abar = alpha_bars.double().tolist()
    x = x_T
    for t, t_next in itertools.pairwise(steps):
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))''', back='''
    return x
''')},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_int_steps": {  # eps_model(x, t) with t a Python int
        "replace": {"inpaint": _inpaint(loop=_LOOP.replace(
            "eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))", "eps_model(x, t)"))},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_replaces_x_T_first": {  # x_T's known pixels replaced by known noised with x_T before the first step
        "replace": {"inpaint": _inpaint(loop=_LOOP.replace("    x = x_T\n", '''    x = x_T
    x = torch.where(mask, math.sqrt(abar[steps[0]]) * known + math.sqrt(1 - abar[steps[0]]) * x_T, x_T)
'''))},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_no_timesteps_check": {  # increasing or out-of-range timesteps run silently
        "replace": {"inpaint": _inpaint(check="")},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_order_checked_not_range": {  # strictly decreasing checked, 1..T not: [10, 0] or [51, 2] run
        "replace": {"inpaint": _inpaint(check='''
    if not steps or any(s <= t for s, t in itertools.pairwise(steps)):
        raise ValueError(f"timesteps must be strictly decreasing, got {steps}")''')},
        "must_lose": ["inpaint_tests"],
    },
    "inpaint_in_float64": {  # the run carried out in float64: a float32 batch comes back in float64
        "replace": {"inpaint": _inpaint(loop=_LOOP.replace("    x = x_T\n",
                                                           "    x, known = x_T.double(), known.double()\n"))},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    "inpaint_alpha_not_alpha_bar": {  # sqrt(alpha_bar_t' / alpha_bar_t), the one-step alpha, in front of x0_hat
        "replace": {"inpaint": _inpaint(put_back='''
        x0_hat = torch.where(mask, known, x0_hat)
        x = math.sqrt(abar[t_next] / abar[t]) * x0_hat + math.sqrt(1 - abar[t_next]) * eps''')},
        "must_lose": ["inpaint_tests"],
        "visible": True,
    },
    # ------------------------------------------------------------------------------------------------ Part C
    "copied_from_package_conditional": {  # the package has the joint only (GaussianMixture): its marginal of the
        # unknown coordinates, what replacement leans towards
        "replace": {"conditional": '''
def gaussian_conditional(mean, cov, known_index, values):
    """The package's Gaussian, its marginal of the unknown coordinates."""
    from ddpm_scratch.score import GaussianMixture

    mixture = GaussianMixture(torch.ones(1), mean[None], cov[None])
    k = torch.as_tensor(known_index, dtype=torch.long).reshape(-1)
    u = torch.tensor([i for i in range(mean.numel()) if i not in k.tolist()], dtype=torch.long)
    return mixture.mean()[u].expand(*values.shape[:-1], len(u)).clone(), mixture.covariance()[u][:, u]
'''},
        "must_lose": ["conditional_tests"],
        "visible": True,
    },
    "conditional_forgets_the_known_mean": {  # Sigma_uk Sigma_kk^-1 v, without mu_k
        "replace": {"conditional": _conditional(mean_u="mean[u] + values @ gain.T")},
        "must_lose": ["conditional_tests"],
        "visible": True,
    },
    "conditional_values_paired_with_sorted_coordinates": {  # known_index sorted, values left in the caller's order
        "replace": {"conditional": _conditional(head=_CONDITIONAL_HEAD.replace(
            "k = torch.as_tensor(known_index, dtype=torch.long).reshape(-1)",
            "k = torch.as_tensor(known_index, dtype=torch.long).reshape(-1).sort()[0]"))},
        "must_lose": ["conditional_tests"],
        "visible": True,
    },
    "conditional_schur_plus": {  # Sigma_uu + Sigma_uk Sigma_kk^-1 Sigma_ku: conditioning adds uncertainty
        "replace": {"conditional": _conditional(cov_u="cov_uu + gain @ cov_uk.T")},
        "must_lose": ["conditional_tests"],
        "visible": True,
    },
    "conditional_sigma_kk_not_inverted": {  # Sigma_uk Sigma_kk where Sigma_uk Sigma_kk^-1 belongs
        "replace": {"conditional": _conditional(gain='''
    gain = cov_uk @ cov[k][:, k]''')},
        "must_lose": ["conditional_tests"],
        "visible": True,
    },
    "conditional_one_row_of_values": {  # written for values (k,) only: a (B, k) batch fails
        "replace": {"conditional": _conditional(mean_u="mean[u] + gain @ (values - mean[k])")},
        "must_lose": ["conditional_tests"],
        "visible": True,
    },
    "conditional_nothing_known_unbatched": {  # k = 0 returns mean (D,) whatever the batch of values
        "replace": {"conditional": _conditional(empty='''
    if k.numel() == 0:
        return mean.clone(), cov_uu.clone()''')},
        "must_lose": ["conditional_tests"],
    },
    # ------------------------------------------------------------------------------------------------ Part D
    "copied_from_package_ilvr": {  # the package's low_pass (block means of side H / k) and its hook's update
        "replace": {"ilvr": '''
def fourier_low_pass(x, k):
    """The package's low-pass filter."""
    from ddpm_scratch.applications.ilvr import low_pass

    H, W = x.shape[-2:]
    factor = max(1, min(H, W) // k)
    while H % factor or W % factor:
        factor -= 1
    return low_pass(x, factor)


def ilvr_step(x, reference_t, phi):
    """The package's ILVR update, with phi for its low_pass."""
    return x - phi(x) + phi(reference_t)
'''},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_one_sided_frequencies": {  # u < k and v < k: the negative frequencies dropped, the real part taken
        "replace": {"ilvr": _filter(keep="(rows < k)[:, None] & (cols < k)[None, :]")},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_keeps_frequency_k": {  # min(u, H - u) <= k: one frequency too many
        "replace": {"ilvr": _filter(keep="(torch.minimum(rows, H - rows) <= k)[:, None] & "
                                         "(torch.minimum(cols, W - cols) <= k)[None, :]")},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_centred_box_off_by_one": {  # the spectrum fftshift-ed and the box H//2 - k .. H//2 + k - 1 kept:
        # frequencies -k..k-1, one more negative than positive
        "replace": {"ilvr": _filter(keep='''torch.zeros(H, W, dtype=torch.bool)
    keep[max(0, H // 2 - k):H // 2 + k, max(0, W // 2 - k):W // 2 + k] = True
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)) * keep''',
                                    result="torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)))"
                                           ".real.to(x.dtype)")},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_returns_complex": {  # the inverse transform returned as it is, complex
        "replace": {"ilvr": _filter(result="torch.fft.ifft2(torch.fft.fft2(x) * keep)")},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_always_float64": {  # .real.double(): a float32 image comes back in float64
        "replace": {"ilvr": _filter(result="torch.fft.ifft2(torch.fft.fft2(x) * keep).real.double()")},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_rfft_without_size": {  # rfft2 / irfft2 without s=(H, W): an odd width comes back one pixel short
        "replace": {"ilvr": _filter(keep="(torch.minimum(rows, H - rows) < k)[:, None] & "
                                         "(torch.arange(W // 2 + 1) < k)[None, :]",
                                    result="torch.fft.irfft2(torch.fft.rfft2(x) * keep).to(x.dtype)")},
        "must_lose": ["ilvr_tests"],
    },
    "ilvr_step_adds_the_reference": {  # x + phi(reference_t): x's own low frequencies kept as well
        "replace": {"ilvr": _filter(step='''

def ilvr_step(x, reference_t, phi):
    """ILVR's update."""
    return x + phi(reference_t)
''')},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    "ilvr_step_swapped": {  # x - phi(reference_t) + phi(x): the roles of the state and the reference swapped
        "replace": {"ilvr": _filter(step='''

def ilvr_step(x, reference_t, phi):
    """ILVR's update."""
    return x - phi(reference_t) + phi(x)
''')},
        "must_lose": ["ilvr_tests"],
        "visible": True,
    },
    # ------------------------------------------------------------------------------------------------ Part E
    "copied_from_package_repaint": {  # the package's repaint_indices with jumps = r, and the cost counted on it
        "replace": {"repaint": '''
def repaint_schedule(T, r, j):
    """The package's schedule."""
    from ddpm_scratch.applications.inpainting import repaint_indices

    return repaint_indices(T, r, j)


def repaint_cost(T, r, j):
    """Steps down and up of the package's schedule."""
    path = repaint_schedule(T, r, j)
    return (sum(b < a for a, b in itertools.pairwise(path)), sum(b > a for a, b in itertools.pairwise(path)))
'''},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
    "repaint_package_jump_points": {  # the package's jump points (the multiples of j) with r - 1 climbs each
        "replace": {"repaint": _repaint(points="range(j, T - j + 1, j)")},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
    "repaint_r_climbs": {  # r climbs from each jump point: r + 1 descents of each segment
        "replace": {"repaint": _repaint(climbs="r")},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
    "repaint_code_numbering": {  # the code's tau = t - 1 returned as it is, ending with -1
        "replace": {"repaint": _repaint(visited="[t - 1 for t in visited]")},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
    "repaint_bound_inclusive": {  # t - 1 <= T - j: one jump point too many when j divides T, its climb passes T
        "replace": {"repaint": _repaint(points="range(1, T - j + 2, j)")},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
    "repaint_every_move_a_call": {  # network calls counted as all the moves, the climbs too
        "replace": {"repaint": _repaint(cost="T + 2 * climbs, climbs")},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
    "repaint_no_argument_check": {  # r = 0 gives -1 climbs, that is none: plain sampling, silently
        "replace": {"repaint": _repaint(check="")},
        "must_lose": ["repaint_tests"],
        "visible": True,
    },
}

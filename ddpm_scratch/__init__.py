"""ddpm_scratch: diffusion models from scratch, one lecture concept per module.

The public API at a glance: what each unit teaches, by module (each module's `__all__`; tests/test_public_api.py
keeps this list and the modules in step). Import from the module, e.g. `from ddpm_scratch.ddim import ddim_step`.

Unit 1, the forward process
    schedules       NoiseSchedule, lookup, per_example, spaced_timesteps, karras_sigmas, karras_timesteps, respaced,
                    REVERSE_VARIANCES, SPACINGS, SPACINGS_OF_T
    forward         q_step, q_sample, q_posterior, x0_from_eps, eps_from_x0, v_from_eps, eps_from_v, score_from_eps,
                    eps_from_score, QUANTITIES, PREDICTIONS, convert, regression_target, as_eps_model,
                    radial_power_spectrum, frequency_snr
Unit 2, learning to denoise
    losses          l_simple, sample_timesteps, vlb_weights, gaussian_kl, discretized_gaussian_log_likelihood,
                    prior_bpd, VariationalBound, variational_bound, drop_labels
    ddpm            p_mean, p_sample_step, ddpm_sample
    nets            EpsModel, TIME_SCALE, as_time, time_to_tau, SinusoidalEmbedding, RandomFourierFeatures,
                    LabelEmbedding, ResBlock, Attention, Downsample, Upsample, UNet, MLPEps, NoisyEncoder,
                    NoisyClassifier, ToyCLIP, CategoricalUNet, TokenTransformer, Autoencoder, count_parameters
Unit 3, score matching and SDEs
    score           GaussianMixture, mixture_eps_model, mixture_score_fn, dsm_loss, DSM_WEIGHTINGS
    sde             SDE, VPSDE, VESDE, reverse_drift, probability_flow_drift, time_from_step, step_from_time,
                    ScheduleSDE, evaluate_score, eps_model_score
    score_solvers   time_grid, CountedScore, euler_maruyama, predictor_corrector, ode_euler, ode_heun, ode_rk45,
                    sde_sample, pc_sample, ode_sample, ode_euler_sample
    likelihood      ODELikelihood, drift_and_divergence, ode_likelihood, ode_log_likelihood, heun_likelihood,
                    rademacher, dequantize, bits_per_dim
Unit 4, fast sampling
    ddim            ddim_sigma, ddim_step, ddim_sample, ddim_invert, slerp
    eps_solvers     dpm_solver_pp_step, dpm_solver_pp_sample, edm_step, edm_sample, unipc_step, unipc_sample,
                    UNIPC_VARIANTS
    distill         WEIGHTINGS, DISTILL_SPACINGS, x0_target, teacher_two_steps, distillation_target, distillation_loss
    reverse_kernel  reverse_kernel, reverse_kernel_sample, gaussian_reverse_step, moment_matched_gaussian,
                    kl_monte_carlo, grid_modes
    ddgan           StepMLP, DDGAN, posterior_sample, real_pair, fake_previous, discriminator_loss, generator_loss,
                    ddgan_sample
Unit 5, guidance
    guidance        classifier_free_eps, ClassifierFree, classifier_guided_eps, ClassifierGuided,
                    classifier_log_prob_y, classifier_loss, clip_loss, THRESHOLDS, static_threshold, dynamic_threshold,
                    Thresholded, mixture_conditional_eps_model, mixture_log_prob_y
    cascade         AUGMENTATIONS, BLUR_MAX_SIGMA, downsample, upsample, augment, super_resolution_loss,
                    SuperResolution, super_resolve, cascade_sample
Unit 6, discrete-state diffusion
    discrete        KINDS, num_states, stationary, transition, cumulative, CategoricalDiffusion, q_probs, q_sample,
                    q_posterior, p_posterior, x0_probs, categorical, hybrid_loss, vb_term, prior_kl, bound_bits,
                    sample, maskgit_sample, cosine_mask_schedule, X0Model
Unit 7, applications (the subpackage `applications`, one module each)
    applications.masks        centre_mask, half_mask, random_box_masks, check_mask
    applications.sdedit       sdedit, stroke_painting
    applications.inpainting   replacement_hook, repaint_indices, inpaint
    applications.ilvr         low_pass, ilvr_hook, ilvr
    applications.palette      TASKS, DENOISE_SIGMA, corrupt, Palette, palette_loss, translate, conditional_inpaint
    applications.super_resolution  PEAK, psnr, consistency
    applications.latent       RECONSTRUCTIONS, LatentAutoencoder, kl_standard_normal, autoencoder_loss, latent_scale,
                              LatentSpace, latent_loss, FlatEps, sample_latent
    applications.diffae       SemanticEncoder, DiffAE, diffae_loss, CodeBound, encode, decode, interpolate
Every sampler, and the extension points of units 5-7
    sampling        Option, Sampler, SAMPLERS, register, sample, trajectory
    reverse_steps   Hook, initial_noise, training_steps, reverse_indices, eps_at, after_step
    nets.protocol   EpsModel, ScoreFn, OnDevice, LabelBound, ImageConditioned
    integrators     heun_step, solve_ivp_tensor

Helpers that the modules share (argument checks in `checks`, per-module private functions) are not listed. What
runs experiments (data, the training loop, checkpoints, metrics, pictures, the command line) is `machinery`.
"""

__version__ = "0.1.0"

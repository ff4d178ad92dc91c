"""Lecture 7: what a trained diffusion model is used for besides drawing samples, one module each.

Every application runs on the package's samplers through their two extension points (`sampling.sample`): a hook
that changes the state between steps (inpainting puts the known pixels back, ILVR the reference's low frequencies)
and a start step t_start (SDEdit starts from a noised guide), or through a model wrapper that binds an image to a
conditional network (SR3, Palette). None copies a sampling loop; RePaint's resampling, which climbs back up the
chain, owns a loop over the per-step functions.

    masks             masks of known pixels (True = known): a centre square, a half, random boxes
    sdedit            SDEdit: noise a guide to step t0 with q(x_t0 | guide), denoise from there
    inpainting        inpaint an unconditional model by replacement, with RePaint's resampling
    ilvr              ILVR: the reference's low-pass component imposed after every step
    palette           Palette: one conditional model for inpainting, uncropping and denoising, told the task by its
                      input (a source image and a mask as channels); GLIDE-style conditional inpainting
    super_resolution  SR3: the cascade's super-resolution stage on real low-resolution images; PSNR, consistency
    latent            latent diffusion: a KL-regularised autoencoder and a diffusion model on its rescaled latents
    diffae            diffusion autoencoders: a semantic code conditions the denoiser, DDIM-inverted x_T holds the rest

The runs that train these models on the digits and make their pictures are the machinery's (`ddpm-scratch apply`,
`machinery.applications`).
"""

"""The machinery around the lectures: what runs experiments, not what the lectures teach.

    data.py          the dataset registry (shape, grey levels, classes, default network): toy 2-D sets,
                     scikit-learn's 8x8 digits and their 4x4 averages (a cascade's base stage); mini-batches
    loop.py          the one training loop: objectives, updates, AdamW, EMA, mixed precision, checkpoints, exact resume
    train.py         training runs: TrainConfig, L_simple / DSM objectives (and a cascade's super-resolution
                     stage), load_model (the eps-model of a checkpoint)
    classifier_training.py  noise-aware classifiers for classifier guidance, on the loop (`ddpm-scratch
                     train-classifier`)
    files.py         atomic writes and checked reads of torch files (checkpoints, the classifier cache)
    distillation.py  progressive distillation's stages on the loop, and of a trained run: one student file per
                     stage, resume by stage (`ddpm-scratch distill`)
    gan_training.py  the denoising diffusion GAN on the loop (two updates per step)
    discrete_training.py  D3PM runs (lecture 6): data as categories, the hybrid loss on the loop, load_discrete
    discrete_cli.py  the command line of those runs (`ddpm-scratch train-discrete | sample-discrete`)
    text.py          the toy grammar's sentences as characters: the text corpus of lecture 6, and its exact check
    metrics.py       sample quality: sliced Wasserstein, Frechet distance on digits with its real-data floor
    viz.py           pictures: sample grids, reverse-process strips and animations, loss curves
    demo.py          the demo: train on digits, sample, write the pictures and a report
    applications.py  lecture 7's runs (`ddpm-scratch apply NAME`): their registry, `fit` (one stage trained once per
                     folder, through the loop), the shared pixel-space digits model
    pixel_runs.py    the runs that steer that model: SDEdit's t0 sweep, inpainting with and without RePaint, ILVR
    palette_runs.py  the conditional image-to-image runs: one Palette model for three tasks, SR3 on the cascade's stage
    latent_runs.py   latent diffusion: a KL autoencoder and a diffusion model on its latents, beside the pixel model
    diffae_runs.py   diffusion autoencoders: reconstructions, interpolations and an attribute edit of the digits
    cli.py           the command line `ddpm-scratch demo | train | train-classifier | distill | sample | cascade`
                     (and the discrete commands of discrete_cli.py, `apply` of applications.py)
    notebook.py      what the lesson notebooks share: figure folder, sliders that fall back to a static figure, threads

The machinery imports the lecture modules; the lecture modules never import it.
"""

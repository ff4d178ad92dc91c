"""The machinery around the lectures: what runs experiments, not what the lectures teach.

    data.py      built-in datasets: toy 2-D sets and scikit-learn's 8x8 digits, mini-batches
    train.py     the trainer: Algorithm 1 with AdamW, EMA, mixed precision, checkpoints, exact resume
    files.py     atomic writes and checked reads of torch files (checkpoints, the classifier cache)
    students.py  progressive distillation of a trained run: one student file per stage, resume by stage
    metrics.py   sample quality: sliced Wasserstein, Frechet distance on digits with its real-data floor
    viz.py       pictures: sample grids, reverse-process strips and animations, loss curves
    demo.py      `make demo`: train on digits, sample, write the pictures and a report
    cli.py       the command line `ddpm-scratch demo | train | distill | sample`
    notebook.py  what the lesson notebooks share: figure folder, sliders that fall back to a static figure, threads

The machinery imports the lecture modules; the lecture modules never import it.
"""

"""The run of diffusion autoencoders on the digits: `ddpm-scratch apply diffae` (`applications.diffae`).

Trains the DiffAE (semantic encoder and code-conditioned U-Net, jointly on L_simple) on the digits' train split,
once per run folder (out/diffae/model, `applications.fit`), then writes three pictures and measures their figures:

    reconstruction.png   test digits (one per class); decode(encode(x0)) with the inferred x_T; decoded with the
                         digit's z_sem and fresh x_T ~ N(0, I) (what the code alone keeps)
    interpolation.png    pairs of test digits of different classes: z_sem on a line, x_T by slerp, real ends
    edit.png             test digits of class EDIT_FROM moved along the normal of a linear classifier (EDIT_FROM vs
                         EDIT_TO, fitted on the train split's codes), decoded with each digit's own x_T

    figures: reconstruction MSE (and PSNR, peak-to-peak 2) with the inferred x_T and with a random one, over the test
    split, beside the mean squared difference between two test digits of the same class (what keeping the class
    alone would cost); the share of random-x_T decodes the digits classifier reads as the digit's class; the accuracy
    of a linear probe (logistic regression) from z_sem to the class, fitted on train codes and read on test codes;
    the share of edited digits read as EDIT_TO (`metrics.digits_classifier`); the seconds spent.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..applications.diffae import DiffAE, decode, diffae_loss, encode, interpolate
from ..schedules import NoiseSchedule
from .applications import Application, Report, RunSettings, fit, register_application
from .data import DATASETS, load_digits
from .loop import Batch, LoopSettings
from .metrics import digits_classifier
from .train import select_device, with_subnormals_flushed
from .viz import image_table, save_figure

__all__ = ["CODE_DIM", "DIFFAE_STEPS", "CODING_STEPS", "EDIT_FROM", "EDIT_TO", "EDIT_SCALES", "diffae_network",
           "diffae_model", "run_diffae"]

CODE_DIM = 16  # z_sem's dimension (DiffAE: 512 for 256x256 faces; 16 is plenty for 64 pixels)
DIFFAE_STEPS = 2000  # training steps, the demo's
CODING_STEPS = 100  # DDIM steps of the inversion and of the decoding (DiffAE's notebooks: 250 and 20-100)
T = 1000
EDIT_FROM, EDIT_TO = 7, 1  # the attribute edit: "is it a 1?" on the codes of 7s and 1s; 7s moved towards 1
EDIT_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # in units of the gap between the two classes' mean codes
INTERPOLATION_ALPHAS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
INTERPOLATION_PAIRS = ((0, 6), (1, 7), (3, 8), (4, 9), (2, 5))
RANDOM_DRAWS = 3  # rows of random-x_T decodes in the picture


def _unet_args() -> dict:
    return {**DATASETS["digits"].network_args, "time_injection": "adagn"}


def diffae_network(code_dim: int = CODE_DIM) -> DiffAE:
    """The digits' DiffAE: `SemanticEncoder(1, code_dim)` and the digits' U-Net (24 channels, AdaGN) reading the
    code."""
    return DiffAE(1, code_dim, **_unet_args())


def diffae_model(out: Path, settings: RunSettings) -> tuple[DiffAE, NoiseSchedule]:
    """The digits' DiffAE of out/diffae/model, trained there on first use (`fit`), with its schedule, on the
    settings' device: for `applications.diffae.encode` / `decode` / `interpolate`."""
    device = select_device(settings.device)
    schedule = NoiseSchedule.linear(T, rescale=True).to(device)
    loop = LoopSettings(steps=settings.steps(DIFFAE_STEPS), batch_size=settings.count(128, quick=16), lr=2e-3,
                        warmup_steps=200, max_grad_norm=1.0, ema_decay=0.995, checkpoint_every=500)
    record = {"stage": "diffae", "code_dim": CODE_DIM, "unet": _unet_args(), "T": T, "schedule": "linear",
              "steps": loop.steps, "batch_size": loop.batch_size, "lr": loop.lr, "seed": settings.seed}
    x_train, _ = load_digits("train")

    def objective(model: DiffAE, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return diffae_loss(model, schedule, batch.x0, generator=generator)

    model = fit(diffae_network, objective, x_train.to(device), loop, out=Path(out) / "diffae" / "model",
                record=record, seed=settings.seed, progress=settings.progress, desc="DiffAE")
    return model, schedule


def _one_per_class(labels: Tensor, classes: range | tuple[int, ...]) -> Tensor:
    """The index of the first example of each class."""
    return torch.stack([(labels == c).nonzero()[0, 0] for c in classes])


def _psnr(mse: float) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2): 10 log10(2^2 / MSE)."""
    return 10 * torch.log10(torch.tensor(4.0 / mse)).item() if mse > 0 else float("inf")


def _same_class_mse(x0: Tensor, y: Tensor) -> float:
    """The mean squared difference between two different test digits of the same class, over all such pairs: what
    keeping the class and nothing else would cost (the reference for the random-x_T error)."""
    total, pairs = 0.0, 0
    for c in y.unique():
        x = x0[(y == c).to(x0.device)].flatten(1)
        n = x.shape[0]
        if n > 1:
            total += (torch.cdist(x, x).pow(2).sum() / x.shape[1]).item()  # the diagonal adds 0
            pairs += n * (n - 1)
    return total / pairs if pairs else float("nan")


@torch.no_grad()
def _read(classifier: torch.nn.Module, x: Tensor) -> Tensor:
    """The digits classifier's class for each image of x (B, 1, 8, 8), clamped to [-1, 1]: (B,) long on the CPU."""
    return classifier(x.clamp(-1, 1)).argmax(1).cpu()


def _table(path: Path, images: Tensor, cols: list[str], rows: list[str], title: str) -> Path:
    R, C = images.shape[:2]
    fig = Figure(figsize=(0.55 * C + 1.8, 0.55 * R + 0.8))
    ax = fig.add_subplot()
    image_table(ax, images.cpu().clamp(-1, 1), cols, rows)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


@with_subnormals_flushed  # CPU kernels slow down tenfold on subnormal floats
def run_diffae(out: Path, settings: RunSettings) -> Report:
    """Train (or load) the digits' DiffAE under out/diffae/model and write reconstruction.png, interpolation.png and
    edit.png under out/diffae. Returns the figures (module docstring)."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    out = Path(out)
    model, schedule = diffae_model(out, settings)
    device = schedule.betas.device
    train_seconds = time.perf_counter() - start
    steps = 10 if settings.quick else CODING_STEPS
    report = Report("diffae")
    g = torch.Generator(device=device).manual_seed(settings.seed)

    # (1) reconstruction over the test split: inferred x_T, random x_T
    x_test, y_test = load_digits("test")
    keep = torch.arange(settings.count(len(x_test), 40))  # the quick run: the first 40 (each class present)
    x0, y0 = x_test[keep].to(device), y_test[keep]
    z_sem, x_T = encode(model, schedule, x0, num_steps=steps, progress=settings.progress)
    recon = decode(model, schedule, z_sem, x_T, num_steps=steps, progress=settings.progress)
    noise = torch.randn(x_T.shape, generator=g, device=device)
    random_recon = decode(model, schedule, z_sem, noise, num_steps=steps, progress=settings.progress)
    mse = (recon - x0).pow(2).mean().item()
    mse_random = (random_recon.clamp(-1, 1) - x0).pow(2).mean().item()
    same_class = _same_class_mse(x0, y0)
    classifier = digits_classifier().to(device)
    kept_class = (_read(classifier, random_recon) == y0).double().mean().item()

    shown = _one_per_class(y0, range(10))
    more = [decode(model, schedule, z_sem[shown], torch.randn(x_T[shown].shape, generator=g, device=device),
                   num_steps=steps) for _ in range(RANDOM_DRAWS - 1)]
    rows = torch.stack([x0[shown], recon[shown], random_recon[shown], *more])
    report.pictures.append(_table(out / "diffae" / "reconstruction.png", rows, [str(c) for c in range(10)],
                                  ["real x0", "inferred x_T"] + [f"random x_T {k + 1}" for k in range(RANDOM_DRAWS)],
                                  f"DiffAE reconstructions ({steps} DDIM steps each way)"))

    # (2) interpolation between pairs of test digits of different classes
    ends = torch.tensor([[int(_one_per_class(y0, (a,))[0]), int(_one_per_class(y0, (b,))[0])]
                         for a, b in INTERPOLATION_PAIRS])
    path = interpolate(model, schedule, (z_sem[ends[:, 0]], x_T[ends[:, 0]]), (z_sem[ends[:, 1]], x_T[ends[:, 1]]),
                       INTERPOLATION_ALPHAS, num_steps=steps)
    rows = torch.cat([x0[ends[:, 0]][:, None], path, x0[ends[:, 1]][:, None]], dim=1)
    report.pictures.append(_table(out / "diffae" / "interpolation.png", rows,
                                  ["real"] + [f"{a:g}" for a in INTERPOLATION_ALPHAS] + ["real"],
                                  [f"{a} -> {b}" for a, b in INTERPOLATION_PAIRS],
                                  "DiffAE interpolation: z_sem linear, x_T slerp (alpha on top)"))

    # (3) the code's linear probe, and the attribute edit along a linear classifier's normal
    x_train, y_train = load_digits("train")
    with torch.no_grad():
        z_train = model.semantic(x_train.to(device)).cpu().double().numpy()
        z_all_test = model.semantic(x_test.to(device)).cpu().double().numpy()
    probe = LogisticRegression(max_iter=2000).fit(z_train, y_train.numpy())
    probe_accuracy = float(probe.score(z_all_test, y_test.numpy()))
    pair = (y_train == EDIT_FROM) | (y_train == EDIT_TO)
    attribute = LogisticRegression(max_iter=2000).fit(z_train[pair.numpy()], (y_train[pair] == EDIT_TO).numpy())
    normal = torch.tensor(attribute.coef_[0], dtype=torch.float32, device=device)
    normal = normal / normal.norm()
    z_pair = torch.tensor(z_train, dtype=torch.float32, device=device)
    gap = ((z_pair[y_train == EDIT_TO] @ normal).mean() - (z_pair[y_train == EDIT_FROM] @ normal).mean()).item()
    sources = (y0 == EDIT_FROM).nonzero()[:, 0]
    codes = torch.cat([z_sem[sources] + s * gap * normal for s in EDIT_SCALES])
    edited = decode(model, schedule, codes, x_T[sources].repeat(len(EDIT_SCALES), 1, 1, 1), num_steps=steps)
    edited = edited.reshape(len(EDIT_SCALES), len(sources), *x0.shape[1:]).transpose(0, 1)  # (N, scales, ...)
    read = _read(classifier, edited.flatten(0, 1)).reshape(len(sources), len(EDIT_SCALES))
    success = (read == EDIT_TO).double().mean(0)  # per scale
    shown = slice(0, 8)
    rows = torch.cat([x0[sources][shown][:, None], edited[shown]], dim=1)
    report.pictures.append(_table(out / "diffae" / "edit.png", rows, ["real"] + [f"{s:g}" for s in EDIT_SCALES],
                                  [f"test {EDIT_FROM} #{k}" for k in range(rows.shape[0])],
                                  f"DiffAE edit {EDIT_FROM} -> {EDIT_TO}: z_sem + s x gap x normal, own x_T"))

    report.figures.update({
        "recon_mse_inferred_xT": mse, "recon_psnr_inferred_xT_db": _psnr(mse),
        "recon_mse_random_xT": mse_random, "recon_psnr_random_xT_db": _psnr(mse_random),
        "mse_between_test_digits_same_class": same_class,
        "random_xT_class_kept": kept_class, "probe_accuracy_test": probe_accuracy,
        f"edit_{EDIT_FROM}_to_{EDIT_TO}_success_s1": success[EDIT_SCALES.index(1.0)].item(),
        f"edit_{EDIT_FROM}_to_{EDIT_TO}_success_s1.5": success[-1].item(),
        f"edit_{EDIT_FROM}_read_as_{EDIT_FROM}_s0": (read[:, 0] == EDIT_FROM).double().mean().item(),
        "classifier_test_accuracy": classifier.test_accuracy,
        "train_seconds": train_seconds, "total_seconds": time.perf_counter() - start,
    })
    report.lines += [
        f"{len(x0)} test digits through encode/decode with {steps} DDIM steps each way; the random-x_T row keeps "
        "the digit's z_sem only.",
        f"edit: {len(sources)} test {EDIT_FROM}s; success = share read as {EDIT_TO} by the digits classifier, by "
        "scale s: " + ", ".join(f"{s:g}: {v:.2f}" for s, v in zip(EDIT_SCALES, success.tolist(), strict=True)),
    ]
    return report


register_application(Application("diffae", run_diffae, "diffusion autoencoders: a semantic code conditions the "
                                 "denoiser, DDIM-inverted x_T holds the rest; reconstruction, interpolation, edit"))

"""Command line: `ddpm-scratch demo | train | train-classifier | distill | sample | cascade | train-discrete |
sample-discrete` (also
`python -m ddpm_scratch ...`).

The options of `train` are built from `TrainConfig`'s fields, those of `train-classifier` from `ClassifierConfig`'s,
those of `distill` from `DistillConfig`'s and the
sampler options of `sample` from the registry's declarations (`sampling.SAMPLERS`: names, defaults, help, choices),
so the command line and the Python API cannot disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

from ..sampling import SAMPLERS, sample
from ..schedules import SPACINGS
from .applications import add_apply_command, apply_command
from .classifier_training import ClassifierConfig
from .demo import DEMO_SAMPLES, DEMO_STEPS
from .discrete_cli import add_discrete_commands, sample_discrete_command, train_discrete_command
from .distillation import DistillConfig
from .train import TrainConfig

DEFAULT_AUG_LEVEL = 0.05  # cascade --aug-level of an augmented run: cascade_digits.py's sweep is flat on 0-0.1

EPILOG = """examples:
  ddpm-scratch demo                                   train on digits (3-4 min on 2 CPU cores), write outputs/demo/
  ddpm-scratch train --dataset two_moons --steps 3000 --out runs/moons
  ddpm-scratch train --out runs/moons --resume --steps 6000     continue a run, here to 6000 steps
  ddpm-scratch sample --run runs/moons --n 2000 --out moons.png
  ddpm-scratch sample --run runs/moons --num-steps 100 --out moons_fast.png   100 respaced steps instead of T
  ddpm-scratch sample --run runs/moons --sampler ode --num-steps 50 --out ode.png   the probability-flow ODE (Heun)
  ddpm-scratch sample --run runs/moons --sampler ddim --num-steps 20 --out ddim.png  DDIM, deterministic (eta 0)
  ddpm-scratch train --dataset two_moons --time continuous --out runs/moons_sde   lecture 3: t ~ U(t_min, 1), VP SDE
  ddpm-scratch sample --run runs/moons_sde --sampler pc --snr 0.1 --out pc.png    predictor-corrector on it
  ddpm-scratch distill --run runs/moons --from-steps 64 --to-steps 4 --out runs/moons_students   lecture 4
  ddpm-scratch sample --checkpoint runs/moons_students/student_4.pt --out four_steps.png   4 DDIM steps
  ddpm-scratch train --dataset digits --num-classes 10 --out runs/digits_cond          lecture 5: conditional
  ddpm-scratch sample --run runs/digits_cond --class 3 --guidance 3 --sampler ddim --num-steps 50 --out threes.png
  ddpm-scratch train --dataset digits --out runs/digits                             an unconditional run, and
  ddpm-scratch train-classifier --run runs/digits --out runs/digits_classifier   a noise-aware classifier for it
  ddpm-scratch sample --run runs/digits --classifier runs/digits_classifier --class 3 --guidance 3 --out guided3.png
  ddpm-scratch train --dataset digits_4x4 --out runs/base4        lecture 5: a cascade's 4x4 base stage, then
  ddpm-scratch train --dataset digits --low-resolution 4 --augmentation noise --out runs/sr8      its 4x4 -> 8x8 stage
  ddpm-scratch cascade --base runs/base4 --sr runs/sr8 --aug-level 0 0.1 0.2 --out cascade.png
  ddpm-scratch train-discrete --dataset digits --kernel absorbing --out runs/d3pm   lecture 6: categories, masking
  ddpm-scratch sample-discrete --run runs/d3pm --out d3pm.png --strip d3pm_strip.png --bound
  ddpm-scratch train-discrete --dataset text --kernel absorbing --out runs/text     sentences of a toy grammar
  ddpm-scratch sample-discrete --run runs/text --sampler maskgit --num-steps 12 --out sentences.txt
  ddpm-scratch apply sdedit inpaint ilvr --out runs/apps   lecture 7: edit digits with one trained model (cached)
  ddpm-scratch apply --list                         every application: SDEdit, inpainting, SR3, Palette, ILVR, ...
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"hidden\": 64}}', got {text}")
    return value


# TrainConfig's field types (annotations are strings under `from __future__ import annotations`) -> parsers
_PARSERS = {"int": int, "float": float, "str": str, "float | None": _optional_float, "dict[str, Any]": _json_object}


def add_config_options(parser: argparse.ArgumentParser, config_class: type = TrainConfig) -> None:
    """One option per field of config_class (TrainConfig, DistillConfig): --batch-size for batch_size, with the
    field's default, help and choices.

    Options that are not given stay out of the parsed namespace (default SUPPRESS), so that `--resume` can tell
    which settings the user changed.
    """
    for f in fields(config_class):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        shown = json.dumps(default) if isinstance(default, dict) else default
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_PARSERS[f.type],
                            choices=f.metadata.get("choices"), default=argparse.SUPPRESS,
                            help=f"{f.metadata['help']} (default: {shown})")


def add_sampler_options(parser: argparse.ArgumentParser) -> None:
    """One option per option declared by a registered sampler (`sampling.Option`): --corrector-steps for pc's
    corrector_steps, with its help, choices and default (the run function's). Options not given stay out of the
    parsed namespace, so that `sample` can tell which were set for the chosen sampler."""
    users: dict[str, list[str]] = {}
    for sampler in SAMPLERS.values():
        for name in sampler.options:
            users.setdefault(name, []).append(sampler.name)
    for name, samplers in sorted(users.items()):
        declared = [(SAMPLERS[k].options[name], SAMPLERS[k].defaults[name]) for k in samplers]
        (option, _), first = declared[0], SAMPLERS[samplers[0]]  # `sampling.register` keeps a shared name the same
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=first.parser(name), choices=option.choices,
                            default=argparse.SUPPRESS,
                            help="; ".join(f"{k}: {o.help} (default: {d})" for k, (o, d) in zip(samplers, declared,
                                                                                              strict=True)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ddpm-scratch",
        description="Denoising diffusion models from scratch: train a DDPM and sample from it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True,
                           metavar="{demo,train,train-classifier,distill,sample,cascade,train-discrete,sample-discrete,apply}")

    d = sub.add_parser("demo", help="train on the built-in digits and write samples, pictures and a report",
                       description="Train a small DDPM on scikit-learn's 8x8 digits with the settings of the demo, "
                                   "sample with the EMA weights and write samples.png, reverse_process.png/.gif, "
                                   "loss.png and report.md (Frechet distance vs the real-vs-real floor).")
    d.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default: %(default)s)")
    d.add_argument("--steps", type=_positive_int, default=DEMO_STEPS, help="training steps (default: %(default)s)")
    d.add_argument("--samples", type=_positive_int, default=DEMO_SAMPLES,
                   help="samples drawn for the grid and the Frechet distance (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")

    t = sub.add_parser("train", help="train an eps-network on a dataset",
                       description="Train a network with L_simple (Algorithm 1). Writes config.json, loss.csv and "
                                   "checkpoint.pt to --out; --resume continues exactly where a run stopped.")
    t.add_argument("--out", type=Path, required=True, help="run folder (config.json, loss.csv, checkpoint.pt)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (its settings are kept; --steps may grow)")
    add_config_options(t)

    q = sub.add_parser("train-classifier", help="train a noise-aware classifier p(y | x_t, t) for classifier guidance",
                       description="Train a noise-aware classifier (lecture 5) on the labels of a run's dataset, on "
                                   "noisy data at the steps of the run's schedule, for `sample --classifier`. Writes "
                                   "loss.csv and checkpoint.pt to --out; --resume continues a stopped training.")
    q.add_argument("--run", type=Path, required=True,
                   help="the diffusion run the classifier will guide (its dataset and schedule are used)")
    q.add_argument("--out", type=Path, required=True, help="folder for the classifier (loss.csv, checkpoint.pt)")
    q.add_argument("--resume", action="store_true", help="continue the training in --out (--steps may grow)")
    q.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")
    add_config_options(q, ClassifierConfig)

    k = sub.add_parser("distill", help="halve a run's sampling steps again and again (progressive distillation)",
                       description="Progressive distillation (lecture 4, Salimans & Ho 2022): the run's deterministic "
                                   "DDIM sampler with --from-steps steps is distilled into a student with half as "
                                   "many, which becomes the next stage's teacher, down to --to-steps. Each stage "
                                   "writes student_<N>.pt to --out as it ends; `sample --checkpoint` samples one with "
                                   "its N DDIM steps.")
    src = k.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="run folder written by `train` (distils its checkpoint.pt, EMA weights)")
    src.add_argument("--checkpoint", type=Path, help="path of a training checkpoint.pt")
    k.add_argument("--out", type=Path, required=True, help="folder for the students (student_<N>.pt)")
    k.add_argument("--resume", action="store_true",
                   help="go on from the students already in --out (same checkpoint and settings; --to-steps may fall)")
    k.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")
    add_config_options(k, DistillConfig)

    s = sub.add_parser("sample", help="draw samples from a trained run and save a picture",
                       description="Sample from a checkpoint (ancestral sampling, Algorithm 2, by default; the reverse "
                                   "SDE, predictor-corrector or the probability-flow ODE of lecture 3 and DDIM of "
                                   "lecture 4 with --sampler; a class of a conditional run, with classifier-free "
                                   "guidance and thresholding of lecture 5, with --class, --guidance, --threshold): a "
                                   "grid of images for digits, a scatter plot for 2-D data; the tensor is saved beside "
                                   "the picture as .pt. A continuous-time run samples on its SDE's discretisation, "
                                   "t_i = i / T.")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="run folder written by `train` (uses its checkpoint.pt)")
    src.add_argument("--checkpoint", type=Path,
                     help="path of a checkpoint.pt, or of a student_<N>.pt written by `distill` (which samples with "
                          "its own N DDIM steps)")
    s.add_argument("--n", type=_positive_int, default=64, help="number of samples (default: %(default)s)")
    s.add_argument("--out", type=Path, default=Path("samples.png"), help="picture to write (default: %(default)s)")
    s.add_argument("--sampler", choices=sorted(SAMPLERS), default=None,
                   help="; ".join(f"{k}: {v.description}" for k, v in sorted(SAMPLERS.items()))
                   + " (default: ddpm; ddim for a student)")
    s.add_argument("--num-steps", type=_positive_int, default=None,
                   help="reverse steps, picked on 1..T by --spacing (default: all T steps of the run's schedule; a "
                        "student's own N)")
    s.add_argument("--spacing", choices=SPACINGS, default=None,
                   help="how the --num-steps steps are picked: uniform (= trailing, ends at T), leading (DDIM's and "
                        "diffusers' default, starts below T), quadratic (small jumps near the data), karras (EDM's "
                        "grid) (default: the sampler's own, the best measured: "
                        + "; ".join(f"{k} {v.spacing}{' (' + v.why + ')' if v.why else ''}"
                                    for k, v in sorted(SAMPLERS.items())) + "; a student's own)")
    add_sampler_options(s)
    s.add_argument("--class", dest="label", type=int, default=None,
                   help="a conditional run (train --num-classes N): sample class 0..N-1 (default: unconditional, the "
                        "'no label' token)")
    s.add_argument("--guidance", type=float, default=None,
                   help="with --class: classifier-free guidance scale gamma, eps = (1 - gamma) eps_uncond + gamma "
                        "eps_cond (0 unconditional, 1 conditional, > 1 guided; one network call on 2n rows per step); "
                        "with --classifier, the classifier guidance scale (default: 1)")
    s.add_argument("--classifier", type=Path, default=None,
                   help="with --class: classifier guidance by the noise-aware classifier in this folder (written by "
                        "train-classifier for this run), score + gamma grad log p_t(y | x_t), on the run's "
                        "unconditional model (default: none)")
    s.add_argument("--threshold", choices=("static", "dynamic"), default=None,
                   help="image datasets: threshold the model's x0 prediction at every step: static clips it to "
                        "[-1, 1], dynamic "
                        "(Imagen) clips each sample at its --percentile quantile of |x0| (at least 1) and rescales "
                        "(default: none)")
    s.add_argument("--percentile", type=float, default=None,
                   help="with --threshold dynamic: the quantile of |x0| that sets the clipping level, in (0, 1] "
                        "(default: 0.995, Imagen's 99.5th percentile)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")

    c = sub.add_parser("cascade", help="sample a two-stage cascade: a low-resolution base run, then a "
                                       "super-resolution run",
                       description="Cascaded generation (lecture 5): the base run samples low-resolution images z, "
                                   "each --aug-level s corrupts them as the super-resolution run was trained to expect "
                                   "(its --augmentation: noise, blur or none) and the super-resolution run samples the "
                                   "full images given them and s. Writes a picture (first row z, then one row per "
                                   "level) and the samples as .pt; for digits, prints the Frechet distance of each "
                                   "level's samples beside the real-vs-real floor (the sweep over s).")
    c.add_argument("--base", type=Path, required=True, help="run folder of the base stage (e.g. trained on digits_4x4)")
    c.add_argument("--sr", type=Path, required=True,
                   help="run folder of the super-resolution stage (trained with --low-resolution)")
    c.add_argument("--aug-level", type=float, nargs="+", default=None,
                   help="augmentation level(s) s in [0, the run's max_aug_level] applied to the base samples, one row "
                        f"of the picture each (default: {DEFAULT_AUG_LEVEL}, from benchmarks/cascade_digits.py's "
                        "sweep; 0 for a run trained without augmentation)")
    c.add_argument("--n", type=_positive_int, default=64, help="number of samples (default: %(default)s)")
    c.add_argument("--sampler", choices=sorted(SAMPLERS), default="ddim",
                   help="the sampler of both stages (default: %(default)s)")
    c.add_argument("--num-steps", type=_positive_int, default=50,
                   help="reverse steps of each stage (default: %(default)s)")
    c.add_argument("--out", type=Path, default=Path("cascade.png"), help="picture to write (default: %(default)s)")
    c.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    c.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")
    add_discrete_commands(sub, add_config_options, _positive_int)
    add_apply_command(sub)
    return p


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.out, steps=args.steps, seed=args.seed, device=args.device, num_samples=args.samples)
    print(f"wrote {args.out}/samples.png, reverse_process.png/.gif, loss.png, report.md")
    print(f"FD samples vs test {result.fd.fd:.3f} | real-vs-real floor {result.fd.floor:.3f} | "
          f"ratio {result.fd.ratio:.2f} | train {result.train_seconds:.0f} s, sampling {result.sample_seconds:.0f} s")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import CHECKPOINT, load_checkpoint, train

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if args.resume:
        config = replace(TrainConfig.from_dict(load_checkpoint(args.out / CHECKPOINT).config), **given)
    else:
        config = TrainConfig(**given)
    result = train(config, out=args.out, resume=args.resume)
    print(f"trained {config.steps} steps on {config.dataset}: final loss {result.final_loss:.4f}, "
          f"{result.steps_per_second:.1f} steps/s; checkpoint in {args.out / CHECKPOINT}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from .distillation import distill_run
    from .train import CHECKPOINT, load_checkpoint, select_device

    config = DistillConfig(**{f.name: getattr(args, f.name) for f in fields(DistillConfig) if hasattr(args, f.name)})
    if TrainConfig.from_dict(load_checkpoint(args.checkpoint or args.run / CHECKPOINT).config).low_resolution:
        raise ValueError("distill takes an ordinary run; this one is a cascade's super-resolution stage, whose "
                         "network needs a low-resolution image")
    paths = distill_run(args.checkpoint or args.run / CHECKPOINT, args.out, config, resume=args.resume,
                        device=select_device(args.device))
    print(f"students in {args.out}: {', '.join(p.name for p in paths)}; sample one with "
          f"`ddpm-scratch sample --checkpoint {paths[-1]}`")
    return 0


def _sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, which must be the chosen sampler's."""
    given = {name for sampler in SAMPLERS.values() for name in sampler.options if hasattr(args, name)}
    wrong = sorted(given - set(SAMPLERS[args.sampler].options))
    if wrong:
        owners = {name: [k for k, v in SAMPLERS.items() if name in v.options] for name in wrong}
        raise ValueError("; ".join(f"--{name.replace('_', '-')} is an option of {', '.join(owners[name])}, not of "
                                   f"--sampler {args.sampler}" for name in wrong))
    return {name: getattr(args, name) for name in given}


def _student_steps(args: argparse.Namespace, num_steps: int, spacing: str) -> None:
    """A student samples with the DDIM steps it was distilled for, and no others: fill them in, refuse the rest."""
    eta = getattr(args, "eta", None)
    wrong = [f"--{name} {given}" for name, given, own in (("sampler", args.sampler, "ddim"),
                                                          ("num-steps", args.num_steps, num_steps),
                                                          ("spacing", args.spacing, spacing), ("eta", eta, 0.0))
             if given is not None and given != own]
    if wrong or args.no_ema:
        raise ValueError(f"a distilled student samples only with deterministic DDIM on its own {num_steps} {spacing} "
                         f"steps (--sampler ddim --num-steps {num_steps} --spacing {spacing} --eta 0) and has only "
                         f"EMA weights; got {', '.join(wrong + ['--no-ema'] * args.no_ema)}")
    args.sampler, args.num_steps, args.spacing = "ddim", num_steps, spacing


def _conditioned(model: Any, schedule: Any, config: Any, args: argparse.Namespace, student: bool,
                 device: Any = "cpu") -> Any:
    """The loaded model as the eps-model `sample` takes: with its class and guidance (a conditional run, or a
    classifier's guidance with --classifier), then thresholded (--threshold). A conditional run without --class
    samples unconditionally (the "no label" token). A distilled student learnt only its teacher's unconditional
    model: it takes no --class, --guidance or --classifier."""
    from ..guidance import ClassifierFree, Thresholded
    from ..nets.protocol import LabelBound
    from .data import DATASETS

    if args.percentile is not None and args.threshold != "dynamic":
        raise ValueError("--percentile sets dynamic thresholding's quantile: it needs --threshold dynamic")
    if args.threshold is not None and not DATASETS[config.dataset].is_image:
        raise ValueError(f"--threshold clips x0 to the images' range [-1, 1]; {config.dataset} is not an image "
                         "dataset (its points lie beyond [-1, 1])")
    if args.label is not None and config.num_classes and not 0 <= args.label < config.num_classes:
        raise ValueError(f"--class must be in 0..{config.num_classes - 1}, got {args.label}")
    if student and (args.label is not None or args.guidance is not None or args.classifier is not None):
        raise ValueError("a distilled student learnt its teacher's unconditional model only: it takes no --class, "
                         "--guidance or --classifier")
    if args.classifier is not None:
        model = _classifier_guided(model, schedule, config, args, device)
    elif not config.num_classes:
        if args.label is not None or args.guidance is not None:
            raise ValueError(f"--class and --guidance need a conditional run (train --num-classes N); this run of "
                             f"{config.dataset} is unconditional (num_classes = 0)")
    elif args.label is None:
        if args.guidance is not None:
            raise ValueError("--guidance needs --class: the class to guide towards")
        model = LabelBound(model, config.num_classes)  # the "no label" token: the unconditional model
    elif args.guidance is None or args.guidance == 1:  # plain conditional sampling: one call on n rows
        model = LabelBound(model, args.label)
    else:
        model = ClassifierFree(model, args.label, gamma=args.guidance, num_classes=config.num_classes)
    if args.threshold is not None:
        model = Thresholded(model, schedule, method=args.threshold,
                            percentile=0.995 if args.percentile is None else args.percentile)
    return model


def _classifier_guided(model: Any, schedule: Any, config: Any, args: argparse.Namespace, device: Any) -> Any:
    """Classifier guidance (--classifier) of the run's unconditional model (a conditional run's "no label" token)
    towards --class, at scale --guidance (default 1), by a classifier trained for this run."""
    from ..guidance import ClassifierGuided, classifier_log_prob_y
    from ..nets.protocol import LabelBound
    from .classifier_training import check_classifier_fits, classifier_path, load_classifier

    classifier, record = load_classifier(classifier_path(args.classifier), device=device)
    check_classifier_fits(record, config)
    if args.label is None:
        raise ValueError("--classifier needs --class: the class to guide towards")
    if not 0 <= args.label < classifier.num_classes:
        raise ValueError(f"--class must be in 0..{classifier.num_classes - 1}, got {args.label}")
    unconditional = LabelBound(model, config.num_classes) if config.num_classes else model
    return ClassifierGuided(unconditional, classifier_log_prob_y(classifier), args.label, schedule,
                            gamma=1.0 if args.guidance is None else args.guidance)


def _train_classifier(args: argparse.Namespace) -> int:
    from .classifier_training import load_classifier, train_classifier
    from .train import CHECKPOINT, load_checkpoint

    run = TrainConfig.from_dict(load_checkpoint(args.run / CHECKPOINT).config)
    if args.out.resolve() == args.run.resolve():
        raise ValueError("--out must be a folder of its own: the classifier's checkpoint would overwrite the run's")
    given = {f.name: getattr(args, f.name) for f in fields(ClassifierConfig) if hasattr(args, f.name)}
    if not args.resume and (args.out / CHECKPOINT).exists():
        raise ValueError(f"{args.out} already holds a checkpoint; pass --resume to continue it, or choose another "
                         "--out")
    if args.resume:
        _, saved = load_classifier(args.out / CHECKPOINT)  # refuses a checkpoint that is not a classifier's
        config = replace(ClassifierConfig(**{f.name: saved[f.name] for f in fields(ClassifierConfig)}), **given)
    else:
        config = ClassifierConfig(**given)
    train_classifier(run, config, out=args.out, resume=args.resume, device=args.device)
    print(f"trained a noise-aware classifier for {args.run} ({run.dataset}), {config.steps} steps; checkpoint in "
          f"{args.out / CHECKPOINT}; guide with `ddpm-scratch sample --run {args.run} --classifier {args.out} "
          "--class K --guidance GAMMA`")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from .data import DATASETS
    from .distillation import is_student_file, load_student
    from .train import CHECKPOINT, flush_subnormals, load_model, select_device
    from .viz import save_grid, save_scatter

    path = args.checkpoint or args.run / CHECKPOINT
    device = select_device(args.device)
    from .discrete_training import is_discrete_config
    from .loop import Checkpoint

    if not is_student_file(path) and is_discrete_config(Checkpoint.load(path).config):
        raise ValueError(f"{path} is a discrete-state (D3PM) run; sample it with `ddpm-scratch sample-discrete --run "
                         "RUN`")
    if is_student_file(path):
        model, schedule, config, student = load_student(path, device=device)
        _student_steps(args, student.num_steps, student.distill_config["spacing"])
    else:
        model, schedule, config = load_model(path, ema=not args.no_ema, device=device)
        if config.low_resolution:
            raise ValueError(f"{path} is a cascade's super-resolution stage (low_resolution={config.low_resolution}): "
                             "it samples given low-resolution images; run it after a base run with `ddpm-scratch "
                             "cascade --base BASE_RUN --sr RUN`")
    model = _conditioned(model, schedule, config, args, student=is_student_file(path), device=device)
    args.sampler = args.sampler or "ddpm"
    options = _sampler_options(args)
    dataset = DATASETS[config.dataset]
    if not dataset.is_image and dataset.shape[0] < 2:
        raise ValueError(f"sample draws a grid of images or a scatter plot of points; {config.dataset}'s examples "
                         f"have shape {dataset.shape}")
    g = torch.Generator(device=device).manual_seed(args.seed)
    with flush_subnormals():  # subnormal floats slow CPU kernels ~10x
        x0 = sample(model, schedule, (args.n, *dataset.shape), sampler=args.sampler, num_steps=args.num_steps,
                    spacing=args.spacing, generator=g, device=device, progress=True, **options).cpu()
    if dataset.is_image:
        save_grid(x0, args.out)
    else:  # the first two coordinates of points with more
        coordinates = "" if dataset.shape[0] == 2 else f", coordinates 1-2 of {dataset.shape[0]}"
        save_scatter(x0[:, :2], args.out, title=f"{args.n} samples, {config.dataset}{coordinates}")
    torch.save(x0, args.out.with_suffix(".pt"))
    print(f"wrote {args.out} and {args.out.with_suffix('.pt')}")
    return 0


def _cascade(args: argparse.Namespace) -> int:
    import torch

    from ..cascade import super_resolve
    from .data import DATASETS
    from .metrics import digits_fd
    from .train import CHECKPOINT, flush_subnormals, load_model, select_device
    from .viz import save_grid

    device = select_device(args.device)
    base, base_schedule, base_config = load_model(args.base / CHECKPOINT, device=device)
    sr, sr_schedule, sr_config = load_model(args.sr / CHECKPOINT, device=device)
    if not sr_config.low_resolution:
        raise ValueError(f"--sr must be a super-resolution run (train --low-resolution N); {args.sr} is not")
    if base_config.low_resolution or base_config.num_classes or sr_config.num_classes:
        raise ValueError("cascade runs an unconditional base run (no --low-resolution) and an unconditional "
                         "super-resolution run (no --num-classes)")
    low, high = DATASETS[base_config.dataset].shape, DATASETS[sr_config.dataset].shape
    if low != (high[0], sr_config.low_resolution, sr_config.low_resolution):
        raise ValueError(f"the base run's images {low} must be the super-resolution run's input "
                         f"{(high[0], sr_config.low_resolution, sr_config.low_resolution)}")
    highest = 0.0 if sr_config.augmentation == "none" else sr_config.max_aug_level  # the levels it was trained on
    levels = args.aug_level or [min(DEFAULT_AUG_LEVEL, highest)]
    for s in levels:
        if not 0 <= s <= highest:
            raise ValueError(f"--aug-level must lie in [0, {highest:g}], the levels the super-resolution run was "
                             f"trained on (augmentation {sr_config.augmentation!r}, max_aug_level "
                             f"{sr_config.max_aug_level:g}); got {s:g}")
    rows, samples = [], {}
    with flush_subnormals():
        z = sample(base, base_schedule, (args.n, *low), sampler=args.sampler, num_steps=args.num_steps,
                   generator=torch.Generator(device=device).manual_seed(args.seed), device=device, progress=True)
        rows.append(torch.nn.functional.interpolate(z, size=high[1:], mode="nearest"))
        for s in levels:  # the same noises at every level (a fresh generator each), so rows differ by s alone
            x = super_resolve(sr, sr_schedule, z, size=high[1], aug_level=s, kind=sr_config.augmentation,
                              generator=torch.Generator(device=device).manual_seed(args.seed + 1), device=device,
                              sampler=args.sampler, num_steps=args.num_steps, progress=True)
            samples[s] = x.cpu()
            rows.append(x)
            if sr_config.dataset == "digits" and args.n >= 2:
                report = digits_fd(x.clamp(-1, 1))
                print(f"aug level {s:g}: FD {report.fd:.2f} (real-vs-real floor {report.floor:.2f}, n = {report.n})")
    columns = min(args.n, 16)
    save_grid(torch.cat([r[:columns].cpu() for r in rows]).clamp(-1, 1), args.out, nrow=columns)
    torch.save({"z": z.cpu(), "samples": samples}, args.out.with_suffix(".pt"))
    print(f"wrote {args.out} (first row: the base samples, then one row per --aug-level) and "
          f"{args.out.with_suffix('.pt')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .loop import TrainingDiverged

    try:
        return {"demo": _demo, "train": _train, "train-classifier": _train_classifier, "distill": _distill,
                "sample": _sample, "cascade": _cascade, "train-discrete": train_discrete_command,
                "sample-discrete": sample_discrete_command, "apply": apply_command}[args.command](args)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError) as e:
        parser.error(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())

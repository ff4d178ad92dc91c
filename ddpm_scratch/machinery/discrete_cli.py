"""The command line of discrete-state runs (lecture 6): `ddpm-scratch train-discrete` and `sample-discrete`.

    ddpm-scratch train-discrete --dataset digits --kernel absorbing --out runs/d3pm_digits
    ddpm-scratch sample-discrete --run runs/d3pm_digits --out d3pm.png --strip d3pm_strip.png
    ddpm-scratch train-discrete --dataset text --kernel absorbing --out runs/d3pm_text
    ddpm-scratch sample-discrete --run runs/d3pm_text --sampler maskgit --num-steps 12 --out sentences.txt

`sample-discrete` writes a grid of digits (the FD to the test digits printed) or a text file of sentences (the
fraction the grammar accepts printed), the tensor beside it (.pt), with --strip the reverse process at a few steps,
and with --bound the variational bound in bits per dimension on the test split.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

from .discrete_training import DISCRETE_DATASETS, DiscreteConfig

__all__ = ["add_discrete_commands", "train_discrete_command", "sample_discrete_command", "DISCRETE_SAMPLERS"]

DISCRETE_SAMPLERS = ("ancestral", "maskgit")


def add_discrete_commands(sub: argparse._SubParsersAction, add_config_options, positive_int) -> None:
    """Add train-discrete and sample-discrete to the command line's subparsers."""
    t = sub.add_parser("train-discrete", help="train a discrete-state (D3PM) model on categorical digits or text",
                       description="Train an x0-network with D3PM's hybrid loss (lecture 6) on data kept as "
                                   "categories (the digits' 17 grey levels, or characters of the toy grammar), with "
                                   "the uniform, absorbing (mask) or gaussian kernel. Writes config.json, loss.csv and "
                                   "checkpoint.pt to --out; --resume continues exactly where a run stopped.")
    t.add_argument("--out", type=Path, required=True, help="run folder (config.json, loss.csv, checkpoint.pt)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (its settings are kept; --steps may grow)")
    add_config_options(t, DiscreteConfig)

    s = sub.add_parser("sample-discrete", help="draw samples from a discrete-state run",
                       description="Sample a train-discrete run: ancestral sampling of p(x_{t-1} | x_t) from the "
                                   "prior (uniform noise, or all mask), or MaskGIT's confidence-ordered unmasking for "
                                   "an absorbing run. Digits go to a picture (the mask in red in --strip), text to a "
                                   "file of sentences; the tensor is saved beside it as .pt.")
    s.add_argument("--run", type=Path, required=True, help="run folder written by train-discrete")
    s.add_argument("--n", type=positive_int, default=64, help="number of samples (default: %(default)s)")
    s.add_argument("--out", type=Path, default=None,
                   help="picture (digits) or text file (text) to write (default: samples.png or samples.txt)")
    s.add_argument("--sampler", choices=DISCRETE_SAMPLERS, default="ancestral",
                   help="ancestral: every step of p(x_{t-1} | x_t) (or --num-steps jumps); maskgit: confidence-ordered "
                        "unmasking in --num-steps steps (absorbing runs) (default: %(default)s)")
    s.add_argument("--num-steps", type=positive_int, default=None,
                   help="ancestral: jump between this many evenly spaced steps (uniform and absorbing kernels; default "
                        "every step); maskgit: unmasking steps (default 12)")
    s.add_argument("--strip", type=Path, default=None, help="also write the reverse process of 4 samples here")
    s.add_argument("--bound", action="store_true",
                   help="also print the variational bound on the test split, bits per dimension (T network calls)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")


def train_discrete_command(args: argparse.Namespace) -> int:
    from .discrete_training import load_discrete, train_discrete
    from .loop import CHECKPOINT

    given = {f.name: getattr(args, f.name) for f in fields(DiscreteConfig) if hasattr(args, f.name)}
    if args.resume:
        config = replace(load_discrete(args.out / CHECKPOINT)[2], **given)
    elif (args.out / CHECKPOINT).exists():
        raise ValueError(f"{args.out} already holds a checkpoint; pass --resume to continue it, or choose another "
                         "--out")
    else:
        config = DiscreteConfig(**given)
    result = train_discrete(config, out=args.out, resume=args.resume)
    print(f"trained {config.steps} steps of a {config.kernel} D3PM on {config.dataset}: final loss "
          f"{result.final_loss:.4f}, {result.steps_per_second:.1f} steps/s; checkpoint in {args.out / CHECKPOINT}")
    return 0


def sample_discrete_command(args: argparse.Namespace) -> int:
    import torch

    from ..discrete import bound_bits, maskgit_sample, sample
    from .discrete_training import load_discrete, to_pictures
    from .text import decode, is_grammatical
    from .train import flush_subnormals, select_device
    from .viz import save_grid, save_strip

    device = select_device(args.device)
    model, process, config = load_discrete(args.run, device=device)
    data = DISCRETE_DATASETS[config.dataset]
    if args.sampler == "maskgit" and process.kind != "absorbing":
        raise ValueError(f"--sampler maskgit unmasks: it needs an absorbing run, {args.run} has the {process.kind!r} "
                         "kernel")
    if args.num_steps is not None and process.kind == "gaussian" and args.sampler == "ancestral":
        raise ValueError("--num-steps: a gaussian-kernel run samples with every step (its jumps are not gaussian "
                         "kernels again)")
    text = config.dataset == "text"
    out = args.out or Path("samples.txt" if text else "samples.png")
    g = torch.Generator(device=device).manual_seed(args.seed)
    kept: dict[int, torch.Tensor] = {}

    def keep(x: torch.Tensor, t: int) -> torch.Tensor:
        kept[t] = x[:4].cpu()
        return x

    with flush_subnormals(), torch.no_grad():
        shape = (args.n, *data.shape)
        if args.sampler == "maskgit":
            x = maskgit_sample(model, process, shape, num_steps=args.num_steps or 12, generator=g, device=device,
                               hook=keep, progress=True).cpu()
        else:
            x = sample(model, process, shape, num_steps=args.num_steps, generator=g, device=device, hook=keep,
                       progress=True).cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(x, out.with_suffix(".pt"))
    if text:
        sentences = decode(x)
        out.write_text("\n".join(sentences) + "\n")
        print("\n".join(sentences[:8]))
        print(f"grammatical: {sum(map(is_grammatical, sentences))} of {len(sentences)}")
    else:
        save_grid(to_pictures(x, data.K, process.mask), out)
        if config.dataset == "digits" and args.n >= 2:
            from .metrics import digits_fd

            report = digits_fd(x.float() * 2 / (data.K - 1) - 1)
            print(f"FD {report.fd:.2f} (real-vs-real floor {report.floor:.2f}, n = {report.n})")
    print(f"wrote {out} and {out.with_suffix('.pt')}")
    if args.strip is not None:
        visited = sorted(kept, reverse=True)  # 8 of the steps the run visited, evenly spread, down to 0
        steps = sorted({visited[round(i * (len(visited) - 1) / 7)] for i in range(8)}, reverse=True)
        if text:
            lines = [f"t={t:>4}  " + " | ".join(decode(kept[t])) for t in steps]
            args.strip.write_text("\n".join(lines) + "\n")
        else:
            frames = torch.stack([to_pictures(kept[t], data.K, process.mask) for t in steps])
            save_strip(frames, steps, args.strip, title=f"{process.kind} D3PM, reverse process")
        print(f"wrote {args.strip}")
    if args.bound:
        x0 = data.load("test").to(device)
        with flush_subnormals():
            bits = torch.cat([bound_bits(model, process, chunk, generator=g, progress=True).cpu()
                              for chunk in x0.split(512)])
        print(f"variational bound on the test split: {bits.mean():.3f} +- {bits.std() / len(bits) ** 0.5:.3f} "
              f"bits per dimension ({len(bits)} examples)")
    return 0

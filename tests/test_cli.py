"""The command line: train / resume / sample round trip, the demo's files, clear errors."""

import re

import pytest
import torch

from ddpm_scratch.machinery.cli import build_parser, main
from ddpm_scratch.machinery.demo import run_demo
from ddpm_scratch.machinery.train import TrainConfig, load_checkpoint


def test_train_resume_and_sample_round_trip(tmp_path, capsys):
    run = tmp_path / "moons"
    common = ["--dataset", "two_moons", "--T", "50", "--batch-size", "32", "--device", "cpu", "--out", str(run)]
    assert main(["train", "--steps", "6", *common]) == 0
    assert load_checkpoint(run / "checkpoint.pt").step == 6
    assert main(["train", "--out", str(run), "--resume", "--steps", "10"]) == 0
    assert load_checkpoint(run / "checkpoint.pt").step == 10
    picture = tmp_path / "moons.png"
    assert main(["sample", "--run", str(run), "--n", "40", "--out", str(picture), "--device", "cpu"]) == 0
    assert picture.stat().st_size > 0
    x0 = torch.load(picture.with_suffix(".pt"))
    assert x0.shape == (40, 2) and torch.isfinite(x0).all()
    assert "trained 10 steps" in capsys.readouterr().out
    fast = tmp_path / "fast.png"
    assert main(["sample", "--run", str(run), "--n", "8", "--num-steps", "5", "--out", str(fast),
                 "--device", "cpu"]) == 0
    assert torch.load(fast.with_suffix(".pt")).shape == (8, 2)
    ddim = [tmp_path / f"ddim{k}.png" for k in (0, 1)]
    for seed, picture in enumerate(ddim):  # eta = 0: deterministic after x_T, so the seed only changes x_T
        assert main(["sample", "--run", str(run), "--n", "8", "--sampler", "ddim", "--num-steps", "5", "--spacing",
                     "quadratic", "--eta", "0", "--seed", str(seed), "--out", str(picture), "--device", "cpu"]) == 0
    a, b = (torch.load(p.with_suffix(".pt")) for p in ddim)
    assert a.shape == (8, 2) and torch.isfinite(a).all() and not torch.equal(a, b)


@pytest.mark.parametrize("sampler", ["sde", "pc", "ode", "ode_euler"])
def test_a_continuous_time_run_samples_with_the_lecture_3_samplers(tmp_path, sampler):
    run = tmp_path / "sde"
    assert main(["train", "--dataset", "two_moons", "--time", "continuous", "--steps", "4", "--batch-size", "16",
                 "--device", "cpu", "--out", str(run)]) == 0
    assert load_checkpoint(run / "checkpoint.pt").config["time"] == "continuous"
    picture = tmp_path / f"{sampler}.png"
    extra = ["--snr", "0.1", "--corrector-steps", "2"] if sampler == "pc" else []
    assert main(["sample", "--run", str(run), "--n", "16", "--sampler", sampler, "--num-steps", "6", *extra,
                 "--out", str(picture), "--device", "cpu"]) == 0
    x0 = torch.load(picture.with_suffix(".pt"))
    assert x0.shape == (16, 2) and torch.isfinite(x0).all()


def test_train_options_are_the_config_fields(tmp_path):
    """Every TrainConfig field is an option with the field's default, and a parsed command builds the same config."""
    from dataclasses import fields

    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in help_text, f.name
    args = build_parser().parse_args(["train", "--out", "x", "--batch-size", "7", "--max-grad-norm", "none",
                                      "--model", '{"hidden": 16}', "--prediction", "v"])
    assert not hasattr(args, "lr")  # options not given stay out, so that --resume keeps the checkpoint's
    assert (args.batch_size, args.max_grad_norm, args.model, args.prediction) == (7, None, {"hidden": 16}, "v")


def test_resuming_or_sampling_a_spoilt_checkpoint_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "two_moons", "--T", "50", "--steps", "3", "--device", "cpu",
                 "--out", str(run)]) == 0
    (run / "checkpoint.pt").write_bytes(b"garbage")
    for argv in (["train", "--out", str(run), "--resume", "--steps", "6"], ["sample", "--run", str(run)]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert re.search(r"checkpoint\.pt is not a readable checkpoint", capsys.readouterr().err)


def test_help_explains_the_commands():
    text = build_parser().format_help()
    assert "examples:" in text and "ddpm-scratch demo" in text
    for command in ["demo", "train", "distill", "sample"]:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x", "--steps", "0"], "steps must be >= 1"),
    (["train", "--out", "x", "--dataset", "two_moons", "--model", '{"hidden": "wide"}'], "hidden must be an int"),
    (["train", "--out", "x", "--dataset", "mnist"], "invalid choice"),
    (["train", "--out", "x", "--model", "[1, 2]"], "JSON object|invalid"),
    (["sample", "--run", "x", "--sampler", "euler"], "invalid choice"),
    (["sample", "--run", "does/not/exist"], "no checkpoint"),
    (["train", "--out", "x", "--device", "cuda:7", "--steps", "1"] if not torch.cuda.is_available()
     else ["train", "--out", "x", "--lr", "-1"], "cuda|lr"),
])
def test_bad_arguments_exit_with_a_clear_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_demo_writes_every_picture_and_the_report(tmp_path):
    config = TrainConfig(steps=4, batch_size=16, T=25, device="cpu", log_every=1,
                         model=dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                                    attention_resolutions=(), num_groups=4))
    result = run_demo(tmp_path, config=config, num_samples=30, progress=False)
    for name in ["samples.png", "reverse_process.png", "reverse_process.gif", "loss.png", "report.md",
                 "samples.pt", "run/checkpoint.pt", "run/loss.csv"]:
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.md").read_text()
    assert f"{result.fd.fd:.3f}" in report and f"{result.fd.floor:.3f}" in report
    assert result.fd.ratio > 1  # 4 training steps cannot match real digits

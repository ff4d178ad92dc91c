"""The command line: train / resume / sample round trip, the demo's files, clear errors."""

import dataclasses
import inspect
import re

import pytest
import torch

from ddpm_scratch.eps_solvers import unipc_sample
from ddpm_scratch.machinery.cli import build_parser, main
from ddpm_scratch.machinery.demo import run_demo
from ddpm_scratch.machinery.train import TrainConfig, load_checkpoint, load_model
from ddpm_scratch.sampling import SAMPLERS, sample


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
    path = run / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    for spoilt, message in ((b"garbage", r"checkpoint\.pt is not a readable checkpoint"),
                            (state | {"config": state["config"] | {"T": 0}}, "holds an invalid training config: T")):
        if isinstance(spoilt, bytes):
            path.write_bytes(spoilt)
        else:
            torch.save(spoilt, path)
        for argv in (["train", "--out", str(run), "--resume", "--steps", "6"], ["sample", "--run", str(run)]):
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            assert exit_info.value.code == 2
            assert re.search(message, capsys.readouterr().err)


# ---------------------------------------------------------------------------------- sampler options

@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("moons")
    assert main(["train", "--dataset", "two_moons", "--T", "50", "--steps", "3", "--batch-size", "16",
                 "--model", '{"hidden": 16, "depth": 1}', "--device", "cpu", "--out", str(run)]) == 0
    return run


def test_sample_help_lists_every_option_of_every_sampler_with_its_default(monkeypatch):
    """Read from each registered sampler's run function (its keyword defaults), not from the command line's code;
    the defaults the course has always had are checked by value too."""
    monkeypatch.setenv("COLUMNS", "2000")  # one line per option
    help_text = build_parser()._subparsers._group_actions[0].choices["sample"].format_help()
    lines = {}  # "--flag" -> the flag's line and its help (on the next line after a long flag)
    for line in help_text.split("options:", 1)[1].strip("\n").splitlines():
        if line.startswith("  -"):
            flag = line.split()[0]
            lines[flag] = line
        else:
            lines[flag] += line
    checked = {}
    for name, sampler in SAMPLERS.items():
        keywords = inspect.signature(sampler.run).parameters
        for option in sampler.options:
            line = lines["--" + option.replace("_", "-")]
            default = keywords[option].default
            assert re.search(rf"{name}: .*?\(default: {re.escape(str(default))}\)", line), (name, option, line)
            for choice in sampler.options[option].choices or ():
                assert str(choice) in line
            checked[option] = default
    assert checked == {"variance": "beta", "snr": 0.16, "corrector_steps": 1, "eta": 0.0, "order": 2,
                       "variant": "bh2"}


@pytest.mark.parametrize("argv, message", [
    (["--sampler", "ddpm", "--eta", "0.5"], "--eta is an option of ddim, not of --sampler ddpm"),
    (["--eta", "0.5"], "--eta is an option of ddim, not of --sampler ddpm"),  # ddpm is the default
    (["--sampler", "ddim", "--snr", "0.1"], "--snr is an option of pc, not of --sampler ddim"),
    (["--sampler", "pc", "--order", "1", "--variance", "posterior"],
     "--order is an option of unipc, not of --sampler pc; --variance is an option of ddpm, not of --sampler pc"),
])
def test_an_option_of_another_sampler_is_an_error_naming_it(moons_run, tmp_path, capsys, argv, message):
    picture = tmp_path / "x.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--run", str(moons_run), "--n", "4", "--device", "cpu", "--out", str(picture), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not picture.exists()


@pytest.mark.parametrize("argv", [["--order", "3"], ["--variant", "bh3"], ["--variance", "fixed"]])
def test_a_sampler_option_outside_its_choices_is_refused_by_the_parser(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--run", "x", "--sampler", "unipc", *argv])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_unipc_options_reach_unipc_sample(moons_run, tmp_path, monkeypatch):
    """--order 1 --variant bh1 arrive at unipc_sample as order=1, variant="bh1" (int and str), and the samples are
    those of sample(..., order=1, variant="bh1") with the same seed, not those of the defaults."""
    calls = []

    def recording(eps_model, schedule, x_T, *, generator=None, hook=None, progress=False, order=2, variant="bh2"):
        calls.append((order, variant))
        return unipc_sample(eps_model, schedule, x_T, generator=generator, hook=hook, progress=progress, order=order,
                            variant=variant)

    monkeypatch.setitem(SAMPLERS, "unipc", dataclasses.replace(SAMPLERS["unipc"], run=recording))
    pictures = {}
    for label, extra in (("options", ["--order", "1", "--variant", "bh1"]), ("defaults", [])):
        pictures[label] = tmp_path / f"{label}.png"
        assert main(["sample", "--run", str(moons_run), "--n", "16", "--sampler", "unipc", "--num-steps", "5",
                     "--seed", "3", "--device", "cpu", "--out", str(pictures[label]), *extra]) == 0
    assert calls == [(1, "bh1"), (2, "bh2")] and type(calls[0][0]) is int
    monkeypatch.undo()
    got = {label: torch.load(p.with_suffix(".pt")) for label, p in pictures.items()}
    model, schedule, _ = load_model(moons_run / "checkpoint.pt")
    expected = sample(model, schedule, (16, 2), sampler="unipc", num_steps=5, order=1, variant="bh1",
                      generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got["options"], expected)
    assert not torch.allclose(got["options"], got["defaults"])


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
    (["train", "--out", "x", "--dataset", "mnist"], "dataset must be one of 'digits', .*'two_moons'.*, got 'mnist'"),
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


# ---------------------------------------------------------------------------------- conditional runs and guidance

@pytest.fixture(scope="module")
def gaussians_run(tmp_path_factory):
    """A conditional run on the eight Gaussians (8 classes), trained for a few steps."""
    run = tmp_path_factory.mktemp("gaussians")
    assert main(["train", "--dataset", "eight_gaussians", "--num-classes", "8", "--T", "40", "--steps", "3",
                 "--batch-size", "16", "--model", '{"hidden": 16, "depth": 1}', "--device", "cpu",
                 "--out", str(run)]) == 0
    return run


def _sampled(run, tmp_path, name, *extra):
    out = tmp_path / f"{name}.png"
    assert main(["sample", "--run", str(run), "--n", "12", "--num-steps", "8", "--device", "cpu", "--out", str(out),
                 *extra]) == 0
    return torch.load(out.with_suffix(".pt"))


def test_sample_a_class_with_classifier_free_guidance(gaussians_run, tmp_path):
    """--class and --guidance wrap the run's network in guidance.ClassifierFree: gamma = 0 is the unconditional
    model (the "no label" token), gamma = 1 the conditional one, and gamma = 3 their extrapolation."""
    from ddpm_scratch.guidance import ClassifierFree
    from ddpm_scratch.nets.protocol import LabelBound

    network, schedule, config = load_model(gaussians_run / "checkpoint.pt")
    assert config.num_classes == 8

    def direct(model):
        return sample(model, schedule, (12, 2), num_steps=8, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(_sampled(gaussians_run, tmp_path, "unconditional"), direct(LabelBound(network, 8)))
    torch.testing.assert_close(_sampled(gaussians_run, tmp_path, "gamma0", "--class", "3", "--guidance", "0"),
                               direct(LabelBound(network, 8)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_sampled(gaussians_run, tmp_path, "gamma1", "--class", "3"),
                               direct(LabelBound(network, 3)))
    guided = _sampled(gaussians_run, tmp_path, "gamma3", "--class", "3", "--guidance", "3")
    torch.testing.assert_close(guided, direct(ClassifierFree(network, 3, gamma=3.0, num_classes=8)))
    assert not torch.allclose(guided, direct(LabelBound(network, 3)))


def test_threshold_an_image_run(tmp_path):
    """--threshold wraps the model in guidance.Thresholded (image datasets: data in [-1, 1])."""
    from ddpm_scratch.guidance import Thresholded

    run = tmp_path / "digits"
    assert main(["train", "--dataset", "digits", "--T", "40", "--steps", "2", "--batch-size", "8", "--model",
                 '{"base_channels": 8, "channel_mults": [1], "attention_resolutions": []}', "--device", "cpu",
                 "--out", str(run)]) == 0
    network, schedule, _ = load_model(run / "checkpoint.pt")
    for method, extra in (("static", []), ("dynamic", ["--percentile", "0.9"])):
        got = _sampled(run, tmp_path, method, "--threshold", method, *extra)
        percentile = {"percentile": 0.9} if extra else {}
        want = sample(Thresholded(network, schedule, method=method, **percentile), schedule, (12, 1, 8, 8),
                      num_steps=8, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(("extra", "message"), [
    (["--guidance", "2"], "--guidance needs --class"),
    (["--class", "8"], r"--class must be in 0\.\.7"),
    (["--class", "8", "--guidance", "3"], r"--class must be in 0\.\.7"),
    (["--class", "2", "--guidance", "-1"], "gamma must lie in"),
    (["--threshold", "static"], "not an image dataset"),
    (["--percentile", "0.9"], "needs --threshold dynamic"),
])
def test_guidance_options_are_checked(gaussians_run, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        main(["sample", "--run", str(gaussians_run), "--n", "4", "--num-steps", "2", "--device", "cpu",
              "--out", str(tmp_path / "x.png"), *extra])
    assert re.search(message, capsys.readouterr().err)


def test_class_and_guidance_need_a_conditional_run(moons_run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--run", str(moons_run), "--n", "4", "--device", "cpu", "--out", str(tmp_path / "x.png"),
              "--class", "1"])
    assert "need a conditional run" in capsys.readouterr().err


def test_a_student_takes_no_class_or_guidance():
    """A distilled student learnt only its teacher's unconditional model (distillation passes no label)."""
    import argparse

    from ddpm_scratch.machinery.cli import _conditioned
    from ddpm_scratch.machinery.train import TrainConfig

    config = TrainConfig(dataset="eight_gaussians", num_classes=8)
    args = argparse.Namespace(label=3, guidance=None, threshold=None, percentile=None, classifier=None)
    with pytest.raises(ValueError, match="student learnt its teacher's unconditional model only"):
        _conditioned(lambda x, t, y=None: x, None, config, args, student=True)


@pytest.fixture(scope="module")
def cascade_runs(tmp_path_factory):
    """A 4x4 base run and a 4x4 -> 8x8 super-resolution run, a few steps each (for the command line, not quality)."""
    root = tmp_path_factory.mktemp("cascade")
    tiny = ["--T", "40", "--steps", "2", "--batch-size", "8", "--device", "cpu"]
    assert main(["train", "--dataset", "digits_4x4", *tiny, "--model",
                 '{"base_channels": 8, "channel_mults": [1], "attention_resolutions": [], "image_size": 4}',
                 "--out", str(root / "base")]) == 0
    assert main(["train", "--dataset", "digits", "--low-resolution", "4", "--augmentation", "noise", *tiny,
                 "--model", '{"base_channels": 8, "channel_mults": [1], "attention_resolutions": []}',
                 "--out", str(root / "sr")]) == 0
    return root / "base", root / "sr"


def test_cascade_samples_both_stages_at_each_level(cascade_runs, tmp_path, capsys):
    """The command's base samples come from --seed, and each level's from cascade.super_resolve with a fresh
    generator seeded seed + 1: the same noises at every level, so that the rows differ by s alone."""
    from ddpm_scratch.cascade import super_resolve

    base, sr = cascade_runs
    out = tmp_path / "cascade.png"
    assert main(["cascade", "--base", str(base), "--sr", str(sr), "--aug-level", "0", "0.3", "--n", "6",
                 "--num-steps", "3", "--device", "cpu", "--seed", "4", "--out", str(out)]) == 0
    assert out.exists() and "aug level 0.3: FD" in capsys.readouterr().out
    saved = torch.load(out.with_suffix(".pt"))
    base_model, base_schedule, _ = load_model(base / "checkpoint.pt")
    sr_model, sr_schedule, _ = load_model(sr / "checkpoint.pt")
    z = sample(base_model, base_schedule, (6, 1, 4, 4), sampler="ddim", num_steps=3,
               generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(saved["z"], z)
    assert set(saved["samples"]) == {0.0, 0.3}
    for s in (0.0, 0.3):
        want = super_resolve(sr_model, sr_schedule, z, size=8, aug_level=s, kind="noise", sampler="ddim",
                             num_steps=3, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(saved["samples"][s], want)


@pytest.mark.parametrize(("which", "extra", "message"), [
    ("swap", [], "--sr must be a super-resolution run"),
    ("ok", ["--aug-level", "0.6"], r"--aug-level must lie in \[0, 0\.5\]"),
    ("ok", ["--aug-level", "-0.1"], r"--aug-level must lie in \[0, 0\.5\]"),
    ("sample", [], "is a cascade's super-resolution stage"),
    ("distill", [], "distill takes an ordinary run"),
])
def test_cascade_arguments_are_checked(cascade_runs, tmp_path, capsys, which, extra, message):
    base, sr = cascade_runs
    if which == "sample":
        argv = ["sample", "--run", str(sr), "--n", "2", "--device", "cpu", "--out", str(tmp_path / "x.png")]
    elif which == "distill":
        argv = ["distill", "--run", str(sr), "--out", str(tmp_path / "students"), "--device", "cpu"]
    else:
        base, sr = (sr, base) if which == "swap" else (base, sr)
        argv = ["cascade", "--base", str(base), "--sr", str(sr), "--n", "2", "--num-steps", "2", "--device", "cpu",
                "--out", str(tmp_path / "x.png"), *extra]
    with pytest.raises(SystemExit):
        main(argv)
    assert re.search(message, capsys.readouterr().err)


@pytest.fixture(scope="module")
def gaussians_classifier(gaussians_run):
    """A noise-aware classifier for gaussians_run, trained for a few steps, then resumed to a few more."""
    out = gaussians_run.parent / "classifier"
    tiny = ["--hidden", "16", "--depth", "1", "--batch-size", "16", "--device", "cpu", "--checkpoint-every", "2"]
    assert main(["train-classifier", "--run", str(gaussians_run), "--steps", "2", *tiny, "--out", str(out)]) == 0
    assert main(["train-classifier", "--run", str(gaussians_run), "--resume", "--steps", "4", "--out",
                 str(out), "--device", "cpu"]) == 0
    return out


def test_train_classifier_resumes_to_the_uninterrupted_weights(gaussians_run, gaussians_classifier, tmp_path):
    from ddpm_scratch.machinery.classifier_training import load_classifier

    straight = tmp_path / "straight"
    assert main(["train-classifier", "--run", str(gaussians_run), "--steps", "4", "--hidden", "16", "--depth", "1",
                 "--batch-size", "16", "--device", "cpu", "--checkpoint-every", "2", "--out", str(straight)]) == 0
    resumed, record = load_classifier(gaussians_classifier / "checkpoint.pt")
    uninterrupted, _ = load_classifier(straight / "checkpoint.pt")
    assert record["dataset"] == "eight_gaussians" and record["steps"] == 4 and record["T"] == 40
    for a, b in zip(resumed.state_dict().values(), uninterrupted.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_sample_with_classifier_guidance(gaussians_run, gaussians_classifier, tmp_path):
    """--classifier wraps the run's unconditional model (the "no label" token) in guidance.ClassifierGuided with
    the classifier's log p_t(y | x_t), at scale --guidance."""
    from ddpm_scratch.guidance import ClassifierGuided, classifier_log_prob_y
    from ddpm_scratch.machinery.classifier_training import load_classifier
    from ddpm_scratch.nets.protocol import LabelBound

    network, schedule, _ = load_model(gaussians_run / "checkpoint.pt")
    classifier, _ = load_classifier(gaussians_classifier / "checkpoint.pt")
    guided = _sampled(gaussians_run, tmp_path, "classifier", "--classifier", str(gaussians_classifier),
                      "--class", "2", "--guidance", "4")
    model = ClassifierGuided(LabelBound(network, 8), classifier_log_prob_y(classifier), 2, schedule, gamma=4.0)
    want = sample(model, schedule, (12, 2), num_steps=8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(guided, want)


def test_a_classifier_of_another_run_or_without_a_class_is_refused(gaussians_classifier, moons_run, gaussians_run,
                                                                   tmp_path, capsys):
    for run, classifier, extra, message in (
            (moons_run, gaussians_classifier, ["--class", "1"], "trained for another run"),
            (gaussians_run, gaussians_classifier, [], "--classifier needs --class"),
            (gaussians_run, gaussians_run, ["--class", "1"], "is not a classifier's checkpoint")):
        with pytest.raises(SystemExit):
            main(["sample", "--run", str(run), "--n", "4", "--num-steps", "2", "--device", "cpu", "--out",
                  str(tmp_path / "x.png"), "--classifier", str(classifier), *extra])
        assert message in capsys.readouterr().err
    for argv, message in (
            (["--run", str(moons_run.parent / "nowhere"), "--out", str(tmp_path / "c")], "nowhere"),
            (["--run", str(gaussians_run), "--out", str(gaussians_run)], "would overwrite the run's"),
            (["--run", str(gaussians_run), "--out", str(gaussians_classifier)], "pass --resume"),
            (["--run", str(gaussians_run), "--out", str(moons_run), "--resume"], "not a classifier's checkpoint")):
        with pytest.raises(SystemExit):
            main(["train-classifier", *argv, "--device", "cpu"])
        assert message in capsys.readouterr().err

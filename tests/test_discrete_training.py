"""Discrete-state runs (lecture 6): the data as categories, the toy grammar, the categorical networks, training
through the one loop (exact resume), loading, and the train-discrete / sample-discrete commands."""

from __future__ import annotations

import json

import pytest
import torch

from ddpm_scratch.discrete import CategoricalDiffusion, sample
from ddpm_scratch.machinery.cli import main
from ddpm_scratch.machinery.data import load_digits
from ddpm_scratch.machinery.discrete_training import (
    DiscreteConfig,
    digits_as_categories,
    load_discrete,
    to_pictures,
    train_discrete,
)
from ddpm_scratch.machinery.files import UnreadableFile
from ddpm_scratch.machinery.text import (
    GRAMMAR,
    LENGTH,
    MASK,
    PAD,
    VOCAB,
    all_sentences,
    decode,
    encode,
    is_grammatical,
    load_text,
)
from ddpm_scratch.nets import CategoricalUNet, TokenTransformer

TINY_UNET = {"embed_dim": 4, "base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": []}
TINY_TRANSFORMER = {"dim": 16, "depth": 1, "heads": 2}


def tiny(**overrides) -> DiscreteConfig:
    base = dict(dataset="digits", kernel="absorbing", T=10, steps=4, batch_size=8, warmup_steps=1, log_every=1,
                checkpoint_every=2, device="cpu", model=dict(TINY_UNET))
    return DiscreteConfig(**(base | overrides))


# ------------------------------------------------------------------------------------------------ data
def test_digits_as_categories_are_the_grey_levels():
    x = digits_as_categories("test")
    images, _ = load_digits("test")
    assert x.dtype == torch.long and x.shape == images.shape and x.min() == 0 and x.max() == 16
    torch.testing.assert_close(x.float() / 8 - 1, images)


def test_pictures_show_categories_as_greys_and_the_mask_in_red():
    x = torch.tensor([[[[0, 16], [8, 17]]]])
    rgb = to_pictures(x, 17, mask=17)
    assert rgb.shape == (1, 3, 2, 2)
    torch.testing.assert_close(rgb[0, :, 0, 0], torch.full((3,), -1.0))
    torch.testing.assert_close(rgb[0, :, 0, 1], torch.full((3,), 1.0))
    torch.testing.assert_close(rgb[0, :, 1, 0], torch.zeros(3))
    torch.testing.assert_close(rgb[0, :, 1, 1], torch.tensor([1.0, -1.0, -1.0]))


def test_the_grammar_lists_its_sentences_and_accepts_only_them():
    phrases = len(GRAMMAR["determiner"]) * (1 + len(GRAMMAR["adjective"])) * len(GRAMMAR["noun"])
    verb_phrases = len(GRAMMAR["transitive"]) * phrases + len(GRAMMAR["intransitive"])
    assert len(all_sentences()) == phrases * verb_phrases
    assert is_grammatical("the cat sleeps." + PAD * 5) and is_grammatical("a red fox sees the happy girl.")
    for wrong in ("the cat sleep.", "cat the sleeps.", "the cat sleeps", "the cat sleeps.x", "the cat sees."):
        assert not is_grammatical(wrong)


def test_text_splits_are_grammatical_disjoint_and_round_trip():
    train, test = load_text("train"), load_text("test")
    assert train.shape == (4000, LENGTH) and test.shape == (500, LENGTH)
    assert train.max() < len(VOCAB) and train.min() >= 0
    train_text, test_text = decode(train), decode(test)
    assert all(map(is_grammatical, train_text + test_text))
    assert not set(train_text) & set(test_text)
    assert torch.equal(encode([s.rstrip(PAD) for s in train_text[:50]]), train[:50])
    assert decode(torch.tensor([[len(VOCAB), 0]])) == [MASK + PAD]
    with pytest.raises(ValueError, match="sentences"):
        encode(["The cat sleeps."])


# ------------------------------------------------------------------------------------------------ networks
def test_categorical_networks_read_states_and_start_uniform():
    unet = CategoricalUNet(18, 17, **{**TINY_UNET, "channel_mults": (1, 2), "attention_resolutions": ()})
    x = torch.randint(0, 18, (3, 1, 8, 8))
    logits = unet(x, torch.tensor([1, 5, 10]))
    assert logits.shape == (3, 1, 8, 8, 17) and torch.equal(logits, torch.zeros_like(logits))  # zero output layer
    transformer = TokenTransformer(25, 24, LENGTH, **TINY_TRANSFORMER)
    tokens = torch.randint(0, 25, (2, 30))
    logits = transformer(tokens, torch.tensor([3, 7]))
    assert logits.shape == (2, 30, 24) and torch.equal(logits, torch.zeros_like(logits))
    for bad, message in [(x.float(), "LongTensor"), (x + 1, "states")]:
        with pytest.raises((TypeError, ValueError), match=message):
            unet(bad, 1)
    with pytest.raises(ValueError, match="length"):
        transformer(torch.zeros(1, LENGTH + 1, dtype=torch.long), 1)


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("overrides, message", [
    (dict(kernel="normal"), "kernel"), (dict(dataset="cifar"), "dataset"), (dict(lam=-1.0), "lam"),
    (dict(T=0), "T"), (dict(model=[1]), "model"),
])
def test_bad_settings_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


@pytest.mark.parametrize("dataset, model", [("digits", TINY_UNET), ("text", TINY_TRANSFORMER)])
def test_resume_continues_exactly_and_load_gives_back_the_ema_network(tmp_path, dataset, model):
    config = tiny(dataset=dataset, model=dict(model), kernel="uniform" if dataset == "text" else "absorbing")
    straight = train_discrete(config, out=tmp_path / "a", progress=False)
    train_discrete(tiny(**{**config.__dict__, "steps": 2}), out=tmp_path / "b", progress=False)
    resumed = train_discrete(config, out=tmp_path / "b", resume=True, progress=False)
    for p, q in zip(straight.ema_model.state_dict().values(), resumed.ema_model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert straight.final_loss > 0
    model, process, loaded = load_discrete(tmp_path / "a")
    assert loaded == config and isinstance(process, CategoricalDiffusion) and process.kind == config.kernel
    x_t = torch.randint(0, process.num_states, (2, *((1, 8, 8) if dataset == "digits" else (LENGTH,))))
    t = torch.tensor([1, 7])
    torch.testing.assert_close(model(x_t, t), straight.ema_model(x_t, t))
    x = sample(model, process, tuple(x_t.shape), generator=torch.Generator().manual_seed(0))
    assert x.shape == x_t.shape and x.max() < process.K
    assert json.loads((tmp_path / "a" / "config.json").read_text())["kernel"] == config.kernel


def test_load_discrete_refuses_a_gaussian_run(tmp_path):
    assert main(["train", "--dataset", "two_moons", "--T", "50", "--steps", "2", "--batch-size", "8", "--device",
                 "cpu", "--model", '{"hidden": 16, "depth": 1}', "--out", str(tmp_path / "g")]) == 0
    with pytest.raises(UnreadableFile, match="train-discrete"):
        load_discrete(tmp_path / "g")


# ------------------------------------------------------------------------------------------------ command line
def test_train_and_sample_discrete_commands(tmp_path, capsys):
    run = tmp_path / "d3pm"
    common = ["--T", "10", "--batch-size", "8", "--device", "cpu", "--model", json.dumps(TINY_UNET)]
    assert main(["train-discrete", "--steps", "2", "--out", str(run), *common]) == 0
    with pytest.raises(SystemExit):
        main(["train-discrete", "--steps", "2", "--out", str(run), *common])  # would overwrite the run
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main(["train-discrete", "--out", str(run), "--resume", "--steps", "3"]) == 0
    out, strip = tmp_path / "s.png", tmp_path / "strip.png"
    assert main(["sample-discrete", "--run", str(run), "--n", "6", "--out", str(out), "--strip", str(strip),
                 "--bound", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and strip.exists() and out.with_suffix(".pt").exists()
    assert "FD" in printed and "bits per dimension" in printed
    assert torch.load(out.with_suffix(".pt")).shape == (6, 1, 8, 8)
    assert main(["sample-discrete", "--run", str(run), "--n", "4", "--sampler", "maskgit", "--num-steps", "3",
                 "--out", str(tmp_path / "m.png"), "--device", "cpu"]) == 0
    with pytest.raises(SystemExit):
        main(["sample", "--run", str(run), "--out", str(tmp_path / "x.png"), "--device", "cpu"])
    assert "sample-discrete" in capsys.readouterr().err


def test_text_runs_write_sentences(tmp_path, capsys):
    run = tmp_path / "text"
    assert main(["train-discrete", "--dataset", "text", "--kernel", "absorbing", "--T", "10", "--steps", "2",
                 "--batch-size", "8", "--device", "cpu", "--model", json.dumps(TINY_TRANSFORMER),
                 "--out", str(run)]) == 0
    out = tmp_path / "sentences.txt"
    assert main(["sample-discrete", "--run", str(run), "--n", "5", "--num-steps", "4", "--out", str(out),
                 "--strip", str(tmp_path / "strip.txt"), "--device", "cpu"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 5 and all(len(line) == LENGTH for line in lines)
    assert "grammatical:" in capsys.readouterr().out
    assert MASK in (tmp_path / "strip.txt").read_text()  # the reverse process starts from all mask
    uniform = tmp_path / "uniform"
    assert main(["train-discrete", "--dataset", "text", "--kernel", "uniform", "--T", "10", "--steps", "1",
                 "--batch-size", "8", "--device", "cpu", "--model", json.dumps(TINY_TRANSFORMER),
                 "--out", str(uniform)]) == 0
    with pytest.raises(SystemExit):
        main(["sample-discrete", "--run", str(uniform), "--sampler", "maskgit", "--device", "cpu"])
    assert "absorbing" in capsys.readouterr().err

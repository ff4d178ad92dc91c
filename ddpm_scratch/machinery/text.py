"""A small text corpus the course writes itself: sentences of a toy grammar, as characters.

    sentence    -> noun_phrase " " verb_phrase "."
    noun_phrase -> determiner " " [adjective " "] noun
    verb_phrase -> transitive " " noun_phrase | intransitive

Its words are in `GRAMMAR`; every sentence is at most `LENGTH` characters and is padded with `PAD` to that length.
The grammar makes 20,952 sentences, few enough to list (`all_sentences`), so a generated string can be checked
exactly: `is_grammatical` is a look-up, and the fraction of grammatical samples measures a text model. The splits
are fixed draws of the grammar (`load_text`), the test sentences all different from the training ones.
"""

from __future__ import annotations

import random
from functools import lru_cache

import torch
from torch import Tensor

__all__ = ["GRAMMAR", "LENGTH", "PAD", "MASK", "VOCAB", "TEXT_SPLITS", "all_sentences", "is_grammatical", "encode",
           "decode", "load_text"]

GRAMMAR = {
    "determiner": ("the", "a"),
    "adjective": ("red", "big", "small", "old", "happy"),
    "noun": ("cat", "dog", "bird", "fox", "girl", "boy"),
    "transitive": ("sees", "likes", "chases", "finds"),
    "intransitive": ("sleeps", "runs", "sings"),
}
LENGTH = 40
PAD = "_"
MASK = "#"  # how `decode` shows the absorbing kernel's mask, the state after the last character of VOCAB
VOCAB = PAD + " ." + "".join(sorted({c for words in GRAMMAR.values() for w in words for c in w}))
TEXT_SPLITS = {"train": 4000, "test": 500}
_INDEX = {c: i for i, c in enumerate(VOCAB)}


def _noun_phrases() -> list[str]:
    return [f"{d} {a + ' ' if a else ''}{n}" for d in GRAMMAR["determiner"] for a in ("", *GRAMMAR["adjective"])
            for n in GRAMMAR["noun"]]


@lru_cache(maxsize=1)
def all_sentences() -> frozenset[str]:
    """Every sentence of the grammar."""
    phrases = _noun_phrases()
    verb_phrases = [f"{v} {p}" for v in GRAMMAR["transitive"] for p in phrases] + list(GRAMMAR["intransitive"])
    return frozenset(f"{p} {v}." for p in phrases for v in verb_phrases)


def is_grammatical(text: str) -> bool:
    """Whether text, padding removed from its end, is a sentence of the grammar."""
    return text.rstrip(PAD) in all_sentences()


def encode(sentences: list[str]) -> Tensor:
    """(N, LENGTH) long: each sentence's characters as indices into VOCAB, padded with PAD."""
    for s in sentences:
        if len(s) > LENGTH or any(c not in _INDEX for c in s):
            raise ValueError(f"sentences must be at most {LENGTH} characters of {VOCAB!r}, got {s!r}")
    return torch.tensor([[_INDEX[c] for c in s.ljust(LENGTH, PAD)] for s in sentences], dtype=torch.long)


def decode(tokens: Tensor) -> list[str]:
    """(N, L) long indices into VOCAB -> N strings (padding kept, so a sample shows where it ended); the index
    len(VOCAB), the absorbing kernel's mask, shows as MASK."""
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a (N, L) LongTensor, got {tokens.dtype} {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() > len(VOCAB)):
        raise ValueError(f"tokens must lie in 0..{len(VOCAB)} (the last one the mask), got {tokens.min().item()}.."
                         f"{tokens.max().item()}")
    return ["".join((VOCAB + MASK)[i] for i in row) for row in tokens.tolist()]


@lru_cache(maxsize=2)
def _split(split: str) -> tuple[str, ...]:
    rng = random.Random(6)  # one fixed shuffle of the whole language, cut into the splits
    sentences = sorted(all_sentences())
    rng.shuffle(sentences)
    start = 0 if split == "train" else TEXT_SPLITS["train"]
    return tuple(sentences[start:start + TEXT_SPLITS[split]])


def load_text(split: str = "train") -> Tensor:
    """The sentences of a split as (N, LENGTH) long (train: 4,000, test: 500 others)."""
    if split not in TEXT_SPLITS:
        raise ValueError(f"split must be one of {tuple(TEXT_SPLITS)}, got {split!r}")
    return encode(list(_split(split)))

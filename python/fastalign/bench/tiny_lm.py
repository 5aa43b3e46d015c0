"""Tiny, offline language-model fixtures for tests, examples and the trainer bench rows: a
word-level tokenizer built in memory, a Llama-style model from a config (random weights, no
download) and small generated preference / unpaired / prompt datasets."""

from __future__ import annotations

import random
from typing import Any

_TEXT = (
    "the a cat dog sat ran on in mat box red blue big small is was good bad yes no what "
    "color sky grass sun moon hot cold up down left right one two three four five six seven "
    "eight nine ten and or not very fast slow tree house car road day night"
)
WORDS: tuple[str, ...] = tuple(_TEXT.split())

# (prompt, a good answer, a bad answer): the generated rows recombine these
_FACTS = [
    ("what color is the sky", "blue", "red"),
    ("what color is the grass", "good", "bad"),
    ("the cat sat on the", "mat", "sun"),
    ("the dog ran in the", "box", "moon"),
    ("one two three", "four five", "two one"),
    ("is the sun hot", "yes", "no"),
    ("is the moon hot", "no", "yes"),
    ("up down left", "right", "up up"),
    ("six seven eight", "nine ten", "one one"),
    ("is the night cold", "yes", "no"),
    ("the car is very", "fast", "tree"),
    ("the house is", "big", "ran"),
]


def make_tokenizer() -> Any:
    """A word-level fast tokenizer over :data:`WORDS` (``<pad> <unk> <bos> <eos>`` first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {t: i for i, t in enumerate([*specials, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        padding_side="left",
    )


def make_llama(
    tokenizer: Any,
    *,
    vocab_size: int | None = None,
    hidden_size: int = 32,
    layers: int = 2,
    tie_word_embeddings: bool = False,
    seed: int = 0,
    **config: Any,
) -> Any:
    """A ``LlamaForCausalLM`` with random weights (seeded) built from a config. ``vocab_size``
    defaults to the tokenizer's; a larger one pads the head with unused rows (the cost of a
    real vocabulary without a real tokenizer)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=tie_word_embeddings,
        **config,
    )
    return LlamaForCausalLM(cfg)


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _rows(
    n: int, seed: int, context: tuple[int, int] = (0, 3), tail: tuple[int, int] = (0, 0)
) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt, good, bad = _FACTS[i % len(_FACTS)]
        pad = _words(rng, *context)
        good = (good + " " + _words(rng, *tail)).strip()
        bad = (bad + " " + _words(rng, *tail)).strip()
        out.append(((pad + " " + prompt).strip(), good, bad))
    return out


def preference_rows(
    n: int = 8,
    seed: int = 0,
    *,
    context: tuple[int, int] = (0, 3),
    tail: tuple[int, int] = (0, 0),
) -> list[dict[str, str]]:
    """``prompt`` / ``chosen`` / ``rejected`` rows (completions start with a space, as TRL
    tokenizes ``prompt + completion``); ``context`` random words (min, max) before each
    prompt and ``tail`` after each answer make longer sequences."""
    rows = _rows(n, seed, context, tail)
    return [{"prompt": p, "chosen": " " + g, "rejected": " " + b} for p, g, b in rows]


def unpaired_rows(n: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """KTO-style ``prompt`` / ``completion`` / ``label`` rows, desirable and not alternating."""
    return [
        {"prompt": p, "completion": " " + (g if i % 2 == 0 else b), "label": i % 2 == 0}
        for i, (p, g, b) in enumerate(_rows(n, seed))
    ]


def prompt_rows(n: int = 8, seed: int = 0) -> list[dict[str, str]]:
    """``prompt`` rows for on-policy trainers (GRPO, RLOO)."""
    return [{"prompt": p} for p, _, _ in _rows(n, seed)]


def distinct_words_reward(completions: list[str], **_: Any) -> list[float]:
    """A toy reward for GRPO tests: distinct words, plus a little for length."""
    return [float(len(set(c.split()))) + 0.01 * len(c) for c in completions]

"""fastalign.integrations.hf.sequence_logps against the model's own logits (float64), for
untied and tied heads, a softcapped head (Gemma 2), a scaled head (Cohere), padding, and the
gradients to every parameter."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from fastalign.bench import tiny_lm
from fastalign.errors import InvalidInputError, ShapeError
from fastalign.integrations.hf import head_transform, sequence_logps


def _model(kind, tok):
    common = {
        "vocab_size": len(tok),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "pad_token_id": tok.pad_token_id,
    }
    torch.manual_seed(0)
    if kind == "gemma2":
        from transformers import Gemma2Config, Gemma2ForCausalLM

        cfg = Gemma2Config(**common, head_dim=8, final_logit_softcapping=3.0)
        return Gemma2ForCausalLM(cfg)
    if kind == "cohere":
        from transformers import CohereConfig, CohereForCausalLM

        return CohereForCausalLM(CohereConfig(**common, logit_scale=0.37))
    return tiny_lm.make_llama(tok, hidden_size=16, tie_word_embeddings=kind == "llama-tied")


def _batch(tok, left_padding=True):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, len(tok), (3, 9), generator=g)
    mask = torch.ones_like(ids)
    if left_padding:  # (Gemma 2's own forward gives NaN rows with left padding)
        ids[0, :3], mask[0, :3] = tok.pad_token_id, 0
    ids[2, -2:], mask[2, -2:] = tok.pad_token_id, 0  # right padding
    labels = ids.masked_fill(mask == 0, -100)
    labels[1, :4] = -100  # a prompt
    return ids, mask, labels


def _reference(model, ids, mask, labels, temperature=1.0):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1] / temperature
    y = labels[:, 1:]
    lp = torch.log_softmax(logits, -1).gather(2, y.clamp(min=0)[..., None]).squeeze(-1)
    return (lp * (y != -100)).sum(1)


@pytest.mark.parametrize("kind", ["llama", "llama-tied", "gemma2", "cohere"])
def test_equals_the_models_own_logits_float64(kind):
    tok = tiny_lm.make_tokenizer()
    model = _model(kind, tok).double()
    ids, mask, labels = _batch(tok, left_padding=kind != "gemma2")
    want = _reference(model, ids, mask, labels, temperature=0.8)
    assert want.isfinite().all()
    got = sequence_logps(model, ids, mask, labels, temperature=0.8)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # gradients to every parameter, through the backbone and the (tied) head
    g_want = torch.autograd.grad(want.sum(), list(model.parameters()), allow_unused=True)
    got = sequence_logps(model, ids, mask, labels, temperature=0.8)
    g_got = torch.autograd.grad(got.sum(), list(model.parameters()), allow_unused=True)
    for (name, _), a, b in zip(model.named_parameters(), g_want, g_got, strict=True):
        if a is None:
            assert b is None or not b.any(), name
        else:
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12, msg=name)


def test_config_transforms_are_read():
    tok = tiny_lm.make_tokenizer()
    assert head_transform(_model("gemma2", tok).config) == (1.0, 3.0)
    assert head_transform(_model("cohere", tok).config) == (pytest.approx(0.37), None)
    assert head_transform(_model("llama", tok).config) == (1.0, None)

    class Granite:
        logits_scaling = 4.0
        model_type = "granite"

    assert head_transform(Granite()) == (0.25, None)


def test_defaults_mean_and_none_reductions():
    tok = tiny_lm.make_tokenizer()
    model = _model("llama", tok).double()
    ids, mask, _ = _batch(tok)
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, 3] = -100  # the first real token after left padding: nothing real before it
    total = sequence_logps(model, ids, mask)  # labels default: real tokens after real ones
    torch.testing.assert_close(total, _reference(model, ids, mask, labels))
    per_token = sequence_logps(model, ids, mask, reduction="none")
    assert per_token.shape == (3, 8)
    torch.testing.assert_close(per_token.sum(1), total)
    mean = sequence_logps(model, ids, mask, reduction="mean")
    torch.testing.assert_close(mean, total / (labels[:, 1:] != -100).sum(1))
    lp, ent = sequence_logps(model, ids, mask, return_entropy=True)
    torch.testing.assert_close(lp, total)
    assert (ent > 0).all()


def test_fp32_model_within_fp32_error_and_bad_input():
    tok = tiny_lm.make_tokenizer()
    model = _model("llama", tok)
    ids, mask, labels = _batch(tok)
    want = _reference(model.double(), ids, mask, labels)
    got = sequence_logps(model.float(), ids, mask, labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ShapeError, match="input_ids"):
        sequence_logps(model, ids[0], mask[0])
    with pytest.raises(ShapeError, match="attention_mask"):
        sequence_logps(model, ids, mask[:, :-1])
    with pytest.raises(InvalidInputError, match="2 tokens"):
        sequence_logps(model, ids[:, :1])
    bad = labels.clone()
    bad[1, 5] = 10_000
    with pytest.raises(ValueError, match="labels"):
        sequence_logps(model, ids, mask, bad)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft on transformers 5's deprecations
def test_lora_on_the_head_is_refused():
    peft = pytest.importorskip("peft")
    tok = tiny_lm.make_tokenizer()
    model = peft.get_peft_model(
        _model("llama", tok), peft.LoraConfig(r=2, target_modules=["q_proj", "lm_head"])
    )
    ids, mask, _ = _batch(tok)
    with pytest.raises(NotImplementedError, match="adapter"):
        sequence_logps(model, ids, mask)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_lora_on_the_backbone_equals_the_models_own_logits():
    peft = pytest.importorskip("peft")
    tok = tiny_lm.make_tokenizer()
    cfg = peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = peft.get_peft_model(_model("llama", tok).double(), cfg)
    ids, mask, labels = _batch(tok)
    want = _reference(model, ids, mask, labels)
    torch.testing.assert_close(sequence_logps(model, ids, mask, labels), want)
    with model.disable_adapter():  # the reference-model trick of TRL's trainers
        base = _reference(model, ids, mask, labels)
        torch.testing.assert_close(sequence_logps(model, ids, mask, labels), base)
    assert not torch.allclose(want, base)

"""VAR sampling: top-k / top-p filtering, the guidance ramp, and the KV-cache path against the full forward."""

from __future__ import annotations

import math

import pytest
import torch

from curricurun.setups.var import sampling
from curricurun.setups.var.model import VarConfig, VarTransformer
from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer
from curricurun.setups.vqvae.vqvae import VQVAEConfig

PATCH_NUMS = (1, 2, 3, 4, 6, 8)
ENDS = (1, 5, 14, 30, 66, 130)


def test_top_k_keeps_the_k_largest_logits():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert sampling.filter_top_k_top_p(logits, 2, 0.0).tolist() == [[-math.inf, 3.0, -math.inf, 2.0]]
    assert torch.equal(sampling.filter_top_k_top_p(logits, 900, 0.0), logits)  # k capped at the vocabulary


def test_top_p_drops_the_low_tail_holding_at_most_one_minus_p():
    # softmax(0, 1, 2, 3) = 0.0321, 0.0871, 0.2369, 0.6439; ascending cumulative sums 0.0321, 0.1192, 0.3561, 1.
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    # p = 0.7: drop cumulative ≤ 0.3 → tokens 0 and 1; p = 0.6: ≤ 0.4 → tokens 0, 1, 2; p = 0.99: ≤ 0.01 → none.
    assert sampling.filter_top_k_top_p(logits, 0, 0.7).tolist() == [[-math.inf, -math.inf, 2.0, 3.0]]
    assert sampling.filter_top_k_top_p(logits, 0, 0.6).tolist() == [[-math.inf, -math.inf, -math.inf, 3.0]]
    assert torch.equal(sampling.filter_top_k_top_p(logits, 0, 0.99), logits)
    # The most likely token always stays, even for a tiny p (0.001 → drop ≤ 0.999 keeps token 3 only).
    assert sampling.filter_top_k_top_p(logits, 0, 0.001)[0, 3] == 3.0


def test_top_k_one_samples_the_argmax():
    logits = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(0))
    drawn = sampling.sample_tokens(logits, 1, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(drawn, logits.argmax(dim=-1))


def tiny_pair(seed: int = 0) -> tuple[VarTransformer, MultiScaleTokenizer]:
    torch.manual_seed(seed)
    tokenizer = MultiScaleTokenizer(
        VQVAEConfig(
            in_channels=1,
            image_size=32,
            ch=32,
            ch_mult=(1, 2, 2),
            num_res_blocks=1,
            z_channels=8,
            vocab_size=32,
            patch_nums=PATCH_NUMS,
        )
    )
    config = VarConfig(
        depth=2,
        width=48,
        num_heads=2,
        num_classes=10,
        vocab_size=32,
        token_channels=8,
        patch_nums=PATCH_NUMS,
        init_adaln_gamma=0.5,
        init_head=1.0,
    )
    return VarTransformer(config).eval(), tokenizer


def test_cached_generation_reproduces_the_full_forward_and_guides_with_a_ramp(monkeypatch):
    # Record what each scale sampled from, then recompute every scale's logits with one full (masked) forward on the
    # sampled pyramid, for the labels and for the unconditional class. With t_k = cfg·k/(K − 1), k = 0..5, the
    # guided logits must be (1 + t_k)·cond − t_k·uncond: t = 0, 0.4, 0.8, 1.2, 1.6, 2.0 for cfg 2.
    model, tokenizer = tiny_pair()
    seen = []
    real = sampling.sample_tokens

    def spy(logits, top_k, top_p, generator):
        tokens = real(logits, top_k, top_p, generator)
        seen.append((logits.clone(), tokens.clone()))
        return tokens

    monkeypatch.setattr(sampling, "sample_tokens", spy)
    labels = torch.tensor([3, 8])
    images = sampling.generate(model, tokenizer, labels, 2.0, 0, 0.0, torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 32, 32)
    assert len(seen) == 6

    maps = [tokens.view(2, p, p) for (_, tokens), p in zip(seen, PATCH_NUMS, strict=True)]
    inputs = tokenizer.teacher_forcing_input(maps)
    with torch.no_grad():
        conditional = model(labels, inputs)
        unconditional = model(torch.full_like(labels, 10), inputs)
    for k, ((guided, _), start, end) in enumerate(zip(seen, (0, *ENDS[:-1]), ENDS, strict=True)):
        t = 2.0 * k / 5
        expected = (1 + t) * conditional[:, start:end] - t * unconditional[:, start:end]
        assert torch.allclose(guided, expected, atol=1e-4), k
    # The picture is the tokenizer's decoding of the sampled pyramid.
    assert torch.allclose(images, tokenizer.decode(maps), atol=1e-5)


def test_the_same_seed_gives_the_same_samples():
    model, tokenizer = tiny_pair()
    labels = torch.tensor([0, 1, 2])
    first = sampling.generate(model, tokenizer, labels, 1.5, 10, 0.9, torch.Generator().manual_seed(7))
    again = sampling.generate(model, tokenizer, labels, 1.5, 10, 0.9, torch.Generator().manual_seed(7))
    other = sampling.generate(model, tokenizer, labels, 1.5, 10, 0.9, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.min() >= -1 and first.max() <= 1


@pytest.mark.parametrize("cfg", [0.0, 4.0])
def test_guidance_at_the_first_scale_is_always_off(cfg, monkeypatch):
    # t_0 = cfg·0/(K − 1) = 0: the first token is drawn from the conditional logits whatever cfg is.
    model, tokenizer = tiny_pair()
    seen = []
    real = sampling.sample_tokens

    def spy(logits, top_k, top_p, generator):
        seen.append(logits.clone())
        return real(logits, top_k, top_p, generator)

    monkeypatch.setattr(sampling, "sample_tokens", spy)
    labels = torch.tensor([5])
    sampling.generate(model, tokenizer, labels, cfg, 0, 0.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        conditional = model(labels, torch.zeros(1, 0, 8), scale_index=0)
    assert torch.allclose(seen[0], conditional, atol=1e-5)

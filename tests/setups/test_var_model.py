"""The VAR transformer: block-causal mask, normalised attention, initialisation, truncation to a stage's tokens."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from curricurun.param_groups import VAR_NO_DECAY_NAMES, split_decay_groups
from curricurun.setups.var.attention import SelfAttention, block_causal_mask, token_levels
from curricurun.setups.var.model import VarConfig, VarTransformer

PATCH_NUMS = (1, 2, 3, 4, 6, 8)  # the tiny pyramid: e_k = 1, 5, 14, 30, 66, 130
ENDS = (1, 5, 14, 30, 66, 130)


def tiny_config(**changes) -> VarConfig:
    values = dict(
        depth=2,
        width=48,
        num_heads=2,
        num_classes=10,
        vocab_size=32,
        token_channels=8,
        patch_nums=PATCH_NUMS,
        class_dropout=0.0,
        init_adaln_gamma=0.5,  # gates far from 0, so the blocks change the output
    )
    return VarConfig(**{**values, **changes})


def model_and_inputs(seed: int = 0, batch: int = 3, **changes):
    torch.manual_seed(seed)
    model = VarTransformer(tiny_config(**changes)).eval()
    labels = torch.tensor([1, 4, 7][:batch])
    inputs = torch.randn(batch, ENDS[-1] - 1, 8)
    return model, labels, inputs


def test_token_ends_are_the_cumulative_squares_of_the_patch_numbers():
    # 1, 1+4, 5+9, 14+16, 30+36, 66+64
    assert tiny_config().token_ends == ENDS


def test_the_mask_lets_each_token_see_its_own_and_coarser_scales_only():
    # Patch numbers (1, 2): levels [0, 1, 1, 1, 1]. The start token sees itself; the four 2×2 tokens see all five.
    mask = block_causal_mask(token_levels((1, 2)), 5)
    expected = torch.tensor([[True, False, False, False, False]] + [[True] * 5] * 4)
    assert torch.equal(mask, expected)
    # Cut to a stage: the top-left e_p × e_p block of the full mask.
    full = block_causal_mask(token_levels(PATCH_NUMS), 130)
    assert torch.equal(block_causal_mask(token_levels(PATCH_NUMS), 14), full[:14, :14])
    # Scale 2's 9 tokens (positions 5..13) see 14 keys, scale 3's (14..29) see 30.
    assert full[5:14].sum(dim=1).tolist() == [14] * 9
    assert full[14:30].sum(dim=1).tolist() == [30] * 16


@pytest.mark.parametrize("l2_norm", [True, False])
def test_attention_matches_the_formula_written_out(l2_norm):
    torch.manual_seed(0)
    attention = SelfAttention(width=8, num_heads=2, l2_norm=l2_norm)
    with torch.no_grad():
        attention.q_bias.normal_()
        attention.v_bias.normal_()
        if l2_norm:  # head 0 at log 1000 is clamped to log 100; head 1 at log 3 is not
            attention.scale_mul_1H11.copy_(torch.tensor([math.log(1000.0), math.log(3.0)]).view(1, 2, 1, 1))
    x = torch.randn(2, 5, 8)
    mask = block_causal_mask(token_levels((1, 2)), 5)
    out = attention(x, mask)

    w = attention.mat_qkv.weight
    q = x @ w[:8].T + attention.q_bias
    k = x @ w[8:16].T  # no key bias
    v = x @ w[16:].T + attention.v_bias
    heads = []
    for h, multiplier in enumerate((100.0, 3.0)):
        qh, kh, vh = (t[..., 4 * h : 4 * h + 4] for t in (q, k, v))
        if l2_norm:
            scores = multiplier * F.normalize(qh, dim=-1) @ F.normalize(kh, dim=-1).transpose(1, 2)
        else:
            scores = 0.25 / math.sqrt(4) * qh @ kh.transpose(1, 2)  # VAR's 0.25/√d, not 1/√d
        scores = scores.masked_fill(~mask, -math.inf)
        heads.append(scores.softmax(dim=-1) @ vh)
    expected = attention.proj(torch.cat(heads, dim=-1))
    assert torch.allclose(out, expected, atol=1e-5)


def test_a_stage_computes_attention_over_its_first_e_s_tokens_only():
    model, labels, inputs = model_and_inputs()
    lengths, masks = [], []

    def record(module, args):
        lengths.append(args[0].shape[1])
        masks.append(tuple(args[1].shape))

    for block in model.blocks:
        block.attn.register_forward_pre_hook(record)
    for stage, end in enumerate(ENDS):
        lengths.clear()
        masks.clear()
        logits = model(labels, inputs[:, : end - 1], scale_index=stage)
        assert logits.shape == (3, end, 32)
        assert lengths == [end, end]  # both blocks
        assert masks == [(end, end), (end, end)]


def test_a_truncated_stage_gives_the_same_logits_as_the_prefix_of_the_full_sequence():
    # Block-causal: token t never sees a finer scale, so cutting the sequence after scale p leaves its logits as is.
    model, labels, inputs = model_and_inputs()
    with torch.no_grad():
        full = model(labels, inputs)
        for stage, end in enumerate(ENDS[:-1]):
            part = model(labels, inputs[:, : end - 1], scale_index=stage)
            assert torch.allclose(part, full[:, :end], atol=1e-5), stage


def test_the_wrong_number_of_teacher_forcing_tokens_is_refused():
    model, labels, inputs = model_and_inputs()
    with pytest.raises(ValueError, match="expected 13 teacher-forcing tokens, got 129"):
        model(labels, inputs, scale_index=2)
    with pytest.raises(ValueError, match="outside 0..5"):
        model(labels, inputs, scale_index=6)


def test_stage_zero_keeps_the_unused_word_embedding_in_the_graph_with_a_zero_gradient():
    model, labels, inputs = model_and_inputs()
    model(labels, inputs[:, :0], scale_index=0).sum().backward()
    assert model.word_embed.weight.grad is not None
    assert torch.count_nonzero(model.word_embed.weight.grad) == 0
    assert torch.count_nonzero(model.class_emb.weight.grad) > 0


def test_class_dropout_in_training_replaces_labels_by_the_unconditional_class():
    model, labels, inputs = model_and_inputs(class_dropout=1.0)
    with torch.no_grad():
        unconditional = model(torch.full_like(labels, 10), inputs)  # eval mode: no dropout
        model.train()
        dropped = model(labels, inputs)
        model.eval()
        conditional = model(labels, inputs)
    assert torch.allclose(dropped, unconditional, atol=1e-6)
    assert not torch.allclose(conditional, unconditional, atol=1e-3)


def test_shared_adaln_has_one_projection_and_a_learned_bias_per_block():
    model, labels, inputs = model_and_inputs(shared_adaln=True)
    assert model.shared_ada_lin is not None
    assert [tuple(block.ada_gss.shape) for block in model.blocks] == [(1, 1, 6, 48)] * 2
    assert not any(hasattr(block, "ada_lin") for block in model.blocks)
    assert model(labels, inputs).shape == (3, 130, 32)


def _unit_multipliers(**changes) -> VarConfig:
    return tiny_config(init_head=1.0, init_adaln=1.0, init_adaln_gamma=1.0, **changes)


@pytest.mark.parametrize("shared", [False, True])
def test_initialisation_follows_vars_rules(shared):
    # Same seed, same draws: the multipliers hd, aln, alng are exact factors against a model built with all three at 1.
    torch.manual_seed(0)
    plain = VarTransformer(_unit_multipliers(shared_adaln=shared))
    torch.manual_seed(0)
    var = VarTransformer(tiny_config(init_head=0.02, init_adaln=0.5, init_adaln_gamma=1e-5, shared_adaln=shared))
    assert torch.equal(var.head.weight, plain.head.weight * 0.02)
    assert torch.count_nonzero(var.head.bias) == 0
    assert torch.equal(var.head_nm.ada_lin[-1].weight, plain.head_nm.ada_lin[-1].weight * 0.5)
    for block, reference in zip(var.blocks, plain.blocks, strict=True):
        if shared:  # slots 0-1 are the gates γ₁, γ₂; 2-5 the scales and shifts
            assert torch.equal(block.ada_gss[:, :, :2], reference.ada_gss[:, :, :2] * 1e-5)
            assert torch.equal(block.ada_gss[:, :, 2:], reference.ada_gss[:, :, 2:] * 0.5)
        else:  # rows [0, 2C) are the gates
            weight, unit = block.ada_lin[-1].weight, reference.ada_lin[-1].weight
            assert torch.equal(weight[:96], unit[:96] * 1e-5)
            assert torch.equal(weight[96:], unit[96:] * 0.5)
        assert torch.equal(block.attn.scale_mul_1H11, torch.full((1, 2, 1, 1), math.log(4.0)))
        assert torch.count_nonzero(block.attn.q_bias) == 0


def test_initial_standard_deviations_are_sqrt_one_third_c_and_the_residual_outputs_are_divided():
    # Width 384: std √(1/(3·384)) = 1/√1152 = 0.02946; attn.proj and ffn.fc2 are divided by √(2·depth) = 2.
    torch.manual_seed(0)
    model = VarTransformer(_unit_multipliers(width=384, num_heads=6, shared_adaln=True))
    std = 1 / math.sqrt(1152)
    block = model.blocks[0]
    assert block.attn.mat_qkv.weight.std().item() == pytest.approx(std, rel=0.01)  # 442,368 draws
    assert model.pos_1LC.std().item() == pytest.approx(std, rel=0.02)
    assert model.class_emb.weight.std().item() == pytest.approx(std, rel=0.05)
    assert block.attn.proj.weight.std().item() == pytest.approx(std / 2, rel=0.02)
    assert block.ffn.fc2.weight.std().item() == pytest.approx(std / 2, rel=0.02)
    assert block.ada_gss.std().item() == pytest.approx(1 / math.sqrt(384), rel=0.1)  # randn/√C before the multipliers


def test_drop_path_rises_linearly_to_the_last_block():
    # depth 3: torch.linspace(0, 0.3, 3) = 0, 0.15, 0.3; depth 1: [0].
    model = VarTransformer(tiny_config(depth=3, drop_path_rate=0.3))
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in model.blocks]
    assert rates == pytest.approx([0.0, 0.15, 0.3])
    single = VarTransformer(tiny_config(depth=1, drop_path_rate=0.3))
    assert isinstance(single.blocks[0].drop_path, torch.nn.Identity)


def test_vars_no_decay_keys_exempt_the_tables_scales_and_block_biases():
    model = VarTransformer(tiny_config(shared_adaln=True))
    exempt = set(split_decay_groups(model, VAR_NO_DECAY_NAMES, decay_embeddings=True)[1]["names"])
    decayed = set(split_decay_groups(model, VAR_NO_DECAY_NAMES, decay_embeddings=True)[0]["names"])
    assert {"pos_start", "pos_1LC", "lvl_embed.weight", "blocks.0.ada_gss", "blocks.1.attn.scale_mul_1H11"} <= exempt
    assert {"blocks.0.attn.q_bias", "head.bias"} <= exempt  # 1-D
    # VAR decays the class embedding (an nn.Embedding not in its key list) and every matrix.
    assert {"class_emb.weight", "word_embed.weight", "blocks.0.attn.mat_qkv.weight", "head.weight"} <= decayed
    engine_rule = split_decay_groups(model, VAR_NO_DECAY_NAMES)  # the engine's default: embeddings not decayed
    assert "class_emb.weight" in engine_rule[1]["names"]

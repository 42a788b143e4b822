"""Weight-decay parameter groups: biases, norms, embeddings and named keys are exempt (VAR lr_control.py:68-88)."""

import torch
from torch import nn

from curricurun.lr import apply_to_optimizer
from curricurun.param_groups import VAR_NO_DECAY_NAMES, split_decay_groups


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.class_emb = nn.Embedding(10, 4)  # 40 weights
        self.pos_1LC = nn.Parameter(torch.zeros(1, 3, 4))  # 12, in VAR's key list
        self.proj = nn.Linear(4, 4)  # 16 weights + 4 bias
        self.norm = nn.LayerNorm(4)  # 4 weight + 4 bias
        self.conv = nn.Conv2d(4, 2, 3)  # 2·4·3·3 = 72 weights + 2 bias
        self.frozen = nn.Linear(4, 1)  # 4 + 1, frozen below
        self.frozen.requires_grad_(False)


def _by_flag(groups):
    return {g["weight_decay_applies"]: g for g in groups}


def test_biases_norms_and_embeddings_are_not_decayed():
    groups = _by_flag(split_decay_groups(TinyModel()))
    assert groups[True]["names"] == ["pos_1LC", "proj.weight", "conv.weight"]
    assert groups[False]["names"] == ["class_emb.weight", "proj.bias", "norm.weight", "norm.bias", "conv.bias"]
    assert groups[False]["weight_decay"] == 0.0


def test_named_keys_are_not_decayed_by_substring_match():
    groups = _by_flag(split_decay_groups(TinyModel(), no_decay_names=VAR_NO_DECAY_NAMES))
    assert groups[True]["names"] == ["proj.weight", "conv.weight"]
    assert "pos_1LC" in groups[False]["names"]


def test_var_rule_decays_embeddings_but_not_its_key_list():
    # VAR: ndim > 1, not a bias, not in the key list → decayed; its class embedding is decayed.
    groups = _by_flag(split_decay_groups(TinyModel(), VAR_NO_DECAY_NAMES, decay_embeddings=True))
    assert groups[True]["names"] == ["class_emb.weight", "proj.weight", "conv.weight"]


def test_frozen_parameters_are_left_out_of_both_groups():
    names = [n for g in split_decay_groups(TinyModel()) for n in g["names"]]
    assert not any(n.startswith("frozen") for n in names)


def test_groups_hold_the_parameter_objects_named_in_them():
    model = TinyModel()
    params = dict(model.named_parameters())
    for group in split_decay_groups(model):
        assert all(p is params[n] for p, n in zip(group["params"], group["names"], strict=True))


def test_a_model_with_only_exempt_parameters_gives_one_group():
    groups = split_decay_groups(nn.LayerNorm(8))
    assert [g["weight_decay_applies"] for g in groups] == [False]


def test_groups_feed_an_optimizer_that_decays_only_the_decayed_group():
    # AdamW decoupled decay: p ← p − lr·wd·p before the Adam step; with zero gradient the Adam step is 0,
    # so a decayed weight of 1 becomes 1 − 0.1 × 0.5 = 0.95 and an exempt one stays 1.
    model = nn.Linear(2, 2)
    nn.init.ones_(model.weight)
    nn.init.ones_(model.bias)
    opt = torch.optim.AdamW(split_decay_groups(model), lr=1.0)
    apply_to_optimizer(opt, lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.allclose(model.weight, torch.full((2, 2), 0.95))
    assert torch.equal(model.bias, torch.ones(2))


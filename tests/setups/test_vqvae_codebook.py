"""The codebook options VAR does not use: k-means init, EMA updates with Laplace smoothing, dead-code restart."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from setup_helpers import small_vqvae_config

from curricurun.param_groups import split_decay_groups
from curricurun.setups.vqvae.codebook import CodebookOptions, CodebookUpkeep, kmeans
from curricurun.setups.vqvae.quantizer import MultiScaleResidualQuantizer, QuantizerOutput
from curricurun.setups.vqvae.vqvae import VQVAE

TINY = small_vqvae_config()


def _output(vectors: list[list[float]], codes: list[int], vocab: int) -> QuantizerOutput:
    """A one-scale quantiser output assigning ``vectors`` to ``codes`` (the only fields the upkeep reads)."""
    index = torch.tensor(codes).view(1, 1, -1)
    hits = torch.bincount(index.flatten(), minlength=vocab).float()[None]
    return QuantizerOutput(torch.zeros(()), torch.zeros(()), hits, torch.zeros(1), [index], [torch.tensor(vectors)])


def test_kmeans_finds_three_well_separated_clusters():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    points = centres.repeat_interleave(50, 0) + 0.01 * torch.randn(150, 2, generator=generator)
    found = kmeans(points, 3, 10, generator)
    nearest = torch.cdist(found, centres).min(1)
    assert nearest.values.max() < 0.01
    assert sorted(nearest.indices.tolist()) == [0, 1, 2]


def test_ema_update_worked_by_hand_with_laplace_smoothing():
    quantizer = MultiScaleResidualQuantizer(2, 1, (1,), quant_resi=0.0)
    with torch.no_grad():
        quantizer.embedding.weight.copy_(torch.tensor([[0.0], [10.0]]))
    upkeep = CodebookUpkeep(CodebookOptions(update="ema", ema_decay=0.5, ema_epsilon=0.5), quantizer)
    upkeep.after_quantising(quantizer, _output([[1.0], [3.0], [9.0]], [0, 0, 1], vocab=2))
    # Start: N = (1, 1) (one virtual hit), M = e = (0, 10). Batch: n = (2, 1), sums (1 + 3, 9) = (4, 9).
    # N = 0.5·1 + 0.5·n = (1.5, 1.0); M = 0.5·(0, 10) + 0.5·(4, 9) = (2, 9.5); ΣN = 2.5.
    # Laplace: Ñ = (N + 0.5) / (2.5 + 2·0.5) · 2.5 = (2·2.5/3.5, 1.5·2.5/3.5); e = M / Ñ = (1.4, 8.8667).
    torch.testing.assert_close(upkeep.ema_count, torch.tensor([1.5, 1.0]))
    torch.testing.assert_close(upkeep.ema_sum, torch.tensor([[2.0], [9.5]]))
    torch.testing.assert_close(quantizer.embedding.weight, torch.tensor([[1.4], [9.5 * 3.5 / 3.75]]))
    assert not quantizer.embedding.weight.requires_grad


def test_codes_never_chosen_are_restarted_on_vectors_of_the_batch_and_used_codes_stay():
    quantizer = MultiScaleResidualQuantizer(4, 2, (1,), quant_resi=0.0)
    before = quantizer.embedding.weight.detach().clone()
    upkeep = CodebookUpkeep(CodebookOptions(dead_code_restart=True, dead_code_threshold=1.0), quantizer)
    vectors = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    upkeep.after_quantising(quantizer, _output(vectors, [0, 0, 0], vocab=4))
    weight = quantizer.embedding.weight.detach()
    assert torch.equal(weight[0], before[0])
    assert all(row.tolist() in vectors for row in weight[1:])
    # usage (first record: the hits) = (3, 0, 0, 0); restarted codes are reset to the threshold
    assert upkeep.usage.tolist() == [3.0, 1.0, 1.0, 1.0]


def test_restart_is_deterministic_given_the_update_count():
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        quantizer = MultiScaleResidualQuantizer(8, 2, (1,), quant_resi=0.0)
        upkeep = CodebookUpkeep(CodebookOptions(dead_code_restart=True), quantizer)
        upkeep.after_quantising(quantizer, _output([[float(i), 0.0] for i in range(10)], [0] * 10, vocab=8))
        results.append(quantizer.embedding.weight.detach().clone())
    assert torch.equal(*results)


def test_kmeans_init_replaces_the_codebook_once_on_the_first_training_batch():
    torch.manual_seed(0)
    model = VQVAE(TINY, CodebookOptions(init="kmeans", kmeans_iterations=5)).train()
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        targets = model.quantize.exact_residual_targets(model.encode_latent(images))
        expected = kmeans(targets, TINY.vocab_size, 5, torch.Generator().manual_seed(0))
        model(images)
    assert bool(model.codebook_upkeep.initialised)
    torch.testing.assert_close(model.quantize.embedding.weight, expected)
    with torch.no_grad():
        model(torch.rand(8, 1, 16, 16) * 2 - 1)  # a second batch does not re-initialise
    torch.testing.assert_close(model.quantize.embedding.weight, expected)


def test_evaluation_forwards_leave_the_codebook_alone():
    model = VQVAE(TINY, CodebookOptions(update="ema", init="kmeans", dead_code_restart=True)).eval()
    before = model.quantize.embedding.weight.detach().clone()
    with torch.no_grad():
        model(torch.rand(4, 1, 16, 16) * 2 - 1)
    assert torch.equal(model.quantize.embedding.weight, before)
    assert int(model.codebook_upkeep.updates) == 0


def test_an_ema_codebook_is_left_out_of_the_optimizer():
    model = VQVAE(TINY, CodebookOptions(update="ema"))
    names = [name for group in split_decay_groups(model) for name in group["names"]]
    assert "quantize.embedding.weight" not in names
    assert "quantize.quant_resi.0.weight" in names


@pytest.mark.parametrize(
    ("options", "expected"),
    [(CodebookOptions(), False), (CodebookOptions(update="ema"), True), (CodebookOptions(init="kmeans"), True)],
)
def test_the_upkeep_module_exists_only_when_an_option_is_on(options, expected):
    assert (VQVAE(TINY, options).codebook_upkeep is not None) is expected


RANKS_SCRIPT = """
import torch
import torch.distributed as dist
from curricurun.setups.vqvae.codebook import CodebookOptions, CodebookUpkeep
from curricurun.setups.vqvae.quantizer import MultiScaleResidualQuantizer

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)  # the same starting weights on both ranks, as Accelerate's set_seed gives
quantizer = MultiScaleResidualQuantizer(16, 2, (1, 2, 4), quant_resi=0.5, share_quant_resi=2)
options = CodebookOptions(update="ema", init="kmeans", dead_code_restart=True, kmeans_iterations=3)
upkeep = CodebookUpkeep(options, quantizer)
generator = torch.Generator().manual_seed(100 + rank)  # different data on each rank
for _ in range(3):
    f = torch.randn(2 + rank, 2, 4, 4, generator=generator)  # and a different batch size
    upkeep.before_quantising(quantizer, f)
    upkeep.after_quantising(quantizer, quantizer(f))
weights = [torch.empty_like(quantizer.embedding.weight) for _ in range(2)]
dist.all_gather(weights, quantizer.embedding.weight.detach().contiguous())
assert torch.equal(weights[0], weights[1])
print("same codebook on both ranks")
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_ranks_with_different_batches_keep_the_same_codebook(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    port = str(29600 + os.getpid() % 1000)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    result = subprocess.run(
        [*command, str(script)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("same codebook on both ranks") == 2

"""ET++ replay buffer: fresh/replayed mix per batch, FIFO eviction, fp16 host storage, stages, the fresh sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe

from curricurun.curriculum import build
from curricurun.data.replay import FreshSampler, ReplayBuffer, ReplayStages, fresh_positions, planned_host_bytes
from curricurun.errors import UserError
from curricurun.plan import PlanConfig, TrainingPlan
from curricurun.recipe.schema import ReplayConfig

CHUNKS, FRESH = 4, 8  # 8 fresh samples in 4 chunks of 2


def fresh_batch(value: float, size: int = FRESH) -> dict[str, torch.Tensor]:
    """A batch whose every pixel is ``value`` + the row number / 1000, so a row tells which batch and row it is."""
    rows = torch.arange(size, dtype=torch.float32)
    image = (value + rows / 1000)[:, None, None, None].expand(size, 1, 3, 3).contiguous()
    return {"image": image, "label": torch.full((size,), int(value)), "index": rows.long() + 100 * int(value)}


def chunk_values(batch: dict[str, torch.Tensor]) -> list[int]:
    """The batch number of each replayed chunk (the label column says which fresh batch a row came from)."""
    return batch["label"][FRESH:].view(-1, FRESH // CHUNKS)[:, 0].tolist()


def test_a_batch_is_the_fresh_part_then_replay_times_minus_one_times_chunks_whole_chunks():
    buffer = ReplayBuffer(buffer_size=3, replay_times=4, chunks=CHUNKS)
    generator = torch.Generator().manual_seed(0)
    for value in range(3):
        batch = buffer.combine(fresh_batch(value), generator)
    # 8 fresh rows + (4 − 1)·4 chunks of 2 rows = 32 rows: replay_times × the fresh batch.
    assert len(batch["image"]) == len(batch["label"]) == len(batch["index"]) == 4 * FRESH
    fresh = fresh_batch(2)
    assert all(torch.equal(batch[key][:FRESH], fresh[key]) for key in fresh)  # the fresh part first, unchanged
    replayed = batch["index"][FRESH:].view(-1, 2)
    for first, second in replayed.tolist():  # each drawn chunk is two consecutive rows of one stored batch
        assert second == first + 1 and first % 2 == 0 and first % 100 < FRESH
    assert set(chunk_values(batch)) <= {0, 1, 2}


def test_the_first_batch_replays_its_own_chunks_drawn_uniformly_with_replacement():
    buffer = ReplayBuffer(buffer_size=5, replay_times=4, chunks=CHUNKS)
    batch = buffer.combine(fresh_batch(7), torch.Generator().manual_seed(3))
    # Only the fresh batch is held, so the 12 drawn chunks are its own, in the order torch.randint(4, (12,))
    # draws them from the same seed; 12 draws from 4 chunks must repeat some (with replacement).
    expected_ids = torch.randint(4, (12,), generator=torch.Generator().manual_seed(3)).tolist()
    drawn_ids = [first // 2 for first in batch["index"][FRESH:].view(-1, 2)[:, 0].tolist()]
    assert [i - 700 // 2 for i in drawn_ids] == expected_ids
    assert len(set(expected_ids)) < len(expected_ids)


def test_fifo_eviction_keeps_exactly_the_last_buffer_size_fresh_batches():
    buffer = ReplayBuffer(buffer_size=3, replay_times=9, chunks=CHUNKS)  # 32 chunks drawn per batch
    generator = torch.Generator().manual_seed(1)
    seen_after = {}
    for value in range(6):
        batch = buffer.combine(fresh_batch(value), generator)
        seen_after[value] = set(chunk_values(batch))
        assert len(buffer) == min(value + 1, 3) * CHUNKS
    # Batch t draws from batches t−2..t only: the oldest go first. 32 draws over 12 chunks hit all three.
    assert seen_after[0] == {0}
    assert seen_after[1] == {0, 1}
    assert seen_after[2] == {0, 1, 2}
    assert seen_after[3] == {1, 2, 3}
    assert seen_after[5] == {3, 4, 5}


def test_the_buffer_holds_fp16_images_and_its_host_bytes_are_counted_exactly():
    buffer = ReplayBuffer(buffer_size=2, replay_times=2, chunks=CHUNKS)
    generator = torch.Generator().manual_seed(0)
    for value in range(3):
        buffer.combine(fresh_batch(value + 1 / 3), generator)
    # 2 batches × (8 images × 1·3·3 fp16 = 144 B + 8 int64 labels = 64 B + 8 int64 indices = 64 B) = 544 B.
    assert buffer.host_bytes() == 2 * (8 * 9 * 2 + 64 + 64) == 544
    assert buffer.host_bytes() == planned_host_bytes(2, FRESH, channels=1, side=3)
    batch = buffer.combine(fresh_batch(1 / 3), torch.Generator().manual_seed(0))
    # Replayed rows went through fp16 (1/3 is not representable) and come back as float32; fresh rows did not.
    assert batch["image"].dtype == torch.float32
    assert batch["image"][0, 0, 0, 0].item() == pytest.approx(1 / 3, abs=1e-7)
    replayed = batch["image"][FRESH:, 0, 0, 0]
    assert torch.equal(replayed, replayed.half().float()) and replayed.dtype == torch.float32


def test_replay_times_one_passes_the_fresh_batch_through_and_stores_nothing():
    buffer = ReplayBuffer(buffer_size=4, replay_times=1, chunks=CHUNKS)
    fresh = fresh_batch(1)
    assert buffer.combine(fresh, torch.Generator()) is fresh
    assert len(buffer) == 0 and buffer.host_bytes() == 0


def test_a_fresh_batch_that_does_not_split_into_equal_chunks_is_refused():
    with pytest.raises(ValueError, match="does not split into 4 equal chunks"):
        ReplayBuffer(buffer_size=2, replay_times=2, chunks=4).combine(fresh_batch(1, size=6), torch.Generator())


def test_planned_host_ram_reproduces_the_reference_resnet50_figure():
    # _ET_pp_wReplay_main_res50.py at 96 px: 1920 batches × 512/4 = 128 images per GPU = 245,760 images;
    # images 245,760 × 3·96·96 × 2 B = 13,589,544,960 B (13.6 GB), labels + indices 245,760 × 16 B.
    assert planned_host_bytes(1920, 128, 3, 96) == 13_589_544_960 + 245_760 * 16


def test_fresh_positions_walk_the_epochs_and_drop_a_short_tail():
    # Dataset of 10, fresh sizes 4, 4, 2, 2, 4, 4, 4: epoch 0 at offsets 0, 4 and 8 (8 + 2 = 10 fits);
    # 10 + 2 > 10 → epoch 1 at 0, then 2 and 6 (6 + 4 = 10 fits); 10 + 4 > 10 → epoch 2 at 0.
    epochs, offsets = fresh_positions(np.array([4, 4, 2, 2, 4, 4, 4]), 10)
    assert epochs.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert offsets.tolist() == [0, 4, 8, 0, 2, 6, 0]


def et_plan(global_batch: int = 64, accumulation: int = 1, world_size: int = 1) -> TrainingPlan:
    """ET++ at base 28 on 6400 samples, budget 2 epochs: 12 px for 20% of compute, 20 px for 40%, 28 px after."""
    curriculum = build([{"name": "low_frequency_crop", "schedule": "et++", "base_resolution": 28, "size_increment": 4}])
    config = PlanConfig(
        dataset_size=6400,
        world_size=world_size,
        global_batch=global_batch,
        accumulation=accumulation,
        budget_epochs=2,
        full_resolution=28,
    )
    return TrainingPlan(config, curriculum)


ET_REPLAY = ReplayConfig(replay_times=[4, 4, 2, 2, 2, 2, 1, 1, 1, 1], buffer_size=[8, 8, 4, 4, 4, 4, 0, 0, 0, 0])


def test_replay_stages_follow_the_compute_fraction_like_the_bandwidth_stages():
    plan = et_plan()
    stages = ReplayStages(ET_REPLAY.model_copy(update={"chunks": 8}), plan, world_size=1)
    for step in range(plan.total_steps):
        bandwidth, fresh = plan.states[step].bandwidth, int(stages.fresh_batches[step])
        # B = 12 ↔ stages 0-1 (×4: 16 fresh of 64), B = 20 ↔ 2-5 (×2: 32), B = 28 ↔ 6-9 (×1: all 64 fresh).
        assert fresh == {12: 16, 20: 32, 28: 64}[bandwidth]


def test_the_fresh_sampler_gives_each_rank_its_share_of_the_fresh_samples_once_per_pass():
    plan = et_plan(global_batch=64, world_size=2)
    stages = ReplayStages(ET_REPLAY.model_copy(update={"chunks": 8}), plan, world_size=2)
    samplers = [FreshSampler(stages, seed=5, rank=rank, world_size=2) for rank in range(2)]
    ranks = [list(sampler) for sampler in samplers]
    by_epoch: dict[int, list[int]] = {}
    for step, (rank0, rank1) in enumerate(zip(*ranks, strict=True)):
        assert len(rank0) == len(rank1) == stages.fresh_batches[step] // 2  # 8, 16 or 32 per rank
        assert {key.bandwidth for key in rank0 + rank1} == {plan.states[step].bandwidth}
        by_epoch.setdefault(int(samplers[0].epoch_index[step]), []).extend(key.index for key in rank0 + rank1)
    # Within one pass over the 6400 samples no sample is fresh twice; there are several passes.
    assert len(by_epoch) > 1
    assert all(len(indices) == len(set(indices)) for indices in by_epoch.values())


def test_replay_needs_no_accumulation_and_fresh_batches_in_whole_chunks():
    with pytest.raises(UserError, match="accumulation 1"):
        ReplayStages(ET_REPLAY, et_plan(accumulation=2), world_size=1)
    # 64 / 4 = 16 fresh samples per process do not make 32 whole chunks.
    with pytest.raises(
        UserError, match=r"fresh batch of 16 per process, which must be a whole multiple of chunks \(32\)"
    ):
        ReplayStages(ET_REPLAY, et_plan(), world_size=1)


def test_the_host_ram_of_each_replaying_stage_is_stated_at_its_largest_image():
    plan = et_plan()
    stages = ReplayStages(ET_REPLAY.model_copy(update={"chunks": 8}), plan, world_size=1)
    lines = stages.host_ram_lines(1, lambda step: plan.states[step].bandwidth)
    # Stage 0: 8 batches × 16 images × (12·12·2 + 16) B = 128 × 304 = 38,912 B; stage 2: 4 × 32 × (20·20·2 + 16)
    # = 128 × 816 = 104,448 B. Stages 6-9 do not replay.
    assert lines[0] == (
        "replay buffer, stage 0: ×4 from the last 8 fresh batches of 16 images 1×12×12 fp16 = 38.91 kB"
        " of host RAM per process"
    )
    assert lines[2].startswith("replay buffer, stage 2: ×2 from the last 4 fresh batches of 32 images 1×20×20")
    assert lines[2].endswith("= 104.45 kB of host RAM per process")
    assert len(lines) == 6


@pytest.mark.parametrize(
    ("replay", "message"),
    [
        ({"replay_times": [4, 2], "buffer_size": [8]}, "one entry per stage each, got 2 and 1"),
        ({"replay_times": [], "buffer_size": []}, "one entry per stage each, got 0 and 0"),
        (
            {"replay_times": [4, 1], "buffer_size": [0, 0]},
            "stage 0 replays (replay_times > 1) but its 'buffer_size' is 0",
        ),
        ({"replay_times": [0], "buffer_size": [1]}, "greater than 0"),
    ],
)
def test_a_replay_section_with_mismatched_or_empty_stages_is_rejected(replay, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReplayConfig(**replay)


@needs_fashion_mnist
def test_training_with_replay_feeds_the_model_full_batches_of_fresh_and_replayed_samples(tmp_path):
    # 640 samples, per-device 16, budget 1 epoch; replay ×4 for the first half of compute (12 and 20 px stages
    # of the ET++ table at 28), none after. Fresh batch 4 in 4 chunks of 1.
    recipe = small_recipe(
        tmp_path,
        data={"replay": {"replay_times": [4, 1], "buffer_size": [6, 0], "chunks": 4}, "max_eval_samples": 50},
        curriculum=[
            {"name": "low_frequency_crop", "schedule": "et++", "base_resolution": 28, "size_increment": 4},
        ],
        training={"epochs": None, "budget_epochs": 1, "eval": {"every_epochs": 1}},
    )
    trace_dir = tmp_path / "trace"
    result = run_cli(
        ["train", str(recipe), "--output-dir", str(tmp_path / "run")], env={"CURRICURUN_SAMPLE_TRACE": str(trace_dir)}
    )
    assert "replay buffer, stage 0: ×4 from the last 6 fresh batches of 4 images 1×20×20 fp16" in result.stderr
    lines = [json.loads(line) for line in (trace_dir / "samples-rank0.jsonl").read_text().splitlines()][:-1]
    first_half = [line for line in lines if line["stage"]["bandwidth"] in (12, 20)]
    second_half = [line for line in lines if line["stage"]["bandwidth"] == 28]
    assert first_half and second_half
    assert all(line["shape"][0] == 16 for line in lines)  # the model always trains full batches
    # Replayed rows repeat fresh ones: the first step holds its 4 fresh samples, each 4 times in all on average.
    assert len(set(lines[0]["indices"])) <= 4
    assert all(len(set(line["indices"])) == 16 for line in second_half)
    # Fresh samples walk the data: the first 4 indices of each replaying step are new until the pass ends.
    fresh = [index for line in first_half for index in line["indices"][:4]]
    assert len(fresh) < 640 and len(fresh) == len(set(fresh))

"""The training plan and the planned batch sampler: data order, stages and resume points."""

from __future__ import annotations

import torch

from curricurun.curriculum.base import StageState
from curricurun.data.sampler import PlannedBatchSampler, epoch_permutation
from curricurun.plan import PlanConfig, TrainingPlan


class HalfSizeThenFull:
    """A two-stage test curriculum: half resolution for the first 40% of steps."""

    def state_at(self, progress):
        return StageState(resolution=14 if progress.step_fraction < 0.4 else 28)

    def sample_cost(self, state, full_resolution):
        return (state.resolution / full_resolution) ** 2


class GrowingBatch:
    def state_at(self, progress):
        return StageState(batch_size=8 if progress.step < 5 else 16)

    def sample_cost(self, state, full_resolution):
        return 1.0


def test_epochs_mode_drops_the_tail_of_each_epoch_and_counts_steps_per_full_epoch():
    # 1000 samples, global batch 64: 15 steps per epoch (960 samples, 40 dropped); 2.5 epochs -> round(37.5) = 38 steps
    plan = TrainingPlan(PlanConfig(dataset_size=1000, world_size=2, global_batch=64, epochs=2.5))
    assert plan.steps_per_epoch == 15
    assert plan.total_steps == 38
    assert plan.epoch_index[14] == 0 and plan.epoch_index[15] == 1 and plan.epoch_offset[15] == 0
    assert plan.epoch_at(15) == 1.0
    assert plan.relative_compute() == 1.0


def test_compute_budget_mode_trains_more_steps_when_early_steps_are_cheaper():
    # Budget 2 full epochs = 2 * 15 = 30 full-size step costs. A step at 14 px costs (14/28)^2 = 0.25.
    plan = TrainingPlan(
        PlanConfig(dataset_size=1000, world_size=1, global_batch=64, budget_epochs=2, full_resolution=28),
        HalfSizeThenFull(),
    )
    cheap = sum(1 for s in plan.states if s.resolution == 14)
    full = plan.total_steps - cheap
    assert abs(cheap * 0.25 + full * 1.0 - 30) < 1.0
    assert plan.total_steps > 30
    # The cheap stage covers 40% of the steps (the fixed point of the length iteration).
    assert abs(cheap / plan.total_steps - 0.4) <= 1 / plan.total_steps


def test_relative_compute_of_a_resolution_curriculum_in_epochs_mode():
    # 30 steps; steps 0..11 (step_fraction < 0.4) at 0.25 cost: (12*0.25 + 18) / 30 = 0.7
    plan = TrainingPlan(
        PlanConfig(dataset_size=1000, world_size=1, global_batch=64, epochs=2, full_resolution=28), HalfSizeThenFull()
    )
    assert plan.total_steps == 30
    assert abs(plan.relative_compute() - 0.7) < 1e-9
    assert [(a, b) for a, b, _ in plan.stages()] == [(0, 12), (12, 30)]


def test_ranks_get_disjoint_samples_that_cover_each_global_batch():
    plan = TrainingPlan(PlanConfig(dataset_size=200, world_size=2, global_batch=32, accumulation=2, steps=12))
    per_rank = [list(PlannedBatchSampler(plan, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert all(len(batches) == 12 * 2 for batches in per_rank)
    for step in range(12):
        got = []
        for rank in range(2):
            for micro in range(2):
                got += [key.index for key in per_rank[rank][step * 2 + micro]]
        expected = epoch_permutation(200, 3, int(plan.epoch_index[step]))
        offset = int(plan.epoch_offset[step])
        assert sorted(got) == sorted(expected[offset : offset + 32].tolist())
        assert len(set(got)) == 32


def test_one_epoch_across_ranks_is_a_permutation_without_repeats():
    plan = TrainingPlan(PlanConfig(dataset_size=96, world_size=2, global_batch=16, epochs=1))
    seen = [k.index for r in range(2) for batch in PlannedBatchSampler(plan, 0, r, 2) for k in batch]
    assert sorted(seen) == list(range(96))


def test_starting_at_a_step_yields_exactly_the_tail_of_the_uninterrupted_order():
    plan = TrainingPlan(PlanConfig(dataset_size=100, world_size=1, global_batch=16, epochs=3))
    full = list(PlannedBatchSampler(plan, seed=7, rank=0, world_size=1))
    tail = list(PlannedBatchSampler(plan, seed=7, rank=0, world_size=1, start_step=8))
    assert tail == full[8:]
    assert plan.epoch_index[8] == 1  # the resume point is inside the second epoch


def test_epochs_use_different_permutations_and_the_same_seed_repeats_them():
    assert not torch.equal(epoch_permutation(50, 0, 0), epoch_permutation(50, 0, 1))
    assert torch.equal(epoch_permutation(50, 0, 1), epoch_permutation(50, 0, 1))


def test_sample_keys_carry_the_stage_of_their_step():
    plan = TrainingPlan(
        PlanConfig(dataset_size=1000, world_size=1, global_batch=64, epochs=1, full_resolution=28), HalfSizeThenFull()
    )
    batches = list(PlannedBatchSampler(plan, seed=0, rank=0, world_size=1))
    assert {k.resolution for k in batches[0]} == {14}
    assert {k.resolution for k in batches[-1]} == {28}


def test_batch_size_curriculum_changes_the_global_batch_and_never_straddles_epochs():
    plan = TrainingPlan(PlanConfig(dataset_size=100, world_size=2, global_batch=16, steps=20), GrowingBatch())
    assert list(plan.global_batches[:6]) == [8, 8, 8, 8, 8, 16]
    for step in range(plan.total_steps):
        assert plan.epoch_offset[step] + plan.global_batches[step] <= 100
    sizes = [len(b) for b in PlannedBatchSampler(plan, 0, 0, 2)]
    assert sizes[:6] == [4, 4, 4, 4, 4, 8]

"""EfficientTrain++'s replay buffer: when the loader is the bottleneck, train on each decoded sample several times.

What the reference does (``engine_buffer.py`` L39-92, ``main_buffer.py`` L428-434):

1. the loader makes ``1/replay_times`` of the batch (the launcher divides the per-GPU batch by it);
2. the fresh batch is stored on the host as fp16, cut into ``chunks`` (32) chunks;
3. once more than ``buffer_size`` batches' worth of chunks are held, the oldest batch's chunks go (FIFO);
4. the training batch is the fresh batch plus ``(replay_times − 1) · chunks`` chunks drawn uniformly **with
   replacement** from the whole buffer, the fresh chunks included;
5. mixup runs afterwards on the whole batch; replayed samples keep their crop, RandAugment and erasing;
6. the number of optimizer steps is unchanged (the launcher divides the loader epochs by ``replay_times``),
   so each step still trains a full batch and costs a full batch of model compute;
7. the buffer restarts empty at every stage (each stage is a new process) and is not checkpointed.

Here: :class:`ReplayBuffer` is items 2-4 on plain tensors; :class:`ReplayStages` holds one buffer per stage
(the stages are equal slices of the compute budget, like the ET++ bandwidth stages, so a buffer never mixes
image sizes) and knows each step's fresh batch; :class:`FreshSampler` feeds the loader only the fresh part,
walking the epoch permutations with the fresh batch sizes (so each pass over the data still sees every
sample once, as the reference's loader epochs do). As in the reference, a resumed run starts with an empty
buffer, so with replay on a resumed run is not bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch

from curricurun.curriculum.low_frequency_crop import stage_index
from curricurun.data.sampler import PlannedBatchSampler
from curricurun.errors import UserError

FP16_BYTES = 2
LABEL_AND_INDEX_BYTES = 16  # int64 label + int64 dataset index per sample


def planned_host_bytes(buffer_size: int, fresh_per_device: int, channels: int, side: int) -> int:
    """Host RAM of a full buffer on one process: ``buffer_size`` fresh batches of fp16 images plus labels.

    ResNet-50 at 96 px (``_ET_pp_wReplay_main_res50.py``): 1920 batches × 128 images × 3·96·96 × 2 bytes =
    13.59 GB of images per process (245,760 images, 13.6 GB; ``_ET_pp_wReplay_main_res50.py`` L21-22).
    """
    return buffer_size * fresh_per_device * (channels * side * side * FP16_BYTES + LABEL_AND_INDEX_BYTES)


class ReplayBuffer:
    """The last ``buffer_size`` fresh batches, cut into chunks, stored as fp16 on the host; FIFO eviction.

    Args:
        buffer_size: fresh batches held (the reference's ``--replay_buffer_size``); the fresh batch of the
            current step is one of them.
        replay_times: a training batch is ``replay_times`` × the fresh batch.
        chunks: chunks per fresh batch (``--replay_buffer_split_factor``, 32); the fresh batch size must be a
            multiple of it, so every training batch has exactly ``replay_times`` × fresh samples.
    """

    def __init__(self, buffer_size: int, replay_times: int, chunks: int = 32):
        if replay_times < 1 or chunks < 1:
            raise ValueError(f"replay_times and chunks must be at least 1, got {replay_times} and {chunks}")
        if replay_times > 1 and buffer_size < 1:
            raise ValueError("a buffer that replays (replay_times > 1) needs buffer_size >= 1")
        self.buffer_size, self.replay_times, self.chunks = buffer_size, replay_times, chunks
        self._slots: list[dict[str, torch.Tensor]] = []
        self._oldest = 0  # slot overwritten next once the buffer is full

    def __len__(self) -> int:
        """Chunks held."""
        return len(self._slots) * self.chunks

    def host_bytes(self) -> int:
        """Bytes of tensor storage held now."""
        return sum(tensor.nbytes for slot in self._slots for tensor in slot.values())

    def combine(self, fresh: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Store ``fresh`` and return it followed by ``(replay_times − 1) · chunks`` chunks drawn from the buffer.

        The fresh rows come first and unchanged (stored copies are fp16; the fresh part is not rounded); drawn
        floating-point chunks are cast back to the fresh batch's dtype. ``generator`` draws the chunk ids.
        """
        if self.replay_times == 1:
            return fresh
        size = len(next(iter(fresh.values())))
        if size % self.chunks:
            raise ValueError(f"fresh batch of {size} samples does not split into {self.chunks} equal chunks")
        self._store(fresh)
        chunk = size // self.chunks
        drawn = torch.randint(len(self), ((self.replay_times - 1) * self.chunks,), generator=generator).tolist()
        out = {}
        for key, tensor in fresh.items():
            parts = [tensor]
            for chunk_id in drawn:
                slot, part = divmod(chunk_id, self.chunks)
                parts.append(self._slots[slot][key][part * chunk : (part + 1) * chunk].to(tensor.dtype))
            out[key] = torch.cat(parts)
        return out

    def _store(self, fresh: dict[str, torch.Tensor]) -> None:
        stored = {
            key: tensor.detach().to("cpu", torch.float16 if tensor.is_floating_point() else tensor.dtype, copy=True)
            for key, tensor in fresh.items()
        }
        if len(self._slots) < self.buffer_size:
            self._slots.append(stored)
            return
        self._slots[self._oldest] = stored  # evict the oldest fresh batch: first in, first out
        self._oldest = (self._oldest + 1) % self.buffer_size


class ReplayStages:
    """Per-step replay settings of a plan and the buffer of the current stage.

    Stage k of n covers the compute fraction [k/n, (k+1)/n) of the plan (ET++'s stage axis,
    ``_ET_pp_main_res50.py`` L37-63), read before each step as the curricula read it.

    Args:
        config: the recipe's ``data.replay`` (``replay_times``, ``buffer_size``, ``chunks`` per stage).
        plan: the training plan (global batch and compute fraction per step).
        world_size: processes; each rank keeps its own buffer of its own fresh samples.
    """

    def __init__(self, config, plan, world_size: int):
        self.config, self.plan, self.world_size = config, plan, world_size
        if plan.config.accumulation != 1:
            raise UserError(
                f"data.replay: needs batch.accumulation 1 (the reference asserts update_freq == 1), "
                f"got {plan.config.accumulation}"
            )
        stages = len(config.replay_times)
        self.stage = np.asarray(
            [stage_index(plan.compute_fraction_at(step), stages) for step in range(plan.total_steps)], dtype=np.int64
        )
        times = np.asarray(config.replay_times, dtype=np.int64)[self.stage]
        for batch, replay in {(int(b), int(r)) for b, r in zip(plan.global_batches, times, strict=True)}:
            per_device = batch // world_size
            if replay > 1 and (batch % (replay * world_size) or (per_device // replay) % config.chunks):
                raise UserError(
                    f"data.replay: a global batch of {batch} on {world_size} process(es) with replay_times {replay}"
                    f" gives a fresh batch of {per_device / replay:g} per process, which must be a whole multiple"
                    f" of chunks ({config.chunks})"
                )
        self.fresh_batches = plan.global_batches // times
        self._buffer: ReplayBuffer | None = None
        self._buffer_key: tuple | None = None

    def combine(self, step: int, fresh: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The training batch of ``step``.

        A new stage, or a new sample shape inside one (a bandwidth stage of a curriculum whose stages are not
        the replay stages), starts a new, empty buffer: the reference starts every stage in a new process
        (item 7), and chunks of two image sizes cannot form one batch.
        """
        stage = int(self.stage[step])
        key = (stage, *(tuple(tensor.shape[1:]) for tensor in fresh.values()))
        if key != self._buffer_key:
            self._buffer = ReplayBuffer(
                self.config.buffer_size[stage], self.config.replay_times[stage], self.config.chunks
            )
            self._buffer_key = key
        return self._buffer.combine(fresh, generator)

    def host_ram_lines(self, channels: int, side_at_step) -> list[str]:
        """One line per replaying stage: the host RAM its full buffer needs on each process.

        ``side_at_step(step)`` is the side of the images the loader delivers at that step (the bandwidth when the
        loader resizes, else the resolution).
        """
        lines = []
        for stage, (times, size) in enumerate(zip(self.config.replay_times, self.config.buffer_size, strict=True)):
            steps = np.flatnonzero(self.stage == stage)
            if times == 1 or not len(steps):
                continue
            side = max(side_at_step(int(step)) for step in steps)
            fresh = int(self.fresh_batches[steps].max()) // self.world_size
            need = planned_host_bytes(size, fresh, channels, side)
            lines.append(
                f"replay buffer, stage {stage}: ×{times} from the last {size} fresh batches of {fresh} images"
                f" {channels}×{side}×{side} fp16 = {_decimal_bytes(need)} of host RAM per process"
            )
        return lines


class FreshSampler(PlannedBatchSampler):
    """Yields this rank's fresh samples of steps ``start_step .. stop_step`` when the replay buffer is on.

    The planned sampler with another walk: step s takes the next ``fresh_batches[s]`` positions of the current
    epoch's permutation (the same permutations); when fewer remain, the epoch's tail is dropped and the next
    epoch starts (:func:`fresh_positions`). Each rank takes its contiguous share of the step's fresh samples
    (replay runs without accumulation, so a step is one micro-batch).
    """

    def __init__(
        self,
        replay: ReplayStages,
        seed: int,
        rank: int,
        world_size: int,
        start_step: int = 0,
        stop_step: int | None = None,
        loader_applies_bandwidth: bool = True,
    ):
        self.fresh_batches = replay.fresh_batches
        super().__init__(replay.plan, seed, rank, world_size, start_step, stop_step, loader_applies_bandwidth)

    def _walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.fresh_batches, *fresh_positions(self.fresh_batches, self.plan.config.dataset_size))


def fresh_positions(fresh_batches: np.ndarray, dataset_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Epoch and offset of each step's fresh samples: consecutive windows, a too-short epoch tail dropped."""
    epochs = np.zeros(len(fresh_batches), dtype=np.int64)
    offsets = np.zeros(len(fresh_batches), dtype=np.int64)
    epoch = position = 0
    for step, size in enumerate(fresh_batches.tolist()):
        if position + size > dataset_size:
            epoch, position = epoch + 1, 0
        epochs[step], offsets[step] = epoch, position
        position += size
    return epochs, offsets


def _decimal_bytes(count: int) -> str:
    """``13.59 GB``, ``1.23 MB``: decimal units, as ET++'s TRAINING.md states the reference's needs."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count} B"

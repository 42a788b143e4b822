"""Evaluation with exact metrics across ranks.

Each rank evaluates a contiguous shard of the split (no sample twice, no padding), the setup returns sums,
and the sums are all-reduced: the metric is exactly what one process would compute on the whole split.
Sums may be tensors of any shape (a per-scale code histogram, say): they are flattened into one vector for a
single all-reduce and given back their shapes afterwards.

Metrics that are not sums (COCO keypoint AP sorts every prediction of the split by score) come from per-sample
records: a setup with ``evaluation_step`` returns them beside its sums, every rank's records are gathered in rank
order, which is sample order because the shards are contiguous, and every rank computes the same metrics from the
whole list (so early stopping takes the same decision everywhere).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from curricurun.data.staged import checked_batch, shard_bounds

CLASSIFICATION_EVAL_BATCH = 256  # images of 28-224 px: a large batch costs little memory and saves loader overhead


@torch.no_grad()
def evaluate(
    setup, model, eval_data, resolution: int, batch_size: int, accelerator, recipe, samples=None
) -> dict[str, float]:
    """The setup's metrics on the whole evaluation split, exactly as one process would compute them.

    ``samples``: the run's sample pipeline (:func:`~curricurun.data.sample_pipeline.open_sample_pipeline`, opened
    here when not given).
    """
    from curricurun.data.sample_pipeline import open_sample_pipeline
    from curricurun.setups.base import optional_hooks

    samples = samples or open_sample_pipeline(recipe)
    start, stop = shard_bounds(len(eval_data), accelerator.process_index, accelerator.num_processes)
    dataset = samples.evaluation_dataset(eval_data, resolution, start, stop)
    with_records = optional_hooks(setup).record_metrics
    # Record-based setups (detection, pose) run at their training batch size: their images are large.
    eval_batch = batch_size if with_records else max(batch_size, CLASSIFICATION_EVAL_BATCH)
    loader = DataLoader(dataset, batch_size=eval_batch, collate_fn=samples.collate, num_workers=recipe.data.num_workers)
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    records: list = []
    for batch in loader:
        batch = {k: v.to(accelerator.device) for k, v in checked_batch(batch).items()}
        with accelerator.autocast():
            if with_records is not None:
                sums, batch_records = with_records.evaluation_step(model, batch)
                records.extend(batch_records)
            else:
                sums = setup.evaluation_sums(model, batch)
        for key, value in sums.items():
            totals[key] = totals.get(key, 0) + value.detach().double()
    summed = _all_reduce_sums(totals, accelerator)
    fid = {}
    if recipe.training.eval.generative is not None:  # training.eval.generative: FID of fresh samples, eval mode
        from curricurun.metrics.in_training import generative_metrics

        fid = generative_metrics(setup, model, eval_data, resolution, samples, recipe, accelerator)
    model.train(was_training)
    metrics = {**setup.metrics_from_sums(summed), **fid}
    if with_records is not None:
        metrics.update(with_records.metrics_from_records(_gather_records(records, accelerator)))
    return metrics


def _gather_records(records: list, accelerator) -> list:
    """Every rank's records, rank 0's first: with contiguous shards that is the split's sample order."""
    if accelerator.num_processes == 1:
        return records
    from accelerate.utils import gather_object

    return gather_object(records)


def _all_reduce_sums(totals: dict[str, torch.Tensor], accelerator) -> dict[str, torch.Tensor | float]:
    """Sum every rank's totals; scalars come back as floats, other shapes as CPU float64 tensors.

    A rank whose shard was empty has no totals; the keys and shapes of the other ranks are not known to it, so
    every rank must see at least one batch (true whenever the split has at least ``world_size`` samples).
    """
    keys = sorted(totals) or ["count"]
    parts = [torch.as_tensor(totals.get(k, 0.0), dtype=torch.float64, device=accelerator.device) for k in keys]
    shapes = [part.shape for part in parts]
    flat = torch.cat([part.reshape(-1) for part in parts])
    summed = accelerator.reduce(flat, "sum") if accelerator.num_processes > 1 else flat
    result: dict[str, torch.Tensor | float] = {}
    offset = 0
    for key, shape in zip(keys, shapes, strict=True):
        size = int(torch.Size(shape).numel())
        value = summed[offset : offset + size].reshape(shape).cpu()
        result[key] = float(value) if value.dim() == 0 else value
        offset += size
    return result


def first_evaluation_batch(eval_data, resolution: int, count: int, device, samples=None) -> dict[str, torch.Tensor]:
    """The first ``count`` evaluation samples as one batch: the fixed inputs of reconstruction/sample pictures.

    ``samples``: the run's sample pipeline; None reads labelled images with the ``small_images`` eval transform.
    """
    stop = min(count, len(eval_data))
    if samples is None:
        from curricurun.data.staged import EvalDataset, collate
        from curricurun.data.transforms import EvalTransform

        dataset, collate_fn = EvalDataset(eval_data, EvalTransform(), resolution, 0, stop), collate
    else:
        dataset, collate_fn = samples.evaluation_dataset(eval_data, resolution, 0, stop), samples.collate
    batch = checked_batch(collate_fn([dataset[i] for i in range(len(dataset))]))
    return {k: v.to(device) for k, v in batch.items()}

"""The training loop a user would write without curricurun, as the other arm of bench/loader_throughput.py.

torchvision ``ImageFolder`` + timm's ``create_transform(224, is_training=True, auto_augment="rand-m9-mstd0.5-inc1",
interpolation="bicubic")`` + ``DataLoader`` (shuffled, ``drop_last``) + the same timm model, AdamW and label-smoothed
cross-entropy as the ``classification`` setup. Run: ``python bench/plain_timm_loop.py ROOT STEPS WORKERS BATCH``.
"""

from __future__ import annotations

import sys

import timm
import torch
from timm.data import auto_augment, create_transform
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from curricurun.data.pipelines.randaugment import posterize_keeping_zero_bits


def main(root: str, steps: int, workers: int, batch: int) -> None:
    torch.manual_seed(0)
    transform = create_transform(224, is_training=True, auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic")
    for op in transform.transforms[2].ops:  # Pillow 13: timm's own posterize raises at 0 bits
        if op.aug_fn is auto_augment.posterize:
            op.aug_fn = posterize_keeping_zero_bits
    folder = ImageFolder(f"{root}/train", transform=transform)
    loader = DataLoader(folder, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers)
    model = timm.create_model("test_convnext", num_classes=len(folder.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model.train()
    done = 0
    while done < steps:
        for images, labels in loader:
            loss = torch.nn.functional.cross_entropy(model(images), labels, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    print(f"plain loop: {done} steps, last loss {float(loss.detach()):.4f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))

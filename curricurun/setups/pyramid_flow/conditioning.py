"""Optional text conditioning from precomputed embeddings, in place of class labels.

Pyramid-Flow trains on pre-extracted text features and drops the caption with probability 0.1 for guidance, using
the embedding of the empty prompt as the null condition (``pipeline`` L193, L606-614, L653-656;
issues #160/#181). We keep one pooled vector per class or per sample: a safetensors file with

- ``embeddings``: float ``[N, D]``: row c for class c (``per: class``) or row i for the split's sample i
  (``per: sample``);
- ``null`` (optional): float ``[D]``, the empty prompt's embedding; zeros when absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from curricurun.errors import UserError


class TextEmbeddings:
    """The embedding table, held by the setup (a frozen helper) and moved to the batch's device on use."""

    def __init__(self, path: Path, per: Literal["class", "sample"], num_classes: int):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if path.suffix != ".safetensors" or not path.is_file():
            raise UserError(f"setup.text_embeddings: expected an existing .safetensors file, got '{path}'")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise UserError(f"setup.text_embeddings: {path} is not a readable safetensors file ({error})") from None
        table = tensors.get("embeddings")
        if table is None or table.dim() != 2 or not table.is_floating_point():
            raise UserError(f"setup.text_embeddings: {path} needs a float tensor 'embeddings' of shape [N, D]")
        null = tensors.get("null", torch.zeros(table.shape[1]))
        if null.shape != (table.shape[1],):
            raise UserError(f"setup.text_embeddings: 'null' must have shape [{table.shape[1]}], got {list(null.shape)}")
        if per == "class" and table.shape[0] != num_classes:
            raise UserError(
                f"setup.text_embeddings: per class needs {num_classes} rows (one per class), got {table.shape[0]}"
            )
        self.per, self.table, self.null = per, table.float(), null.float()

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def rows(self, keys: torch.Tensor) -> torch.Tensor:
        """Embeddings of class labels (``per: class``) or sample indices (``per: sample``), on ``keys``' device."""
        if int(keys.max()) >= self.table.shape[0] or int(keys.min()) < 0:
            raise UserError(
                f"setup.text_embeddings: {self.per} index {int(keys.max())} outside the table's"
                f" {self.table.shape[0]} rows"
            )
        return self.table.to(keys.device)[keys]

    def conditions(self, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The batch's embeddings: by label or by sample index, as the table is keyed."""
        return self.rows(labels if self.per == "class" else indices)

    def drop(self, embeddings: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
        """Replace the rows where ``dropped`` is true by the null embedding (caption dropout)."""
        return torch.where(dropped[:, None], self.null.to(embeddings.device), embeddings)

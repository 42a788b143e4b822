"""Optional per-rank record of what each step trained on: a debugging aid for sharding and curricula.

Set ``CURRICURUN_SAMPLE_TRACE=DIR`` and every rank writes ``DIR/samples-rank<k>.jsonl``: one line per
micro-batch with the step, the dataset indices it loaded, the image tensor's shape, the stage fields and the
shapes of the tensors the model's forward actually received (VAR's truncated token sequence, Pyramid-Flow's
stage segments: what a curriculum changes inside the setup, measured at the model), and a final line with a
digest of the rank's weights. With it a user (or a test) can check that ranks saw disjoint samples, trained
the same stage at every step and ended with identical weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from curricurun.curriculum.base import StageState

ENVIRONMENT_VARIABLE = "CURRICURUN_SAMPLE_TRACE"


class SampleTrace:
    """Writes nothing unless the environment variable names a directory."""

    def __init__(self, rank: int):
        folder = os.environ.get(ENVIRONMENT_VARIABLE)
        self.path = Path(folder) / f"samples-rank{rank}.jsonl" if folder else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
        self._model_inputs: list[list[list[int]]] = []

    def attach(self, model: torch.nn.Module) -> None:
        """Record the shapes of the tensors each forward call of ``model`` receives (only when tracing)."""
        if self.path is not None:
            model.register_forward_pre_hook(self._capture, with_kwargs=True)

    def _capture(self, module, args, kwargs) -> None:
        tensors = [*args, *kwargs.values()]
        self._model_inputs.append([list(t.shape) for t in tensors if isinstance(t, torch.Tensor)])

    def begin(self) -> None:
        """Forget forward calls made since the last record (evaluation, pictures)."""
        self._model_inputs = []

    def record(
        self, step: int, micro: int, epoch_index: int, batch: dict[str, torch.Tensor], stage: StageState
    ) -> None:
        if self.path is None:
            return
        image = batch["image"]
        line = {
            "step": step,
            "micro": micro,
            "epoch_index": epoch_index,
            "indices": batch["index"].tolist(),
            "shape": list(image.shape),
            "first_image_sum": float(image[0].double().sum()),
            "stage": stage.as_dict(),
            "model_inputs": self._model_inputs,
        }
        with self.path.open("a") as stream:
            stream.write(json.dumps(line) + "\n")

    def finish(self, model: torch.nn.Module, lr: float) -> None:
        if self.path is None:
            return
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        with self.path.open("a") as stream:
            stream.write(json.dumps({"final_weights_sha256": digest.hexdigest(), "last_lr": lr}) + "\n")

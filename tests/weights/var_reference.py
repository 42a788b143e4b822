"""The committed VAR reference fixtures (``tests/fixtures/var_reference/``) and the weights they were made with.

``tools/build_var_reference_fixtures.py`` ran FoundationVision/VAR's own ``VQVAE`` and ``VAR`` classes on CPU with
the weights below and stored their outputs. The weights are not stored (a VQ-VAE of VAR's structure has 4.6 M
parameters even at the smallest width its GroupNorm(32) allows): every float parameter is a pure function of its
name and shape (a generator seeded by the name's CRC32), and ``<name>.layout.json`` records VAR's key order, shapes
and per-tensor sums, so a test rebuilds exactly the state dict VAR's classes produced and checks the sums.
VAR's buffers (derived values and statistics) are stored as they were, in ``<name>.buffers.safetensors``.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "var_reference"
SEED = 20


def generated_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A non-trivial float tensor determined by ``name`` and ``shape`` only (fan-in-scaled Gaussians)."""
    generator = torch.Generator().manual_seed(SEED * 1_000_003 + zlib.crc32(name.encode()))
    noise = torch.randn(shape, generator=generator)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("scale_mul_1H11"):
        return math.log(4.0) + 0.2 * noise
    if leaf == "weight" and len(shape) >= 2:
        return noise / math.sqrt(math.prod(shape[1:]))
    if leaf == "weight":  # norms
        return 1.0 + 0.1 * noise
    return 0.05 * noise  # biases, positions, gates


def reference_state(name: str) -> dict[str, torch.Tensor]:
    """The state dict VAR's class produced for fixture ``name``, in VAR's key order and names (checked sums)."""
    from safetensors.torch import load_file

    layout = json.loads((FIXTURES / f"{name}.layout.json").read_text())
    buffers = load_file(str(FIXTURES / f"{name}.buffers.safetensors"))
    state = {}
    for key, entry in layout["keys"].items():
        state[key] = buffers[key] if key in buffers else generated_tensor(key, tuple(entry["shape"]))
        total = float(state[key].double().sum()) if key not in buffers else entry["sum"]
        assert math.isclose(total, entry["sum"], rel_tol=1e-9, abs_tol=1e-9), f"{key}: regenerated weights differ"
    return state


def reference_outputs(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURES / f"{name}.outputs.safetensors"))


def layout_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key → shape of a layout recorded on the meta device (the full-size VQ-VAE and d16…d36)."""
    layout = json.loads((FIXTURES / "layouts.json").read_text())[name]
    return {key: tuple(shape) for key, shape in layout.items()}


PATCH_NUMS = "[1,2,3,4,6,8]"
TOKENIZER_SETS = ["setup.ch=32", "setup.vocab_size=512", "setup.z_channels=16", f"setup.patch_nums={PATCH_NUMS}",
                  "data.image_size=128"]  # fmt: skip
"""``recipes/vqvae_var.yaml`` narrowed to the fixture's VQ-VAE (VAR's structure at ch 32, V 512, Cvae 16, 128 px)."""
TRANSFORMER_OPTIONS = {"var_d2": ["setup.depth=2"], "var_d3_saln": ["setup.depth=3", "setup.shared_adaln=true"]}


def sets(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


def transformer_sets(name: str, tokenizer: Path | None) -> list[str]:
    """``recipes/var_d16.yaml`` narrowed to fixture ``name`` (on the fixture's tokenizer when given)."""
    values = ["setup.vocab_size=512", "setup.token_channels=16", f"setup.patch_nums={PATCH_NUMS}",
              "setup.num_classes=10", "data.image_size=128", *TRANSFORMER_OPTIONS[name]]  # fmt: skip
    values.append(f"setup.tokenizer={tokenizer}" if tokenizer else "setup.tokenizer=null")
    return values

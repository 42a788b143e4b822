"""Run FoundationVision/VAR's own classes on CPU once and write the fixtures of ``tests/weights/``.

VAR's code is not part of curricurun: pass the path of a checkout (``git clone https://github.com/FoundationVision/VAR``).

    python tools/build_var_reference_fixtures.py --var-repo /tmp/var_ref            # writes the fixtures
    python tools/build_var_reference_fixtures.py --var-repo /tmp/var_ref \\
        --check-export vqvae exported_vae.pth                                      # strict=True load + outputs
    python tools/build_var_reference_fixtures.py --var-repo /tmp/var_ref --check-export var_d2 exported_var.pth

Fixtures (``tests/fixtures/var_reference/``): for the reduced-width VQ-VAE of VAR's structure (``VQVAE`` with ch 32,
V 512, Cvae 16, patch numbers 1,2,3,4,6,8 for 128-pixel images) and two small VAR transformers on it (depth 2; depth 3
with shared adaLN), the key layout and sums, VAR's buffers, and VAR's outputs on four scikit-image photos: per-scale
indices (``img_to_idxBl``), the decode of those indices (``idxBl_to_img``), the teacher-forcing input
(``idxBl_to_var_input``) and the logits with class dropout off. ``layouts.json`` holds key → shape of the full-size
``vae_ch160v4096z32`` and of VAR-d16/d20/d24/d30 (256 px) and d36 (512 px, shared adaLN), parameters on meta.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from weights.var_reference import FIXTURES, generated_tensor  # noqa: E402

PATCH_NUMS = (1, 2, 3, 4, 6, 8)
PN256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
IMAGE_SIZE = 128
VQVAE_ARGS = {"vocab_size": 512, "z_channels": 16, "ch": 32, "share_quant_resi": 4, "v_patch_nums": PATCH_NUMS}
TRANSFORMERS = {"var_d2": {"depth": 2, "shared_aln": False}, "var_d3_saln": {"depth": 3, "shared_aln": True}}
LABELS = [1, 3, 5, 7]
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def photos() -> torch.Tensor:
    """Four scikit-image photos, centre-cropped square and resized to 128 px (uint8 [4, 3, 128, 128])."""
    from PIL import Image
    from skimage import data

    images = []
    for name in PHOTOS:
        array = getattr(data, name)()
        side = min(array.shape[:2])
        top, left = (array.shape[0] - side) // 2, (array.shape[1] - side) // 2
        square = Image.fromarray(array[top : top + side, left : left + side])
        crop = square.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        images.append(torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1))
    return torch.stack(images)


def build_vqvae(models, **overrides):
    return models.VQVAE(test_mode=True, **{**VQVAE_ARGS, **overrides})


def build_var(models, vae, depth: int, shared_aln: bool, patch_nums=PATCH_NUMS, num_classes=10):
    return models.VAR(
        vae_local=vae, num_classes=num_classes, depth=depth, embed_dim=64 * depth, num_heads=depth,
        drop_path_rate=0.1 * depth / 24, norm_eps=1e-6, shared_aln=shared_aln, cond_drop_rate=0.0,
        attn_l2_norm=True, patch_nums=patch_nums, flash_if_available=False, fused_if_available=False,
    )


def fill(model: torch.nn.Module) -> tuple[dict, dict[str, torch.Tensor]]:
    """Give every float parameter its generated value; returns (layout, buffers) as the fixtures store them."""
    state = model.state_dict()
    parameters = dict(model.named_parameters())
    buffers = {key: value.clone().contiguous() for key, value in state.items() if key not in parameters}
    filled = {key: (buffers[key] if key in buffers else generated_tensor(key, tuple(value.shape)))
              for key, value in state.items()}
    model.load_state_dict(filled, strict=True)
    layout = {"keys": {key: {"shape": list(value.shape), "sum": float(value.double().sum())}
                       for key, value in filled.items()}}
    return layout, buffers


@torch.no_grad()
def vqvae_outputs(vae, images_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
    images = images_uint8.float() / 127.5 - 1.0
    indices = vae.img_to_idxBl(images)
    outputs = {"images_uint8": images_uint8}
    outputs.update({f"indices.{k}": index.contiguous() for k, index in enumerate(indices)})
    outputs["decoded"] = vae.idxBl_to_img(indices, same_shape=True, last_one=True).contiguous()
    outputs["teacher_forcing_input"] = vae.quantize.idxBl_to_var_input(indices).contiguous()
    return outputs


@torch.no_grad()
def transformer_outputs(var, labels: torch.Tensor, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    var.eval()
    return {"labels": labels, "logits": var(labels, inputs).contiguous()}


def write(name: str, layout: dict, buffers: dict, outputs: dict) -> None:
    from safetensors.torch import save_file

    (FIXTURES / f"{name}.layout.json").write_text(json.dumps(layout) + "\n")
    save_file(buffers, str(FIXTURES / f"{name}.buffers.safetensors"))
    save_file(outputs, str(FIXTURES / f"{name}.outputs.safetensors"))


def meta_layouts(models) -> dict[str, dict[str, list[int]]]:
    """Key → shape of VAR's released configurations (``models/__init__.py:9-33``), on the meta device."""
    pn512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)  # utils/arg_util.py:244-249
    layouts = {}
    from accelerate import init_empty_weights  # parameters on "meta"; VAR's .item() calls still run on the CPU

    with init_empty_weights():
        vae = models.VQVAE(vocab_size=4096, z_channels=32, ch=160, test_mode=True, share_quant_resi=4)
        layouts["vae_ch160v4096z32"] = {k: list(v.shape) for k, v in vae.state_dict().items()}
        for depth in (16, 20, 24, 30):
            var = build_var(models, vae, depth, False, num_classes=1000, patch_nums=PN256)
            layouts[f"var_d{depth}"] = {k: list(v.shape) for k, v in var.state_dict().items()}
        vae512 = models.VQVAE(vocab_size=4096, z_channels=32, ch=160, test_mode=True, v_patch_nums=pn512)
        var = build_var(models, vae512, 36, True, num_classes=1000, patch_nums=pn512)
        layouts["var_d36_512"] = {k: list(v.shape) for k, v in var.state_dict().items()}
    return layouts


def build_fixtures(models) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    vae = build_vqvae(models).eval()
    layout, buffers = fill(vae)
    outputs = vqvae_outputs(vae, photos())
    write("vqvae", layout, buffers, outputs)
    labels = torch.tensor(LABELS)
    for name, options in TRANSFORMERS.items():
        var = build_var(models, vae, **options)
        layout, buffers = fill(var)
        write(name, layout, buffers, transformer_outputs(var, labels, outputs["teacher_forcing_input"]))
    (FIXTURES / "layouts.json").write_text(json.dumps(meta_layouts(models)) + "\n")
    print(f"wrote {FIXTURES}")


def check_export(models, kind: str, path: Path) -> None:
    """Load an exported file with strict=True into VAR's class and compare its outputs with the fixtures."""
    from safetensors.torch import load_file

    state = torch.load(path, map_location="cpu", weights_only=True)
    reference = load_file(str(FIXTURES / "vqvae.outputs.safetensors"))
    vae = build_vqvae(models).eval()
    if kind == "vqvae":
        vae.load_state_dict(state, strict=True)
        outputs = vqvae_outputs(vae, reference["images_uint8"])
    else:
        var = build_var(models, vae, **TRANSFORMERS[kind])
        var.load_state_dict(state, strict=True)
        inputs = reference["teacher_forcing_input"]
        reference = load_file(str(FIXTURES / f"{kind}.outputs.safetensors"))
        outputs = transformer_outputs(var, reference["labels"], inputs)
    for key, value in outputs.items():
        diff = (value.double() - reference[key].double()).abs().max().item()
        print(f"{kind} {key}: max |diff| {diff:.3g} ({'equal' if torch.equal(value, reference[key]) else 'differs'})")
    print(f"{path}: loaded with strict=True into VAR's {'VQVAE' if kind == 'vqvae' else 'VAR'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-repo", type=Path, required=True, help="a FoundationVision/VAR checkout")
    parser.add_argument("--check-export", nargs=2, metavar=("KIND", "FILE"), help="vqvae|var_d2|var_d3_saln FILE")
    args = parser.parse_args()
    sys.path.insert(0, str(args.var_repo))
    torch.set_num_threads(1)
    import models  # VAR's package: models/__init__.py exports VQVAE, VAR

    if args.check_export:
        check_export(models, args.check_export[0], Path(args.check_export[1]))
    else:
        build_fixtures(models)


if __name__ == "__main__":
    main()

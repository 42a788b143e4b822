"""``setup.model_kwargs`` of the classification setup: every mistake is one line, and no key reaches a file loader.

timm's ``create_model(checkpoint_path=...)`` hands the file to ``torch.load`` and a ``pretrained_cfg_overlay``
may name a ``file`` (timm ``_builder.py``), which would bypass the safetensors-only rule of ``setup.weights``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from curricurun import cli
from curricurun.errors import UserError
from curricurun.setups.classification import ClassificationParams, ClassificationSetup

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"

REFUSED = [
    ("{checkpoint_path: /tmp/model.pth}", "'checkpoint_path' would load a file"),
    ("{pretrained_cfg_overlay: {file: /tmp/model.pth}}", "'pretrained_cfg_overlay' would load a file"),
    ("{pretrained_cfg: {file: /tmp/model.pth}}", "'pretrained_cfg' would load a file"),
    ("{pretrained: true}", "'pretrained' is set by the setup"),
    ("{num_classes: 3}", "'num_classes' is set by the setup: use setup.num_classes"),
    ("3", "expected a mapping, got 3"),
]


@pytest.mark.parametrize(("value", "expected"), REFUSED, ids=[case[0] for case in REFUSED])
def test_validate_refuses_with_one_line(value: str, expected: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.run(["validate", str(DEMO), "--set", f"setup.model_kwargs={value}"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "setup.model_kwargs: " in lines[0] and expected in lines[0], lines


@pytest.mark.parametrize(
    "kwargs", [{"bogus_argument": 1}, {"stem_width": "wide"}], ids=["unknown_argument", "wrong_type"]
)
def test_building_with_a_bad_argument_is_one_user_error(kwargs: dict) -> None:
    params = ClassificationParams(model="test_resnet", in_channels=1, num_classes=10, model_kwargs=kwargs)
    with pytest.raises(UserError) as refused:
        ClassificationSetup(params, None).build_model()
    message = str(refused.value)
    assert "\n" not in message and message.startswith("setup.model_kwargs: timm model 'test_resnet' refused")


def test_a_valid_argument_still_reaches_timm() -> None:
    params = ClassificationParams(model="test_resnet", in_channels=1, num_classes=10, model_kwargs={"drop_rate": 0.1})
    assert ClassificationSetup(params, None).build_model().drop_rate == 0.1

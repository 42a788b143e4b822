"""A third-party curriculum installed through the `curricurun.curricula` entry point lists and trains."""

from __future__ import annotations

import json
import textwrap

import pytest
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe

PLUGIN = textwrap.dedent(
    '''
    """A user's curriculum: a fixed small image side for the first half of the steps."""
    from typing import ClassVar

    from curricurun.curriculum.base import Curriculum, CurriculumParams, StageState


    class Params(CurriculumParams):
        early_size: int = 12


    class HalfTimeResize(Curriculum):
        """Train at ``early_size`` for the first half of the steps, then at full size."""

        name: ClassVar[str] = "half_time_resize"
        summary: ClassVar[str] = "a test plug-in: small images for the first half of training"
        Params: ClassVar[type] = Params

        def __init__(self, params):
            self.params = params

        def state_at(self, progress):
            return StageState(resolution=self.params.early_size if progress.step_fraction < 0.5 else None)
    '''
)


def _install_plugin(root):
    """A module plus a dist-info directory: what `pip install` of a package with the entry point leaves."""
    (root / "my_curricula.py").write_text(PLUGIN)
    info = root / "my_curricula-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-curricula\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[curricurun.curricula]\nhalf_time_resize = my_curricula:HalfTimeResize\n")


@needs_fashion_mnist
@pytest.mark.slow
def test_an_entry_point_curriculum_is_listed_and_changes_what_training_sees(tmp_path):
    plugin_root = tmp_path / "site"
    plugin_root.mkdir()
    _install_plugin(plugin_root)
    env = {"PYTHONPATH": str(plugin_root)}
    listing = run_cli(["curricula"], env=env)
    assert "half_time_resize" in listing.stdout and "my-curricula" in listing.stdout
    recipe = small_recipe(
        tmp_path,
        curriculum=[{"name": "half_time_resize", "early_size": 14}],
        data={"max_eval_samples": 50},
        training={"epochs": 0.5},
    )
    run_cli(
        ["train", str(recipe), "--output-dir", str(tmp_path / "run")],
        env={**env, "CURRICURUN_SAMPLE_TRACE": str(tmp_path / "trace")},
    )
    lines = [json.loads(x) for x in (tmp_path / "trace" / "samples-rank0.jsonl").read_text().splitlines()][:-1]
    # 640 / 16 = 40 steps per epoch; half an epoch = 20 steps: 10 at 14 px, then 10 at 28 px.
    assert [line["shape"][-1] for line in lines] == [14] * 10 + [28] * 10

"""bench/generative_curricula.py's "tokens processed" column equals the hand count from the recipes."""

from __future__ import annotations

import sys

from engine_helpers import REPO

sys.path.insert(0, str(REPO / "bench"))
import generative_curricula as bench  # noqa: E402


def _tokens(name: str, steps: int) -> float:
    recipe, overrides = bench.ARMS[name]
    return bench.tokens_processed(recipe, bench._run_sets(overrides, steps, 0, 1))


def test_tokens_processed_match_the_hand_count():
    # var_tiny: pyramid 1,2,3,4,6,8 = 130 tokens, batch 64. pyramid_flow_tiny: 32 px, patch 4, batch 48, stage
    # grids 2², 4², 8² = 4, 16, 64 tokens; 1:2:1 → (4 + 2·16 + 64) / 4 = 25 per sample, 1:1:1 → 84 / 3 = 28.
    assert _tokens("var all scales", 100) == 100 * 64 * 130
    assert abs(_tokens("pyramid_flow 1:2:1", 100) - 100 * 48 * 25) < 1e-6
    assert abs(_tokens("pyramid_flow 1:1:1", 99) - 99 * 48 * 28) < 1e-6
    progressive = _tokens("var progressive_scales", 100)
    # pg 0.5: 50 steps on fewer scales (14 of 130 tokens at first), the rest on all 130.
    assert 50 * 64 * 14 + 50 * 64 * 130 <= progressive < 100 * 64 * 130

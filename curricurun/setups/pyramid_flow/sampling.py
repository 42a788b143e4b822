"""Stage-by-stage sampling: Euler steps inside each stage's window, renoising at each jump (``pipeline`` L705-788).

Stage 0 starts from pure noise at the lowest resolution. Inside stage k the within-stage ratio r runs from 1 to
0 and the DiT timestep τ along the stage's band (``set_timesteps``: ``linspace`` over both, L179-206), with the
Euler step x ← x + (r_next − r)·v̂ (L283). Between stages the latent is nearest up-sampled and renoised,
x ← α·U(x) + β·n_blk with block-correlated noise (``generate_one_unit`` L729-743), which puts it at the next
stage's training start distribution.
"""

from __future__ import annotations

import torch

from curricurun.setups.pyramid_flow.pyramid import (
    TRAIN_TIMESTEPS,
    StageWindow,
    block_noise,
    renoise_coefficients,
    upsample_nearest,
)


def inference_schedule(
    window: StageWindow, steps: int, train_timesteps: int = TRAIN_TIMESTEPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` DiT timesteps and ``steps + 1`` ratios of one stage (``set_timesteps``, ``scheduler`` L179-206).

    The reference spans its training grids' first and last entries: τ from T_max to T_max + (T−1)/T·(T_min − T_max)
    and r from 1 to 1/T, then appends r = 0, so the last Euler step lands on the stage's end point.
    """
    last = (train_timesteps - 1) / train_timesteps
    timesteps = torch.linspace(
        window.timestep_max, window.timestep_max + last * (window.timestep_min - window.timestep_max), steps
    )
    ratios = torch.cat([torch.linspace(1.0, 1.0 / train_timesteps, steps), torch.zeros(1)])
    return timesteps, ratios


@torch.no_grad()
def sample_latents(
    model: torch.nn.Module,
    conditions: torch.Tensor,
    null_conditions: torch.Tensor,
    windows: tuple[StageWindow, ...],
    shape: tuple[int, int, int],
    steps: int,
    cfg: float,
    generator: torch.Generator,
    gamma: float = 1 / 3,
) -> torch.Tensor:
    """Final-stage latents ``[N, C, H, W]`` for ``conditions`` (N labels or N embeddings).

    Args:
        shape: (channels, height, width) of the final stage; stage 0 is ``2^(K−1)`` times smaller per side.
        cfg: classifier-free guidance scale; v̂ = v_null + cfg·(v_cond − v_null), no null pass at cfg = 1.
        generator: a CPU generator: every random draw comes from it, so a seed gives the same samples anywhere.
    """
    device = conditions.device
    channels, height, width = shape
    shrink = 2 ** (len(windows) - 1)
    count = conditions.shape[0]
    x = torch.randn(count, channels, height // shrink, width // shrink, generator=generator).to(device)
    for k, window in enumerate(windows):
        if k > 0:
            alpha, beta = renoise_coefficients(window, gamma)
            up = upsample_nearest(x)
            x = alpha * up + beta * block_noise(tuple(up.shape), gamma, generator).to(device)
        timesteps, ratios = inference_schedule(window, steps)
        for j in range(steps):
            velocity = _guided_velocity(model, x, float(timesteps[j]), conditions, null_conditions, cfg)
            x = x + float(ratios[j + 1] - ratios[j]) * velocity
    return x


def _guided_velocity(model, x, timestep, conditions, null_conditions, cfg: float) -> torch.Tensor:
    if cfg == 1.0:
        times = torch.full((x.shape[0],), timestep, device=x.device)
        return model(x, timesteps=times, conditions=conditions)[0].float()
    both = torch.cat([x, x])
    times = torch.full((both.shape[0],), timestep, device=x.device)
    conditional, unconditional = (
        model(both, timesteps=times, conditions=torch.cat([conditions, null_conditions]))[0].float().chunk(2)
    )
    return unconditional + cfg * (conditional - unconditional)

"""Exponential moving average (EMA) of the weights a stage trains.

Why: closed-loop success of this project's action stage moves a lot between neighbouring
checkpoints (round 9: 68 to 94 % on transfer_cube for checkpoints 2,000 steps apart, at the end
of a cosine schedule), though their losses agree. An average of the recent iterates is one
point near the optimum they circle instead of one draw among them; diffusion and flow policies
(Diffusion Policy, LeRobot) ship EMA weights for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


class WeightEMA:
    """Shadow copies of `parameters`, updated after every optimizer step.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates, so the first steps of
    a stage are not averaged with the weights it started from for thousands of steps.
    """

    def __init__(self, parameters: dict[str, nn.Parameter], decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        if not parameters:
            raise ValueError("EMA needs at least one parameter")
        self.parameters = parameters
        self.decay = decay
        self.updates = 0
        self.shadow = {name: p.detach().clone() for name, p in parameters.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        decay = self.current_decay()
        for name, parameter in self.parameters.items():
            self.shadow[name].lerp_(parameter.detach(), 1 - decay)
        self.updates += 1

    @torch.no_grad()
    def copy_to_parameters(self) -> None:
        """Make the averaged weights the parameters' values (the end of a stage)."""
        for name, parameter in self.parameters.items():
            parameter.copy_(self.shadow[name])

    @contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Parameters hold the averaged weights inside the block and the trained ones after."""
        trained = {name: p.detach().clone() for name, p in self.parameters.items()}
        self.copy_to_parameters()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, parameter in self.parameters.items():
                    parameter.copy_(trained[name])

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shadow: dict[str, Tensor] = state["shadow"]
        if set(shadow) != set(self.parameters):
            raise ValueError(
                "the saved EMA averages other parameters than this stage trains "
                f"({len(shadow)} saved, {len(self.parameters)} trained)"
            )
        if state["decay"] != self.decay:
            raise ValueError(
                f"the checkpoint's EMA decay is {state['decay']}, this run's {self.decay}: "
                "resume with the same --ema-decay"
            )
        self.updates = int(state["updates"])
        self.shadow = {
            name: shadow[name].to(p.device, p.dtype) for name, p in self.parameters.items()
        }

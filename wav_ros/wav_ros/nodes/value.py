"""value: serves /wav/score, the value expert's verdict on imagined futures.

For the latent trajectory features of M candidates and (M, N) value noises it runs the value
sampler and returns the predicted value curves, their SNR (the planner's score) and the value
expert's hidden states, which the action expert reads when the chosen plan is decoded.
"""

from __future__ import annotations

import numpy as np
import torch

from wav_interfaces.srv import Score
from wav_ros.nodes import conversions
from wav_ros.nodes.model_host import ModelNode


class ValueNode(ModelNode):
    """The /wav/score service; see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("value", **kwargs)
        self.declare_parameter("max_batch", 1024)
        self.create_model_service(Score, "/wav/score", self._score)

    def _score(self, request: Score.Request, response: Score.Response) -> None:
        from wav_ros.model import VideoFeatures

        arrays = conversions.features_to_arrays(request.features)
        if "hidden_states" not in arrays:
            raise ValueError(f"features lack 'hidden_states' (have {sorted(arrays)})")
        features = VideoFeatures.from_tensor(torch.from_numpy(arrays["hidden_states"]))
        noise = conversions.tensor_to_array(request.value_noise, name="value_noise")
        if noise.shape[0] * max(noise.shape[1:2] or (1,)) > self.get_parameter("max_batch").value:
            raise ValueError(f"value_noise batch {noise.shape[:2]} exceeds max_batch")
        scores = self.policy.score(None, features, torch.from_numpy(np.ascontiguousarray(noise)))
        response.values = conversions.array_to_tensor("values", scores.values.cpu().numpy())
        response.snr = conversions.array_to_tensor("snr", scores.snr.cpu().numpy())
        response.value_features = conversions.arrays_to_features(
            request.features.header,
            request.features.context_id,
            {"hidden_states": scores.features.to_tensor().numpy()},
        )
        response.success = True
        response.message = f"scored {noise.shape[0]}x{noise.shape[1]} value samples"


def main(args: list[str] | None = None) -> None:
    from wav_ros.nodes.spin import run_nodes

    run_nodes([ValueNode], args=args, threads=1)


if __name__ == "__main__":
    main()

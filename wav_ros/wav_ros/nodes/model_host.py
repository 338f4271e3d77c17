"""A lifecycle node that holds a WAVPolicy: loaded in configure, released in cleanup.

world_model, value and latent_planner all hold the model; they share how it is found, loaded,
and how a failure to load is reported (the node stays unconfigured and says why on every call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from wav_ros import SHIPPED_CHECKPOINT


class ModelNode(LifecycleNode):
    """Parameters `checkpoint` ("" = the shipped one), `device`, `torch_threads`, `autostart`."""

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter("checkpoint", "")
        self.declare_parameter("device", "cpu")
        self.declare_parameter("autostart", True)
        # 0 keeps PyTorch's default (one per core); on a shared few-core CPU, 1 avoids threads
        # of several processes fighting over the same cores.
        self.declare_parameter("torch_threads", 0)
        self.policy = None
        self.load_error = "not configured yet"
        self.active = False
        self._model_lock = threading.Lock()

    @property
    def checkpoint_path(self) -> Path:
        value = self.get_parameter("checkpoint").value
        return Path(value).expanduser() if value else SHIPPED_CHECKPOINT

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from wav_ros.model import WAVPolicy

        path, device = self.checkpoint_path, self.get_parameter("device").value
        threads = self.get_parameter("torch_threads").value
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        try:
            self.policy = WAVPolicy.from_pretrained(path, device=device)
        except (OSError, ValueError, TypeError, RuntimeError) as error:
            self.load_error = f"no model loaded: checkpoint {path} failed to load: {error}"
            self.get_logger().error(self.load_error)
            return TransitionCallbackReturn.FAILURE
        self.load_error = ""
        parameters = sum(p.numel() for p in self.policy.parameters())
        self.get_logger().info(f"loaded {path} ({parameters / 1e6:.2f} M parameters, {device})")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.policy = None
        self.load_error = "model released (cleanup)"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.policy = None
        self.active = False
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        return super().on_deactivate(state)

    def unavailable_reason(self) -> str:
        """Why the node cannot serve now, or "" when it can."""
        if self.policy is None:
            return self.load_error or "no model loaded"
        if not self.active:
            return f"node {self.get_name()} is configured but not active"
        return ""

    def create_model_service(self, service_type, name: str, handler: Callable) -> None:
        """A service answered by `handler(request, response)` under the model lock.

        The handler raises ValueError to refuse (bad input, no model) and anything else on a
        model failure; either way the caller gets success=False and the reason, never silence.
        """
        verb = name.rsplit("/", 1)[-1]

        def serve(request, response):
            reason = self.unavailable_reason()
            try:
                if reason:
                    raise ValueError(reason)
                with self._model_lock:
                    handler(request, response)
            except ValueError as error:
                response.success, response.message = False, f"{verb} refused: {error}"
            except Exception as error:  # any model failure becomes a refusal with its reason
                self.get_logger().error(f"{verb} failed: {error!r}")
                response.success, response.message = False, f"{verb} failed: {error!r}"
            return response

        self.create_service(service_type, name, serve)

    def autostart(self) -> None:
        """Configure and activate now when the `autostart` parameter is set (no manager needed)."""
        if self.get_parameter("autostart").value:
            self.trigger_configure()
            if self.policy is not None:
                self.trigger_activate()

"""DepthTap: SPACE-CLIP depth from the hidden states a host encoder computes in its own call.

Forward hooks, not a wrapper: the host's modules, state_dict, parameters and outputs stay
exactly as they were (the hooks only keep references to tensors the host computes anyway), and
detach() removes them. Hooks sit on the module whose output is hidden state 0, on the blocks
whose outputs the decoder reads (and the last one, for the global embedding), and on the patch
convolution, whose call marks the start of a host call and gives its patch grid. The global
embedding is made in the last block's hook by the tower's own pooling (model/backbone.py
Tower.pool: a LayerNorm of the class token for CLIP, the attention-pooling head for SigLIP,
about 1 % of a ViT-B tower), under the host call's own autocast and device, without gradients.

One tap belongs to one host call at a time: captures are kept per thread, so threads that each
call the host and then depth() get their own depth, but two calls on one thread before a
depth() leave only the second. depth() answers the latest host call on the calling thread and
releases its tensors.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

import torch
from torch import nn

from space_clip_ros.errors import InputError, RuntimeFailure
from space_clip_ros.geometry import Intrinsics
from space_clip_ros.model.backbone import BackboneFeatures, Tower
from space_clip_ros.model.canonical_camera import CameraView, plan_view
from space_clip_ros.model.config import SpaceClipConfig
from space_clip_ros.model.decoder import SpaceClipDecoder
from space_clip_ros.model.space_clip import decode, layers_read

log = logging.getLogger(__name__)

_GRID = "grid"
_GLOBAL = "global"


class DepthTap:
    """Depth in metres from a host encoder's own forward. Made by `attach()`; see its doc."""

    def __init__(
        self,
        tower: Tower,
        config: SpaceClipConfig,
        decoder: SpaceClipDecoder,
        checkpoint: str,
        accepted: frozenset[str],
        warnings: list[str],
    ) -> None:
        self.tower = tower
        self.config = config  # layer lists resolved for this tower
        self.decoder = decoder.eval().requires_grad_(False)
        self.checkpoint = checkpoint
        self.accepted = accepted
        self.warnings = warnings  # what attach() logged: accepted or unchecked differences
        self.layers = layers_read(config.decoder)  # hidden states the decoder reads
        # The last block's output gives the global embedding, which only FiLM reads: a decoder
        # without FiLM also serves hosts that stop before the last block.
        self._last = tower.num_layers if config.decoder.use_film else None
        self._local = threading.local()
        self._decoder_lock = threading.Lock()
        self._active = True
        self._warned_training = False
        self._warned: set[str] = set()  # camera warnings already logged
        self._handles = [tower.patch_conv.register_forward_hook(self._on_call_start)]
        for k in sorted(set(self.layers) | ({self._last} - {None})):
            module = tower.hidden0_module if k == 0 else tower.blocks[k - 1]
            self._handles.append(module.register_forward_hook(self._capture(k)))

    # -- hooks: run inside the host's call ------------------------------------------------

    def _store(self) -> dict:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = {}
        return store

    def _on_call_start(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if self._active:
            store = self._store()
            store.clear()
            store[_GRID] = tuple(output.shape[-2:])

    def _capture(self, k: int):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not self._active:
                return
            store = self._store()
            store[k] = output
            if k == self._last:
                with torch.no_grad():
                    store[_GLOBAL] = self.tower.pool(self.tower.tokens(output).detach())

        return hook

    # -- the caller's side ------------------------------------------------------------------

    @property
    def input_size(self) -> tuple[int, int]:
        """The host input (H, W) the decoder was trained at: grid x patch size."""
        record = self.config.encoder_record
        grid = record.grid if record is not None else self.tower.grid_size
        return tuple(g * p for g, p in zip(grid, self.tower.patch_size))

    def depth(
        self, size: Optional[tuple[int, int]] = None, camera: Optional[Intrinsics] = None
    ) -> torch.Tensor:
        """Metric depth (B, 1, H, W), float32 metres, of the latest host call on this thread.

        The map covers exactly what the host's input tensor shows (after the host's own
        resize/crop); `size` resizes it (bilinear) to (H, W), by default the input tensor's
        size. camera: the intrinsics of what the host's input shows, at `size` (the image the
        host resized whole): depth is corrected by the focal ratio to the training camera
        (model.canonical_camera.squashed_view: the host's own resize fixes the rest); None
        assumes the training camera's focal length and logs a warning once per size. Raises
        InputError when there is no complete capture, RuntimeFailure when the depth is not
        finite.
        """
        if not self._active:
            raise RuntimeFailure(
                "this tap was detached", fix="attach() again to decode a host's features"
            )
        store = self._store()
        self._local.store = {}  # released: one depth per host call
        wanted = (*self.layers, _GLOBAL) if self._last is not None else self.layers
        missing = [k for k in wanted if k not in store]
        if _GRID not in store or missing:
            problem, fix = self._no_capture(store, missing)
            raise InputError(problem, source=self.checkpoint, fix=fix)
        grid = store[_GRID]
        self._check_grid(grid)
        if self.tower.module.training and not self._warned_training:
            self._warned_training = True
            log.warning(
                "the host encoder is in training mode (dropout, patch dropout): its features "
                "are not the ones the decoder was trained on; call .eval() on it"
            )
        tokens = {k: store[k] if k == 0 else self.tower.tokens(store[k]) for k in self.layers}
        expected = self.tower.prefix + grid[0] * grid[1]
        for k, x in tokens.items():
            if x.ndim != 3 or x.shape[1] != expected or x.shape[2] != self.tower.width:
                raise InputError(
                    f"hidden state {k} has shape {tuple(x.shape)}, not (batch, {expected}, "
                    f"{self.tower.width}) for a {list(grid)} grid",
                    fix="call the host on one image batch (B, 3, H, W) per depth()",
                )
        hidden = {k: self.tower.grid(x.detach(), grid) for k, x in tokens.items()}
        first = next(iter(hidden.values()))
        # without FiLM the decoder never reads the global embedding: a placeholder of its shape
        pooled = store.get(_GLOBAL, first.new_zeros(first.shape[0], self.tower.width))
        feats = BackboneFeatures(hidden=hidden, global_embedding=pooled)
        out_size = tuple(size) if size is not None else self._host_input_size(grid)
        view = self._view(out_size, camera, grid)
        self._follow_device(first.device)
        with torch.no_grad():
            depth, _ = decode(self.decoder, self.config.decoder, feats, out_size, view=view)
        if not bool(torch.isfinite(depth).all()):
            raise RuntimeFailure(
                f"the decoder gave non-finite depth ({int((~torch.isfinite(depth)).sum())} "
                "values) from the host's features",
                fix="check the host's input and precision (fp16 overflow?) and the checkpoint",
            )
        return depth

    def _view(
        self, size: tuple[int, int], camera: Optional[Intrinsics], grid: tuple[int, int]
    ) -> Optional[CameraView]:
        """The camera mapping of the host's input (one rule: canonical_camera.plan_view)."""
        plan = plan_view(
            self.config.camera, camera, size[1], size[0], self._host_input_size(grid),
            source=self.checkpoint,
            fix="pass camera= (the intrinsics at size) to depth()", squashed=True,
        )  # fmt: skip
        if plan.warning and plan.warning not in self._warned:
            self._warned.add(plan.warning)
            log.warning(plan.warning)
        return plan.view

    def detach(self) -> None:
        """Remove every hook: the host is exactly as before attach(). Idempotent."""
        self._active = False
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._local = threading.local()  # every thread's captured tensors released

    def __enter__(self) -> "DepthTap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "attached" if self._active else "detached"
        return (
            f"DepthTap({self.checkpoint}, {type(self.tower).__name__}, layers {self.layers}, "
            f"{state})"
        )

    # -- helpers ------------------------------------------------------------------------------

    def _host_input_size(self, grid: tuple[int, int]) -> tuple[int, int]:
        return tuple(g * p for g, p in zip(grid, self.tower.patch_size))

    def _check_grid(self, grid: tuple[int, int]) -> None:
        record = self.config.encoder_record
        trained = tuple(record.grid) if record is not None else tuple(self.tower.grid_size)
        if grid != trained and "grid" not in self.accepted:
            raise InputError(
                f"the host ran on a {list(grid)} patch grid, the decoder was trained on "
                f"{list(trained)}",
                source=self.checkpoint,
                fix=f"feed the host {list(self.input_size)} inputs, or attach with "
                "accept=('grid',) to decode other grids anyway",
            )

    def _follow_device(self, device: torch.device) -> None:
        """The decoder goes where the host's features are (once, under a lock)."""
        if next(self.decoder.parameters()).device != device:
            with self._decoder_lock:
                if next(self.decoder.parameters()).device != device:
                    self.decoder.to(device)

    def _no_capture(self, store: dict, missing: list) -> tuple[str, str]:
        """(problem, fix) when the thread's capture is absent or incomplete."""
        if not store:
            return (
                "no host call was captured on this thread since attach() or the last depth()",
                "call the host (encoder.encode_image(x) or encoder(x)) first, in the same "
                "thread; code torch.compile made before attach() does not run the tap's hooks: "
                "attach first, then compile (or call torch.compiler.reset() after attach)",
            )
        blocks = [k for k in missing if k != _GLOBAL] or [self._last]
        film = " and the last block's output (FiLM's global embedding)" if self._last else ""
        return (
            f"the host's last call did not run hidden state(s) {blocks} (it stopped early?)",
            f"run the host's full forward: the decoder reads hidden states {self.layers}{film}",
        )

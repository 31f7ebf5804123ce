"""Train the SPACE-CLIP decoder on KITTI with the paper's recipe (training/configs/kitti.yaml).

    python -m training.train --config training/configs/kitti.yaml --set data.root=data/kitti
    torchrun --nproc_per_node=8 -m training.train --config training/configs/kitti.yaml
    python -m training.train --config training/configs/kitti.yaml --set run.resume=auto

The backbone is frozen and runs under no_grad (in half precision on GPU); only the decoder is
optimised (AdamW, cosine schedule with linear warm-up, gradient clipping, optional bf16/fp16
autocast) and averaged into an EMA. Rank 0 validates, logs (TensorBoard, tqdm) and saves:
``state_last.pt`` (exact resume) and node-format checkpoints ``checkpoints/{last,best}[_ema]``
that ``space_clip_ros.model.load_checkpoint`` and the ROS node read unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from space_clip_ros.errors import run_tool
from space_clip_ros.io.atomic import atomic_path
from space_clip_ros.model import SpaceClip, build_model, save_checkpoint
from space_clip_ros.runtime import PRECISIONS, autocast, has_native_bf16, training_precision
from training.camera import first_frame_size, principal_anchor, record_camera
from training.config import ConfigError, TrainConfig, load_train_config
from training.datasets import DatasetError, collate_eval, make_dataset
from training.evaluate import default_crops, evaluate, make_eval_dataset
from training.losses import LossTerms, depth_loss
from training.state import (
    STATE_LAST,
    capture_rng,
    load_state,
    restore_rng,
    restore_scaler,
    save_state,
)

PROG = "python -m training.train"
LOG = logging.getLogger("train")


class ResumableSampler(Sampler[tuple[int, int]]):
    """DistributedSampler that can start an epoch part-way through, for mid-epoch resume."""

    def __init__(self, inner: DistributedSampler, batch_size: int):
        self.inner, self.batch_size, self.epoch, self.skip_batches = inner, batch_size, 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.epoch, self.skip_batches = epoch, skip_batches

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """(epoch, index) pairs: persistent workers hold their own dataset copy, so the epoch that
        seeds the augmentation travels with each index (DepthDataset.__getitem__)."""
        indices = list(self.inner)
        return iter((self.epoch, i) for i in indices[self.skip_batches * self.batch_size :])

    def __len__(self) -> int:
        return max(len(self.inner) - self.skip_batches * self.batch_size, 0)


def lr_factor(step: int, total: int, warmup: int, base_lr: float, min_lr: float) -> float:
    """Linear warm-up to base_lr, cosine decay to min_lr at the last step (factor of base_lr)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return (min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))) / base_lr


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a single process without it."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def amp_dtype_for(name: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype (None = fp32) for run.precision.

    CUDA 'auto' asks runtime.training_precision (bf16 only where it is native, fp16 with a
    GradScaler otherwise). The CPU trains in fp32 whatever is asked: autocast there is slower,
    and fp32 keeps CPU runs (tests, smoke runs) bit-exact on resume.
    """
    if device.type != "cuda" or name == "fp32":
        return None
    if name == "auto":
        return training_precision(device)
    dtype = PRECISIONS[name]
    if dtype == torch.bfloat16 and not has_native_bf16(device):
        LOG.warning(
            "run.precision bf16 on %s: emulated on this GPU (slow); fp16 is native", device
        )
    return dtype


def configure_cuda_backends() -> None:
    """cuDNN autotuning and TF32 matmuls/convolutions: the decoder's shapes are fixed per run.

    Both trade bit-reproducibility on CUDA (which its nondeterministic backward kernels do not
    give anyway) for speed; fp32 parameters and the optimiser state are unaffected.
    """
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def sync_batchnorm(decoder: nn.Module, world: int, device: torch.device) -> nn.Module:
    """The decoder with SyncBatchNorm under multi-GPU DDP: batch statistics over the global batch.

    Without it each GPU normalises over its own slice (8 images on 8 GPUs), not the recipe's 64.
    SyncBatchNorm runs only on CUDA, so CPU (gloo) runs keep per-process BatchNorm, logged.
    """
    if world <= 1:
        return decoder
    if device.type != "cuda":
        LOG.warning(
            "%d ranks on %s: BatchNorm statistics stay per process (SyncBatchNorm needs CUDA)",
            world,
            device,
        )
        return decoder
    LOG.info("%d ranks: decoder BatchNorm layers synchronised (SyncBatchNorm)", world)
    return nn.SyncBatchNorm.convert_sync_batchnorm(decoder)


def loader_options(num_workers: int, device: torch.device) -> dict:
    """DataLoader settings shared by the train and validation loaders.

    Persistent workers keep their processes (and opened files) between epochs instead of
    re-forking them; the train sampler hands them the epoch with every index (ResumableSampler).
    """
    return {
        "num_workers": num_workers,
        "persistent_workers": num_workers > 0,
        "pin_memory": device.type == "cuda",
    }


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank, self.world, self.device = setup_distributed()
        self.is_main = self.rank == 0
        self.out = Path(cfg.run.out_dir)
        torch.manual_seed(cfg.run.seed + self.rank)
        np.random.seed((cfg.run.seed + self.rank) % 2**32)

        if cfg.optim.batch_size % self.world:
            raise ConfigError(
                f"{cfg.optim.batch_size} is not divisible by {self.world} ranks",
                field="optim.batch_size",
                fix="make it a multiple",
            )
        self.local_batch = cfg.optim.batch_size // self.world

        self.model: SpaceClip = build_model(cfg.model).to(self.device)
        self.amp_dtype = amp_dtype_for(cfg.run.precision, self.device)
        if self.device.type == "cuda":
            configure_cuda_backends()
            # frozen: half precision halves its memory and time, no gradients to lose
            self.model.backbone.to(self.amp_dtype or torch.float16)
        self.model.decoder = sync_batchnorm(self.model.decoder, self.world, self.device)
        self.ddp = (
            DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.world > 1
            else None
        )

        self.train_set = make_dataset(
            cfg.data, Path(cfg.data.train_list), train=True, seed=cfg.run.seed
        )
        record_camera(cfg, "the training config", first_frame_size(self.train_set))
        self.model.config.camera = cfg.model.camera  # what every checkpoint records
        self.train_set.anchor = principal_anchor(cfg.model.camera)
        LOG.info("training camera (the checkpoints' record): %s", cfg.model.camera)
        self.sampler = ResumableSampler(
            DistributedSampler(
                self.train_set, self.world, self.rank, shuffle=True, seed=cfg.run.seed
            ),
            self.local_batch,
        )
        # Its own generator: starting an iterator draws a worker seed, which must not shift the
        # global stream that dropout uses, or a mid-epoch resume would not be exact.
        self.loader = DataLoader(
            self.train_set,
            batch_size=self.local_batch,
            sampler=self.sampler,
            drop_last=True,
            **loader_options(cfg.data.num_workers, self.device),
            generator=torch.Generator().manual_seed(cfg.run.seed + self.rank),
        )
        self.steps_per_epoch = len(self.sampler.inner) // self.local_batch
        if self.steps_per_epoch == 0:
            raise DatasetError(
                f"{len(self.train_set)} training samples give no full batch of {self.local_batch} "
                "per rank",
                fix="lower optim.batch_size or add data",
            )
        planned = cfg.optim.epochs * self.steps_per_epoch
        self.total_steps = (
            min(planned, cfg.optim.max_steps) if cfg.optim.max_steps > 0 else planned
        )
        self.val_loader = None
        if self.is_main and cfg.data.val_list:
            val_set = make_eval_dataset(
                cfg.data, Path(cfg.data.val_list), cfg.eval.protocol, cfg.data.val_max_samples
            )
            self.val_loader = DataLoader(
                val_set,
                batch_size=max(self.local_batch // 4, 1),
                shuffle=False,
                **loader_options(cfg.data.num_workers, self.device),
                collate_fn=collate_eval,
            )

        params = [p for p in self.model.decoder.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params,
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
            betas=tuple(cfg.optim.betas),
        )
        warmup = (
            max(int(cfg.optim.warmup_frac * self.total_steps), 1)
            if cfg.optim.warmup_frac > 0
            else 0
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            functools.partial(
                lr_factor,
                total=self.total_steps,
                warmup=warmup,
                base_lr=cfg.optim.lr,
                min_lr=cfg.optim.min_lr,
            ),
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = (
            AveragedModel(
                self.model.decoder,
                multi_avg_fn=get_ema_multi_avg_fn(cfg.run.ema_decay),
                use_buffers=True,
            )
            if cfg.run.ema_decay > 0
            else None
        )

        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best = {"raw": math.inf, "ema": math.inf}
        self.writer = None
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.out / "train_config.yaml") as tmp:
                tmp.write_text(_yaml(cfg.to_dict()))
            from torch.utils.tensorboard import (
                SummaryWriter,
            )  # rank 0 only: the other ranks never write

            self.writer = SummaryWriter(str(self.out / "tb"))
        if cfg.run.resume:
            self._resume(
                self.out / STATE_LAST if cfg.run.resume == "auto" else Path(cfg.run.resume)
            )

    # ---------------------------------------------------------------- state
    def _state(self) -> dict:
        rng = capture_rng()
        rngs = [None] * self.world
        if self.world > 1:
            dist.all_gather_object(rngs, rng)
        else:
            rngs = [rng]
        return {
            "decoder": self.model.decoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": dict(self.best),
            "rng": rngs,
            "world_size": self.world,
            "config": self.cfg.to_dict(),
        }

    def _resume(self, path: Path) -> None:
        if self.cfg.run.resume == "auto" and not path.is_file():
            LOG.info("no %s yet: starting a new run", path)
            return
        state = load_state(path)
        expected = self.model.decoder.state_dict()
        changed = [
            k
            for k, v in state["decoder"].items()
            if k in expected and v.shape != expected[k].shape
        ]
        if changed:  # e.g. 3x3 aux-head kernels of earlier versions: the optimiser state won't fit
            raise ConfigError(
                f"decoder tensor '{changed[0]}' has shape "
                f"{tuple(state['decoder'][changed[0]].shape)}"
                f", this decoder builds {tuple(expected[changed[0]].shape)} (an earlier layout)",
                source=path,
                field="run.resume",
                fix="export its weights (python -m training.export --state PATH --out DIR) and "
                "start a new run, or resume with the version that wrote it",
            )
        self.model.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_scaler(self.scaler, state["scaler"], path)
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch, self.batch_in_epoch = (
            state["step"],
            state["epoch"],
            state["batch_in_epoch"],
        )
        self.best = dict(state["best"])
        if state["world_size"] == self.world:
            restore_rng(state["rng"][self.rank])
        else:
            LOG.warning(
                "%s was written by %d ranks, resuming on %d: random streams are re-seeded (not "
                "bit-exact)",
                path,
                state["world_size"],
                self.world,
            )
        if self.is_main:
            LOG.info(
                "resumed %s at step %d (epoch %d, batch %d)",
                path,
                self.step,
                self.epoch,
                self.batch_in_epoch,
            )

    def save(self, metrics: Optional[dict] = None) -> None:
        """State for resume + node-format checkpoints (raw, EMA, best): every rank's RNG."""
        state = self._state()  # collective: every rank takes part, only rank 0 writes
        if not self.is_main:
            return
        meta = {"step": self.step, "epoch": self.epoch}
        save_checkpoint(self.model, self.out / "checkpoints" / "last", metadata=meta)
        if self.ema is not None:
            with self.ema_weights():
                save_checkpoint(self.model, self.out / "checkpoints" / "last_ema", metadata=meta)
        for variant, values in (metrics or {}).items():
            score = values[self.cfg.eval.crop][self.cfg.eval.select]
            if score < self.best[variant]:
                self.best[variant] = score
                name = "best" if variant == "raw" else "best_ema"
                with self.ema_weights() if variant == "ema" else contextlib.nullcontext():
                    save_checkpoint(
                        self.model,
                        self.out / "checkpoints" / name,
                        metadata={**meta, "metrics": values},
                    )
                LOG.info("new %s: %s %.4f", name, self.cfg.eval.select, score)
        state["best"] = dict(self.best)
        save_state(self.out / STATE_LAST, state)
        LOG.info("saved checkpoint at step %d to %s", self.step, self.out)

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily put the EMA weights into the model (to evaluate or save them)."""
        backup = {k: v.detach().clone() for k, v in self.model.decoder.state_dict().items()}
        self.model.decoder.load_state_dict(self.ema.module.state_dict())
        try:
            yield
        finally:
            self.model.decoder.load_state_dict(backup)

    # ---------------------------------------------------------------- loop
    def train_step(self, batch: dict) -> tuple[LossTerms, torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the loss terms, the gradient norm and the first prediction.

        The norm stays a device tensor: turning it into a float here would stall every rank on a
        GPU sync each step, while only rank 0 reads it (in log_step).
        """
        images = batch["image"].to(self.device, non_blocking=True)
        depth = batch["depth"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        net = self.ddp or self.model
        with autocast(self.device, self.amp_dtype):
            pred, aux = net(images, return_aux=True)
        terms = depth_loss(pred, aux, depth, mask, self.cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.decoder.parameters() if p.requires_grad]
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model.decoder)
        return terms, grad_norm, pred[:1].detach()

    def validate(self) -> Optional[dict]:
        """Rank 0 evaluates raw and EMA weights; the other ranks wait at the barrier."""
        metrics = None
        if self.is_main and self.val_loader is not None:
            crops = default_crops(self.cfg, self.cfg.eval.protocol)
            args = (
                crops,
                self.cfg.data.min_depth,
                self.cfg.data.max_depth,
                self.cfg.eval.flip_tta,
                self.amp_dtype,
            )
            metrics = {"raw": evaluate(self.model, self.val_loader, *args)}
            if self.ema is not None:
                with self.ema_weights():
                    metrics["ema"] = evaluate(self.model, self.val_loader, *args)
            for variant, per_crop in metrics.items():
                for crop, values in per_crop.items():
                    for name, value in values.items():
                        if isinstance(value, (int, float)):  # the metric (unscaled) numbers
                            self.writer.add_scalar(
                                f"val_{variant}_{crop}/{name}", value, self.step
                            )
            LOG.info(
                "epoch %d val (%s protocol, %s crop) %s",
                self.epoch,
                self.cfg.eval.protocol,
                self.cfg.eval.crop,
                json.dumps(
                    {
                        v: {
                            k: round(x, 4)
                            for k, x in m[self.cfg.eval.crop].items()
                            if isinstance(x, (int, float))
                        }
                        for v, m in metrics.items()
                    }
                ),
            )
        if self.world > 1:
            dist.barrier()
        return metrics

    def log_step(
        self,
        terms: LossTerms,
        grad_norm: torch.Tensor,
        batch: dict,
        pred: torch.Tensor,
        seconds: float,
    ) -> dict[str, float]:
        """Log the step's scalars to history.jsonl, TensorBoard every log_every; returns them."""
        scalars = terms.scalars()
        scalars.update(
            {
                "lr": self.last_lr,
                "grad_norm": float(grad_norm),
                "images_per_s": self.cfg.optim.batch_size / max(seconds, 1e-9),
            }
        )
        with open(self.out / "history.jsonl", "a") as history:
            history.write(json.dumps({"step": self.step, **scalars}) + "\n")
        if self.step % self.cfg.run.log_every == 0 or self.step == 1:
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, self.step)
        if self.cfg.run.image_every > 0 and self.step % self.cfg.run.image_every == 0:
            self._log_images(batch, pred)
        return scalars

    def _log_images(self, batch: dict, pred: torch.Tensor) -> None:
        """Image, prediction and ground truth of the first sample, as inverse depth in [0, 1]."""

        def inv(d: torch.Tensor) -> torch.Tensor:
            d = d.float().cpu()
            return torch.where(d > 0, 1.0 / d.clamp_min(1e-3), torch.zeros_like(d)).clamp(max=1.0)

        self.writer.add_image("train/image", batch["image"][0], self.step)
        self.writer.add_image("train/pred_inverse_depth", inv(pred[0]), self.step)
        self.writer.add_image("train/gt_inverse_depth", inv(batch["depth"][0]), self.step)

    def fit(self) -> None:
        cfg = self.cfg
        if self.is_main:
            LOG.info(
                "%d train samples, %d ranks x %d = batch %d, %d steps/epoch, %d steps, device "
                "%s, amp %s",
                len(self.train_set),
                self.world,
                self.local_batch,
                cfg.optim.batch_size,
                self.steps_per_epoch,
                self.total_steps,
                self.device,
                self.amp_dtype,
            )
        stop_at = (
            min(self.total_steps, self.step + cfg.run.stop_after)
            if cfg.run.stop_after > 0
            else self.total_steps
        )
        self.model.train()
        while self.step < stop_at:
            self.train_set.set_epoch(self.epoch)
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            bar = tqdm(
                total=self.steps_per_epoch,
                initial=self.batch_in_epoch,
                desc=f"epoch {self.epoch}",
                disable=not (self.is_main and cfg.run.tqdm),
                leave=False,
            )
            tick = time.perf_counter()
            for batch in self.loader:
                terms, grad_norm, pred = self.train_step(batch)
                self.step += 1
                self.batch_in_epoch += 1
                if self.is_main:
                    now = time.perf_counter()
                    scalars = self.log_step(terms, grad_norm, batch, pred, now - tick)
                    tick = now
                    bar.update(1)
                    bar.set_postfix(loss=f"{scalars['loss']:.3f}")
                if self.step >= stop_at:
                    break
            bar.close()
            epoch_done = self.batch_in_epoch >= self.steps_per_epoch
            metrics = None
            if epoch_done:
                if (self.epoch + 1) % cfg.eval.every_epochs == 0 or self.step >= self.total_steps:
                    metrics = self.validate()
                self.epoch += 1
                self.batch_in_epoch = 0
            if epoch_done or self.step >= stop_at:
                self.save(metrics)
        if self.writer is not None:
            self.writer.close()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train the SPACE-CLIP decoder (frozen CLIP backbone)."
    )
    parser.add_argument(
        "--config",
        default="training/configs/kitti.yaml",
        help="YAML recipe (default: the paper's KITTI recipe)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any field, e.g. --set optim.lr=3e-4 --set data.root=/data/kitti "
        "(repeatable)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Exit 2 for a config, dataset or resume state that cannot be used (nothing ran)."""
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_tool(PROG, run, argv)


def run(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    trainer = Trainer(load_train_config(args.config, args.set))
    try:
        trainer.fit()
    finally:
        trainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

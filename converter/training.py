"""One training loop for distillation and fine-tuning: a step or minute budget, a progress bar
with the loss, checkpoints to resume from, and data parallelism under torchrun.

Under `torchrun --nproc_per_node N` (WORLD_SIZE > 1) each process takes its share of every
global batch and DistributedDataParallel averages the gradients (gloo on CPU, nccl on GPU),
so N processes take the same steps as one process with the whole batch. Only rank 0 prints
and writes. Checkpoints hold the trainable tensors and the optimizer state as safetensors
and the position as JSON: nothing is unpickled on resume.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from pocketlm.errors import TrainingError

from .textdata import TokenRows

CHECKPOINT_STATE = "state.json"


@dataclass
class TrainSettings:
    steps: int | None = None  # stop after this many optimizer steps …
    minutes: float | None = None  # … or this much wall time, whichever comes first
    batch_size: int = 8  # rows per optimizer step, over all processes
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 50
    resume: bool = False

    def check(self) -> None:
        if self.steps is None and self.minutes is None:
            raise TrainingError("give a budget: --steps or --minutes")
        if self.steps is not None and self.steps < 1:
            raise TrainingError(f"--steps must be at least 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise TrainingError(f"--minutes must be positive, got {self.minutes}")
        if self.batch_size < 1:
            raise TrainingError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.resume and not self.checkpoint_dir:
            raise TrainingError("--resume needs --checkpoint-dir")


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss of each step, over all processes
    resumed_from: int = 0
    world_size: int = 1

    def as_dict(self) -> dict:
        d = asdict(self)
        d["first_loss"] = self.losses[0] if self.losses else None
        d["last_loss"] = self.losses[-1] if self.losses else None
        del d["losses"]
        return d


class Distributed:
    """The process group torchrun describes in the environment, or a single process.
    A context manager: the group it started is closed when the work is done."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.started_here = False
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
            self.started_here = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on any (rank 0's clock decides time budgets)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1 if flag else 0])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.started_here:
            torch.distributed.destroy_process_group()


def batch_indices(n_rows: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The rows of global batch `step`: a fresh permutation each epoch, the same on every process
    and after a resume."""
    out, position = [], step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(position, n_rows)
        perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        take = min(batch_size - len(out), n_rows - offset)
        out += perm[offset : offset + take].tolist()
        position += take
    return torch.tensor(out)


def _named_trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, model: nn.Module, optimizer, step: int, losses: list[float], meta: dict) -> None:
    """Write atomically: a killed run leaves the previous checkpoint whole."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    params = _named_trainable(model)
    save_file({n: p.detach().contiguous() for n, p in params.items()}, tmp / "trainable.safetensors")
    index = {id(p): n for n, p in params.items()}
    opt_tensors, opt_scalars = {}, {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                name = f"{index[id(p)]}::{key}"
                if torch.is_tensor(value) and value.dim() > 0:
                    opt_tensors[name] = value.contiguous()
                else:
                    opt_scalars[name] = float(value)
    save_file(opt_tensors, tmp / "optimizer.safetensors")
    state = {"step": step, "losses": losses, "optimizer_scalars": opt_scalars, **meta}
    (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def load_checkpoint(folder: Path, model: nn.Module, optimizer, meta: dict) -> tuple[int, list[float]]:
    from safetensors.torch import load_file

    folder = Path(folder)
    state_file = folder / CHECKPOINT_STATE
    if not state_file.is_file():
        raise TrainingError(f"no checkpoint in {folder} (missing {CHECKPOINT_STATE})")
    state = json.loads(state_file.read_text())
    for key, value in meta.items():
        if state.get(key) != value:
            raise TrainingError(f"checkpoint {folder} was made with {key}={state.get(key)!r}, this run has {value!r}")
    params = _named_trainable(model)
    saved = load_file(folder / "trainable.safetensors")
    if set(saved) != set(params):
        raise TrainingError(f"checkpoint {folder} holds other trainable tensors than this model")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved[n])
    opt_tensors = load_file(folder / "optimizer.safetensors")
    scalars = state["optimizer_scalars"]
    for n, p in params.items():
        entry = {k.split("::", 1)[1]: v for k, v in opt_tensors.items() if k.split("::", 1)[0] == n}
        entry.update({k.split("::", 1)[1]: torch.tensor(v) for k, v in scalars.items() if k.split("::", 1)[0] == n})
        if entry:
            optimizer.state[p] = entry
    return int(state["step"]), list(state["losses"])


LossFn = Callable[[nn.Module, TokenRows], torch.Tensor]


def train(model: nn.Module, rows: TokenRows, loss_fn: LossFn, settings: TrainSettings, title: str,
          dist: Distributed, meta: dict | None = None, console=None) -> TrainResult:
    """Train the parameters of `model` that require grad, minimizing loss_fn over `rows`.

    `meta` identifies the run in its checkpoints (a resume with other settings is refused).
    """
    settings.check()
    return _train(model, rows, loss_fn, settings, title, meta or {}, dist, console)


def _train(model, rows, loss_fn, settings, title, meta, dist: Distributed, console) -> TrainResult:
    if settings.batch_size % dist.world:
        raise TrainingError(f"--batch-size {settings.batch_size} must be a multiple of the {dist.world} processes")
    torch.manual_seed(settings.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError("nothing to train: the model has no trainable parameters")
    wrapped = model
    if dist.world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    meta = {**meta, "batch_size": settings.batch_size, "seed": settings.seed, "rows": len(rows)}
    step, losses = 0, []
    if settings.resume:
        step, losses = load_checkpoint(Path(settings.checkpoint_dir), model, optimizer, meta)
    resumed_from = step
    per_rank = settings.batch_size // dist.world
    started = time.perf_counter()
    total = settings.steps
    progress = _progress(title, total, resumed_from, dist.main, console)
    model.train()
    try:
        while True:
            out_of_time = settings.minutes is not None and time.perf_counter() - started >= 60 * settings.minutes
            if (total is not None and step >= total) or dist.any(out_of_time):
                break
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * min(1.0, (step + 1) / max(1, settings.warmup_steps))
            index = batch_indices(len(rows), settings.batch_size, step, settings.seed)
            batch = rows.select(index[dist.rank * per_rank : (dist.rank + 1) * per_rank])
            loss = loss_fn(wrapped, batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"the loss became {loss.item()} at step {step + 1}; try a lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(round(dist.mean(float(loss.detach())), 6))
            progress.advance(losses[-1])
            if settings.checkpoint_dir and step % settings.checkpoint_every == 0:
                if dist.main:
                    save_checkpoint(Path(settings.checkpoint_dir), model, optimizer, step, losses, meta)
                dist.barrier()
        if settings.checkpoint_dir and step > resumed_from and dist.main:
            save_checkpoint(Path(settings.checkpoint_dir), model, optimizer, step, losses, meta)
        dist.barrier()
    finally:
        progress.close()
        model.eval()
    return TrainResult(step, round(time.perf_counter() - started, 1), losses, resumed_from, dist.world)


class _progress:
    """A tqdm bar with the running loss on rank 0; nothing on the others."""

    def __init__(self, title: str, total: int | None, initial: int, show: bool, console):
        self.bar = None
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=title, unit="step", dynamic_ncols=True)
        self.recent: list[float] = []

    def advance(self, loss: float) -> None:
        self.recent = (self.recent + [loss])[-10:]
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{sum(self.recent) / len(self.recent):.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def mean_loss(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan

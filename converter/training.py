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
LR_SCHEDULES = ("constant", "linear")


@dataclass
class TrainSettings:
    steps: int | None = None  # stop after this many optimizer steps …
    minutes: float | None = None  # … or this much wall time, whichever comes first
    batch_size: int = 8  # rows per optimizer step, over all processes
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    # after the warm-up: "constant", or "linear" decay to zero over the budget (steps, or this
    # run's minutes: a --minutes budget is per invocation, and so is the decay)
    lr_schedule: str = "constant"
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 50
    resume: bool = False
    fsdp: bool = False  # under torchrun: shard the model (FSDP2) instead of copying it (DDP)
    bf16: bool = False  # matmuls in bfloat16 (autocast), weights and optimizer state stay float32

    def check(self) -> None:
        if self.steps is None and self.minutes is None:
            raise TrainingError("give a budget: --steps or --minutes")
        if self.steps is not None and self.steps < 1:
            raise TrainingError(f"--steps must be at least 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise TrainingError(f"--minutes must be positive, got {self.minutes}")
        if self.batch_size < 1:
            raise TrainingError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.resume and not self.checkpoint_dir:
            raise TrainingError("--resume needs --checkpoint-dir")


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss of each step, over all processes
    resumed_from: int = 0
    world_size: int = 1
    batch_size: int = 0  # rows per step, over all processes
    seq_len: int = 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["first_loss"] = self.losses[0] if self.losses else None
        d["last_loss"] = self.losses[-1] if self.losses else None
        d["tokens_seen"] = self.steps * self.batch_size * self.seq_len
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


def _options(**kw):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def _trainable_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Whole tensors on every process, whether the model is plain, DDP-wrapped or FSDP-sharded
    (collective under torchrun: every process must call it)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options())


def save_checkpoint(folder: Path, model: nn.Module, optimizer, step: int, losses: list[float], meta: dict,
                    main: bool = True) -> None:
    """Trainable tensors and optimizer state as safetensors, the position as JSON; written
    atomically by rank 0, so a killed run leaves the previous checkpoint whole. Collective."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    names = _trainable_names(model)
    weights = {n: t for n, t in full_model_state(model).items() if n in names}
    optim = get_optimizer_state_dict(model, optimizer, options=_options())
    if not main:
        return
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: t.detach().contiguous().cpu() for n, t in weights.items()}, tmp / "trainable.safetensors")
    flat = {f"{n}::{k}": torch.as_tensor(v).detach().contiguous().cpu()
            for n, entry in optim["state"].items() for k, v in entry.items()}
    save_file(flat, tmp / "optimizer.safetensors")
    state = {"step": step, "losses": losses, **meta}
    (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def load_checkpoint(folder: Path, model: nn.Module, optimizer, meta: dict) -> tuple[int, list[float]]:
    """Every process reads the checkpoint; its tensors are whole, so it resumes under any
    number of processes, plain, DDP or FSDP."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    folder = Path(folder)
    state_file = folder / CHECKPOINT_STATE
    if not state_file.is_file():
        raise TrainingError(f"no checkpoint in {folder} (missing {CHECKPOINT_STATE})")
    state = json.loads(state_file.read_text())
    for key, value in meta.items():
        if state.get(key) != value:
            raise TrainingError(f"checkpoint {folder} was made with {key}={state.get(key)!r}, this run has {value!r}")
    saved = load_file(folder / "trainable.safetensors")
    if set(saved) != _trainable_names(model):
        raise TrainingError(f"checkpoint {folder} holds other trainable tensors than this model")
    set_model_state_dict(model, saved, options=_options(strict=False))
    optim_state: dict[str, dict] = {}
    for key, value in load_file(folder / "optimizer.safetensors").items():
        name, _, field_name = key.partition("::")
        optim_state.setdefault(name, {})[field_name] = value
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": sorted(optim_state)}
              for g in optimizer.param_groups]
    set_optimizer_state_dict(model, optimizer, {"state": optim_state, "param_groups": groups}, options=_options())
    return int(state["step"]), list(state["losses"])


def wrap_for_processes(model: nn.Module, dist: Distributed, fsdp: bool) -> nn.Module:
    """Single process: the model. Under torchrun: DDP (a whole copy per process, gradients
    averaged), or with fsdp=True FSDP2 (each decoder layer and the rest sharded over the
    processes: for models that do not fit one device)."""
    if dist.world == 1:
        if fsdp:
            raise TrainingError("--fsdp shards the model over torchrun's processes: run it under "
                                "torchrun --nproc_per_node N (N > 1)")
        return model
    if not fsdp:
        return nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    layers = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    for layer in (layers[0] if layers else []):  # the decoder layers: one shard group each
        fully_shard(layer)
    fully_shard(model)
    return model


def gather_unsharded(model: nn.Module, rebuild: Callable[[], nn.Module], dist: Distributed) -> nn.Module | None:
    """After FSDP training: the whole trained model, rebuilt plain on rank 0 (None elsewhere).
    Collective: every process must call it."""
    state = full_model_state(model)
    if not dist.main:
        return None
    fresh = rebuild()
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(fresh.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise TrainingError(f"the trained weights do not fit the model (missing {sorted(missing)[:3]}, "
                            f"unexpected {sorted(unexpected)[:3]})")
    fresh.tie_weights()
    return fresh.eval()


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
    if not any(p.requires_grad for p in model.parameters()):
        raise TrainingError("nothing to train: the model has no trainable parameters")
    wrapped = wrap_for_processes(model, dist, settings.fsdp)
    trainable = [p for p in model.parameters() if p.requires_grad]  # FSDP's sharded parameters, if sharded
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
            lr = step_lr(settings, step, time.perf_counter() - started)
            if settings.lr_schedule == "linear":
                lr = dist.mean(lr)  # a time-based lr: every process must step with the same one
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = batch_indices(len(rows), settings.batch_size, step, settings.seed)
            batch = rows.select(index[dist.rank * per_rank : (dist.rank + 1) * per_rank])
            with _autocast(settings.bf16):
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
                save_checkpoint(Path(settings.checkpoint_dir), model, optimizer, step, losses, meta, dist.main)
                dist.barrier()
        if settings.checkpoint_dir and step > resumed_from and step % settings.checkpoint_every:
            save_checkpoint(Path(settings.checkpoint_dir), model, optimizer, step, losses, meta, dist.main)
        dist.barrier()
    finally:
        progress.close()
        model.eval()
    return TrainResult(step, round(time.perf_counter() - started, 1), losses, resumed_from, dist.world,
                       settings.batch_size, int(rows.input_ids.shape[1]))


def training_record(settings: TrainSettings) -> dict:
    """The settings that shaped the weights, for the model folder's history (not where checkpoints went)."""
    return {k: v for k, v in asdict(settings).items() if k not in ("checkpoint_dir", "checkpoint_every", "resume")}


def step_lr(settings: TrainSettings, step: int, seconds: float) -> float:
    """The learning rate of optimizer step `step` (0-based), `seconds` into this run."""
    lr = settings.lr * min(1.0, (step + 1) / max(1, settings.warmup_steps))
    if settings.lr_schedule == "linear":
        used = 0.0  # the share of the budget spent: the larger of steps and time
        if settings.steps is not None:
            used = step / settings.steps
        if settings.minutes is not None:
            used = max(used, seconds / (60 * settings.minutes))
        lr *= max(0.0, 1.0 - used)
    return lr


def _autocast(bf16: bool):
    import contextlib

    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)


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

"""LoRA fine-tuning (peft) on a text or JSONL file, merged into the weights before export.

The adapters are trained on the attention and MLP projections; after training they are
merged (W + B·A·α/r) and unloaded, so the folder written is a plain Hugging Face model of
the original shape that every target converts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from pocketlm.errors import TrainingError

from .training import TrainSettings, train, training_record

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    seq_len: int = 256

    def check(self) -> None:
        if self.rank < 1:
            raise TrainingError(f"--rank must be at least 1, got {self.rank}")
        if not 0 <= self.dropout < 1:
            raise TrainingError(f"--dropout must be in [0, 1), got {self.dropout}")


def add_lora(model, settings: LoraSettings):
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in settings.targets if t not in present]
    if missing:
        raise TrainingError(f"no module named {', '.join(missing)} in this model to adapt")
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.targets), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def merge_lora(peft_model):
    """The base model with the adapters folded into its weights."""
    return peft_model.merge_and_unload()


def finetune(source: str, data: str, output: str | Path, settings: LoraSettings, train_settings: TrainSettings,
             force: bool = False, console=None) -> dict:
    from .distill import refuse_existing
    from .training import Distributed

    settings.check()
    train_settings.check()
    refuse_existing(output, force)
    with Distributed() as dist:
        return _finetune(source, data, Path(output), settings, train_settings, force, console, dist)


def _finetune(source, data, output, settings, train_settings, force, console, dist) -> dict:
    from pocketlm.bundle import staged_bundle

    from .distill import ce_loss_fn, plain_model_like, read_history, write_model_folder
    from .sources import load_source
    from .textdata import load_rows
    from .training import gather_unsharded

    echo = (lambda m: console.print(m)) if console and dist.main else (lambda m: None)
    loaded = load_source(source, echo=echo)
    rows = load_rows(loaded.tokenizer, data, settings.seq_len)
    model = add_lora(loaded.model, settings)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    meta = {"kind": "finetune", "source": source, **asdict(settings), "targets": list(settings.targets)}
    result = train(model, rows, ce_loss_fn(), train_settings, "finetune (LoRA)", dist, meta, console)
    if train_settings.fsdp:
        config = loaded.model.config
        model = gather_unsharded(model, lambda: add_lora(plain_model_like(config), settings), dist)
    merged = merge_lora(model) if model is not None else None
    summary = {"step": "finetune", "source": source, "data": str(data),
               "settings": {**asdict(settings), "targets": list(settings.targets)},
               "training": training_record(train_settings),
               "trainable_parameters": trainable, "trained_tokens": rows.trained_tokens, **result.as_dict()}
    if dist.main:
        history = read_history(source) if Path(source).is_dir() else []
        with staged_bundle(output, force=force) as staging:
            write_model_folder(merged, loaded.tokenizer, staging, history + [summary])
    dist.barrier()
    return summary

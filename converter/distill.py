"""Knowledge distillation: a student learns from a teacher's output distribution.

token-level     KL(teacher_T ‖ student_T) · T² on every trained position of the data
                (Hinton et al.; T = --temperature), optionally mixed with the data's own
                cross-entropy (--hard-weight);
sequence-level  the student is trained (cross-entropy) on the teacher's own greedy continuations
                of prompts cut from the data — its mode, as Kim & Rush (2016) take the beam output.
A quantized student is recovered with quantization-aware training: `--qat 8da4w` trains the
student through torchao's fake quantization of exactly the grid `pocketlm convert --quant
8da4w` later stores, so the float weights written are the ones that grid was trained for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pocketlm.errors import TrainingError

from .textdata import IGNORE, TokenRows, load_rows
from .training import TrainSettings, gather_unsharded, train, training_record

MODES = ("token", "sequence")
HISTORY_FILE = "pocketlm_history.json"  # what was done to a model folder; sources.py reads it into manifests


@dataclass
class DistillSettings:
    mode: str = "token"
    temperature: float = 2.0
    hard_weight: float = 0.0  # weight of the data's cross-entropy next to the KL (token mode)
    seq_len: int = 256
    qat: str | None = None  # "8da4w" or "8da8w": train through that grid's fake quantization
    group_size: int = 32
    prompt_tokens: int = 32  # sequence mode: prompt length cut from the data …
    new_tokens: int = 96  # … and the teacher's continuation

    def check(self) -> None:
        if self.mode not in MODES:
            raise TrainingError(f"unknown distillation mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.temperature <= 0:
            raise TrainingError(f"--temperature must be positive, got {self.temperature}")
        if not 0 <= self.hard_weight <= 1:
            raise TrainingError(f"--hard-weight must be between 0 and 1, got {self.hard_weight}")
        if self.qat not in (None, *QAT_SCHEMES):
            raise TrainingError(f"unknown --qat {self.qat!r} (choose from {', '.join(QAT_SCHEMES)})")


def check_same_tokenizer(teacher_tok, student_tok) -> None:
    """Distillation compares distributions position by position: both models must cut text into
    the same tokens with the same ids."""
    tv, sv = teacher_tok.get_vocab(), student_tok.get_vocab()
    if tv != sv:
        only_t = len(set(tv) - set(sv))
        only_s = len(set(sv) - set(tv))
        moved = sum(1 for k in set(tv) & set(sv) if tv[k] != sv[k])
        raise TrainingError(
            f"teacher and student tokenizers differ (vocabularies {len(tv)} vs {len(sv)} tokens: "
            f"{only_t} only in the teacher, {only_s} only in the student, {moved} with other ids); "
            "token-level distillation needs the same tokenizer")


def kl_loss(student_logits, teacher_logits, temperature: float, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the masked positions of KL(teacher ‖ student) at temperature T, times T²."""
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_token = (t.exp() * (t - s)).sum(-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1) * temperature**2


def _next_token_views(batch: TokenRows):
    """Positions 0..S-2 predict tokens 1..S-1; a position counts where its target is trained on."""
    targets = batch.labels[:, 1:]
    return targets, (targets != IGNORE).float()


def token_loss_fn(teacher: nn.Module, temperature: float, hard_weight: float):
    def loss(student: nn.Module, batch: TokenRows) -> torch.Tensor:
        targets, mask = _next_token_views(batch)
        with torch.no_grad():
            t_logits = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        s_logits = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        value = kl_loss(s_logits, t_logits, temperature, mask)
        if hard_weight:
            ce = F.cross_entropy(s_logits.reshape(-1, s_logits.shape[-1]).float(), targets.reshape(-1),
                                 ignore_index=IGNORE)
            value = (1 - hard_weight) * value + hard_weight * ce
        return value

    return loss


def ce_loss_fn():
    """Cross-entropy on the trained tokens (sequence-level distillation, fine-tuning)."""

    def loss(model: nn.Module, batch: TokenRows) -> torch.Tensor:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        targets = batch.labels[:, 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE)

    return loss


@torch.no_grad()
def teacher_generations(teacher: nn.Module, tokenizer, rows: TokenRows, prompt_tokens: int, new_tokens: int,
                        seed: int, progress=None) -> TokenRows:
    """The teacher's greedy continuation of each row's first `prompt_tokens` tokens; the student is
    trained on the continuation only."""
    if prompt_tokens < 1 or new_tokens < 1:
        raise TrainingError("sequence-level distillation needs --prompt-tokens and --new-tokens of at least 1")
    torch.manual_seed(seed)
    prompts = rows.input_ids[:, :prompt_tokens]
    out = []
    for i in range(0, len(prompts), 8):
        chunk = prompts[i : i + 8]
        generated = teacher.generate(chunk, attention_mask=torch.ones_like(chunk), do_sample=False,
                                     max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, pad_token_id=tokenizer.eos_token_id)
        out.append(generated[:, : prompt_tokens + new_tokens])
        if progress:
            progress(len(chunk))
    ids = torch.cat(out)
    labels = ids.clone()
    labels[:, :prompt_tokens] = IGNORE
    return TokenRows(ids, labels, torch.ones_like(ids))


QAT_SCHEMES = ("8da4w", "8da8w")


def qat_base_config(scheme: str, group_size: int):
    """The post-training config `convert --quant scheme` applies; QAT derives its fake quantizers from
    it, so training sees exactly the grid the bundle stores."""
    from pocketlm.converter.recipes import build_recipe, dynamic_activation_config

    return dynamic_activation_config(build_recipe(scheme, group_size).linear)


def prepare_qat(model: nn.Module, scheme: str, group_size: int) -> list[str]:
    """Fake-quantize every linear as `--quant scheme` will: int8 per-token asymmetric activations,
    symmetric int4 per group (8da4w) or int8 per channel (8da8w) weights."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    bad = [n for n in names if scheme == "8da4w" and model.get_submodule(n).in_features % group_size]
    if bad:
        raise TrainingError(f"group size {group_size} does not divide the input width of {', '.join(bad[:4])}")
    tied = _tied(model)
    quantize_(model, QATConfig(qat_base_config(scheme, group_size), step="prepare"),
              filter_fn=lambda m, fqn: isinstance(m, nn.Linear))
    _retie(model, tied)
    return names


def finish_qat(model: nn.Module) -> None:
    """Back to plain float linears holding the trained weights (convert quantizes them later)."""
    from torchao.quantization import quantize_
    from torchao.quantization.qat import QATConfig

    tied = _tied(model)
    quantize_(model, QATConfig(step="convert"), filter_fn=lambda m, fqn: hasattr(m, "weight_fake_quantizer"))
    _retie(model, tied)


def _tied(model) -> bool:
    head, embed = getattr(model, "lm_head", None), model.get_input_embeddings()
    return head is not None and head.weight is embed.weight


def _retie(model, tied: bool) -> None:
    if tied:
        model.lm_head.weight = model.get_input_embeddings().weight


def plain_model_like(config):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def refuse_existing(output, force: bool) -> None:
    """Fail before the long work, not after it."""
    if Path(output).exists() and not force:
        raise TrainingError(f"{output} already exists (use --force to replace it)")


def read_history(folder: str | Path) -> list[dict]:
    path = Path(folder) / HISTORY_FILE
    return json.loads(path.read_text())["steps"] if path.is_file() else []


def write_model_folder(model, tokenizer, folder: Path, history: list[dict]) -> None:
    """A Hugging Face folder (safetensors) every pocketlm target converts, plus what was done to it."""
    # A model read from GGUF holds dequantized float weights but still names the GGUF "quantizer",
    # which refuses to save: the weights written are plain float32.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / HISTORY_FILE).write_text(json.dumps({"steps": history}, indent=1))


def distill(teacher_ref: str, student_ref: str, data: str, output: str | Path, settings: DistillSettings,
            train_settings: TrainSettings, force: bool = False, console=None) -> dict:
    """Distil `teacher_ref` into `student_ref` on `data`; write the student to `output`."""
    from .training import Distributed

    settings.check()
    train_settings.check()
    refuse_existing(output, force)
    with Distributed() as dist:
        return _distill(teacher_ref, student_ref, data, Path(output), settings, train_settings, force, console, dist)


def _distill(teacher_ref, student_ref, data, output, settings, train_settings, force, console, dist) -> dict:
    from pocketlm.bundle import staged_bundle

    from .sources import load_source

    echo = (lambda m: console.print(m)) if console and dist.main else (lambda m: None)
    teacher = load_source(teacher_ref, echo=echo)
    student = load_source(student_ref, echo=echo)
    check_same_tokenizer(teacher.tokenizer, student.tokenizer)
    tokenizer = student.tokenizer
    rows = load_rows(tokenizer, data, settings.seq_len)
    t_model, s_model = teacher.model.eval(), student.model
    for p in t_model.parameters():
        p.requires_grad_(False)
    if settings.mode == "sequence":
        rows = teacher_generations(t_model, tokenizer, rows, settings.prompt_tokens, settings.new_tokens,
                                   train_settings.seed)
        loss_fn = ce_loss_fn()
    else:
        loss_fn = token_loss_fn(t_model, settings.temperature, settings.hard_weight)
    if settings.qat:
        prepare_qat(s_model, settings.qat, settings.group_size)
    for p in s_model.parameters():
        p.requires_grad_(True)
    meta = {"kind": "distill", "teacher": teacher_ref, "student": student_ref, **asdict(settings)}
    result = train(s_model, rows, loss_fn, train_settings, f"distill ({settings.mode})", dist, meta, console)
    if train_settings.fsdp:  # the plain float model holds the trained weights, fake quantizers or not
        s_model = gather_unsharded(s_model, lambda: plain_model_like(student.model.config), dist)
    elif settings.qat:
        finish_qat(s_model)
    summary = {"step": "distill", "teacher": teacher_ref, "student": student_ref, "data": str(data),
               "settings": asdict(settings), "training": training_record(train_settings), "rows": len(rows),
               "trained_tokens": rows.trained_tokens,
               **result.as_dict()}
    if dist.main:
        history = read_history(student_ref) if Path(student_ref).is_dir() else []
        with staged_bundle(output, force=force) as staging:
            write_model_folder(s_model, tokenizer, staging, history + [summary])
    dist.barrier()
    return summary

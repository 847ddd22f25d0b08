"""Pruning.

Structured: whole MLP channels, whole attention heads (with grouped-query attention a KV
head goes with the query heads that share it) and whole layers, chosen by importance
measured on calibration text. The same number of channels / heads is removed from every
layer — each layer keeps its most important ones — so the result is a genuinely smaller
model with a smaller Hugging Face config, which every target lowers unchanged.

  MLP channel j   mean |a_j| · ‖W_down[:, j]‖ over calibration tokens (a = input of down_proj):
                  how much the channel adds to the layer's output;
  KV group g      mean ‖o_proj(x_h)‖ of its query heads' attention outputs;
  layer           1 − cos(h_in, h_out): how much the layer changes the residual stream
                  (ShortGPT's block influence); the least influential layers go.
  hidden channel  mean |RMSNorm output| summed over every norm of the residual stream (Minitron's
                  width pruning): the embedding, every layer's inputs and outputs and the head
                  lose the same channels, so the whole residual stream narrows.

--repair then refits each kept layer's down_proj by least squares toward the original model's
residual stream (prune_repair). Unstructured magnitude pruning and 2:4 sparsity zero weights in place
(the shapes stay).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pocketlm.errors import TrainingError

FAMILIES_WITH_STRUCTURE = ("llama", "qwen2", "qwen3", "gemma3")


@dataclass
class PruneSettings:
    mlp: float = 0.0  # fraction of MLP channels removed from every layer
    heads: float = 0.0  # fraction of KV heads (with their query heads) removed from every layer
    layers: float = 0.0  # fraction of layers removed
    hidden: float = 0.0  # fraction of the residual stream's channels (hidden size) removed
    multiple_of: int = 32  # kept MLP / hidden channels round to this (4-bit groups need widths divisible by 32)
    unstructured: float = 0.0  # fraction of each linear's weights zeroed by magnitude
    two_four: bool = False  # zero 2 of every 4 consecutive input weights (2:4 sparsity)
    repair: bool = False  # refit each kept layer's down_proj by least squares toward the original (prune_repair)
    repair_data: str = "distill_en.txt"  # the fit needs many more tokens than importance: its own text
    repair_rows: int = 64  # rows of seq_len tokens, spread evenly over repair_data
    calibration_rows: int = 16
    seq_len: int = 256

    def check(self) -> None:
        for name in ("mlp", "heads", "layers", "hidden", "unstructured"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise TrainingError(f"--{name} must be a fraction in [0, 1), got {value}")
        if self.two_four and self.unstructured:
            raise TrainingError("choose one of --unstructured and --two-four")
        if self.multiple_of < 1:
            raise TrainingError(f"--multiple-of must be at least 1, got {self.multiple_of}")
        if not (self.mlp or self.heads or self.layers or self.hidden or self.unstructured or self.two_four):
            raise TrainingError("nothing to prune: give --mlp, --heads, --layers, --hidden, --unstructured or "
                                "--two-four")
        if self.repair and self.repair_rows < 1:
            raise TrainingError(f"--repair-rows must be at least 1, got {self.repair_rows}")
        if self.repair and not self.structured:
            raise TrainingError("--repair refits what structured pruning removed: give --mlp, --heads, --layers "
                                "or --hidden with it")

    @property
    def structured(self) -> bool:
        return bool(self.mlp or self.heads or self.layers or self.hidden)


def _text_config(model):
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _head_dim(cfg) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def kept_counts(cfg, settings: PruneSettings) -> dict:
    """How many channels, KV heads, layers and hidden channels remain; refuses ratios that leave none."""
    inter, kv, layers, hidden = cfg.intermediate_size, cfg.num_key_value_heads, cfg.num_hidden_layers, cfg.hidden_size
    keep_inter = inter - round(inter * settings.mlp)
    if settings.mlp:
        keep_inter = max(settings.multiple_of, round(keep_inter / settings.multiple_of) * settings.multiple_of)
    keep_kv = kv - round(kv * settings.heads)
    keep_hidden = hidden - round(hidden * settings.hidden)
    if settings.hidden:
        # transformers' configs require hidden_size % num_attention_heads == 0 (even with an explicit head_dim)
        step = math.lcm(settings.multiple_of, max(keep_kv, 1) * (cfg.num_attention_heads // kv))
        keep_hidden = max(step, round(keep_hidden / step) * step)
        if keep_hidden >= hidden:
            raise TrainingError(f"--hidden {settings.hidden} removes no channel once rounded to a multiple of "
                                f"{step} (--multiple-of {settings.multiple_of} and the attention heads; hidden "
                                f"size {hidden})")
    keep_layers = layers - round(layers * settings.layers)
    if settings.heads and keep_kv < 1:
        raise TrainingError(f"--heads {settings.heads} would remove every KV head (the model has {kv}; "
                            f"each removes {cfg.num_attention_heads // kv} query heads with it)")
    if settings.heads and keep_kv == kv:
        raise TrainingError(f"--heads {settings.heads} removes no head of {kv} KV heads "
                            f"(the smallest step is {1 / kv:.2f})")
    if settings.layers and keep_layers < 1:
        raise TrainingError(f"--layers {settings.layers} would remove every layer (the model has {layers})")
    if keep_inter >= inter and settings.mlp:
        raise TrainingError(f"--mlp {settings.mlp} removes no channel once rounded to --multiple-of "
                            f"{settings.multiple_of} (intermediate size {inter})")
    return {"intermediate_size": keep_inter, "num_key_value_heads": keep_kv, "num_hidden_layers": keep_layers,
            "hidden_size": keep_hidden}


@torch.no_grad()
def measure_importance(model, input_ids: torch.Tensor) -> dict:
    """Per layer: MLP channel, KV-group and layer importance on the calibration rows."""
    cfg = _text_config(model)
    layers = model.model.layers
    heads, kv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, _head_dim(cfg)
    mlp = [torch.zeros(cfg.intermediate_size, dtype=torch.float64) for _ in layers]
    group = [torch.zeros(kv, dtype=torch.float64) for _ in layers]
    influence = [0.0 for _ in layers]
    hidden = torch.zeros(cfg.hidden_size, dtype=torch.float64)
    norms = _residual_norms(model)
    norm_energy = {id(n): torch.zeros(cfg.hidden_size, dtype=torch.float64) for n in norms}

    def on_norm(mod, args, output):
        hidden.add_(output.reshape(-1, output.shape[-1]).abs().mean(0).double())
        x = args[0].reshape(-1, args[0].shape[-1]).double()
        norm_energy[id(mod)].add_((x * x).mean(0))  # each input channel's share of the rms the norm divides by

    hooks = [norm.register_forward_hook(on_norm) for norm in norms]
    for i, layer in enumerate(layers):
        down, o_proj = layer.mlp.down_proj, layer.self_attn.o_proj

        def on_down(mod, args, i=i):
            a = args[0].reshape(-1, args[0].shape[-1]).abs().mean(0)
            mlp[i] += (a * mod.weight.norm(dim=0)).double()

        def on_o(mod, args, i=i):
            x = args[0].reshape(-1, heads, hd)  # [tokens, heads, head_dim]
            w = mod.weight.view(mod.weight.shape[0], heads, hd)  # [hidden, heads, head_dim]
            per_head = torch.einsum("thd,ohd->tho", x, w).norm(dim=-1).mean(0)  # [heads]
            group[i] += per_head.view(kv, heads // kv).sum(-1).double()

        def on_layer(mod, args, kwargs, output, i=i):
            h_in = args[0] if args else kwargs["hidden_states"]
            h_out = output[0] if isinstance(output, tuple) else output
            influence[i] += float(1 - F.cosine_similarity(h_in.flatten(0, 1), h_out.flatten(0, 1), dim=-1).mean())

        hooks += [down.register_forward_pre_hook(on_down), o_proj.register_forward_pre_hook(on_o),
                  layer.register_forward_hook(on_layer, with_kwargs=True)]
    try:
        for row in input_ids:
            model(input_ids=row[None])
    finally:
        for h in hooks:
            h.remove()
    names = {id(m): name for name, m in model.named_modules()}
    return {"mlp": mlp, "kv_groups": group, "layers": influence, "hidden": hidden,
            "norm_energy": {names[k]: v for k, v in norm_energy.items()}}


# A layer's norms whose weights span the hidden size (not Qwen3's / Gemma's per-head q/k norms).
_LAYER_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                "post_feedforward_layernorm")


def _residual_norms(model) -> list[nn.Module]:
    norms = [getattr(layer, n) for layer in model.model.layers for n in _LAYER_NORMS if hasattr(layer, n)]
    return norms + [model.model.norm]


# Hugging Face weights of a decoder that read the residual stream (columns) or write it (rows).
_READS_HIDDEN = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight",
                 "embed_tokens.weight", "lm_head.weight")
_WRITES_HIDDEN = ("o_proj.weight", "o_proj.bias", "down_proj.weight", "down_proj.bias")
_NORMS_OF_HIDDEN = tuple(f"{n}.weight" for n in _LAYER_NORMS) + ("model.norm.weight",)


def _narrow_hidden(state: dict, channels: torch.Tensor, norm_gain: dict[str, float]) -> dict:
    """Every weight that touches the residual stream keeps only `channels` of it; each norm's weight is
    scaled by `norm_gain` (its key -> gain) so it divides by the rms the full width had."""
    out = {}
    for key, value in state.items():
        if key.endswith(_READS_HIDDEN):
            value = value[:, channels]
        elif key.endswith(_WRITES_HIDDEN):
            value = value[channels]
        elif key.endswith(_NORMS_OF_HIDDEN):
            value = value[channels] * norm_gain.get(key, 1.0)
        out[key] = value.clone()
    return out


def _norm_gains(energy: dict[str, torch.Tensor], channels: torch.Tensor) -> dict[str, float]:
    """rms(kept channels) / rms(all channels) of each norm's calibration input: after narrowing, a norm
    divides by the smaller width's rms, and this gain gives its outputs back their old scale."""
    return {f"{name}.weight": float((e[channels].mean() / e.mean()).sqrt()) for name, e in energy.items()}


def _renumber(name: str, new_index: dict[int, int]) -> str | None:
    """A module name of the source model as it is named in the pruned one (None: its layer went)."""
    parts = name.split(".")
    if len(parts) > 2 and parts[1] == "layers":
        i = int(parts[2])
        if i not in new_index:
            return None
        parts[2] = str(new_index[i])
    return ".".join(parts)


def _keep(scores: torch.Tensor, n: int) -> torch.Tensor:
    return torch.topk(scores, n).indices.sort().values


def structured_prune(model, settings: PruneSettings, input_ids: torch.Tensor, progress=None,
                     repair_ids: torch.Tensor | None = None):
    """A new, smaller model of the same class; `model` is left as it was. --repair fits on `repair_ids`
    (default: the calibration rows) and calls `progress(n)` as it refits layers."""
    from .families import family_for_model_type
    from .prune_repair import FAMILIES_WITH_REPAIR

    cfg = _text_config(model)
    family = family_for_model_type(cfg.model_type)
    if family.name not in FAMILIES_WITH_STRUCTURE:
        raise TrainingError(f"structured pruning is not written for the {family.name} family")
    if model.config is not cfg:
        raise TrainingError("structured pruning needs a text-only model (this config nests a text config)")
    keep = kept_counts(cfg, settings)
    if settings.hidden and family.scaled_embeddings:
        # Gemma multiplies embeddings by sqrt(hidden_size) and ties them to the head: narrowing the stream
        # would rescale both, so its width is not pruned.
        raise TrainingError(f"--hidden is not supported for the {family.name} family "
                            "(its embeddings are scaled by sqrt(hidden_size))")
    if settings.repair and family.name not in FAMILIES_WITH_REPAIR:
        raise TrainingError(f"--repair is written for families whose MLP output adds straight to the residual "
                            f"stream ({', '.join(FAMILIES_WITH_REPAIR)}), not {family.name}")
    importance = measure_importance(model, input_ids)
    n_layers = cfg.num_hidden_layers
    kept_layers = sorted(torch.topk(torch.tensor(importance["layers"]), keep["num_hidden_layers"]).indices.tolist())
    heads, kv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, _head_dim(cfg)
    per_group = heads // kv

    new_cfg = cfg.__class__.from_dict(cfg.to_dict())
    new_cfg.intermediate_size = keep["intermediate_size"]
    new_cfg.num_key_value_heads = keep["num_key_value_heads"]
    new_cfg.num_attention_heads = keep["num_key_value_heads"] * per_group
    new_cfg.head_dim = hd  # explicit: hidden / heads no longer gives it
    new_cfg.num_hidden_layers = keep["num_hidden_layers"]
    new_cfg.hidden_size = keep["hidden_size"]
    if getattr(cfg, "layer_types", None):
        new_cfg.layer_types = [cfg.layer_types[i] for i in kept_layers]
    old = model.state_dict()
    new_state = {k: v for k, v in old.items() if not k.startswith("model.layers.")}
    for new_i, i in enumerate(kept_layers):
        prefix, out = f"model.layers.{i}.", f"model.layers.{new_i}."
        ch = _keep(importance["mlp"][i], keep["intermediate_size"])
        groups = _keep(importance["kv_groups"][i], keep["num_key_value_heads"])
        q_heads = (groups[:, None] * per_group + torch.arange(per_group)).flatten()
        q_rows = (q_heads[:, None] * hd + torch.arange(hd)).flatten()
        kv_rows = (groups[:, None] * hd + torch.arange(hd)).flatten()
        for key, value in old.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix):]
            if name.startswith(("mlp.gate_proj.", "mlp.up_proj.")):
                value = value[ch]
            elif name == "mlp.down_proj.weight":
                value = value[:, ch]
            elif name.startswith("self_attn.q_proj."):
                value = value[q_rows]
            elif name.startswith(("self_attn.k_proj.", "self_attn.v_proj.")):
                value = value[kv_rows]
            elif name == "self_attn.o_proj.weight":
                value = value[:, q_rows]
            new_state[out + name] = value.clone()
    channels = None
    if settings.hidden:
        channels = _keep(importance["hidden"], keep["hidden_size"])
        new_index = {i: new_i for new_i, i in enumerate(kept_layers)}
        renamed = ((_renumber(name, new_index), e) for name, e in importance["norm_energy"].items())
        energy = {name: e for name, e in renamed if name is not None}
        new_state = _narrow_hidden(new_state, channels, _norm_gains(energy, channels))
    from transformers import AutoModelForCausalLM

    pruned = AutoModelForCausalLM.from_config(new_cfg, torch_dtype=torch.float32)
    missing, unexpected = pruned.load_state_dict(new_state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not getattr(new_cfg, "tie_word_embeddings", False)]
    if missing or unexpected:
        raise TrainingError(f"pruned weights do not fit the smaller config (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})")
    pruned.tie_weights()
    pruned.eval()
    record = {"kept_layers": kept_layers, "removed_layers": sorted(set(range(n_layers)) - set(kept_layers)), **keep}
    if settings.repair:
        from .prune_repair import refit_down_projections

        fit_on = input_ids if repair_ids is None else repair_ids
        record["repair"] = refit_down_projections(model, pruned, kept_layers, fit_on, channels, progress)
    return pruned, record


@torch.no_grad()
def sparsify(model, settings: PruneSettings) -> dict:
    """Zero weights of the decoder layers' linears in place (not the embedding or the head)."""
    zeroed = total = 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or ".layers." not in f".{name}":
            continue
        w = module.weight
        if settings.two_four:
            if w.shape[1] % 4:
                raise TrainingError(f"2:4 sparsity needs input widths divisible by 4 ({name} has {w.shape[1]})")
            blocks = w.view(w.shape[0], -1, 4)
            drop = blocks.abs().topk(2, dim=-1, largest=False).indices
            blocks.scatter_(-1, drop, 0.0)
        else:
            k = int(w.numel() * settings.unstructured)
            if k:
                threshold = w.abs().flatten().kthvalue(k).values
                w.masked_fill_(w.abs() <= threshold, 0.0)
        zeroed += int((w == 0).sum())
        total += w.numel()
    return {"zeroed_weights": zeroed, "of_weights": total, "sparsity": round(zeroed / max(total, 1), 4)}


@contextmanager
def _layer_bar(shown: bool, total: int):
    """A tqdm bar over the layers --repair refits (none when not asked for or not on a console)."""
    if not shown:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="repair (least squares)", unit="layer", dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def count_parameters(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def prune(source: str, output: str | Path, settings: PruneSettings, calibration: str = "calibration_en.txt",
          force: bool = False, console=None) -> dict:
    """Prune `source` and write the result as a Hugging Face folder."""
    from pocketlm.bundle import staged_bundle

    from .distill import read_history, refuse_existing, write_model_folder
    from .sources import load_source
    from .textdata import load_rows

    settings.check()
    refuse_existing(output, force)
    echo = (lambda m: console.print(m)) if console else (lambda m: None)
    loaded = load_source(source, echo=echo)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    before = count_parameters(model)
    summary = {"step": "prune", "source": source, "settings": asdict(settings), "parameters_before": before}
    if settings.structured:
        rows = load_rows(tokenizer, calibration, settings.seq_len)
        rows = rows.select(slice(0, settings.calibration_rows))
        layers = kept_counts(_text_config(model), settings)["num_hidden_layers"]
        repair_ids = None
        if settings.repair:
            fit = load_rows(tokenizer, settings.repair_data, settings.seq_len)
            spread = torch.linspace(0, len(fit) - 1, min(settings.repair_rows, len(fit))).round().long().unique()
            repair_ids = fit.input_ids[spread]
        with _layer_bar(settings.repair and console is not None, layers) as advance:
            model, summary["structure"] = structured_prune(model, settings, rows.input_ids, advance, repair_ids)
        summary["calibration"] = {"data": str(calibration), "rows": len(rows), "seq_len": settings.seq_len}
        if repair_ids is not None:
            summary["calibration"]["repair_rows"] = len(repair_ids)
    if settings.unstructured or settings.two_four:
        summary["sparsity"] = sparsify(model, settings)
    summary["parameters_after"] = count_parameters(model)
    summary["parameters_removed_pct"] = round(100 * (1 - summary["parameters_after"] / before), 2)
    history = read_history(source) if Path(source).is_dir() else []
    with staged_bundle(output, force=force) as staging:
        write_model_folder(model, tokenizer, staging, history + [summary])
    return summary

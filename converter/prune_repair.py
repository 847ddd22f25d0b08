"""Training-free repair of a structurally pruned model: each kept layer's down_proj is refitted by
least squares so that the residual stream after that layer matches the original model's at the same
depth — the input of the original's next kept layer, past any layers that were removed.

The fit goes layer by layer on the pruned model's own activations, so each layer also absorbs the
error the layers before it left (the layer-wise reconstruction of SparseGPT / ZipLM, and for removed
blocks the linear replacement of ReplaceMe, folded into the kept layer's down_proj). Layers already
fitted are replaced by a passthrough fed with their cached output, so each layer runs once per
calibration batch. It adds no parameter. It applies where the MLP output adds straight to the
residual stream (Llama, Qwen2, Qwen3); Gemma normalises the MLP output after down_proj, so there the
fit would not be linear. What it buys on SmolLM2-135M is measured in docs/compression.md.
"""

from __future__ import annotations

import torch
from torch import nn

RIDGE = 1e-3  # Tikhonov term, relative to the mean diagonal of the activations' Gram matrix
BATCH_ROWS = 8
FAMILIES_WITH_REPAIR = ("llama", "qwen2", "qwen3")  # MLP output added straight to the residual, embeddings unscaled


class _Stop(Exception):
    """Ends a forward pass once the layer being refitted has run."""


def _stop(*_):
    raise _Stop


def _forward_until_stopped(model, **inputs) -> None:
    try:
        model(**inputs)
    except _Stop:
        pass


class _Passthrough(nn.Module):
    """Stands in for a layer already fitted: its output is what the forward pass is fed."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@torch.no_grad()
def _residuals_entering(model, batches: list[torch.Tensor], depths: set[int]) -> dict[int, list[torch.Tensor]]:
    """The residual stream entering layer d for each d in `depths` (d == number of layers: entering the
    final norm), per batch, float32 [batch, seq, hidden]."""
    layers = model.model.layers
    found: dict[int, list[torch.Tensor]] = {d: [] for d in depths}

    def grab(d):
        def hook(mod, args, kwargs):
            found[d].append((args[0] if args else kwargs["hidden_states"]).float().clone())
        return hook

    where = {d: (layers[d] if d < len(layers) else model.model.norm) for d in depths}
    hooks = [m.register_forward_pre_hook(grab(d), with_kwargs=True) for d, m in where.items()]
    hooks.append(model.model.norm.register_forward_pre_hook(_stop))  # the head's logits are not needed
    try:
        for ids in batches:
            _forward_until_stopped(model, input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    return found


@torch.no_grad()
def _layer_inputs(pruned, j: int, entering: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer j's residual after attention and down_proj's input, for the residual `entering` it
    [batch, seq, hidden] (the layers before it pass `entering` through)."""
    layers = pruned.model.layers
    layer = layers[j]
    seen: dict[str, torch.Tensor] = {}
    hooks = [layer.post_attention_layernorm.register_forward_pre_hook(lambda m, a: seen.update(residual=a[0])),
             layer.mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.update(act=a[0])),
             layer.register_forward_hook(_stop)]
    fitted = [layers[i] for i in range(j)]
    for i in range(j):
        layers[i] = _Passthrough()
    try:
        _forward_until_stopped(pruned, inputs_embeds=entering)
    finally:
        for i, original in enumerate(fitted):
            layers[i] = original
        for h in hooks:
            h.remove()
    return seen["residual"], seen["act"]


def _with_ones(act: torch.Tensor, bias) -> torch.Tensor:
    """down_proj's input as the fit sees it: a constant column appended where it has a bias."""
    act = act.reshape(-1, act.shape[-1]).double()
    return torch.cat([act, torch.ones(len(act), 1, dtype=act.dtype)], 1) if bias is not None else act


def _relative_error(weight, gram, cross, change) -> float:
    """|act weight^T - wanted|^2 / |wanted|^2, from the accumulated products."""
    return float((weight @ gram * weight).sum() - 2 * (weight * cross.T).sum() + change) / change


@torch.no_grad()
def refit_down_projections(original, pruned, kept_layers: list[int], input_ids: torch.Tensor,
                           channels: torch.Tensor | None = None, progress=None) -> list[dict]:
    """Refit `pruned`'s down_proj weights in place; `kept_layers[j]` is the original index of pruned layer
    j, `channels` the residual channels kept by width pruning (None: all); the family must be one of
    FAMILIES_WITH_REPAIR (structured_prune checks before any work). Returns per layer the squared error
    of its output against the target, relative to the target's change, before and after."""
    n = len(original.model.layers)
    boundaries = [kept_layers[j + 1] if j + 1 < len(kept_layers) else n for j in range(len(kept_layers))]
    batches = list(input_ids.split(BATCH_ROWS))
    targets = _residuals_entering(original, batches, set(boundaries))
    entering = [pruned.model.embed_tokens(ids) for ids in batches]
    report = []
    for j, layer in enumerate(pruned.model.layers):
        down = layer.mlp.down_proj
        seen = [_layer_inputs(pruned, j, x) for x in entering]
        gram = cross = 0
        change = 0.0
        for (residual, act), target in zip(seen, targets[boundaries[j]]):
            act = _with_ones(act, down.bias)
            if channels is not None:
                target = target[..., channels]
            wanted = (target - residual).reshape(len(act), -1).double()
            gram, cross = gram + act.T @ act, cross + act.T @ wanted
            change += float(wanted.pow(2).sum())
        weight = down.weight.double()
        if down.bias is not None:
            weight = torch.cat([weight, down.bias.double()[:, None]], 1)
        regularised = gram + RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        fitted = torch.linalg.solve(regularised, cross).T
        report.append({"layer": j, "source_layer": kept_layers[j],
                       "error_before": round(_relative_error(weight, gram, cross, change), 4),
                       "error_after": round(_relative_error(fitted, gram, cross, change), 4)})
        if down.bias is not None:
            down.bias.copy_(fitted[:, -1].to(down.bias.dtype))
            fitted = fitted[:, :-1]
        down.weight.copy_(fitted.to(down.weight.dtype))
        entering = [residual + down(act) for residual, act in seen]  # the next layer's input, refitted
        if progress:
            progress(1)
    return report

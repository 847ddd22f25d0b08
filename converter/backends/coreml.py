"""Core ML: a stateful ML program (.mlpackage) for iOS 18 / macOS 15.

The `StatefulDecoder` is traced (torch.jit.trace: coremltools' mature path, and the
one that converts a 30-layer model in minutes where torch.export takes far longer)
and converted with the KV cache as two `ct.StateType`s, `input_ids` [1, S] with S
flexible up to --max-prefill and `causal_mask` [1, 1, S, E] with E flexible up to
--max-context. The recipe's coremltools.optimize.coreml steps compress the weights.

Core ML predicts only on Apple systems, so what Linux can know is established
from the saved program itself (coreml_program.py): ops, inputs and states, and every
weight's storage, checked against the recipe; and the accuracy of the compressed
weights, by decompressing them from the program into the torch model and
comparing it with the float model (teacher-forced top-1, KL, perplexity).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import torch

from pocketlm import coreml_program
from pocketlm.errors import BackendUnavailableError, ConversionError, RecipeError

from .. import coreml_recipes, parity

PROGRAM_FILE = "model.mlpackage"
ENGINE = "coreml"
DELEGATE = "mlprogram"
NAME_TAG = "coreml"
DEFAULT_QUANT = "int8"
EAGER_QUANT = False  # recipes compress the converted program (coremltools.optimize.coreml)
STATIC_PREFILL = False  # flexible input sizes: one function for prefill and decode
VERSION_PACKAGES = ("coremltools", "torch", "transformers")
DEPLOYMENT_TARGET = "iOS18"  # stateful models need iOS 18 / macOS 15
FP16_MAX_KL = 0.05  # float16 against float32 compute, same weights: above this the device answers differently
COMPUTE_UNITS = ("all", "cpu_and_ne", "cpu_and_gpu", "cpu_only")
DEFAULT_COMPUTE_UNITS = "cpu_and_ne"
build_recipe = coreml_recipes.build_recipe


def check_available() -> None:
    try:
        import coremltools  # noqa: F401
    except ImportError as e:
        raise BackendUnavailableError(f"coremltools is not installed ({e}); install pocketlm[coreml]") from None


def check_compute_units(units: str | None) -> str:
    units = units or DEFAULT_COMPUTE_UNITS
    if units not in COMPUTE_UNITS:
        raise RecipeError(f"unknown compute units {units!r} (choose from {', '.join(COMPUTE_UNITS)})")
    return units


def runtime_fields(job) -> dict:
    s = job.decoder.shape
    return {
        "compute_units": check_compute_units(job.compute_units),
        "deployment_target": DEPLOYMENT_TARGET,
        "methods": {
            "main": {
                "inputs": [
                    {"name": "input_ids", "dtype": "int32", "shape": [1, "seq"]},
                    {"name": "causal_mask", "dtype": "float16", "shape": [1, 1, "seq", "end"]},
                ],
                "states": [
                    {"name": n, "dtype": "float16",
                     "shape": [s.num_layers, 1, s.num_kv_heads, s.max_context, s.head_dim]}
                    for n in ("key_cache", "value_cache")
                ],
                "outputs": [{"name": "logits", "dtype": "float16", "shape": [1, s.vocab_size]}],
            }
        },
    }


@contextlib.contextmanager
def _quiet():
    """coremltools prints progress bars and version warnings per pass; the converter shows its own stages."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        level = logging.getLogger("coremltools").level
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("coremltools").setLevel(level)


@torch.no_grad()
def convert_float(job):
    """Trace the StatefulDecoder and convert it to a float16 ML program (not saved)."""
    import coremltools as ct

    from ..stateful_decoder import StatefulDecoder, causal_mask

    stateful = StatefulDecoder(job.decoder).eval()
    example = (torch.zeros(1, 2, dtype=torch.int32), causal_mask(0, 2))
    with _quiet():
        traced = torch.jit.trace(stateful, example, check_trace=False)
        seq = ct.RangeDim(1, job.max_prefill, default=1)
        end = ct.RangeDim(1, job.decoder.shape.max_context, default=1)
        cache = tuple(stateful.key_cache.shape)
        model = ct.convert(
            traced,
            inputs=[
                ct.TensorType("input_ids", shape=(1, seq), dtype=np.int32),
                ct.TensorType("causal_mask", shape=(1, 1, seq, end), dtype=np.float16),
            ],
            outputs=[ct.TensorType("logits", dtype=np.float16)],
            states=[
                ct.StateType(wrapped_type=ct.TensorType(shape=cache, dtype=np.float16), name=n)
                for n in ("key_cache", "value_cache")
            ],
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=ct.precision.FLOAT16,
            skip_model_load=True,  # loading compiles with Core ML: Apple systems only
        )
    return model


def compress(model, recipe, job=None):
    """Apply the recipe's steps; the rotary tables, norms and biases stay float16 by name.
    Returns the model and, for --quant gguf, each weight's expected storage."""
    prog = model._mil_program
    if any(isinstance(s, coreml_recipes.KeepGGUF) for s in recipe.steps):
        return keep_gguf_grid(model, job)
    with _quiet():
        return coreml_recipes.apply_steps(
            model, recipe,
            excluded=coreml_program.non_weight_consts(prog),
            embedding_consts=coreml_program.embedding_consts(prog),
            all_weights=coreml_program.weight_consts(prog),
        ), None


def keep_gguf_grid(model, job):
    from .. import gguf_grid

    path = gguf_grid.require_gguf(job.gguf_path)
    weights = coreml_program.weight_consts(model._mil_program)
    consts = params_by_const_name(job.decoder)
    by_base = {w: consts[coreml_program.base_name(w)] for w in weights}
    grids, missing = gguf_grid.grids_for_consts(path, job.hf_model, by_base)
    if missing:
        raise RecipeError(
            f"--quant gguf: {len(missing)} weight(s) of {path.name} are not in a block format Core ML holds "
            f"unchanged ({', '.join(gguf_grid.SUPPORTED)}): {', '.join(missing[:4])}"
            + (" …" if len(missing) > 4 else "") + "; use another --quant")
    with _quiet():
        model = gguf_grid.apply_to_coreml(model, grids)
    return model, {coreml_program.base_name(c): gguf_grid.expected_storage(g) for c, g in grids.items()}


def check_applied(summary, recipe, expected: dict | None = None) -> None:
    """Every weight must carry what the recipe claims (`expected`: per weight, where the recipe
    decides weight by weight); a weight left float16 fails the conversion."""
    wrong = []
    for w in summary.weights:
        is_embedding = "gather" in w.used_by
        want = expected[w.name] if expected else coreml_recipes.expected_storage(recipe, is_embedding)
        got = (w.storage, w.bits, w.block_size, w.lut_group_size)
        if got != want[:4] or (want[4] is not None and (w.sparsity is None or abs(w.sparsity - want[4]) > 0.02)):
            wrong.append(f"{w.name}: stored {w.storage}/{w.bits}-bit, block {w.block_size}, lut group "
                         f"{w.lut_group_size}, sparsity {w.sparsity} (recipe: {want})")
    if wrong:
        raise ConversionError(
            f"recipe {recipe.name} was not applied to {len(wrong)} weight(s): " + "; ".join(wrong[:4])
            + (" …" if len(wrong) > 4 else "")
        )


@torch.no_grad()
def weights_check(job, weights: dict[str, np.ndarray]) -> dict:
    """Accuracy of the weights exactly as stored: decompressed into the eager model (float32
    compute), compared with the float model on the parity tokens and by perplexity."""
    from ..eager_perplexity import decoder_perplexity

    decoder = job.decoder
    params = {const: p for const, (_, p) in params_by_const_name(decoder).items()}
    broken = sorted(n for n, v in weights.items() if not np.isfinite(v).all())
    if broken:  # e.g. an all-zero row quantized with a zero scale
        raise ConversionError(f"the compressed program holds non-finite weights in {', '.join(broken[:4])}")
    missing = sorted(set(weights) - set(params))
    if missing:
        raise ConversionError(f"weights in the Core ML program match no model parameter: {', '.join(missing[:4])}")
    float_ppl = job.float_perplexity or decoder_perplexity(decoder, job.hf_tokenizer)
    saved = {}
    try:
        for name, value in weights.items():
            p = params[name]
            if p.shape != value.shape:
                raise ConversionError(f"weight {name}: program shape {value.shape} != model shape {tuple(p.shape)}")
            saved[name] = p.data.clone()
            p.data.copy_(torch.from_numpy(value))
        stored_logits = parity.eager_logits(decoder, job.parity_tokens)
        stored_ppl = decoder_perplexity(decoder, job.hf_tokenizer)
        half_logits, first = float16_logits(job)
    finally:
        for name, value in saved.items():
            params[name].data.copy_(value)
    check = parity.compare(job.float_logits, stored_logits)
    if not np.isfinite(half_logits).all():
        raise ConversionError(
            "in float16 compute (how Core ML runs on Apple hardware) this model's activations overflow and its "
            "logits are not finite; pocketlm does not write such a Core ML bundle")
    precision = parity.compare(stored_logits[first:-1], half_logits)  # the same weights: compute precision only
    if precision["mean_kl"] > FP16_MAX_KL:
        raise ConversionError(
            f"in float16 compute (how Core ML runs on Apple hardware) this model's predictions change: KL "
            f"{precision['mean_kl']:.3g} nats/token and top-1 {precision['top1_agreement']:.0%} against float32 "
            "compute with the same weights; pocketlm does not write such a Core ML bundle")
    return {
        "method": "weights decompressed from the saved program into the torch model (float32 compute)",
        "tokens": len(job.parity_tokens),
        "vs_float": check,
        "perplexity": {
            "text": float_ppl["text"],
            "float": float_ppl["perplexity"],
            "stored_weights": stored_ppl["perplexity"],
            "delta_pct": round(100 * (stored_ppl["perplexity"] / float_ppl["perplexity"] - 1), 2),
            "tokens": float_ppl["tokens"],
            "context": float_ppl["context"],
        },
        # the same stored weights through the converted graph's torch form in float16, the way
        # the device computes (prefill half the tokens, then decode one at a time)
        "float16_compute": parity.compare(job.float_logits[first:-1], half_logits),
        "float16_vs_float32_compute": precision,
    }


@torch.no_grad()
def float16_logits(job) -> tuple[np.ndarray, int]:
    """Logits of the StatefulDecoder in float16 over the parity tokens (prefill the first half,
    decode the rest): Core ML computes in float16, so an overflow shows here."""
    import copy

    from ..stateful_decoder import StatefulDecoder, causal_mask

    model = StatefulDecoder(copy.deepcopy(job.decoder)).half().eval()
    tokens = job.parity_tokens
    split = max(1, len(tokens) // 2)
    rows = []
    for start in range(0, split, job.max_prefill):  # prefill in calls of at most max_prefill tokens
        chunk = tokens[start : min(split, start + job.max_prefill)]
        out = model(torch.tensor([chunk], dtype=torch.int32), causal_mask(start, len(chunk)).half())
    rows.append(out[0])
    for pos in range(split, len(tokens) - 1):
        rows.append(model(torch.tensor([[tokens[pos]]], dtype=torch.int32), causal_mask(pos, 1).half())[0])
    del model
    return torch.stack(rows).float().numpy(), split - 1


def lower(job) -> dict:
    from ..decoder import load_custom_ops

    load_custom_ops()
    job.decoder.eval()
    model = convert_float(job)
    model, expected = compress(model, job.recipe, job)
    path = job.out_dir / PROGRAM_FILE
    with _quiet():
        model.save(str(path))
    del model
    prog = coreml_program.load_program(path)  # everything below is read back from what was written
    summary = coreml_program.summarize(prog)
    check_applied(summary, job.recipe, expected)
    check = weights_check(job, coreml_program.decompressed_weights(prog))
    names = params_by_const_name(job.decoder)
    return {
        "program": summary.as_report(),
        "weights_check": check,
        # every weight maps to a parameter (weights_check refuses the conversion otherwise)
        "quantized_layers": [names[w.name][0].removesuffix(".weight") for w in summary.weights
                             if w.storage != "float16"],
    }


def params_by_const_name(decoder) -> dict[str, tuple[str, torch.nn.Parameter]]:
    """Program constant name -> (decoder parameter name, parameter): coremltools names a weight
    after its torch path under the StatefulDecoder ("decoder_layers_0_mlp_up_proj_weight")."""
    return {"decoder_" + n.replace(".", "_"): (n, p) for n, p in decoder.named_parameters(remove_duplicate=False)}

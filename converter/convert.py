"""`pocketlm convert`: source -> exportable decoder -> recipe -> lowered program -> checked bundle.

Every stage is shown as it runs. The bundle is built in a temporary folder and
renamed into place only after the lowered model has been loaded back and
compared with the eager one, so a failure or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import platform
import re
import resource
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

import pocketlm
from pocketlm.bundle import Bundle, seal_manifest, staged_bundle
from pocketlm.datafiles import data_text
from pocketlm.engines import engine_class, open_engine
from pocketlm.errors import ConversionError, RecipeError
from pocketlm.perplexity import REPORT_TOKENS, bundle_perplexity
from pocketlm.tasks.presets import check_languages, default_presets
from pocketlm.versions import installed

from . import parity
from .backends import LoweringJob, get_backend
from .recipes import apply_recipe


class Interrupts:
    """Remembers Ctrl-C even when a library swallows the KeyboardInterrupt it raised.

    torch.export and the lowering run long stretches of code that catch broad exceptions; a
    SIGINT landing there was lost and the conversion went on to write a bundle. The flag is
    checked at every stage boundary and before the bundle is committed.
    """

    def __init__(self):
        self.seen = False

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            self.seen = True
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def as_interrupt(self):
        """An error raised after Ctrl-C is the interruption, whatever a library turned it into."""
        try:
            yield
        except KeyboardInterrupt:
            raise
        except BaseException:
            if self.seen:
                raise KeyboardInterrupt from None
            raise


class Stages:
    """Prints each stage with a spinner while it runs and its wall time when done."""

    def __init__(self, console: Console, interrupts: Interrupts | None = None):
        self.console = console
        self.interrupts = interrupts or Interrupts()
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, title: str):
        self.interrupts.check()
        start = time.perf_counter()
        with self.console.status(f"[bold]{title}[/] …"):
            yield
        self.interrupts.check()
        self.times[title] = elapsed = time.perf_counter() - start
        self.console.print(f"[green]✓[/] {title} [dim]({elapsed:.1f} s)[/]")


def default_output_name(source: str, tag: str, recipe_name: str) -> str:
    stem = Path(source).name if Path(source).exists() else source.split("/")[-1]
    stem = re.sub(r"\.gguf$", "", stem, flags=re.I)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-").lower()
    return f"{stem}-{tag}-{recipe_name}"


def _check_prefill_lengths(backend, lengths, max_prefill: int, max_context: int) -> list[int] | None:
    """Static-shape backends export one prefill signature per length; dynamic ones take none."""
    if not backend.STATIC_PREFILL:  # ExecuTorch: one method with a dynamic token count up to --max-prefill
        if lengths:
            raise RecipeError("--prefill-lengths is for static-shape targets (tflite); "
                              "ExecuTorch takes any prompt length up to --max-prefill")
        return None
    lengths = sorted(set(lengths or backend.default_prefill_lengths(max_prefill)))
    bad = [n for n in lengths if not 2 <= n <= max_context]
    if bad:
        raise RecipeError(f"prefill lengths must be between 2 and --max-context ({max_context}), got {bad}")
    return lengths


def _check_compat(backend, target: str, compat: str | None, recipe) -> str | None:
    """--compat names an older runtime the program must also run correctly in; only recipes
    checked there are allowed (see docs/litert.md#tflite-runtime-214)."""
    if compat is None:
        return None
    table = getattr(backend, "COMPAT", {})
    if compat not in table:
        known = ", ".join(table) or "none"
        raise RecipeError(f"--compat {compat} is not available for target {target} (available: {known})")
    entry = table[compat]
    if recipe.name not in entry["recipes"]:
        raise RecipeError(
            f"recipe {recipe.name} is not checked to run correctly in {entry['runtime']}; "
            f"with --compat {compat} use {' or '.join(entry['recipes'])}"
        )
    return entry["runtime"]


def _report_perplexity(float_ppl: dict, lowered_ppl: dict | None, weights_check: dict | None) -> dict:
    """report.perplexity: the float model's, and the bundle's through its engine — or, where the
    runtime cannot run (lowered_ppl None), the stored weights' from the backend's weights check."""
    report = {key: float_ppl[key] for key in ("text", "tokens", "context", "stride")}
    report["float"] = float_ppl["perplexity"]
    if lowered_ppl is not None:
        report["bundle"], report["measured_on"] = lowered_ppl["perplexity"], "the bundle's engine"
    else:
        stored = (weights_check or {}).get("perplexity")
        report["bundle"] = stored["stored_weights"] if stored else None
        report["measured_on"] = "the stored weights in eager torch (the runtime cannot run here)"
    if report["bundle"] is not None:
        report["delta_pct"] = round(100 * (report["bundle"] / report["float"] - 1), 2)
    return report


def convert(
    source: str,
    output: str | Path | None = None,
    target: str = "executorch",
    delegate: str | None = None,
    quant: str | None = None,
    group_size: int = 32,
    embedding: str | None = None,
    max_context: int = 2048,
    max_prefill: int = 256,
    prefill_lengths: list[int] | None = None,
    parity_tokens: int = 64,
    force: bool = False,
    allow_skip: bool = False,
    languages: list[str] | None = None,
    compat: str | None = None,
    compute_units: str | None = None,
    kv_cache: str = "fp32",
    prefill_method: bool = False,
    console: Console | None = None,
    recipe_file: dict | None = None,
) -> Path:
    """`recipe_file` (set by recipe_files.run_recipe): the recipe whose last step this is; SOURCE is
    then the folder its earlier steps wrote, and the manifest names the recipe's own source."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    backend = get_backend(target, delegate)
    # Bad options fail here, before any heavy work.
    recipe = backend.build_recipe(quant or backend.DEFAULT_QUANT, group_size, embedding)
    check_languages(languages)
    compat_runtime = _check_compat(backend, target, compat, recipe)
    if max_context < 2:
        raise RecipeError(f"--max-context must be at least 2, got {max_context}")
    if parity_tokens < 4:
        raise RecipeError(f"--parity-tokens must be at least 4, got {parity_tokens}")
    if prefill_lengths:  # the longest exported length is the most one call takes
        max_prefill = max(prefill_lengths)
    max_prefill = getattr(backend, "FIXED_PREFILL", None) or max_prefill  # one-token programs take no other
    if not 1 <= max_prefill <= max_context:
        raise RecipeError(f"--max-prefill must be between 1 and --max-context ({max_context}), got {max_prefill}")
    prefill_lengths = _check_prefill_lengths(backend, prefill_lengths, max_prefill, max_context)
    if kv_cache not in getattr(backend, "KV_CACHE_DTYPES", ("fp32",)):
        known = ", ".join(getattr(backend, "KV_CACHE_DTYPES", ("fp32",)))
        raise RecipeError(
            f"--kv-cache {kv_cache} is not available for {target}/{backend.DELEGATE} (available: {known})")
    if prefill_method:
        if not getattr(backend, "PREFILL_METHOD", False):
            raise RecipeError(f"--prefill-method is for the executorch target's xnnpack delegate, "
                              f"not {target}/{backend.DELEGATE}")
        if kv_cache != "fp32":
            raise RecipeError("--prefill-method reads a float KV cache; it cannot go with --kv-cache "
                              f"{kv_cache} (whose attention reads int8 only in ExecuTorch's quantized SDPA)")
    if compute_units is not None:
        if not hasattr(backend, "check_compute_units"):
            raise RecipeError(f"--compute-units is for the coreml target, not {target}")
        backend.check_compute_units(compute_units)
    output = Path(output or default_output_name(source, backend.NAME_TAG, recipe.name))
    interrupts = Interrupts()
    stage = Stages(console, interrupts)

    with interrupts.installed(), interrupts.as_interrupt(), staged_bundle(output, force=force) as staging:
        with stage(f"load {source}"):
            from .sources import load_source, tokenizer_spec

            loaded = load_source(source, echo=lambda msg: console.print(msg))
            if recipe_file is not None:
                loaded.source = {"kind": "recipe", "ref": recipe_file["source"], "recipe": recipe_file["name"],
                                 **({"history": loaded.source["history"]} if "history" in loaded.source else {})}
        hf_model, hf_tokenizer = loaded.model, loaded.tokenizer
        needs_gguf = getattr(recipe, "needs_gguf_source", False)
        if needs_gguf:
            from .gguf_grid import require_gguf

            require_gguf(loaded.gguf_path)
        trained_context = getattr(hf_model.config.get_text_config(), "max_position_embeddings", None)
        if trained_context and max_context > trained_context:
            raise RecipeError(f"--max-context {max_context} exceeds the model's trained context ({trained_context})")

        with stage("build static-KV decoder"):
            from .decoder import Decoder, load_custom_ops

            load_custom_ops()
            decoder = Decoder(hf_model, max_context=max_context, kv_cache=kv_cache).eval()
            # the float reference: float weights and a float KV cache (it shares the decoder's modules)
            reference = decoder if kv_cache == "fp32" else Decoder(hf_model, max_context=max_context).eval()
            n_params = sum(p.numel() for p in hf_model.parameters())
            tokens = parity.parity_token_ids(hf_tokenizer, min(parity_tokens, max_context))
            float_logits = parity.eager_logits(reference, tokens)
        with stage("float perplexity (eager)"):
            from .eager_perplexity import decoder_perplexity

            float_ppl = decoder_perplexity(reference, hf_tokenizer)
            report_kv = {"dtype": kv_cache, "bytes": decoder.kv_cache_bytes(), "fp32_bytes": reference.kv_cache_bytes()}
            if kv_cache != "fp32":  # its own cost: float weights with this cache, against the float reference
                kv_ppl = decoder_perplexity(decoder, hf_tokenizer)["perplexity"]
                report_kv["perplexity_float_weights"] = kv_ppl
                report_kv["perplexity_cost_pct"] = round(100 * (kv_ppl / float_ppl["perplexity"] - 1), 2)
            del reference

        quantized, skipped, quant_logits = [], [], None
        if backend.EAGER_QUANT:
            with stage(f"quantize ({recipe.name})"):
                gguf_source = (loaded.gguf_path, hf_model) if needs_gguf else None
                quant_result = apply_recipe(decoder, recipe, allow_skip=allow_skip, gguf_source=gguf_source)
                quant_logits = parity.eager_logits(decoder, tokens) if recipe.linear or recipe.embedding else None
            quantized, skipped = quant_result.quantized, quant_result.skipped
            for s in skipped:
                console.print(f"[yellow]![/] left in float: {s['name']} ({s['reason']})")

        tok = tokenizer_spec(hf_tokenizer, hf_model)
        job = LoweringJob(
            decoder=decoder, hf_model=hf_model, hf_tokenizer=hf_tokenizer, out_dir=staging, recipe=recipe,
            max_prefill=max_prefill, prefill_lengths=prefill_lengths or [], bos_id=tok["bos_token_id"],
            eos_ids=tok["eos_token_ids"], compat=compat, compute_units=compute_units,
            parity_tokens=tokens, float_logits=float_logits, float_perplexity=float_ppl, gguf_path=loaded.gguf_path,
            prefill_method=prefill_method,
        )
        export_start = time.perf_counter()
        lower_title = f"export and lower to {target}/{backend.DELEGATE}"
        with stage(lower_title if backend.EAGER_QUANT else f"{lower_title}, quantize ({recipe.name})"):
            lowering = backend.lower(job)
        export_seconds = time.perf_counter() - export_start
        if not backend.EAGER_QUANT:
            quantized = lowering.pop("quantized_layers")
        weights_check = lowering.pop("weights_check", None)

        with stage("write tokenizer"):
            hf_tokenizer.save_pretrained(staging)
            for extra in ("special_tokens_map.json", "chat_template.jinja", "added_tokens.json"):
                (staging / extra).unlink(missing_ok=True)  # the manifest carries the template and special tokens

        manifest = {
            "name": output.name,
            "pocketlm_version": pocketlm.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {
                "family": loaded.family.name,
                "source": loaded.source,
                "shape": decoder.shape.as_dict(),
                "parameters": int(n_params),
            },
            "tokenizer": tok,
            "runtime": {
                "backend": backend.ENGINE,
                "delegate": backend.DELEGATE,
                "program": backend.PROGRAM_FILE,
                "max_context": max_context,
                "max_prefill": max_prefill,
                **backend.runtime_fields(job),
                **({"kv_cache": kv_cache} if hasattr(backend, "KV_CACHE_DTYPES") else {}),
                **({"compat": [compat_runtime]} if compat_runtime else {}),
                "versions": installed(backend.VERSION_PACKAGES),
            },
            "compression": {
                **recipe.describe(),
                **({"recipe_file": recipe_file} if recipe_file else {}),
                "quantized_layers": quantized,
                "skipped_layers": skipped,
            },
            # Prompts, stop strings, sampling and rules per task, read by the SDK and the apps alike.
            "tasks": default_presets(loaded.family.name, bool(tok.get("chat_template")), languages, int(n_params)),
        }

        not_here = engine_class(backend.ENGINE).unavailable_reason(manifest["runtime"])
        if not_here:
            # The runtime exists only elsewhere (Core ML: Apple systems). The backend's own check of
            # the stored weights stands in, and the report says the lowered model was not run.
            check = weights_check
            if check is None:
                raise ConversionError(f"{target}/{backend.DELEGATE} cannot run here ({not_here}) and gave no check")
            report_parity = {"tokens": check["tokens"], "vs_float": check["vs_float"],
                             "lowered_model_run": False, "why_not": not_here, "method": check["method"]}
            console.print(f"[yellow]![/] lowered model not run here: {not_here}")
        else:
            with stage("check the lowered model against the eager model"):
                engine = open_engine(Bundle(staging, manifest))
                try:
                    lowered, first = parity.engine_logits(engine, tokens)
                finally:
                    engine.close()
                report_parity = {"tokens": len(lowered), "vs_float": parity.compare(float_logits[first:-1], lowered)}
                if quant_logits is not None:
                    report_parity["vs_quantized_eager"] = parity.compare(quant_logits[first:-1], lowered)
            with stage("perplexity through the bundle"):
                lowered_ppl = bundle_perplexity(Bundle(staging, manifest), data_text(float_ppl["text"]),
                                                float_ppl["context"], float_ppl["stride"], REPORT_TOKENS)
        report_ppl = _report_perplexity(float_ppl, None if not_here else lowered_ppl, weights_check)

        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        manifest["report"] = {
            "parity": report_parity,
            "size_bytes": size,
            "export_seconds": round(export_seconds, 1),
            "conversion_seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "perplexity": report_ppl,
            **({"kv_cache": report_kv} if hasattr(backend, "KV_CACHE_DTYPES") else {}),
            "delegation": lowering,
            **({"weights_check": weights_check} if weights_check else {}),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        }
        seal_manifest(staging, manifest)
        interrupts.check()  # last chance: staged_bundle commits the folder when this block ends

    p = report_parity["vs_float"]
    bundle_ppl = "not measured" if report_ppl["bundle"] is None else f"{report_ppl['bundle']:.2f}"
    console.print(
        f"[bold green]bundle[/] {output}  {size / 1e6:.1f} MB  parity vs float: top-1 {p['top1_agreement']:.0%}, "
        f"max |Δlogit| {p['max_abs_logit_diff']:.3g}, KL {p['mean_kl']:.3g}; "
        f"perplexity {report_ppl['float']:.2f} float → {bundle_ppl}  "
        f"(export {export_seconds:.0f} s, peak RSS {manifest['report']['peak_rss_mb']:.0f} MB)"
    )
    return output


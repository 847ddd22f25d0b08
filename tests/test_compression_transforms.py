"""Pruning, distillation, quantization recovery, LoRA and recipe files on tiny random models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from pocketlm.converter.distill import DistillSettings, check_same_tokenizer, distill, kl_loss
from pocketlm.converter.finetune import LoraSettings, add_lora, finetune, merge_lora
from pocketlm.converter.prune import PruneSettings, count_parameters, prune, sparsify
from pocketlm.converter.sources import load_source
from pocketlm.converter.textdata import IGNORE, load_rows
from pocketlm.converter.training import TrainSettings, step_lr
from pocketlm.errors import RecipeError, TrainingError

QUIET = Console(quiet=True)
TINY_TRAIN = dict(batch_size=4, lr=1e-3, warmup_steps=1)


def _safetensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    from tiny_models import TRAINING_TEXT

    path = tmp_path_factory.mktemp("data") / "train.txt"
    path.write_text("\n\n".join([TRAINING_TEXT] * 2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pruned(tiny_model_dir, tmp_path_factory, text_file):
    """Tiny llama with half its MLP channels, half its KV heads, half its layers and a quarter of its width removed."""
    out = tmp_path_factory.mktemp("pruned") / "llama-pruned"
    settings = PruneSettings(mlp=0.5, heads=0.5, layers=0.5, hidden=0.25, multiple_of=16, seq_len=32,
                             calibration_rows=4)
    summary = prune(str(tiny_model_dir("llama")), out, settings, str(text_file))
    return out, summary


# ------------------------------------------------------------------ structured pruning
@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "gemma3"])
def test_structured_pruning_makes_a_smaller_model_of_the_same_family(family, tiny_model_dir, tmp_path, text_file):
    src = tiny_model_dir(family)
    width = 0.0 if family == "gemma3" else 0.25  # Gemma's width stays (its embedding scale is sqrt(hidden))
    settings = PruneSettings(mlp=0.5, heads=0.5, layers=0.5, hidden=width, multiple_of=16, seq_len=32,
                             calibration_rows=4)
    summary = prune(str(src), tmp_path / "p", settings, str(text_file))
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert (config["intermediate_size"], config["num_key_value_heads"], config["num_hidden_layers"]) == (64, 1, 1)
    assert config["num_attention_heads"] == 2  # the removed KV head took its 2 query heads with it
    assert config["hidden_size"] == (64 if family == "gemma3" else 48)
    loaded = load_source(str(tmp_path / "p"))
    assert count_parameters(loaded.model) == summary["parameters_after"] < summary["parameters_before"]
    if family == "gemma3":
        kept = summary["structure"]["kept_layers"][0]
        assert config["layer_types"] == [["sliding_attention", "full_attention"][kept]]
    ids = torch.tensor([[5, 6, 7, 8]])
    assert torch.isfinite(loaded.model(input_ids=ids).logits).all()
    assert loaded.source["history"][0]["step"] == "prune"


def test_pruning_keeps_the_most_important_channels(tiny_model_dir, tmp_path, text_file):
    """Removing half the MLP channels by importance changes the output less than removing the other half."""
    from pocketlm.converter import prune as prune_module

    loaded = load_source(str(tiny_model_dir("llama")))
    rows = load_rows(loaded.tokenizer, text_file, 32).input_ids[:4]
    importance = prune_module.measure_importance(loaded.model, rows)
    reference = loaded.model(input_ids=rows).logits

    def drift(keep_best: bool) -> float:
        model = load_source(str(tiny_model_dir("llama"))).model
        with torch.no_grad():
            for i, layer in enumerate(model.model.layers):
                order = importance["mlp"][i].argsort(descending=keep_best)
                layer.mlp.down_proj.weight[:, order[64:]] = 0
        return float((model(input_ids=rows).logits - reference).abs().mean())

    assert drift(keep_best=True) < drift(keep_best=False)


def test_width_pruning_keeps_the_norms_scale(tiny_model_dir, text_file):
    """Narrowing the residual stream keeps the channels the norms' outputs use most, and each norm's weight
    is rescaled so it still divides by the full width's rms: the first norm's output on the kept channels is
    closer to the unpruned model's than it is without the gain."""
    from pocketlm.converter import prune as prune_module

    loaded = load_source(str(tiny_model_dir("llama")))
    model = loaded.model
    rows = load_rows(loaded.tokenizer, text_file, 32).input_ids[:4]
    settings = PruneSettings(hidden=0.25, multiple_of=16, seq_len=32, calibration_rows=4)
    pruned, record = prune_module.structured_prune(model, settings, rows)
    assert record["hidden_size"] == pruned.config.hidden_size == 48
    importance = prune_module.measure_importance(model, rows)
    kept = prune_module._keep(importance["hidden"], 48)
    assert set(kept.tolist()) == set(importance["hidden"].topk(48).indices.tolist())

    def first_norm(m, ids):
        out = {}
        hook = m.model.layers[0].input_layernorm.register_forward_hook(lambda mod, a, o: out.setdefault("x", o))
        with torch.no_grad():
            m(input_ids=ids)
        hook.remove()
        return out["x"]

    reference = first_norm(model, rows)[..., kept]
    with_gain = first_norm(pruned, rows)
    gain = float(importance["norm_energy"]["model.layers.0.input_layernorm"][kept].mean()
                 / importance["norm_energy"]["model.layers.0.input_layernorm"].mean()) ** 0.5
    assert abs(gain - 1) > 0.01  # the kept channels' share of the energy is not their share of the width
    without_gain = with_gain / gain
    assert (with_gain - reference).abs().mean() < (without_gain - reference).abs().mean()


def test_width_pruning_refuses_gemma(tiny_model_dir, tmp_path, text_file):
    with pytest.raises(TrainingError, match="--hidden is not supported for the gemma3 family"):
        prune(str(tiny_model_dir("gemma3")), tmp_path / "p", PruneSettings(hidden=0.25, multiple_of=16, seq_len=32,
              calibration_rows=4), str(text_file))
    assert not (tmp_path / "p").exists()


def _with_mlp_bias(model):
    """The same model with random biases on its MLP linears (Llama's mlp_bias option)."""
    from transformers import AutoModelForCausalLM

    cfg = model.config.__class__.from_dict({**model.config.to_dict(), "mlp_bias": True})
    biased = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    biased.load_state_dict(model.state_dict(), strict=False)
    torch.manual_seed(0)
    for layer in biased.model.layers:
        for linear in (layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
            linear.bias.data.normal_(0, 0.02)
    return biased


def _residual_stream(model, ids) -> dict:
    """("in", j): the residual entering layer j (j == layers: entering the final norm); ("mid", j): layer j's
    residual after attention."""
    got, hooks, layers = {}, [], model.model.layers
    for j, layer in enumerate(layers):
        hooks.append(layer.register_forward_pre_hook(
            lambda m, a, kw, j=j: got.__setitem__(("in", j), a[0] if a else kw["hidden_states"]), with_kwargs=True))
        hooks.append(layer.post_attention_layernorm.register_forward_pre_hook(
            lambda m, a, j=j: got.__setitem__(("mid", j), a[0])))
    hooks.append(model.model.norm.register_forward_pre_hook(lambda m, a: got.__setitem__(("in", len(layers)), a[0])))
    with torch.no_grad():
        model(input_ids=ids)
    for h in hooks:
        h.remove()
    return got


@pytest.mark.parametrize("family, layers, hidden, bias", [("llama", 0.5, 0.0, False), ("qwen2", 0.0, 0.25, False),
                                                          ("llama", 0.0, 0.0, True)])
def test_repair_brings_the_pruned_model_closer_to_the_original(family, layers, hidden, bias, tiny_model_dir,
                                                               text_file):
    """--repair's least-squares refit: each kept layer's output, run through the whole repaired model, is as
    far from the original's residual at the next kept depth as the fit reports, nearer than before the fit;
    and the KL to the original's next-token distribution on other rows drops."""
    from dataclasses import replace

    from pocketlm.converter import prune as prune_module

    loaded = load_source(str(tiny_model_dir(family)))
    model = _with_mlp_bias(loaded.model) if bias else loaded.model
    rows = load_rows(loaded.tokenizer, text_file, 16).input_ids
    calibration, held_out = rows[:-4], rows[-4:]
    settings = PruneSettings(mlp=0.5, layers=layers, hidden=hidden, multiple_of=16, seq_len=16,
                             calibration_rows=len(calibration))
    plain, _ = prune_module.structured_prune(model, settings, calibration)
    repaired, record = prune_module.structured_prune(model, replace(settings, repair=True), calibration)
    fits = record["repair"]
    assert len(fits) == repaired.config.num_hidden_layers
    assert all(f["error_after"] < f["error_before"] for f in fits)

    channels = slice(None)
    if hidden:
        channels = prune_module._keep(prune_module.measure_importance(model, calibration)["hidden"],
                                      repaired.config.hidden_size)
    original, after = _residual_stream(model, calibration), _residual_stream(repaired, calibration)
    kept, n = record["kept_layers"], model.config.num_hidden_layers
    for j, fit in enumerate(fits):
        target = original[("in", kept[j + 1] if j + 1 < len(kept) else n)][..., channels]
        error = (after[("in", j + 1)] - target).pow(2).sum() / (target - after[("mid", j)]).pow(2).sum()
        assert float(error) == pytest.approx(fit["error_after"], rel=0.02, abs=2e-4)
    with torch.no_grad():
        teacher = model(input_ids=held_out).logits
        kl = {name: float(kl_loss(m(input_ids=held_out).logits, teacher, 1.0, torch.ones(held_out.shape)))
              for name, m in (("plain", plain), ("repaired", repaired))}
    assert kl["repaired"] < kl["plain"]


def test_repair_refuses_gemma_and_needs_structured_pruning(tiny_model_dir, tmp_path, text_file):
    with pytest.raises(TrainingError, match="--repair is written for .* not gemma3"):
        prune(str(tiny_model_dir("gemma3")), tmp_path / "p", PruneSettings(mlp=0.5, repair=True, multiple_of=16,
              seq_len=32, calibration_rows=4), str(text_file))
    with pytest.raises(TrainingError, match="--repair refits what structured pruning removed"):
        prune(str(tiny_model_dir("llama")), tmp_path / "p", PruneSettings(unstructured=0.5, repair=True),
              str(text_file))
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("target, quant", [("executorch", "fp32"), ("tflite", "fp32"), ("coreml", "fp16")])
def test_pruned_model_lowers_to_every_target(target, quant, pruned, tmp_path):
    from pocketlm.converter.convert import convert

    folder, summary = pruned
    bundle = convert(str(folder), tmp_path / "b", target=target, quant=quant, max_context=64, max_prefill=16,
                     parity_tokens=40, console=QUIET)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["parameters"] == summary["parameters_after"]
    assert manifest["model"]["shape"]["num_layers"] == 1 and manifest["model"]["shape"]["num_kv_heads"] == 1
    assert manifest["report"]["parity"]["vs_float"]["top1_agreement"] == 1.0
    assert [h["step"] for h in manifest["model"]["source"]["history"]] == ["prune"]


@pytest.mark.parametrize("options, message", [
    (dict(heads=0.9), "would remove every KV head"),
    (dict(heads=0.1), "removes no head"),
    (dict(layers=0.99), "would remove every layer"),
    (dict(hidden=0.05), "removes no channel once rounded"),
    (dict(mlp=1.0), "must be a fraction"),
    (dict(), "nothing to prune"),
    (dict(unstructured=0.5, two_four=True), "choose one"),
])
def test_bad_prune_ratios_are_refused_before_any_work(options, message, tiny_model_dir, tmp_path, text_file):
    with pytest.raises(TrainingError, match=message):
        prune(str(tiny_model_dir("llama")), tmp_path / "p", PruneSettings(multiple_of=16, **options), str(text_file))
    assert not (tmp_path / "p").exists()


def test_unstructured_and_two_four_sparsity(tiny_model_dir):
    model = load_source(str(tiny_model_dir("llama"))).model
    report = sparsify(model, PruneSettings(unstructured=0.5))
    assert abs(report["sparsity"] - 0.5) < 0.01
    model = load_source(str(tiny_model_dir("llama"))).model
    sparsify(model, PruneSettings(two_four=True))
    w = model.model.layers[0].mlp.down_proj.weight
    assert ((w.view(w.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    assert (model.model.embed_tokens.weight != 0).all()  # the embedding is left dense


# ------------------------------------------------------------------ distillation
def _kl_to_teacher(teacher_dir, student_dir, text_file) -> float:
    teacher, student = load_source(str(teacher_dir)), load_source(str(student_dir))
    rows = load_rows(student.tokenizer, text_file, 32)
    with torch.no_grad():
        t = teacher.model(input_ids=rows.input_ids).logits
        s = student.model(input_ids=rows.input_ids).logits
    return float(kl_loss(s, t, 1.0, torch.ones(rows.input_ids.shape)))


def test_distillation_brings_a_pruned_student_closer_to_its_teacher(pruned, tiny_model_dir, tmp_path, text_file):
    teacher = tiny_model_dir("llama")
    folder, _ = pruned
    summary = distill(str(teacher), str(folder), str(text_file), tmp_path / "d", DistillSettings(seq_len=32),
                      TrainSettings(steps=20, **TINY_TRAIN))
    assert summary["steps"] == 20 and summary["last_loss"] < summary["first_loss"]
    assert _kl_to_teacher(teacher, tmp_path / "d", text_file) < 0.8 * _kl_to_teacher(teacher, folder, text_file)
    history = json.loads((tmp_path / "d" / "pocketlm_history.json").read_text())["steps"]
    assert [h["step"] for h in history] == ["prune", "distill"]


def test_linear_lr_schedule_decays_to_zero_over_the_budget_and_is_recorded(pruned, tiny_model_dir, tmp_path,
                                                                           text_file):
    steps = TrainSettings(steps=10, lr=1.0, warmup_steps=2, lr_schedule="linear")
    lrs = [step_lr(steps, i, seconds=0.0) for i in range(10)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(0.9) and lrs[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))
    timed = TrainSettings(minutes=2, lr=1.0, warmup_steps=1, lr_schedule="linear")
    assert step_lr(timed, 500, seconds=60) == pytest.approx(0.5) and step_lr(timed, 9, seconds=130) == 0.0
    both = TrainSettings(steps=100, minutes=1, lr=1.0, warmup_steps=1, lr_schedule="linear")
    assert step_lr(both, 50, seconds=45) == pytest.approx(0.25)  # the budget nearer its end decides
    constant = TrainSettings(steps=10, lr=1.0, warmup_steps=2)
    assert [step_lr(constant, i, 0.0) for i in (0, 1, 9)] == [0.5, 1.0, 1.0]
    with pytest.raises(TrainingError, match="--lr-schedule must be one of constant, linear"):
        TrainSettings(steps=1, lr_schedule="cosine").check()
    summary = distill(str(tiny_model_dir("llama")), str(pruned[0]), str(text_file), tmp_path / "d",
                      DistillSettings(seq_len=32), TrainSettings(steps=10, lr_schedule="linear", **TINY_TRAIN))
    assert summary["last_loss"] < summary["first_loss"]
    recorded = json.loads((tmp_path / "d" / "pocketlm_history.json").read_text())["steps"][-1]["training"]
    assert recorded["lr_schedule"] == "linear" and recorded["lr"] == TINY_TRAIN["lr"] and recorded["steps"] == 10


def test_bf16_distillation_keeps_float32_weights(pruned, tiny_model_dir, tmp_path, text_file):
    summary = distill(str(tiny_model_dir("llama")), str(pruned[0]), str(text_file), tmp_path / "d",
                      DistillSettings(seq_len=32), TrainSettings(steps=10, bf16=True, **TINY_TRAIN))
    assert summary["last_loss"] < summary["first_loss"]
    assert {t.dtype for t in _safetensors(tmp_path / "d").values()} == {torch.float32}


def test_sequence_level_distillation_trains_on_teacher_generations(pruned, tiny_model_dir, tmp_path, text_file):
    folder, _ = pruned
    settings = DistillSettings(mode="sequence", seq_len=32, prompt_tokens=8, new_tokens=16)
    summary = distill(str(tiny_model_dir("llama")), str(folder), str(text_file), tmp_path / "d", settings,
                      TrainSettings(steps=15, **TINY_TRAIN))
    assert summary["last_loss"] < summary["first_loss"]
    assert summary["trained_tokens"] == 16 * summary["rows"]  # the continuations only
    assert (tmp_path / "d" / "model.safetensors").is_file()


def _quantized_kl(teacher_dir, student_dir, text_file) -> float:
    """KL to the float teacher of the student as `convert --quant 8da4w` stores it (group 16)."""
    from pocketlm.converter.recipes import apply_recipe, build_recipe

    teacher, student = load_source(str(teacher_dir)), load_source(str(student_dir))
    apply_recipe(student.model, build_recipe("8da4w", 16, "none"))
    rows = load_rows(student.tokenizer, text_file, 32)
    with torch.no_grad():
        t = teacher.model(input_ids=rows.input_ids).logits
        s = student.model(input_ids=rows.input_ids).logits
    return float(kl_loss(s, t, 1.0, torch.ones(rows.input_ids.shape)))


def test_quantization_aware_distillation_recovers_the_4bit_model(tiny_model_dir, tmp_path, text_file):
    teacher = tiny_model_dir("llama")
    settings = DistillSettings(seq_len=32, qat="8da4w", group_size=16, temperature=1.0)
    distill(str(teacher), str(teacher), str(text_file), tmp_path / "q", settings,
            TrainSettings(steps=25, batch_size=4, lr=1e-4, warmup_steps=1))  # small steps: it starts on the grid
    before, after = _quantized_kl(teacher, teacher, text_file), _quantized_kl(teacher, tmp_path / "q", text_file)
    assert after < 0.8 * before
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["hidden_size"] == 64 and "quantization_config" not in config  # plain float weights


def test_mismatched_tokenizers_are_refused(tiny_model_dir):
    from transformers import AutoTokenizer

    a = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    b = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    check_same_tokenizer(a, b)
    b.add_tokens(["<extra-token>"])
    with pytest.raises(TrainingError, match="tokenizers differ.*1 only in the student"):
        check_same_tokenizer(a, b)


def test_empty_and_malformed_data_are_refused(tiny_model_dir, tmp_path):
    tok = load_source(str(tiny_model_dir("llama"))).tokenizer
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(TrainingError, match="is empty"):
        load_rows(tok, tmp_path / "empty.txt", 32)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(TrainingError, match="line 2: not JSON"):
        load_rows(tok, tmp_path / "bad.jsonl", 32)
    (tmp_path / "short.txt").write_text("two words")
    with pytest.raises(TrainingError, match="fewer than one row"):
        load_rows(tok, tmp_path / "short.txt", 512)
    with pytest.raises(TrainingError, match="not found"):
        load_rows(tok, tmp_path / "missing.txt", 32)


def test_chat_jsonl_trains_only_on_the_assistant_turns(tiny_model_dir, tmp_path):
    tok = load_source(str(tiny_model_dir("llama"))).tokenizer
    record = {"messages": [{"role": "user", "content": "Where is Paris?"},
                           {"role": "assistant", "content": "In France."}]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({"prompt": "A", "completion": "B"}))
    rows = load_rows(tok, tmp_path / "chat.jsonl", 48)
    trained = rows.input_ids[0][rows.labels[0] != IGNORE]
    assert tok.decode(trained).startswith("In France.")
    assert rows.attention_mask[0].sum() < 48 and (rows.labels[0][rows.attention_mask[0] == 0] == IGNORE).all()


def test_resume_continues_exactly_where_the_checkpoint_left_off(pruned, tiny_model_dir, tmp_path, text_file):
    teacher, (student, _) = str(tiny_model_dir("llama")), pruned
    s = DistillSettings(seq_len=32)
    distill(teacher, str(student), str(text_file), tmp_path / "straight", s, TrainSettings(steps=6, **TINY_TRAIN))
    ckpt = tmp_path / "ckpt"
    distill(teacher, str(student), str(text_file), tmp_path / "half", s,
            TrainSettings(steps=3, checkpoint_dir=str(ckpt), checkpoint_every=3, **TINY_TRAIN))
    resumed = distill(teacher, str(student), str(text_file), tmp_path / "resumed", s,
                      TrainSettings(steps=6, checkpoint_dir=str(ckpt), resume=True, **TINY_TRAIN))
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 6
    a, b = _safetensors(tmp_path / "straight"), _safetensors(tmp_path / "resumed")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    with pytest.raises(TrainingError, match="was made with"):
        distill(teacher, str(student), str(text_file), tmp_path / "other", DistillSettings(seq_len=32, temperature=3),
                TrainSettings(steps=6, checkpoint_dir=str(ckpt), resume=True, **TINY_TRAIN))


def test_a_budget_is_required_and_existing_outputs_are_kept(pruned, tiny_model_dir, tmp_path, text_file):
    with pytest.raises(TrainingError, match="give a budget"):
        distill(str(tiny_model_dir("llama")), str(pruned[0]), str(text_file), tmp_path / "d", DistillSettings(),
                TrainSettings())
    (tmp_path / "d").mkdir()
    with pytest.raises(TrainingError, match="already exists"):
        distill(str(tiny_model_dir("llama")), str(pruned[0]), str(text_file), tmp_path / "d", DistillSettings(),
                TrainSettings(steps=1))


# ------------------------------------------------------------------ LoRA
def test_lora_merge_equals_the_unmerged_forward(tiny_model_dir):
    model = add_lora(load_source(str(tiny_model_dir("qwen2"))).model, LoraSettings(rank=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # as if trained: B starts at zero
    ids = torch.tensor([[3, 9, 27, 81, 5]])
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        base_weights = sum(1 for n, _ in model.named_parameters() if "lora_" in n)
        merged_model = merge_lora(model)
        merged = merged_model(input_ids=ids).logits
    assert base_weights > 0 and not any("lora_" in n for n, _ in merged_model.named_parameters())
    assert torch.allclose(unmerged, merged, atol=1e-5)


def test_finetune_writes_a_merged_model_that_learned(tiny_model_dir, tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Q{i}: colour?", "completion": " blue"}) for i in range(8)))
    summary = finetune(str(tiny_model_dir("llama")), str(data), tmp_path / "ft", LoraSettings(seq_len=16),
                       TrainSettings(steps=15, batch_size=4, lr=5e-3, warmup_steps=1))
    assert summary["last_loss"] < summary["first_loss"]
    loaded, base = load_source(str(tmp_path / "ft")), load_source(str(tiny_model_dir("llama")))
    assert count_parameters(loaded.model) == count_parameters(base.model)
    from pocketlm.converter.distill import ce_loss_fn

    rows = load_rows(base.tokenizer, data, 16)
    with torch.no_grad():  # the merged weights (no adapters left) fit the completions better than the base
        assert float(ce_loss_fn()(loaded.model, rows)) < 0.85 * float(ce_loss_fn()(base.model, rows))
    assert loaded.source["history"][0]["step"] == "finetune"


# ------------------------------------------------------------------ data parallel (torchrun, gloo)
def _torchrun(args: list[str]) -> dict:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "pocketlm", *args],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_distill_under_torchrun_matches_one_process(sharding, pruned, tiny_model_dir, tmp_path, text_file):
    """2 processes x 2 rows take the same steps as 1 process x 4 rows: DDP (whole copies, averaged
    gradients) and FSDP (sharded); an FSDP checkpoint resumes in a single process."""
    teacher, student = str(tiny_model_dir("llama")), str(pruned[0])
    args = ["distill", "--teacher", teacher, "--student", student, "--data", str(text_file), "--seq-len", "32",
            "--batch-size", "4", "--lr", "1e-3"]
    ckpt = tmp_path / "ckpt"
    summary = _torchrun(args + ["--steps", "3", "-o", str(tmp_path / "multi"), "--checkpoint-dir", str(ckpt)]
                        + (["--fsdp"] if sharding == "fsdp" else []))
    assert summary["world_size"] == 2
    one = dict(batch_size=4, lr=1e-3)
    distill(teacher, student, str(text_file), tmp_path / "one", DistillSettings(seq_len=32),
            TrainSettings(steps=3, **one))
    multi, single, start = _safetensors(tmp_path / "multi"), _safetensors(tmp_path / "one"), _safetensors(pruned[0])
    assert _max_diff(multi, single) < 1e-5
    assert _max_diff(start, single) > 1e-4  # and training did move the weights
    distill(teacher, student, str(text_file), tmp_path / "straight", DistillSettings(seq_len=32),
            TrainSettings(steps=5, **one))
    resumed = distill(teacher, student, str(text_file), tmp_path / "resumed", DistillSettings(seq_len=32),
                      TrainSettings(steps=5, checkpoint_dir=str(ckpt), resume=True, **one))
    assert resumed["resumed_from"] == 3
    assert _max_diff(_safetensors(tmp_path / "straight"), _safetensors(tmp_path / "resumed")) < 1e-5


def test_fsdp_needs_torchrun(pruned, tiny_model_dir, tmp_path, text_file):
    with pytest.raises(TrainingError, match="under torchrun"):
        distill(str(tiny_model_dir("llama")), str(pruned[0]), str(text_file), tmp_path / "d",
                DistillSettings(seq_len=32), TrainSettings(steps=1, fsdp=True))


# ------------------------------------------------------------------ recipe files
def test_a_recipe_file_runs_prune_distill_convert(tiny_model_dir, tmp_path, text_file):
    from pocketlm.converter.recipe_files import load_recipe, run_recipe

    recipe_path = tmp_path / "tiny.yaml"
    recipe_path.write_text(f"""
name: tiny-smallest
steps:
  - prune: {{mlp: 0.5, multiple_of: 16, seq_len: 32, calibration_rows: 4, calibration: {text_file}}}
  - distill: {{data: {text_file}, steps: 3, batch_size: 4, seq_len: 32, lr: 1.0e-3}}
  - convert: {{quant: 8da4w, max_context: 64, max_prefill: 16, parity_tokens: 40}}
""")
    bundle = run_recipe(str(tiny_model_dir("llama")), load_recipe(str(recipe_path)), tmp_path / "b", console=QUIET)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["source"]["kind"] == "recipe"
    assert manifest["model"]["source"]["ref"] == str(tiny_model_dir("llama"))
    assert [h["step"] for h in manifest["model"]["source"]["history"]] == ["prune", "distill"]
    assert manifest["model"]["shape"]["intermediate_size"] == 64
    assert manifest["compression"]["recipe"] == "8da4w-g32"
    assert manifest["compression"]["recipe_file"]["name"] == "tiny-smallest"


@pytest.mark.parametrize("body, message", [
    ("steps: []", "non-empty list of steps"),
    ("steps:\n  - shrink: {}\n  - convert: {}", "unknown step 'shrink'"),
    ("steps:\n  - prune: {mlp: 0.5, colour: red}\n  - convert: {}", "unknown option.*colour"),
    ("steps:\n  - convert: {}\n  - prune: {mlp: 0.5}", "last step, and only it, must be convert"),
    ("steps:\n  - distill: {steps: 3}\n  - convert: {}", "missing data"),
    ("steps: [\n", "cannot be parsed"),
])
def test_bad_recipe_files_are_refused(body, message, tmp_path):
    from pocketlm.converter.recipe_files import load_recipe

    (tmp_path / "r.yaml").write_text(body)
    with pytest.raises(RecipeError, match=message):
        load_recipe(str(tmp_path / "r.yaml"))


@pytest.mark.parametrize("convert_options, message", [
    ({"quant": "int3"}, "unknown quantization 'int3'"),
    ({"quant": "8da4w", "group_size": 16}, "multiple of 32"),
])
def test_bad_recipe_values_fail_before_the_first_step(convert_options, message, tiny_model_dir, tmp_path):
    from pocketlm.converter.recipe_files import run_recipe

    recipe = {"name": "r", "steps": [{"prune": {"mlp": 0.5}}, {"convert": convert_options}]}
    with pytest.raises(RecipeError, match=message):
        run_recipe(str(tiny_model_dir("llama")), recipe, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_shipped_recipes_load():
    from pocketlm.converter.recipe_files import _check_settings, load_recipe, shipped_recipes

    assert {"mobile-balanced", "smallest", "most-accurate"} <= set(shipped_recipes())
    for name in shipped_recipes():
        recipe = load_recipe(name)
        _check_settings(recipe)
        assert recipe["description"]


# ------------------------------------------------------------------ HQQ scales
def test_hqq_recipe_lowers_with_other_scales_on_the_same_grid(tiny_bundle):
    affine = json.loads((tiny_bundle("llama", "8da4w") / "manifest.json").read_text())
    hqq = json.loads((tiny_bundle("llama", "8da4w-hqq") / "manifest.json").read_text())
    assert hqq["compression"]["recipe"] == "8da4w-hqq-g32"
    assert hqq["compression"]["linear"]["qparams"] == "hqq"
    assert hqq["report"]["parity"]["vs_quantized_eager"]["top1_agreement"] == 1.0
    assert hqq["report"]["delegation"] == affine["report"]["delegation"]  # same kernels, same ops outside


# ------------------------------------------------------------------ the CLI
def test_cli_prune_then_finetune_then_convert_with_a_recipe(capsys, tiny_model_dir, tmp_path, text_file):
    from pocketlm.cli import main

    src = str(tiny_model_dir("qwen3"))
    assert main(["prune", src, "-o", str(tmp_path / "p"), "--mlp", "0.5", "--multiple-of", "32",
                 "--calibration", str(text_file), "--seq-len", "32", "--calibration-rows", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["structure"]["intermediate_size"] == 64
    assert main(["finetune", str(tmp_path / "p"), "--data", str(text_file), "--seq-len", "32", "--steps", "2",
                 "--batch-size", "2", "-o", str(tmp_path / "ft")]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    # --recipe with an option given on the command line: it overrides the recipe's convert step
    assert main(["convert", str(tmp_path / "ft"), "--recipe", "most-accurate", "--quant", "fp32", "--max-context",
                 "64", "--max-prefill", "16", "--parity-tokens", "40", "-o", str(tmp_path / "b")]) == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["compression"]["recipe"] == "fp32+emb-int8"  # the recipe's embedding, the command's quant
    assert manifest["compression"]["recipe_file"]["name"] == "most-accurate"
    assert [h["step"] for h in manifest["model"]["source"]["history"]] == ["prune", "finetune"]


def test_cli_errors_are_one_line(capsys, tiny_model_dir, tmp_path, text_file):
    from pocketlm.cli import main

    src = str(tiny_model_dir("llama"))
    cases = [
        (["prune", src, "-o", str(tmp_path / "p"), "--heads", "0.9"], "would remove every KV head"),
        (["distill", "--teacher", src, "--student", src, "--data", str(tmp_path / "none.txt"), "--steps", "1",
          "-o", str(tmp_path / "d")], "not found"),
        (["distill", "--teacher", src, "--student", src, "--data", str(text_file), "-o", str(tmp_path / "d")],
         "give a budget"),
        (["convert", src, "--recipe", "no-such-recipe"], "neither a file nor a shipped recipe"),
    ]
    capsys.readouterr()  # what the fixtures printed
    for args, message in cases:
        assert main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()  # (model loading may show a progress bar first)
        assert [line for line in err if line.startswith("error:")] == [err[-1]] and message in err[-1], err
        assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "p").exists() and not (tmp_path / "d").exists()

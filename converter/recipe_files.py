"""Recipes as files: a YAML or JSON file names the steps from a source model to a bundle.

    name: smallest
    description: …
    steps:
      - prune:    {mlp: 0.4375}
      - distill:  {data: distill_en.txt, minutes: 30, lr: 1.0e-4}
      - convert:  {target: executorch, quant: 8da4w, embedding: int4}

`prune`, `distill` and `finetune` each write a Hugging Face folder that the next step reads;
`convert` (last, exactly once) lowers the result into the bundle. A distill step's teacher
is the recipe's source model unless it names one. Every option is checked before the first
step runs; the intermediate folders live in a temporary folder that is removed at the end.
`pocketlm convert SOURCE --recipe NAME_OR_FILE`; the shipped recipes are in
pocketlm/data/recipes/ (`pocketlm recipes` lists them).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path

from pocketlm.errors import RecipeError

from .distill import DistillSettings
from .finetune import LoraSettings
from .prune import PruneSettings
from .training import TrainSettings

CONVERT_OPTIONS = {
    "target", "delegate", "quant", "group_size", "embedding", "max_context", "max_prefill", "prefill_lengths",
    "parity_tokens", "allow_skip", "languages", "compat", "compute_units", "kv_cache", "prefill_method",
}
TRAIN_OPTIONS = {f.name for f in fields(TrainSettings)} - {"checkpoint_dir", "resume"}
STEP_OPTIONS = {
    "prune": {f.name for f in fields(PruneSettings)} | {"calibration"},
    "distill": {f.name for f in fields(DistillSettings)} | TRAIN_OPTIONS | {"data", "teacher"},
    "finetune": {f.name for f in fields(LoraSettings)} | TRAIN_OPTIONS | {"data"},
    "convert": CONVERT_OPTIONS,
}
REQUIRED = {"distill": {"data"}, "finetune": {"data"}}


def shipped_recipes() -> dict[str, Path]:
    from pocketlm.datafiles import data_path

    folder = data_path("recipes")
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def load_recipe(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_recipes()
        if name_or_path not in shipped:
            raise RecipeError(f"recipe {name_or_path} is neither a file nor a shipped recipe "
                              f"({', '.join(shipped) or 'none shipped'})")
        path = shipped[name_or_path]
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            recipe = json.loads(text)
        else:
            import yaml

            recipe = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError / json.JSONDecodeError: the parser's own words
        raise RecipeError(f"recipe {path} cannot be parsed: {e}") from None
    check_recipe(recipe, str(path))
    recipe.setdefault("name", path.stem)
    return recipe


def _steps(recipe: dict) -> list[tuple[str, dict]]:
    return [next(iter(step.items())) for step in recipe["steps"]]


def check_recipe(recipe, where: str) -> None:
    if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list) or not recipe["steps"]:
        raise RecipeError(f"recipe {where}: expected a mapping with a non-empty list of steps")
    for number, step in enumerate(recipe["steps"], 1):
        if not isinstance(step, dict) or len(step) != 1:
            raise RecipeError(f"recipe {where}, step {number}: each step is a one-key mapping like {{prune: {{…}}}}")
        kind, options = next(iter(step.items()))
        if kind not in STEP_OPTIONS:
            raise RecipeError(f"recipe {where}, step {number}: unknown step {kind!r} "
                              f"(steps: {', '.join(STEP_OPTIONS)})")
        if options is None:
            step[kind] = options = {}
        if not isinstance(options, dict):
            raise RecipeError(f"recipe {where}, step {number} ({kind}): options must be a mapping")
        unknown = sorted(set(options) - STEP_OPTIONS[kind])
        if unknown:
            raise RecipeError(f"recipe {where}, step {number} ({kind}): unknown option(s) {', '.join(unknown)} "
                              f"(allowed: {', '.join(sorted(STEP_OPTIONS[kind]))})")
        missing = sorted(REQUIRED.get(kind, set()) - set(options))
        if missing:
            raise RecipeError(f"recipe {where}, step {number} ({kind}): missing {', '.join(missing)}")
    kinds = [k for k, _ in _steps(recipe)]
    if kinds.count("convert") != 1 or kinds[-1] != "convert":
        raise RecipeError(f"recipe {where}: the last step, and only it, must be convert (got {' → '.join(kinds)})")


def _split(options: dict, settings_cls) -> tuple[object, dict]:
    names = {f.name for f in fields(settings_cls)}
    return settings_cls(**{k: v for k, v in options.items() if k in names}), {
        k: v for k, v in options.items() if k not in names}


def _check_settings(recipe: dict) -> None:
    """Build every step's settings object now, so a bad value fails before hours of work."""
    from .backends import get_backend

    for kind, options in _steps(recipe):
        try:
            if kind == "prune":
                _split(options, PruneSettings)[0].check()
            elif kind in ("distill", "finetune"):
                settings, rest = _split(options, DistillSettings if kind == "distill" else LoraSettings)
                settings.check()
                _split(rest, TrainSettings)[0].check()
            else:
                backend = get_backend(options.get("target", "executorch"), options.get("delegate"))
                backend.build_recipe(options.get("quant") or backend.DEFAULT_QUANT, options.get("group_size", 32),
                                     options.get("embedding"))
        except TypeError as e:
            raise RecipeError(f"recipe {recipe.get('name')}: step {kind}: {e}") from None


def run_recipe(source: str, recipe: dict, output: str | Path | None, force: bool = False, console=None,
               convert_overrides: dict | None = None) -> Path:
    from .convert import convert
    from .distill import distill
    from .finetune import finetune
    from .prune import prune

    _check_settings(recipe)
    if output is not None and Path(output).exists() and not force:
        raise RecipeError(f"{output} already exists (use --force to replace it)")
    steps = _steps(recipe)
    if output is None:
        from .backends import get_backend
        from .convert import default_output_name

        last = steps[-1][1]
        backend = get_backend(last.get("target", "executorch"), last.get("delegate"))
        output = default_output_name(source, backend.NAME_TAG, recipe["name"])
    current = source
    with tempfile.TemporaryDirectory(prefix="pocketlm-recipe-") as work:
        for number, (kind, options) in enumerate(steps[:-1], 1):
            if console:
                console.print(f"[bold]recipe {recipe['name']}: step {number}/{len(steps)} {kind}[/]")
            folder = Path(work) / f"{number}-{kind}"
            options = dict(options)
            if kind == "prune":
                calibration = options.pop("calibration", "calibration_en.txt")
                prune(current, folder, PruneSettings(**options), calibration, console=console)
            elif kind == "distill":
                data, teacher = options.pop("data"), options.pop("teacher", source)
                settings, rest = _split(options, DistillSettings)
                distill(teacher, current, data, folder, settings, TrainSettings(**rest), console=console)
            else:
                data = options.pop("data")
                settings, rest = _split(options, LoraSettings)
                finetune(current, data, folder, settings, TrainSettings(**rest), console=console)
            current = str(folder)
        if console:
            console.print(f"[bold]recipe {recipe['name']}: step {len(steps)}/{len(steps)} convert[/]")
        options = {**steps[-1][1], **(convert_overrides or {})}
        return convert(current, output=output, force=force, console=console,
                       recipe_file={"name": recipe["name"], "source": source, "steps": recipe["steps"]}, **options)

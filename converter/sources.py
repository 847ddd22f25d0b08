"""Model sources: where a model comes from, one registry entry per kind.

Every source ends as a float32 Hugging Face causal LM plus its tokenizer. Only
safetensors and GGUF weights are read: pickle checkpoints are refused, never
unpickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pocketlm.errors import SourceError, UnsupportedModelError

from . import named_models
from .families import Family, check_gguf_architecture, family_for_model_type

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedModel:
    model: object  # transformers PreTrainedModel, float32, eval mode
    tokenizer: object  # transformers tokenizer
    family: Family
    source: dict = field(default_factory=dict)  # manifest model.source
    gguf_path: Path | None = None  # the GGUF file the weights came from (its blocks: gguf_grid.py)


@dataclass(frozen=True)
class SourceKind:
    name: str
    matches: Callable[[str], bool]
    load: Callable[[str, Callable], LoadedModel]


def _is_pickle(ref: str) -> bool:
    return Path(ref).suffix.lower() in PICKLE_SUFFIXES


def _refuse_pickle(ref: str, echo) -> LoadedModel:
    raise SourceError(
        f"{ref} is a pickle checkpoint; pocketlm never unpickles model files (they can run code). "
        "Convert it to safetensors or GGUF first"
    )


def _load_named(ref: str, echo) -> LoadedModel:
    path = named_models.resolve(ref, echo=echo)
    loaded = _load_gguf(str(path), echo)
    loaded.source = {**loaded.source, "kind": "named", "ref": ref}
    return loaded


def read_gguf_architecture(path: Path) -> str:
    """Validate a GGUF file's header and tensor table and return general.architecture."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}") from None
    if magic != b"GGUF":
        raise SourceError(f"{path} is not a GGUF file (bad magic {magic!r})")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        end = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    except Exception as e:  # the gguf package raises assorted errors on damaged files
        raise SourceError(f"{path} is damaged or truncated ({type(e).__name__}: {e})") from None
    if end > path.stat().st_size:
        raise SourceError(f"{path} is truncated ({path.stat().st_size} bytes, its tensors need {end})")
    field = reader.fields.get("general.architecture")
    if field is None:
        raise SourceError(f"{path} has no general.architecture field")
    return bytes(field.parts[field.data[0]]).decode()


def _load_gguf(ref: str, echo) -> LoadedModel:
    path = Path(ref)
    if not path.is_file():
        raise SourceError(f"{ref}: no such GGUF file")
    family = check_gguf_architecture(read_gguf_architecture(path))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    echo(f"pocketlm: reading {path.name} (dequantizing GGUF blocks to float32) …")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, OSError, KeyError) as e:
        raise SourceError(f"transformers could not load {path.name}: {e}") from None
    from pocketlm.bundle import sha256_file

    return LoadedModel(
        model.eval(), tokenizer, family,
        {"kind": "gguf", "ref": ref, "gguf_file": path.name, "sha256": sha256_file(path)},
        gguf_path=path,
    )


def _load_hf_folder(ref: str, echo, kind: str = "hf-folder", display: str | None = None) -> LoadedModel:
    folder = Path(ref)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SourceError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise SourceError(f"{config_path} is not valid JSON ({e})") from None
    family = family_for_model_type(config.get("model_type", "<missing model_type>"))
    if not list(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            _refuse_pickle(str(folder / pickles[0]), echo)
        raise SourceError(f"{folder} has no .safetensors weights")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (ValueError, OSError) as e:
        raise SourceError(f"{folder}: no usable tokenizer files ({e})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    except Exception as e:  # safetensors raises its own error types on damaged files
        raise SourceError(f"{folder}: the weights could not be read ({type(e).__name__}: {e})") from None
    source = {"kind": kind, "ref": display or ref}
    history = folder / "pocketlm_history.json"  # written by pocketlm prune / distill / finetune
    if history.is_file():
        try:
            source["history"] = json.loads(history.read_text())["steps"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise SourceError(f"{history} is not a pocketlm history file ({e})") from None
    return LoadedModel(model.eval(), tokenizer, family, source)


def _load_hub(ref: str, echo) -> LoadedModel:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SourceError("huggingface_hub is not installed; install pocketlm[converter]") from None
    echo(f"pocketlm: fetching {ref} from the Hugging Face Hub (safetensors and tokenizer files only) …")
    try:
        folder = snapshot_download(
            ref, allow_patterns=["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model"]
        )
    except Exception as e:  # offline, unknown repo, gated repo: all end the same way for the user
        raise SourceError(
            f"could not fetch {ref} from the Hugging Face Hub ({type(e).__name__}); check the id and your network, "
            "or pass a local model folder or .gguf file"
        ) from None
    return _load_hf_folder(folder, echo, kind="hub", display=ref)


# Tried in order; the first kind whose `matches` accepts the reference loads it.
SOURCE_KINDS: list[SourceKind] = [
    SourceKind("named", lambda ref: ref in named_models.NAMED_MODELS, _load_named),
    SourceKind("pickle", _is_pickle, _refuse_pickle),
    SourceKind("gguf", lambda ref: ref.lower().endswith(".gguf"), _load_gguf),
    SourceKind("hf-folder", lambda ref: Path(ref).is_dir(), _load_hf_folder),
    SourceKind("hub", lambda ref: not Path(ref).exists() and bool(HUB_ID.match(ref)), _load_hub),
]


def load_source(ref: str, echo=print) -> LoadedModel:
    for kind in SOURCE_KINDS:
        if kind.matches(ref):
            loaded = kind.load(ref, echo)
            _check_loaded(loaded)
            return loaded
    if Path(ref).exists():
        raise SourceError(f"{ref}: not a model pocketlm reads (a Hugging Face folder, a .gguf file, or a named model)")
    names = ", ".join(named_models.NAMED_MODELS)
    raise SourceError(f"{ref}: no such file or folder, and not a named model ({names}) or a hub id (org/name)")


def _check_loaded(loaded: LoadedModel) -> None:
    model_type = loaded.model.config.get_text_config().model_type
    if family_for_model_type(model_type) is not loaded.family:
        raise UnsupportedModelError(f"{model_type} loaded where {loaded.family.name} was expected")


def tokenizer_spec(tokenizer, model) -> dict:
    """The manifest's tokenizer section, read off a transformers tokenizer and generation config."""
    from pocketlm.tokenizer import chat_format_of

    eos = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif value:
            eos.update(int(v) for v in value)
    if not eos:
        raise UnsupportedModelError("the tokenizer has no end-of-sequence token; generation could not stop")
    bos = tokenizer.bos_token_id
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    special = {k: str(v) for k, v in (("bos_token", tokenizer.bos_token), ("eos_token", tokenizer.eos_token)) if v}
    return {
        "file": "tokenizer.json",
        "config_file": "tokenizer_config.json",
        "bos_token_id": bos,
        "eos_token_ids": sorted(eos),
        "pad_token_id": tokenizer.pad_token_id,
        "add_bos_token": bool(bos is not None and probe and probe[0] == bos),
        "special_tokens": special,
        "chat_template": template,
        "chat_format": chat_format_of({"chat_template": template, "special_tokens": special}),
    }

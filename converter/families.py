"""Model families pocketlm can export: one entry per family, its quirks as data.

The exportable decoder (decoder.py) is written once; what differs between
families is declared here, so adding a family is adding an entry. Everything
that can be read off the instantiated Hugging Face modules (attention scale,
sliding windows, rotary tables, tied weights) is read there, not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pocketlm.errors import UnsupportedModelError


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # Hugging Face config.model_type values
    gguf_architectures: tuple[str, ...]  # GGUF general.architecture values
    norm_offset: float = 0.0  # Gemma's RMSNorm scales by (1 + w)
    scaled_embeddings: bool = False  # Gemma multiplies embeddings by sqrt(hidden)
    qk_norm: bool = False  # RMSNorm on q and k per head (Qwen3, Gemma 3)
    sandwich_norms: bool = False  # Gemma 3: extra norms after attention and around the MLP
    activation: str = "silu"  # MLP gate activation


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("llama", model_types=("llama",), gguf_architectures=("llama",)),
        Family("qwen2", model_types=("qwen2",), gguf_architectures=("qwen2",)),
        Family("qwen3", model_types=("qwen3",), gguf_architectures=("qwen3",), qk_norm=True),
        Family(
            "gemma3",
            model_types=("gemma3_text", "gemma3"),
            gguf_architectures=("gemma3",),
            norm_offset=1.0,
            scaled_embeddings=True,
            qk_norm=True,
            sandwich_norms=True,
            activation="gelu_tanh",
        ),
    )
}

SUPPORTED = ", ".join(sorted(FAMILIES))


def _find(field: str, value: str, what: str) -> Family:
    for family in FAMILIES.values():
        if value in getattr(family, field):
            return family
    raise UnsupportedModelError(f"{what} {value!r} is not supported (supported: {SUPPORTED})")


def family_for_model_type(model_type: str) -> Family:
    return _find("model_types", model_type, "model family")


def check_gguf_architecture(arch: str) -> Family:
    return _find("gguf_architectures", arch, "GGUF architecture")

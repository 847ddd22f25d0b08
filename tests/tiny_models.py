"""Tiny random models of every supported family, saved as Hugging Face folders.

Each has the family's quirks switched on (tied embeddings, rope scaling, sliding
windows shorter than the test context, q/k norm, Gemma's scaled embeddings), a
byte-level BPE tokenizer trained here in milliseconds, and a chat template, so
the whole pipeline runs on them without any download.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

VOCAB = 384
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TRAINING_TEXT = (
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France. "
    "Les élèves étudient à l'école. Über den Wolken müssen die Freiheit wohl grenzenlos sein. "
    "日本語のテキストも少し。Emoji 🙂 and accents: café, naïve, jalapeño. "
) * 20

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
)


def family_configs():
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config, Qwen3Config

    return {
        "llama": LlamaConfig(
            **COMMON,
            tie_word_embeddings=True,
            rope_parameters={
                "rope_type": "llama3",
                "rope_theta": 10000.0,
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        ),
        "qwen2": Qwen2Config(
            **COMMON, tie_word_embeddings=False, use_sliding_window=True, sliding_window=8, max_window_layers=1
        ),
        "qwen3": Qwen3Config(**COMMON, head_dim=32, tie_word_embeddings=True),
        "gemma3": Gemma3TextConfig(
            **COMMON,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            tie_word_embeddings=True,
        ),
    }


def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    return tok


def make_tiny_model(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random `family` model + tokenizer as a Hugging Face folder and return it."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = family_configs()[family]
    config.bos_token_id, config.eos_token_id = 1, 2  # <|im_start|>, <|im_end|>
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # larger norm weights than the default ones make parity checks meaningful
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0.0 if family == "gemma3" else 1.0, 0.2)
        # Gemma's config zeroes the padding row at init; real checkpoints have none (an all-zero
        # block is refused by the LiteRT int4 recipes, tested on its own).
        model.get_input_embeddings().weight.normal_(0.0, 0.02)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    train_tokenizer().save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "unk_token": "<unk>",
                "chat_template": CHAT_TEMPLATE,
                "add_bos_token": False,
            }
        )
    )
    return out_dir

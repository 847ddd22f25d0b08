"""The exportable decoder against Hugging Face's own implementation, per family (eager, no export)."""

import pytest
import torch
from conftest import FAMILIES


def _load(tiny_model_dir, family):
    from transformers import AutoModelForCausalLM

    from pocketlm.converter.decoder import Decoder, load_custom_ops

    load_custom_ops()
    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir(family), dtype=torch.float32).eval()
    return hf, Decoder(hf, max_context=32).eval()


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_decoder_matches_hf_in_one_pass_and_incrementally(tiny_model_dir, family):
    hf, dec = _load(tiny_model_dir, family)
    tokens = torch.randint(3, hf.config.vocab_size, (1, 20), generator=torch.Generator().manual_seed(1))
    reference = hf(tokens).logits[0]

    dec.all_logits = True
    one_pass = dec(tokens, torch.tensor([0]))[0]
    dec.reset_cache()
    pieces = [dec(tokens[:, :12], torch.tensor([0]))[0]]  # prefill 12, then decode one at a time
    pieces += [dec(tokens[:, i : i + 1], torch.tensor([i]))[0] for i in range(12, 20)]
    incremental = torch.cat(pieces)

    assert torch.allclose(one_pass, reference, atol=1e-4), (one_pass - reference).abs().max()
    assert torch.allclose(incremental, reference, atol=1e-4), (incremental - reference).abs().max()



@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_prefill_method_matches_forward_in_chunks_over_the_cache(tiny_model_dir, family):
    """The prefill method (attention as GEMMs over the cache's first L rows) equals Hugging Face's model
    chunk after chunk: its cache writes and its masks (causal, and sliding past the window of 8) hold."""
    hf, dec = _load(tiny_model_dir, family)
    tokens = torch.randint(3, hf.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(2))
    reference = hf(tokens).logits[0]
    dec.all_logits = True
    pieces = [dec.prefill(tokens[:, :10], torch.arange(10))[0], dec.prefill(tokens[:, 10:21], torch.arange(21))[0]]
    pieces += [dec(tokens[:, i : i + 1], torch.tensor([i]))[0] for i in range(21, 24)]  # then forward decodes
    chunked = torch.cat(pieces)
    assert torch.allclose(chunked, reference, atol=1e-4), (chunked - reference).abs().max()


def test_prefill_method_refuses_the_int8_cache(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from pocketlm.converter.decoder import Decoder
    from pocketlm.errors import UnsupportedModelError

    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.float32).eval()
    dec = Decoder(hf, max_context=32, kv_cache="int8")
    with pytest.raises(UnsupportedModelError, match="int8 cache"):
        dec.prefill(torch.zeros(1, 2, dtype=torch.long), torch.arange(2))


def test_family_quirks_are_read_from_the_model(tiny_model_dir):
    _, gemma = _load(tiny_model_dir, "gemma3")
    assert gemma.shape.sliding_window == 8 and gemma.shape.layer_types == ("sliding_attention", "full_attention")
    assert gemma.embed_scale == pytest.approx(64**0.5) and gemma.shape.tied_embeddings
    assert gemma.layers[0].self_attn.window == 8 and gemma.layers[1].self_attn.window is None
    assert gemma.layers[0].self_attn.scale == pytest.approx(16**-0.5)  # query_pre_attn_scalar
    _, qwen2 = _load(tiny_model_dir, "qwen2")
    assert not qwen2.shape.tied_embeddings and qwen2.layers[0].self_attn.q_proj.bias is not None
    _, qwen3 = _load(tiny_model_dir, "qwen3")
    assert qwen3.layers[0].self_attn.q_norm is not None and qwen3.shape.head_dim == 32


def test_unknown_family_is_refused_by_name():
    from pocketlm.converter.families import check_gguf_architecture, family_for_model_type
    from pocketlm.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="'gpt2' is not supported"):
        family_for_model_type("gpt2")
    with pytest.raises(UnsupportedModelError, match="'mamba' is not supported"):
        check_gguf_architecture("mamba")

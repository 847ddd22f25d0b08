"""Shared test vectors for the demo apps' logic, computed by the Python SDK (the reference).

`write_vectors(out, ...)` writes JSON files that android_demo/core's JUnit tests and
ios_demo/PocketLMKit's XCTests read: the SDK's answers for bundle checks, tokenization, chat
rendering, sampling, stop strings, generation, text prediction, translation prompts, the health
assistant and the stemmer under it, and benchmark-mode settings. Generation and prediction run
on HashEngine, a deterministic stand-in for a model whose logits are a hash of the tokens seen,
implemented identically on both sides, so the whole loop (cache reuse, rewinds, beam search) is
compared, not just its parts.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from pocketlm.bundle import read_bundle
from pocketlm.chat_format import render_chat_format
from pocketlm.datafiles import data_text
from pocketlm.engines.base import Engine
from pocketlm.errors import PocketLMError
from pocketlm.generation import GenerationStats, _StopMatcher, stream_generate
from pocketlm.profiling.devices import android_extras, ios_arguments
from pocketlm.sampling import Sampler, SamplingParams
from pocketlm.tasks.health import HealthAssistant, Knowledge, _terms, load_health_cases
from pocketlm.tasks.predict import TextPredictor
from pocketlm.tasks.presets import default_presets
from pocketlm.tasks.translate import build_prompt, split_sentences
from pocketlm.tokenizer import StreamDetokenizer, Tokenizer, chat_format_of, compile_template, render_template

TEXTS = [
    "Hello world", " leading space", "Hello  world,   three   spaces", "tabs\tand\nnew\n\nlines\n\n\n",
    "don't I'll we've they're", "Numbers: 1234567 and 3.14159, 2026-11-29.", "ça va? naïve café Straße",
    "日本語のテキスト", "emoji 🤖🚀 and ZWJ 👩‍💻", "<|im_start|>user\nHi there<|im_end|>\n", "<bos><start_of_turn>x",
    "a", "", "   ", "\n", "MixedCASE camelCase snake_case kebab-case", "https://example.com/path?q=1&r=2",
    "    def f(x):\n        return x ** 2\n", "no\u00a0break and\u3000ideographic\u2003spaces",
    "wait\u00a0! what\u3000?\u00a0\u00a0x",
]

HEALTH_EXTRA = [
    "I have crushing pain in my chest", "How many mg of ibuprofen should I take?", "What helps a sore throat?",
    "what is the capital of France?", "my child has a nosebleed", "Sneezing and itchy eyes in spring",
    "", "   ", "How do I treat a minor burn?",
]

CHAT_TEMPLATES = {
    "chatml-default-system": None,  # SmolLM2's, read from the real bundle
    "gemma-it": (
        "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content']"
        " + '\n\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}"
        "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}{%- if (message['role']"
        " == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
        "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}{{ message['content'] |"
        " trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}"
        "{%- endif -%}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + "
        "m['content'] + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant"
        "<|end_header_id|>\n\n' }}{% endif %}"
    ),
}
CHAT_SPECIALS = {"gemma-it": {"bos_token": "<bos>"}, "llama3": {"bos_token": "<|begin_of_text|>"}}
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "Hello"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}],
    [{"role": "user", "content": "  spaces around  "}],
]


# ------------------------------------------------------------------------------ HashEngine

def hash_logits(tokens: list[int], vocab: int) -> np.ndarray:
    h = 1469598103
    for t in tokens:
        h = (h * 1000003 + t + 1) % 2147483647
    v = np.arange(vocab, dtype=np.int64)
    return (((h * 31 + v * 7919) % 10007) / 1000.0 - 5.0).astype(np.float32)


class HashEngine(Engine):
    """Logits = a hash of every token at positions 0..p; a real KV cache's semantics (rewind, chunks)."""

    name = "hash"

    def __init__(self, max_context: int, max_prefill: int, vocab: int):
        runtime = {"max_context": max_context, "max_prefill": max_prefill}
        super().__init__(SimpleNamespace(manifest={"runtime": runtime}))
        self.vocab = vocab
        self.cache = [0] * max_context

    def load(self) -> None:
        return None

    def _forward(self, tokens, start):
        self.cache[start : start + len(tokens)] = list(tokens)
        return hash_logits(self.cache[: start + len(tokens)], self.vocab)


# ------------------------------------------------------------------------------ writers

def _dump(out: Path, name: str, data) -> None:
    (out / name).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


BUNDLE_CASES = [  # (name, how to break a copy, a phrase the error must contain on every reader)
    ("valid", None, None),
    ("tampered", "tamper", "failed its integrity check: tokenizer.json"),
    ("missing-file", "missing", "is incomplete: tokenizer.json is missing"),
    ("unlisted-file", "unlisted", "holds files its manifest does not list: notes.txt"),
    ("newer-schema", "schema", "was written with bundle schema 2"),
    ("not-json", "notjson", "is not valid JSON"),
    ("no-manifest", "nomanifest", "manifest.json is missing"),
    ("no-folder", "nofolder", "is not a bundle folder"),
]


def _bundle_cases(out: Path, bundle: Path) -> list[dict]:
    cases = []
    for name, breakage, phrase in BUNDLE_CASES:
        target = out / "bundles" / name
        if breakage != "nofolder":
            shutil.copytree(bundle, target)
        manifest = target / "manifest.json"
        if breakage == "tamper":
            with open(target / "tokenizer.json", "ab") as f:
                f.write(b" ")
        elif breakage == "missing":
            (target / "tokenizer.json").unlink()
        elif breakage == "unlisted":
            (target / "notes.txt").write_text("not in the manifest")
        elif breakage == "schema":
            m = json.loads(manifest.read_text())
            m["schema_version"] = 2
            manifest.write_text(json.dumps(m))
        elif breakage == "notjson":
            manifest.write_text("{ not json")
        elif breakage == "nomanifest":
            manifest.unlink()
        try:
            read_bundle(target)
            error = None
        except PocketLMError as e:
            error = str(e)
        if (error is None) != (phrase is None) or (phrase and phrase not in error):
            raise AssertionError(f"the SDK's answer for bundle case {name} changed: {error!r}")
        cases.append({"name": name, "path": str(target), "error_contains": phrase})
    return cases


def _tokenizer_cases(name: str, tokenizer_file: Path) -> dict:
    tok = Tokenizer(tokenizer_file, {"eos_token_ids": [0]})
    texts = TEXTS + [data_text("eval_en.txt")[:1500]]
    cases = []
    for text in texts:
        ids = tok.encode(text, add_bos=False)
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids),
                      "decoded_with_special": tok.decode(ids, skip_special_tokens=False)})
    stream_text = "Emoji 🤖 split, 日本語 too."
    stream_ids = tok.encode(stream_text, add_bos=False)
    detok = StreamDetokenizer(tok)
    pieces = [detok.add(t) for t in stream_ids] + [detok.flush()]
    return {"name": name, "file": str(tokenizer_file), "vocab_size": tok.vocab_size, "cases": cases,
            "stream": {"ids": stream_ids, "pieces": pieces}}


QWEN_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
              r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")


def _component_tokenizers(folder: Path) -> dict[str, Path]:
    """Small BPE tokenizers trained here with the pipeline pieces the real test models do not use: Qwen's
    NFC + regex Split + ByteLevel without its own regex; Llama 2's Prepend/Replace normalizer with the
    ByteFallback/Fuse/Strip decoder; Digits + Metaspace. Written with `tokenizers` itself."""
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HFTokenizer

    corpus = ["Hello world, this is a test of 123 numbers and naïve café-style text.", "don't I'll 2026-11-29",
              "  leading spaces\tand tabs\nnew lines", "日本語 and émoji 🤖"] * 20
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind in ("qwen-split", "llama2-normalizer", "digits-metaspace"):
        if kind == "qwen-split":
            tok = HFTokenizer(models.BPE())
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(QWEN_SPLIT), "isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                          special_tokens=["<|endoftext|>"])
        else:
            tok = HFTokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
            if kind == "llama2-normalizer":
                tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
                tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                                 decoders.Strip(" ", 1, 0)])
            else:
                tok.pre_tokenizer = pre_tokenizers.Sequence([
                    pre_tokenizers.Digits(individual_digits=True),
                    pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
                tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
            trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens])
        tok.train_from_iterator(corpus, trainer)
        out[kind] = folder / f"{kind}.json"
        tok.save(str(out[kind]))
    return out


def _chat_cases(smollm2_manifest: dict) -> list[dict]:
    out = []
    for name, source in CHAT_TEMPLATES.items():
        if source is None:
            spec = smollm2_manifest["tokenizer"]
        else:
            spec = {"chat_template": source, "special_tokens": CHAT_SPECIALS[name]}
        fmt = chat_format_of(spec)
        if fmt is None:
            raise AssertionError(f"no plain chat format derived for {name}")
        template = compile_template(spec["chat_template"])
        cases = []
        for messages in CONVERSATIONS:
            for prompt in (True, False):
                expected = render_template(template, spec.get("special_tokens", {}), messages, prompt)
                if render_chat_format(fmt, messages, prompt) != expected:
                    raise AssertionError(f"{name}: the derived format renders differently from the template")
                cases.append({"messages": messages, "add_generation_prompt": prompt, "expected": expected})
        errors = [{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}],
                   "error_contains": "a system message may only come first"},
                  {"messages": [{"role": "tool", "content": "x"}], "error_contains": "chat messages must"}]
        out.append({"name": name, "format": fmt, "cases": cases, "errors": errors})
    return out


def _sampling_cases() -> list[dict]:
    rng = np.random.default_rng(7)
    cases = []
    for params in [
        SamplingParams(), SamplingParams(repetition_penalty=1.3), SamplingParams(temperature=0.7),
        SamplingParams(temperature=1.0, top_k=5), SamplingParams(temperature=0.9, top_p=0.8),
        SamplingParams(temperature=1.3, top_k=10, top_p=0.5, repetition_penalty=1.1),
    ]:
        logits = (rng.standard_normal(64) * 3).astype(np.float32)
        history = [int(x) for x in rng.integers(0, 64, size=6)]
        sampler = Sampler(params)
        penalized = sampler.penalized(logits, history)
        case = {"logits": logits.tolist(), "history": history,
                "params": {"temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p,
                           "repetition_penalty": params.repetition_penalty},
                "penalized": penalized.tolist(), "greedy": int(np.argmax(penalized))}
        if params.temperature > 0:
            case["probs"] = sampler.probabilities(penalized).astype(np.float64).tolist()
        cases.append(case)
    return cases


def _stop_cases() -> list[dict]:
    cases = []
    for stops, pieces in [
        (["\n"], ["Bonjour", " le monde", "\nnext"]),
        (["\nQuestion:", "\n\n"], ["An", "swer\n", "Ques", "tion: more"]),
        (["</s>"], ["a<", "/", "b", "</", "s>", "tail"]),
        ([], ["free", " text"]),
        (["END"], ["no stop at all", " E", "N"]),
    ]:
        m = _StopMatcher(stops)
        outputs = []
        for p in pieces:
            text, stopped = m.feed(p)
            outputs.append([text, stopped])
            if stopped:
                break
        cases.append({"stops": stops, "pieces": pieces, "outputs": outputs, "flush": m.flush()})
    return cases


def _hash_model(bundle: Path, max_context: int = 64, max_prefill: int = 16):
    b = read_bundle(bundle, verify=False)
    tok = Tokenizer.from_bundle(b)
    engine = HashEngine(max_context, max_prefill, tok.vocab_size)
    return b, tok, engine


def _generation_cases(bundle: Path) -> dict:
    b, tok, engine = _hash_model(bundle)
    cases = []
    for prompt, max_new, stop, params in [
        ("Once upon a time", 20, [], SamplingParams()),
        ("The weather today", 30, ["e"], SamplingParams()),
        ("A", 12, [], SamplingParams(repetition_penalty=1.2)),
        ("Long prompt " * 4, 40, [" t"], SamplingParams()),  # chunked prefill (16 a call), may hit the context
    ]:
        ids = tok.encode(prompt)
        stats = GenerationStats()
        text = "".join(stream_generate(engine, tok, ids, max_new_tokens=max_new, sampling=params, stop=stop,
                                       stats=stats))
        cases.append({"prompt_ids": ids, "max_new_tokens": max_new, "stop": stop,
                      "repetition_penalty": params.repetition_penalty, "text": text, "tokens": stats.tokens,
                      "finish_reason": stats.finish_reason})
    return {"bundle": str(bundle), "max_context": 64, "max_prefill": 16, "cases": cases}


def _predict_cases(bundle: Path) -> dict:
    b, tok, engine = _hash_model(bundle, max_context=64, max_prefill=16)
    model = SimpleNamespace(manifest=b.manifest, engine=engine, tokenizer=tok)
    predictor = TextPredictor(model, beam=4, max_word_tokens=3, time_budget=1e9)
    cases = []
    # Typing one character at a time reuses the cached prefix (reused > 0); other texts start over.
    for text in ["The", "The qu", "I am going to the ", "I am going to the b", "I am going to the be",
                 "hello wor", "Say: ", "x" * 3, "A long sentence that goes on "]:
        p = predictor.predict(text, k=3)
        cases.append({"text": text, "partial": p.partial, "words": p.words,
                      "logprobs": [s.logprob for s in p.suggestions], "reused": p.reused_tokens, "new": p.new_tokens,
                      "steps": p.steps})
    return {"bundle": str(bundle), "beam": 4, "max_word_tokens": 3, "max_context": 64, "max_prefill": 16,
            "cases": cases}


def _translate_cases() -> list[dict]:
    out = []
    for family, chat, languages in (("llama", True, ["en", "fr", "de"]), ("gemma3", False, None)):
        preset = default_presets(family, chat, languages)["translate"]
        cases = []
        for text in ["Hello. How are you? I am fine.", "Dr. Smith arrived at 5 p.m. on Monday. He left.",
                     "One line only", "Wait!  What?No space.", "これは文です。二つ目。", "End.\u00a0Next one."]:
            sentences = split_sentences(text, preset)
            cases.append({"text": text, "sentences": sentences, "source": "en", "target": "fr",
                          "prompt": build_prompt(preset, sentences[0], "en", "fr")})
        out.append({"family": family, "preset": preset, "cases": cases,
                    "refused": [{"source": "en", "target": "xx", "error_contains": "does not cover language 'xx'"},
                                {"source": "fr", "target": "fr", "error_contains": "source and target are both 'fr'"}]})
    return out


def _health_cases() -> dict:
    preset = default_presets("llama", True)["health"]
    knowledge = Knowledge.load()
    assistant = HealthAssistant(None, knowledge=knowledge, presets={"health": preset}, mode="extractive")
    questions = [c["input"] for c in load_health_cases()] + HEALTH_EXTRA
    cases = []
    for q in questions:
        try:
            a = assistant.ask(q)
        except PocketLMError as e:
            cases.append({"question": q, "error": str(e)})
            continue
        cases.append({"question": q, "kind": a.kind, "rule": a.rule, "text": a.text, "notice": a.notice,
                      "passages": [p.title for p in a.passages], "scores": [p.score for p in a.passages]})
    chat_prompt = assistant.build_prompt("What helps a cold?", knowledge.search("What helps a cold?", 2, 1.0))
    return {"preset": preset, "knowledge": data_text("health_knowledge.md"), "cases": cases,
            "prompt_question": "What helps a cold?", "prompt": chat_prompt}


def _stem_cases() -> dict:
    text = " ".join([data_text("health_knowledge.md"), data_text("eval_en.txt"), data_text("distill_en.txt")[:300_000],
                     " ".join(c["input"] for c in load_health_cases())])
    words = sorted(set(re.findall(r"[a-z]+", text.lower())) | {
        "skies", "dying", "lying", "tying", "news", "generously", "communication", "arsenal", "pasted", "y", "yy",
        "ayy", "bye", "flies", "succeeded", "proceedings", "innings", "outing", "canning", "herring", "earring",
        "evening", "universal", "emergency", "organization", "later", "interesting", "'s", "happily", "sky",
    })
    from pocketlm.tasks.health import _STEMMER

    return {"stems": dict(zip(words, _STEMMER.stemWords(words), strict=True)),
            "terms": [{"text": t, "terms": _terms(t)} for t in ["Sneezing, itchy EYES — and a runny nose!",
                                                                "What should I do about a nosebleed?"]]}


SETTINGS = [([32, 128], 64, 5, 1, 4), ([7], 1, 1, 0, None)]  # prompt lengths, gen, runs, warmup, threads


def _benchmark_settings_cases() -> list[dict]:
    cases = []
    for lengths, gen, runs, warmup, threads in SETTINGS:
        extras = android_extras("/data/local/tmp/pocketlm/b", "/sdcard/x/r.json", lengths, gen, runs, warmup, threads)
        pairs = {extras[i + 1]: extras[i + 2] for i in range(0, len(extras), 3)}
        cases.append({"extras": pairs, "expect": {"bundle": "/data/local/tmp/pocketlm/b", "result": "/sdcard/x/r.json",
                                                  "prompt_lengths": lengths, "gen": gen, "runs": runs,
                                                  "warmup": warmup, "threads": threads}})
    base = {"bundle": "b", "result": "r.json", "prompt_lengths": "32"}
    for bad, phrase in [({"prompt_lengths": "32,x"}, "prompt_lengths must be integers"),
                        ({"runs": "0"}, "'runs' must be >= 1"), ({"bundle": ""}, "needs the 'bundle' extra"),
                        ({"gen": "many"}, "'gen' must be an integer")]:
        cases.append({"extras": {**base, **bad}, "error_contains": phrase})
    return cases


def _byte_table(bundle: Path, texts: list[str]) -> dict:
    """The tiny byte-level tokenizer as a table (each token's bytes) plus the encodings of `texts`: what the
    Swift kit's tests decode and encode with (on iOS the tokenizer is swift-transformers'; the kit takes any)."""
    b = read_bundle(bundle, verify=False)
    tok = Tokenizer.from_bundle(b)
    spec = json.loads(b.file("tokenizer.json").read_text())
    special = sorted(t["id"] for t in spec["added_tokens"] if t["special"])
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_of = {c: byte for byte, c in bytes_to_unicode().items()}
    table = []
    for i in range(tok.vocab_size):
        piece = tok.id_to_token(i) or ""
        raw = bytes(byte_of[c] for c in piece) if all(c in byte_of for c in piece) else piece.encode()
        table.append(raw.hex())
    rng = np.random.default_rng(3)
    for _ in range(200):  # the table decodes as the tokenizer does, special tokens skipped or not
        ids = [int(x) for x in rng.integers(0, tok.vocab_size, size=int(rng.integers(1, 12)))]
        for skip in (True, False):
            raw = b"".join(bytes.fromhex(table[i]) for i in ids if not (skip and i in special))
            got = raw.decode("utf-8", "replace")
            if got != tok.decode(ids, skip_special_tokens=skip):
                raise AssertionError(f"the byte table decodes {ids} (skip={skip}) differently from the tokenizer")
    return {"vocab_size": tok.vocab_size, "token_bytes": table, "special_ids": special,
            "encodings": {t: tok.encode(t, add_bos=False) for t in texts}}


def _ios_settings_cases() -> list[dict]:
    cases = []
    for lengths, gen, runs, warmup, threads in SETTINGS:
        args = ios_arguments("bundles/b", "benchmarks/r.json", lengths, gen, runs, warmup, threads)
        cases.append({"arguments": args, "expect": {"bundle": "bundles/b", "result": "benchmarks/r.json",
                                                    "prompt_lengths": lengths, "gen": gen, "runs": runs,
                                                    "warmup": warmup, "threads": threads}})
    base = ["--benchmark", "bundles/b", "--result", "r.json", "--prompt-lengths"]
    for bad, phrase in [(base + ["32,x"], "--prompt-lengths must be integers"),
                        (base + ["8", "--runs", "0"], "--runs must be >= 1"),
                        (["--benchmark", "bundles/b", "--prompt-lengths", "8"], "needs --result")]:
        cases.append({"arguments": bad, "error_contains": phrase})
    cases.append({"arguments": ["-AppleLanguages", "(en)"], "expect": None})  # a normal launch
    return cases


def write_vectors(out: Path, tiny_bundle: Path, smollm2_bundle: Path, gemma3_bundle: Path) -> Path:
    """Write every vector file into `out` (a fresh folder) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    # The vectors folder is self-contained (the Swift tests run in a chroot that sees only this folder).
    tiny_bundle = Path(shutil.copytree(tiny_bundle, out / "tiny-bundle"))
    smollm2_manifest = json.loads((smollm2_bundle / "manifest.json").read_text())
    _dump(out, "bundles.json", _bundle_cases(out, tiny_bundle))
    tokenizer_files = {"tiny-llama": tiny_bundle / "tokenizer.json", "smollm2-135m": smollm2_bundle / "tokenizer.json",
                       "gemma3-270m": gemma3_bundle / "tokenizer.json", **_component_tokenizers(out / "tokenizers")}
    _dump(out, "tokenizers.json", [_tokenizer_cases(name, path) for name, path in tokenizer_files.items()])
    _dump(out, "chat.json", _chat_cases(smollm2_manifest))
    _dump(out, "sampling.json", _sampling_cases())
    _dump(out, "stop.json", _stop_cases())
    _dump(out, "generation.json", _generation_cases(tiny_bundle))
    _dump(out, "predict.json", _predict_cases(tiny_bundle))
    _dump(out, "translate.json", _translate_cases())
    _dump(out, "health.json", _health_cases())
    _dump(out, "stems.json", _stem_cases())
    _dump(out, "benchmark_settings.json", _benchmark_settings_cases())
    _dump(out, "ios_benchmark_settings.json", _ios_settings_cases())
    predict_texts = ["a", "The", "I am going to the", "hello", "Say:", "A long sentence that goes on",
                     data_text("profile_prompt.txt")]
    _dump(out, "byte_tokenizer.json", _byte_table(tiny_bundle, predict_texts))
    _dump(out, "benchmark_run.json", {"bundle": str(tiny_bundle), "prompt_text": data_text("profile_prompt.txt"),
                                      "result": str(out / "written" / "benchmark-result.json"),
                                      "ios_result": str(out / "written" / "benchmark-result-ios.json")})
    return out

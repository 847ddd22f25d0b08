"""Tokenization for bundles: the bundle's tokenizer.json (Hugging Face `tokenizers`),
its chat template (Jinja2, Hugging Face conventions) and streaming detokenization."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path

from .errors import GenerationError


class Tokenizer:
    def __init__(self, tokenizer_file: Path, spec: dict):
        from tokenizers import Tokenizer as HFTokenizer

        self._tok = HFTokenizer.from_file(str(tokenizer_file))
        self.spec = spec
        self.bos_token_id: int | None = spec.get("bos_token_id")
        self.eos_token_ids: set[int] = set(spec["eos_token_ids"])
        self.add_bos_token: bool = bool(spec.get("add_bos_token"))
        self.chat_template: str | None = spec.get("chat_template")

    @classmethod
    def from_bundle(cls, bundle) -> Tokenizer:
        spec = bundle.manifest["tokenizer"]
        return cls(bundle.file(spec["file"]), spec)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of `text`; special tokens written as text (e.g. in a rendered template) map to their ids."""
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if (self.add_bos_token if add_bos is None else add_bos) and self.bos_token_id is not None:
            if not ids or ids[0] != self.bos_token_id:
                ids = [self.bos_token_id] + ids
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        if not self.chat_template:
            raise GenerationError("this bundle's tokenizer has no chat template; use generate() with a plain prompt")
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise GenerationError("chat messages must be dicts with 'role' and 'content'")
        return render_template(self._template, self.spec.get("special_tokens", {}), messages, add_generation_prompt)

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        # The template writes the BOS it wants; adding another would shift the model off its training format.
        return self.encode(self.render_chat(messages, add_generation_prompt), add_bos=False)

    @cached_property
    def _template(self):
        return compile_template(self.chat_template)


def compile_template(source: str):
    """A chat template compiled the way transformers compiles it (sandboxed Jinja2)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def render_template(template, special_tokens: dict, messages: list[dict], add_generation_prompt: bool) -> str:
    return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                           bos_token=special_tokens.get("bos_token", ""), eos_token=special_tokens.get("eos_token", ""))


def chat_format_of(spec: dict) -> dict | None:
    """The manifest's `chat_format`: the chat template as plain strings, or None (see chat_format.py)."""
    from .chat_format import derive_chat_format

    if not spec.get("chat_template"):
        return None
    template = compile_template(spec["chat_template"])
    special = spec.get("special_tokens", {})
    return derive_chat_format(lambda messages, prompt: render_template(template, special, messages, prompt))


class StreamDetokenizer:
    """Turns a growing token list into text pieces that are always whole UTF-8 characters.

    A token can end inside a multi-byte character (byte-level BPE) and a
    SentencePiece word-boundary space depends on its neighbour, so text is
    decoded over a small window of recent tokens and released only once it no
    longer ends in a replacement character.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tokenizer = tokenizer
        self.tokens: list[int] = []
        self._prefix = 0  # start of the decode window
        self._read = 0  # tokens before this index have been emitted

    def add(self, token_id: int) -> str:
        self.tokens.append(token_id)
        prefix_text = self._tokenizer.decode(self.tokens[self._prefix : self._read])
        text = self._tokenizer.decode(self.tokens[self._prefix :])
        if len(text) > len(prefix_text) and not text.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.tokens)
            return text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (at the end of generation), even if incomplete."""
        prefix_text = self._tokenizer.decode(self.tokens[self._prefix : self._read])
        text = self._tokenizer.decode(self.tokens[self._prefix :])
        self._prefix = self._read = len(self.tokens)
        return text[len(prefix_text) :] if len(text) > len(prefix_text) else ""

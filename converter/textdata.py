"""Training text for distillation, fine-tuning and pruning calibration, as fixed-length token rows.

Two file kinds:
  .txt    plain text; documents are separated by blank lines, joined with EOS and cut into
          rows of `seq_len` tokens (every token is trained on);
  .jsonl  one JSON object a line: {"text": ...}, {"prompt": ..., "completion": ...} or
          {"messages": [{"role": ..., "content": ...}, ...]} (rendered with the model's chat
          template); one row per line, padded, and only completions / assistant turns are
          trained on.
A name without a folder that is not a file here is looked up among pocketlm's data files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from pocketlm.errors import TrainingError

IGNORE = -100  # label of a token that is not trained on (the Hugging Face convention)


@dataclass
class TokenRows:
    input_ids: torch.Tensor  # [N, S] int64
    labels: torch.Tensor  # [N, S] int64, IGNORE where not trained on
    attention_mask: torch.Tensor  # [N, S] int64

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index) -> TokenRows:
        return TokenRows(self.input_ids[index], self.labels[index], self.attention_mask[index])

    @property
    def trained_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


def resolve_data_file(name: str | Path) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    if path.parent == Path("."):
        from pocketlm.datafiles import data_path

        shipped = data_path(str(name))
        if shipped.is_file():
            return shipped
    raise TrainingError(f"data file {name} not found")


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _eos_id(tokenizer) -> int:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainingError("the tokenizer has no end-of-sequence token to separate documents with")
    return int(eos)


def text_rows(tokenizer, text: str, seq_len: int, source: str = "text") -> TokenRows:
    docs = [d.strip() for d in text.split("\n\n") if d.strip()]
    ids: list[int] = []
    for doc in docs:
        ids += _encode(tokenizer, doc) + [_eos_id(tokenizer)]
    n = len(ids) // seq_len
    if n == 0:
        raise TrainingError(f"{source} has {len(ids)} tokens: fewer than one row of --seq-len {seq_len}")
    rows = torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)
    return TokenRows(rows, rows.clone(), torch.ones_like(rows))


def _record_parts(tokenizer, record: dict, where: str) -> tuple[str, str]:
    """(prompt, completion) of one JSONL record; the prompt is not trained on."""
    if "text" in record:
        return "", str(record["text"])
    if "prompt" in record and "completion" in record:
        return str(record["prompt"]), str(record["completion"])
    if "messages" in record:
        messages = record["messages"]
        if not messages or messages[-1].get("role") != "assistant":
            raise TrainingError(f"{where}: a chat record must end with an assistant message")
        if not getattr(tokenizer, "chat_template", None):
            raise TrainingError(f"{where}: chat records need a tokenizer with a chat template")
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise TrainingError(f"{where}: the chat template renders the history differently with the answer")
        return prompt, full[len(prompt):]
    raise TrainingError(f'{where}: expected "text", "prompt"+"completion" or "messages", got {sorted(record)}')


def jsonl_rows(tokenizer, lines: list[str], seq_len: int, source: str) -> TokenRows:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else _eos_id(tokenizer)
    inputs, labels, masks = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise TrainingError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise TrainingError(f"{where}: expected a JSON object")
        prompt, completion = _record_parts(tokenizer, record, where)
        p_ids = _encode(tokenizer, prompt) if prompt else []
        c_ids = _encode(tokenizer, completion) + [_eos_id(tokenizer)]
        ids = (p_ids + c_ids)[:seq_len]
        lab = ([IGNORE] * len(p_ids) + c_ids)[:seq_len]
        if all(x == IGNORE for x in lab):
            raise TrainingError(f"{where}: the prompt fills --seq-len {seq_len}; nothing left to train on")
        fill = seq_len - len(ids)
        inputs.append(ids + [pad] * fill)
        labels.append(lab + [IGNORE] * fill)
        masks.append([1] * len(ids) + [0] * fill)
    if not inputs:
        raise TrainingError(f"{source} has no records")
    return TokenRows(torch.tensor(inputs), torch.tensor(labels), torch.tensor(masks))


def load_rows(tokenizer, data: str | Path, seq_len: int) -> TokenRows:
    if seq_len < 2:
        raise TrainingError(f"--seq-len must be at least 2, got {seq_len}")
    path = resolve_data_file(data)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise TrainingError(f"data file {path} is empty")
    if path.suffix.lower() == ".jsonl":
        return jsonl_rows(tokenizer, text.splitlines(), seq_len, str(path))
    return text_rows(tokenizer, text, seq_len, str(path))

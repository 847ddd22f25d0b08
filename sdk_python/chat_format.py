"""A chat template as plain strings, for runtimes with no Jinja (the Android app).

Most chat templates are concatenations: an optional start, then for each message a
role's opening text, the content and the role's closing text, then the opening of
the assistant's turn. `derive_chat_format` reads those strings off a template by
rendering conversations with marker contents, then renders a set of conversations
both ways and keeps the result only if every one is identical; a template that is
not such a concatenation gets None, and readers of the bundle say chat is not
available rather than guess. The converter writes the result into the manifest
(`tokenizer.chat_format`); `render_chat_format` is the reference the apps mirror.

Two template habits are covered: a default system turn written when the
conversation has none (SmolLM2), and a system message folded into the first user
turn (Gemma's instruction models: `system_style` "merged").
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import GenerationError

ROLES = ("system", "user", "assistant")
_MARK = "\x02{}\x03"  # marker contents no template alters

# Conversations every derived format must render exactly as the template does.
CHECK_CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "x"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c"},
     {"role": "user", "content": "d"}, {"role": "assistant", "content": "e"}],
    [{"role": "user", "content": " padded \n"}, {"role": "assistant", "content": "\nx "},
     {"role": "user", "content": "y"}],
]


def _between(text: str, left: str | None, right: str | None) -> str:
    start = 0 if left is None else text.index(left) + len(left)
    end = len(text) if right is None else text.index(right, start)
    return text[start:end]


def derive_chat_format(render: Callable[[list[dict], bool], str]) -> dict | None:
    """The format of the template behind `render(messages, add_generation_prompt)`, or None."""
    x, y, z, w, s = (_MARK.format(c) for c in "XYZWS")
    try:
        one = render([{"role": "user", "content": x}], False)
        with_prompt = render([{"role": "user", "content": x}], True)
        three = render([{"role": "user", "content": x}, {"role": "assistant", "content": y},
                        {"role": "user", "content": z}], False)
        four = render([{"role": "user", "content": x}, {"role": "assistant", "content": y},
                       {"role": "user", "content": z}, {"role": "assistant", "content": w}], False)
    except Exception:  # noqa: BLE001  a template may refuse any of these; then it has no plain format
        return None
    try:
        user_close = _between(three, z, None)
        lead = _between(three, None, x)  # start (+ default system turn) + user opening
        user_to_assistant = _between(three, x, y)
        assistant_to_user = _between(three, y, z)
        assistant_close = _between(four, w, None)
    except ValueError:
        return None
    if not (user_to_assistant.startswith(user_close) and assistant_to_user.startswith(assistant_close)):
        return None
    assistant_open = user_to_assistant[len(user_close):]
    user_open = assistant_to_user[len(assistant_close):]
    if not lead.endswith(user_open) or not with_prompt.startswith(one):
        return None
    start_and_default = lead[: len(lead) - len(user_open)]
    fmt = {
        "start": start_and_default, "default_system": None, "system_style": "none",
        "roles": {"user": [user_open, user_close], "assistant": [assistant_open, assistant_close]},
        "generation_prompt": with_prompt[len(one):],
    }
    try:
        with_system = render([{"role": "system", "content": s}, {"role": "user", "content": x}], False)
        before_s, after_s = _between(with_system, None, s), _between(with_system, s, x)
    except Exception:  # noqa: BLE001  no system role in this template
        with_system = None
    if with_system is not None:
        if after_s.endswith(user_open) and before_s != start_and_default + user_open:
            system_close = after_s[: len(after_s) - len(user_open)]
            if start_and_default.startswith(before_s) and start_and_default.endswith(system_close):
                # A default system turn: start + system opening + default text + system closing.
                fmt["default_system"] = start_and_default[len(before_s): len(start_and_default) - len(system_close)]
                fmt["start"], system_open = "", before_s
            elif before_s.startswith(start_and_default):
                system_open = before_s[len(start_and_default):]
            else:
                return None
            fmt["roles"]["system"] = [system_open, system_close]
            fmt["system_style"] = "own"
        elif before_s == start_and_default + user_open:
            fmt["system_style"] = "merged"  # system text + separator + the first user message, one user turn
            fmt["system_separator"] = after_s
        else:
            return None
    for trim in (False, True):  # some templates strip each message's content (Gemma's `| trim`)
        fmt["trim_content"] = trim
        if _renders_alike(fmt, render):
            return fmt
    return None


def _renders_alike(fmt: dict, render) -> bool:
    for messages in CHECK_CONVERSATIONS:
        for prompt in (False, True):
            if messages[0]["role"] == "system" and fmt["system_style"] == "none":
                continue
            try:
                expected = render(messages, prompt)
            except Exception:  # noqa: BLE001
                return False
            if render_chat_format(fmt, messages, prompt) != expected:
                return False
    return True


def render_chat_format(fmt: dict, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Render `messages` with a derived format (the reference the apps' renderers are tested against)."""
    messages = list(messages)
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise GenerationError("chat messages must be dicts with a role (system, user, assistant) and content")
    has_system = bool(messages) and messages[0]["role"] == "system"
    if any(m["role"] == "system" for m in messages[1:]):
        raise GenerationError("a system message may only come first")
    if has_system and fmt["system_style"] == "none":
        raise GenerationError("this model's chat template has no system role")
    if not has_system and fmt.get("default_system") is not None:
        messages.insert(0, {"role": "system", "content": fmt["default_system"]})
        has_system = True
    if has_system and fmt["system_style"] == "merged":
        system, rest = messages[0], messages[1:]
        if not rest or rest[0]["role"] != "user":
            raise GenerationError("this model's template needs a user message after the system message")
        first = rest[0]["content"].strip() if fmt.get("trim_content") else rest[0]["content"]
        messages = [{"role": "user", "content": system["content"] + fmt["system_separator"] + first},
                    *rest[1:]]
    out = [fmt["start"]]
    for m in messages:
        opening, closing = fmt["roles"][m["role"]]
        out += [opening, m["content"].strip() if fmt.get("trim_content") else m["content"], closing]
    if add_generation_prompt:
        out.append(fmt["generation_prompt"])
    return "".join(out)

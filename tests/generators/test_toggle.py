"""Toggle conventions and answer normalisation: a truth table."""

import pytest

from thinktoggle.generators.toggle import normalise_answer, toggle_request
from thinktoggle.schemas.think import compose_output, split_output

USER = [{"role": "user", "content": "1+1?"}]


@pytest.mark.parametrize(
    ("convention", "mode", "system", "kwargs"),
    [
        ("nemotron", "on", "detailed thinking on", None),
        ("nemotron", "off", "detailed thinking off", None),
        ("slash", "on", "/think", None),
        ("slash", "off", "/no_think", None),
        ("qwen3", "on", None, {"enable_thinking": True}),
        ("qwen3", "off", None, {"enable_thinking": False}),
    ],
)
def test_toggle_request(convention, mode, system, kwargs):
    messages, template_kwargs = toggle_request(convention, mode, [{"role": "system", "content": "x"}, *USER])
    assert template_kwargs == kwargs
    assert messages[-1] == USER[0]
    if system is None:
        assert all(m["role"] != "system" for m in messages)
    else:
        assert messages[0] == {"role": "system", "content": system} and len(messages) == 2
    with pytest.raises(ValueError, match="toggle"):
        toggle_request("nope", mode, USER)


# (text, mode, reasoning_content, finish_reason) -> (stored output, problem)
CASES = [
    ("<think>a\n</think>\nB", "on", None, "stop", compose_output("a", "B"), None),
    ("  <think>\n a \n</think>\n\n B ", "on", None, "stop", compose_output("a", "B"), None),
    ("a</think>B", "on", None, "stop", compose_output("a", "B"), None),  # template prefilled <think>
    ("B", "on", "a", "stop", compose_output("a", "B"), None),  # server reasoning parser
    ("B", "on", None, "stop", "B", "no_think"),
    ("<think>a", "on", None, "stop", "<think>a", "unclosed_think"),
    ("<think>a</think>B", "on", None, "length", "<think>a</think>B", "length"),
    ("<think></think>B", "on", None, "stop", "<think></think>B", "empty_think"),
    ("<think>a</think>", "on", None, "stop", "<think>a</think>", "empty_answer"),
    (" B ", "off", None, "stop", "B", None),
    ("<think>\n\n</think>\n\nB", "off", None, "stop", "B", None),  # Qwen3's empty think when not thinking
    ("<think>a</think>B", "off", None, "stop", "<think>a</think>B", "think_in_off_mode"),
    ("B", "off", "a", "stop", compose_output("a", "B"), "think_in_off_mode"),
    ("", "off", None, "stop", "", "empty_answer"),
    ("B", "off", None, "length", "B", "length"),
]


@pytest.mark.parametrize(("text", "mode", "rc", "finish", "output", "problem"), CASES)
def test_normalise_answer(text, mode, rc, finish, output, problem):
    got = normalise_answer(text, mode, rc, finish)
    assert (got.output, got.problem) == (output, problem)
    if problem is None:  # a well-formed stored output splits back cleanly in its mode
        assert split_output(got.output).problem(mode) is None


@pytest.mark.parametrize("convention", ["nemotron", "qwen3", "slash"])
def test_toggle_request_keeps_tool_calls_and_tool_results(convention):
    from thinktoggle.generators.procedural_tools import tool_calling_records

    record = tool_calling_records(1, seed=3)[0]  # user -> assistant tool call -> tool result
    messages, _ = toggle_request(convention, "off", record.chat_messages())
    turns = [m for m in messages if m["role"] != "system"]
    call = record.input[1]["tool_calls"][0]
    assert turns[0] == record.input[0]
    assert turns[1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    # the result answers the call before it: the chat API needs the id, which records do not store
    assert turns[2] == {"role": "tool", "content": record.input[2]["content"], "tool_call_id": call["id"]}

"""Multi-turn prompts: the teacher answers the last turn, with earlier assistant turns as context minus their
think blocks (as NVIDIA's published chat data keeps them); tool calls stay on their turns."""

from __future__ import annotations

from thinktoggle.generators.generate import context_turns


def test_earlier_assistant_turns_lose_their_think_blocks_only():
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    turns = [
        {"role": "user", "content": "first <think>not a block to strip</think> question"},
        {"role": "assistant", "content": "<think>\nsecret\n</think>\n\nFirst answer.", "tool_calls": [call]},
        {"role": "tool", "content": "<think>tool output stays</think>"},
        {"role": "assistant", "content": "Plain answer."},
        {"role": "user", "content": "second question"},
    ]
    sent = context_turns(turns)
    assert sent[1] == {"role": "assistant", "content": "First answer.", "tool_calls": [call]}
    assert sent[0] == turns[0] and sent[2] == turns[2] and sent[3] == turns[3] and sent[4] == turns[4]
    assert turns[1]["content"].startswith("<think>")  # the prompt record itself is not changed

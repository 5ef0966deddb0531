"""Rows and the recipe of one small real run for the report tests: published rows (two of them carrying a <script> in the model's
output, three breaking the toggle format) through the real filter, dedup and export stages and a 4-step tiny
training, by the recipe runner, as `thinktoggle run` does."""

from __future__ import annotations

SCRIPT = "<script>document.title = 'pwned'; window.__pwned = true;</script>"


def published(prompt: str, reasoning: str, output: str, category: str = "chat") -> dict:
    return {
        "input": [{"role": "user", "content": prompt}],
        "output": output,
        "category": category,
        "license": "cc-by-4.0",
        "reasoning": reasoning,
        "generator": "test-teacher",
        "used_in_training": "test",
        "version": "v1.1",
        "system_prompt": f"detailed thinking {reasoning}",
    }


def rows() -> list[dict]:
    out = []
    for i in range(6):
        prompt = f"Name a colour that rhymes with number {i} and say why, in one short sentence."
        out.append(published(prompt, "on", f"<think>\nLet me think about number {i}.\n</think>\n\nRed, because {i}."))
        out.append(published(prompt, "off", f"Blue, because {i} is blue."))
    # kept, with a script tag in the answer: the page must show it as text
    prompt = "Write an HTML snippet that sets the page title."
    out.append(published(prompt, "on", f"<think>\nA script tag does it.\n</think>\n\nUse {SCRIPT}"))
    out.append(published(prompt, "off", f"Use {SCRIPT}"))
    # dropped by the format filter (a think block when off), a script tag inside
    out.append(published("Say hello.", "off", f"<think>\nhello\n</think>\n\nHello {SCRIPT}"))
    out.append(published("Say goodbye.", "on", "Goodbye, without thinking."))  # no_think
    out.append(published("Say thanks.", "off", "<think>\nthanks\n</think>\n\nThanks."))
    return out


RECIPE = """
name: report-test
out_dir: {out}
inputs: [{rows}]
executor: {{type: local, tasks: 1, workers: 1}}
filter: {{only: [format, length, repetition]}}
dedup: {{exact_prompt: false, exact_response: true, minhash: {{enabled: false}}}}
export: {{name: report-test, card: true, plots: false}}
train:
  model: ""
  tiny: {{hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 300}}
  seq_len: 128
  batch_size: 2
  max_steps: 4
  warmup_steps: 1
  save_every: 0
  log_every: 1
  threads: 1
"""

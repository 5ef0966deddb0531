"""Tiny from-scratch toggle models: a byte-level BPE tokenizer trained on the data and a small Llama.

Used by the demo (train a toggle model on a laptop CPU) and by the tests (a real model that vLLM and
transformers both load, built from a config, never downloaded).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Role markers and the end-of-turn token are special (stripped on decode); the think tags are ordinary
# added tokens so that they survive `skip_special_tokens=True` in vLLM and transformers.
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")
END_TOKEN = "<|end|>"
PAD_TOKEN = "<|pad|>"
THINK_TOKENS = ("<think>", "</think>")

# Renders a system message when given; without one it follows the toggle convention: the Nemotron
# system prompt, switched by `enable_thinking` (Qwen3's kwarg), "off" by default as in Llama-Nemotron.
# An assistant turn's tool calls follow its content, one JSON object {name, arguments} a line; a tool's
# result is a `<|tool|>` turn.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system = 'detailed thinking ' ~ ('on' if enable_thinking is defined and enable_thinking else 'off') -%}"
    "{%- set turns = messages -%}"
    "{%- endif -%}"
    "<|system|>{{ system }}<|end|>"
    "{%- for m in turns -%}<|{{ m['role'] }}|>{{ m['content'] }}"
    "{%- if m['tool_calls'] is defined and m['tool_calls'] -%}{%- for c in m['tool_calls'] -%}"
    "{{ '\\n' if m['content'] or not loop.first else '' }}"
    "{{ {'name': c['function']['name'], 'arguments': c['function']['arguments']} | tojson }}"
    "{%- endfor -%}{%- endif -%}"
    "<|end|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def opened_think_template(template: str = CHAT_TEMPLATE) -> str:
    """`template` with its generation prompt opening the think block (`<think>\\n`), as DeepSeek-R1's and Qwen3's
    do: a model served with it starts every answer inside the block (the thinking-budget tests and bench)."""
    opened = template.replace("<|assistant|>{%- endif -%}", "<|assistant|>{{ '<think>\\n' }}{%- endif -%}")
    if opened == template:
        raise ValueError("the template has no generation prompt to open a think block in")
    return opened


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """Train a byte-level BPE on `texts` and wrap it as a transformers fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD_TOKEN, END_TOKEN, *ROLE_TOKENS]
    tok = Tokenizer(models.BPE())
    # Every digit and punctuation mark is its own token: numbers are read digit by digit (arithmetic is
    # learnable), and a prompt's layout is the same number of tokens whatever digits it holds.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(ROLE_TOKENS),
    )
    fast.add_tokens(list(THINK_TOKENS))  # normal added tokens: never split, never stripped
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llama(
    tokenizer,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 2,
    intermediate_size: int = 256,
    max_position_embeddings: int = 512,
    rope_theta: float = 100.0,
    seed: int = 0,
):
    """A freshly initialised LlamaForCausalLM sized for a CPU (defaults: head_dim 32, the smallest the CPU attention kernel supports)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        rope_theta=rope_theta,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(END_TOKEN),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        torch_dtype="float32",
    )
    return LlamaForCausalLM(config)


def save_tiny_model(out_dir: str | Path, texts: Iterable[str], vocab_size: int = 512, **model_kwargs) -> Path:
    """Train a tokenizer on `texts`, build an untrained tiny Llama, save both in Hugging Face format."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    model = build_tiny_llama(tokenizer, **model_kwargs)
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out

"""thinktoggle: reasoning-toggle post-training data, the Llama-Nemotron way."""

__version__ = "0.1.0"

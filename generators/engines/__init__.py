"""Teacher engines behind one interface (`base.Engine`): vLLM offline, OpenAI-compatible servers, procedural."""

from thinktoggle.generators.engines.base import ChatRequest, Completion, Engine, SamplingConfig

__all__ = ["ChatRequest", "Completion", "Engine", "SamplingConfig"]

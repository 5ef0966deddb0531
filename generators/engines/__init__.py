"""Teacher engines behind one interface (`base.Engine`): vLLM offline, OpenAI-compatible servers, transformers,
procedural; configured by one `EngineConfig` and built by one factory, `make_engine`."""

from thinktoggle.generators.engines.base import ChatRequest, Completion, Engine, SamplingConfig
from thinktoggle.generators.engines.config import EngineConfig
from thinktoggle.generators.engines.factory import make_engine

__all__ = ["ChatRequest", "Completion", "Engine", "EngineConfig", "SamplingConfig", "make_engine"]

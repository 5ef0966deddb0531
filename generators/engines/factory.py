"""The one engine factory: `make_engine(EngineConfig, model)` for the generate stage, the LLM judge and
validation. Engines are imported here, lazily: building a config never imports torch, vLLM or openai."""

from __future__ import annotations

import os

from thinktoggle.generators.engines.base import Engine
from thinktoggle.generators.engines.config import (
    LOCAL_KINDS,
    EngineConfig,
    resolve_kind,
    transformers_settings,
    vllm_settings,
)


def check_model(config: EngineConfig, model: str, what: str) -> None:
    """Refuse, before any engine starts, a local model that cannot exist: a path that is not there.

    A model is a local folder or a Hub id; what looks like a path (absolute, `./`, `../`, `~`) must exist, so a typo
    is one line naming the setting rather than a loader's traceback from inside a rank.
    """
    kind = resolve_kind(config.kind)
    if kind not in LOCAL_KINDS:
        return
    if not model:
        raise ValueError(f"{what}: the {kind} engine needs a model (a local folder or a Hub id)")
    if model.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(model)):
        raise ValueError(f"{what}: {model}: no such model folder")


def make_engine(
    config: EngineConfig, model: str = "", *, seed: int = 0, rank: int = 0, data_parallel: int = 1
) -> Engine:
    """A fresh engine of `config.kind` serving `model` (a path or Hub id; the served name for openai; unused by
    procedural), its auto settings resolved for this machine (`engines.config`).

    `seed`: the engine's sampling seed (vLLM, transformers). `rank` / `data_parallel`: with several
    data-parallel ranks on one node, this rank's engine gets its own GPUs (CUDA_VISIBLE_DEVICES, set before
    CUDA starts). The caller closes the engine.
    """
    kind = resolve_kind(config.kind)
    if kind == "procedural":
        from thinktoggle.generators.engines.procedural_engine import ProceduralEngine

        return ProceduralEngine()
    if not model:
        raise ValueError(f"the {kind} engine needs a model (a path or id, or the served name)")
    if kind == "openai":
        from thinktoggle.generators.engines.openai_server import OpenAIEngine

        return OpenAIEngine(
            config.base_url,
            api_key=os.environ.get(config.api_key_env),
            concurrency=config.concurrency,
            timeout=config.timeout,
            retries=config.retries,
            backoff=config.backoff,
        )
    if kind in LOCAL_KINDS:
        from thinktoggle.generators.engines.vllm_offline import pin_rank_gpus

        pin_rank_gpus(rank, config.tp if kind == "vllm" else 1, data_parallel)  # before anything probes CUDA
    if kind == "transformers":
        from thinktoggle.generators.engines.transformers_engine import TransformersEngine

        return TransformersEngine(model, seed=seed, **transformers_settings(config))
    from thinktoggle.generators.engines.vllm_offline import VLLMEngine

    return VLLMEngine(model, seed=seed, **vllm_settings(config))

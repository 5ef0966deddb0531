"""Reading Hugging Face Hub datasets: one entry point, and one error that says which dataset and why.

Every Hub read (`thinktoggle ingest`, `hf` prompt sources, decontamination benchmarks) goes through
`load_hub_dataset`. Whatever fails, the caller gets a `HubError` (an `InputError`: the CLI prints it as one
`error:` line) naming the dataset and the cause: the Hub cannot be reached, the dataset is gated or private,
it does not exist, or the config or split does not.
"""

from __future__ import annotations

import os
from typing import Any

from thinktoggle.schemas.io import InputError


class HubError(InputError):
    """A Hub dataset that cannot be read; the message is one line naming the dataset and the cause."""


def load_hub_dataset(
    repo_id: str, config: str | None = None, split: str | None = None, *, streaming: bool = False
) -> Any:
    """`datasets.load_dataset(repo_id, name=config, split=split, streaming=streaming)`, or a HubError.

    `repo_id` may also be a local dataset folder, as `datasets` allows. A stream that opened can still fail
    while it is read; that is the caller's to handle.
    """
    import datasets
    from huggingface_hub import is_offline_mode

    try:
        if not os.path.exists(repo_id) and not is_offline_mode():
            _check_access(repo_id)
        return datasets.load_dataset(repo_id, name=config, split=split, streaming=streaming)
    except Exception as exc:
        raise HubError(f"Hub dataset {repo_id}: {_cause(exc, repo_id, config, split)}") from exc


def _check_access(repo_id: str) -> None:
    """One request before `datasets` starts. Without it an unreachable Hub costs datasets' five retries with
    backoff (about 25 s), and a gated or missing dataset comes back as one DatasetNotFoundError whose cause
    `datasets` drops; here huggingface_hub raises its own types. Bounded by HF_HUB_ETAG_TIMEOUT."""
    from huggingface_hub import HfApi, constants

    api = HfApi()
    if api.dataset_info(repo_id, timeout=constants.HF_HUB_ETAG_TIMEOUT).gated:
        api.auth_check(repo_id, repo_type="dataset")  # GatedRepoError unless this token was granted access


def _cause(exc: Exception, repo_id: str, config: str | None, split: str | None) -> str:
    """Why `exc` stopped the read, in one line."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants, is_offline_mode
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError
    from huggingface_hub.utils import httpx  # the HTTP client library huggingface_hub raises from

    login = "log in (HF_TOKEN or `hf auth login`)"
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError, its base class
        return (
            f"gated: {login} with an account that was granted access at "
            f"{constants.ENDPOINT}/datasets/{repo_id} (HTTP {exc.response.status_code})"
        )
    if isinstance(exc, (RepositoryNotFoundError, DatasetNotFoundError)):
        return f"no such dataset on the Hub (misspelled?), or a private one: {login} with an account that can read it"
    if isinstance(exc, (ConnectionError, httpx.TransportError)):  # OfflineModeIsEnabled is a ConnectionError
        if is_offline_mode():
            return "offline (HF_HUB_OFFLINE=1) and not in the local cache"
        return (
            f"cannot reach the Hub at {constants.ENDPOINT} ({_one_line(exc)}); check the network, "
            "or set HF_HUB_OFFLINE=1 to read a cached copy"
        )
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code
        if status in (401, 403):
            return f"access denied (HTTP {status}): gated or private; {login} with an account that can read it"
        return f"the Hub answered HTTP {status}: {_one_line(exc)}"
    maybe_config_or_split = isinstance(exc, ValueError) and not isinstance(exc, HFValidationError)
    return (maybe_config_or_split and _config_or_split_problem(repo_id, config, split)) or _one_line(exc)


def _config_or_split_problem(repo_id: str, config: str | None, split: str | None) -> str | None:
    """Which of `config` and `split` the dataset lacks, with the ones it has; None when it cannot tell. Asked
    of `datasets`' own listings rather than read out of its error message."""
    import datasets

    try:
        configs = datasets.get_dataset_config_names(repo_id)
        if config is not None and config not in configs:
            return f"no config {config!r}; it has {', '.join(configs)}"
        if config is None and len(configs) > 1 and datasets.get_dataset_default_config_name(repo_id) is None:
            return f"name a config; it has {', '.join(configs)}"
        if split is not None:
            splits = datasets.get_dataset_split_names(repo_id, config)
            if split not in splits:
                return f"no split {split!r}{f' in config {config!r}' if config else ''}; it has {', '.join(splits)}"
    except Exception:  # the listing failed too: the caller falls back to the original error
        return None
    return None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` with the message's lines joined and cut to `limit` characters."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:limit]}{'…' if len(text) > limit else ''}"

"""schemas/hub.py: every failure to read a Hub dataset is one HubError naming the dataset and the cause.

No network here. A missing config or split is real: `datasets` loads a local folder laid out like a Hub repo
(README configs) the way it loads the repo. Offline is real too (huggingface_hub's offline switch). For an
unreachable, gated or misspelled Hub dataset a fake transport stands in at the network boundary only
(huggingface_hub's HTTP client), answering as the Hub does (status code and X-Error-Code header); the real
HfApi turns those answers into huggingface_hub's own ConnectError, GatedRepoError and RepositoryNotFoundError.
(The real CLI against an unreachable Hub, nothing faked: tests/curation/test_ingest.py.)
"""

from __future__ import annotations

import re
import textwrap

import datasets
import huggingface_hub
import pytest
from huggingface_hub.utils import httpx

from thinktoggle.schemas.hub import HubError, load_hub_dataset
from thinktoggle.schemas.io import InputError

# What the fake Hub holds: dataset id -> its `gated` setting.
HUB = {"org/open": False, "org/gated": "manual"}


def answer_like_the_hub(request: httpx.Request) -> httpx.Response:
    """The Hub's answers to the two calls the access check makes (dataset info, auth check), without a token."""
    match = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(/auth-check)?", request.url.path)
    repo_id = match and match.group(1)
    if repo_id not in HUB:  # the Hub answers 401 (not 404) so as not to tell private repos from missing ones
        return httpx.Response(401, headers={"X-Error-Code": "RepoNotFound"}, json={"error": "Repository not found"})
    if match.group(2) and HUB[repo_id]:
        return httpx.Response(401, headers={"X-Error-Code": "GatedRepo"}, json={"error": "Access is restricted"})
    return httpx.Response(200, json={} if match.group(2) else {"id": repo_id, "gated": HUB[repo_id]})


def no_network(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)


@pytest.fixture
def hub_transport(monkeypatch):
    """Install a transport in huggingface_hub's HTTP client; returns a function that picks the handler."""
    from huggingface_hub.utils import _http  # the default factory is not public: saved to be put back

    default_factory = _http._GLOBAL_CLIENT_FACTORY
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # whatever the caller's env says

    def use(handler):
        huggingface_hub.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(handler)))

    yield use
    huggingface_hub.set_client_factory(default_factory)


@pytest.fixture
def hub_like_folder(tmp_path):
    folder = tmp_path / "hub"
    for split in ("math", "code"):
        (folder / "SFT" / split).mkdir(parents=True)
        (folder / "SFT" / split / "rows.jsonl").write_text(f'{{"question": "a {split} question"}}\n')
    (folder / "README.md").write_text(
        textwrap.dedent(
            """\
            ---
            configs:
            - config_name: SFT
              data_files:
              - {split: math, path: SFT/math/*.jsonl}
              - {split: code, path: SFT/code/*.jsonl}
            - config_name: other
              data_files:
              - {split: train, path: SFT/math/*.jsonl}
            ---
            """
        )
    )
    return folder


def test_a_gated_dataset_says_so_and_how_to_get_access(hub_transport):
    hub_transport(answer_like_the_hub)
    with pytest.raises(HubError) as caught:
        load_hub_dataset("org/gated", split="train")
    assert str(caught.value) == (
        "Hub dataset org/gated: gated: log in (HF_TOKEN or `hf auth login`) with an account that was granted "
        "access at https://huggingface.co/datasets/org/gated (HTTP 401)"
    )
    assert isinstance(caught.value.__cause__, huggingface_hub.errors.GatedRepoError)
    assert isinstance(caught.value, InputError)  # what the CLI prints as one `error:` line, exit code 2


def test_a_misspelled_dataset_is_no_such_dataset(hub_transport):
    hub_transport(answer_like_the_hub)
    with pytest.raises(HubError) as caught:
        load_hub_dataset("org/opne", streaming=True)
    assert str(caught.value) == (
        "Hub dataset org/opne: no such dataset on the Hub (misspelled?), or a private one: "
        "log in (HF_TOKEN or `hf auth login`) with an account that can read it"
    )
    assert type(caught.value.__cause__) is huggingface_hub.errors.RepositoryNotFoundError


def test_an_open_dataset_passes_the_check_and_is_loaded_by_datasets(hub_transport, monkeypatch):
    hub_transport(answer_like_the_hub)
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: calls.append((args, kwargs)) or "loaded")
    assert load_hub_dataset("org/open", "SFT", "math", streaming=True) == "loaded"
    assert calls == [(("org/open",), {"name": "SFT", "split": "math", "streaming": True})]


def test_an_unreachable_hub_fails_at_once(hub_transport):
    hub_transport(no_network)
    with pytest.raises(HubError, match=r"^Hub dataset org/open: cannot reach the Hub at https://huggingface\.co ") as c:
        load_hub_dataset("org/open")
    assert "ConnectError: [Errno -2] Name or service not known" in str(c.value)
    assert str(c.value).endswith("check the network, or set HF_HUB_OFFLINE=1 to read a cached copy")


def test_offline_without_a_cached_copy(monkeypatch, tmp_path):
    # The switch as HF_HUB_OFFLINE=1 sets it when huggingface_hub and datasets are imported.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")
    with pytest.raises(HubError) as caught:
        load_hub_dataset("org/open", split="train")
    assert str(caught.value) == "Hub dataset org/open: offline (HF_HUB_OFFLINE=1) and not in the local cache"


@pytest.mark.parametrize(
    ("config", "split", "cause"),
    [
        ("nope", None, "no config 'nope'; it has SFT, other"),
        (None, "math", "name a config; it has SFT, other"),
        ("SFT", "nope", "no split 'nope' in config 'SFT'; it has math, code"),
    ],
)
@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "downloaded"])
def test_no_such_config_or_split_lists_the_ones_there_are(hub_like_folder, config, split, cause, streaming):
    with pytest.raises(HubError) as caught:
        load_hub_dataset(str(hub_like_folder), config, split, streaming=streaming)
    assert str(caught.value) == f"Hub dataset {hub_like_folder}: {cause}"


def test_an_existing_config_and_split_load(hub_like_folder):
    rows = load_hub_dataset(str(hub_like_folder), "SFT", "code")
    assert rows[0] == {"question": "a code question"}

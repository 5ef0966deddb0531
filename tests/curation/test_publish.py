"""Publish: the dry run for real (CLI), the upload against a stand-in for HfApi.

The Hub cannot be reached from here, so the tests stop at the network boundary: `FakeHubApi` stands in for
huggingface_hub's HfApi, records the calls it would make (create_repo, create_branch, upload_folder), checks
each against the installed HfApi method's signature (a call the real HfApi would refuse fails the test), and
can answer with the HTTP errors the Hub sends (401, 403, 409), built as real `HfHubHTTPError`s.
"""

from __future__ import annotations

import fnmatch
import inspect

import pytest
from click.testing import CliRunner

from thinktoggle.cli.main import app
from thinktoggle.curation.publish import PublishError, plan_publish, publish, resolve_token


@pytest.fixture()
def folder(tmp_path):
    out = tmp_path / "export"
    for relative, text in {
        "README.md": "---\nlicense: cc-by-4.0\n---\n# card\n",
        "SFT/math/part-r00000-00000.parquet": "x" * 100,
        "SFT/code/part-r00000-00000.parquet": "y" * 50,
        "plots/funnel.png": "png",
        "stats.json": "{}",
        "logs/completions/00000": "",
        "ranks/part-r00000.json": "{}",
        "provenance/part-r00000.json": "{}",
        "failed/part-r00000.jsonl": "{}",
        ".cache/huggingface/upload.lock": "",
        "SFT/math/.part-r00001-00000.parquet.tmp-1234": "half",
    }.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


PUBLISHED = [
    ("README.md", 34),
    ("SFT/code/part-r00000-00000.parquet", 50),
    ("SFT/math/part-r00000-00000.parquet", 100),
    ("plots/funnel.png", 3),
    ("stats.json", 2),
]


def http_error(status: int):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(f"{status} error", response=httpx2.Response(status, request=request))


class FakeHubApi:
    """Records HfApi calls; `errors` maps a method name to the HTTP status it fails with."""

    def __init__(self, errors=None):
        self.calls = []
        self.errors = errors or {}

    def _call(self, name, **kwargs):
        from huggingface_hub import HfApi

        inspect.signature(getattr(HfApi, name)).bind(None, **kwargs)  # TypeError if the real HfApi refuses it
        self.calls.append((name, kwargs))
        if name in self.errors:
            raise http_error(self.errors[name])

    def create_repo(self, repo_id, **kwargs):
        self._call("create_repo", repo_id=repo_id, **kwargs)

    def create_branch(self, repo_id, **kwargs):
        self._call("create_branch", repo_id=repo_id, **kwargs)

    def upload_folder(self, **kwargs):
        self._call("upload_folder", **kwargs)


def test_dry_run_lists_every_file_and_size_via_cli(folder):
    result = CliRunner().invoke(app, ["publish", str(folder), "--repo-id", "me/toggle-data", "--dry-run"])
    assert result.exit_code == 0, result.output
    for path, size in PUBLISHED:
        assert path in result.output and f"{size:,} B" in result.output
    for hidden in ("logs/", "ranks/", "provenance/", "failed/", ".cache", ".tmp"):
        assert hidden not in result.output
    assert "5 files, 189 bytes -> datasets/me/toggle-data" in result.output
    assert plan_publish(folder, "me/toggle-data").files == PUBLISHED


def test_upload_creates_repo_branch_and_uploads_the_planned_files(folder):
    api = FakeHubApi()
    publish(folder, "me/toggle-data", private=True, revision="v2", api=api, report=lambda _: None)
    names = [name for name, _ in api.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1] == {"repo_id": "me/toggle-data", "repo_type": "dataset", "private": True, "exist_ok": True}
    assert api.calls[1][1]["branch"] == "v2"
    upload = api.calls[2][1]
    assert upload["repo_type"] == "dataset" and upload["revision"] == "v2"
    assert upload["allow_patterns"] == [path for path, _ in PUBLISHED]
    # The patterns select exactly the planned files (huggingface_hub matches them with fnmatch).
    every = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    chosen = [p for p in every if any(fnmatch.fnmatch(p, pat) for pat in upload["allow_patterns"])]
    assert sorted(chosen) == [path for path, _ in PUBLISHED]


def test_a_large_folder_is_one_upload_folder_call_and_a_rerun_repeats_it(folder):
    """huggingface_hub's upload_folder commits a big folder in parts and, rerun after an interruption, skips
    what was committed: publish makes the same single call whatever the size, and again on a rerun."""
    for i in range(600):
        (folder / "SFT" / "math" / f"part-r00000-{i + 1:05d}.parquet").write_text("z")
    planned = [path for path, _ in plan_publish(folder, "me/big").files]
    assert len(planned) == 605
    interrupted = FakeHubApi(errors={"upload_folder": 503})
    with pytest.raises(PublishError, match="uploading to me/big"):
        publish(folder, "me/big", api=interrupted, report=lambda _: None)
    rerun = FakeHubApi()
    publish(folder, "me/big", api=rerun, report=lambda _: None)
    assert [name for name, _ in rerun.calls] == ["create_repo", "upload_folder"]
    assert rerun.calls == interrupted.calls
    assert rerun.calls[1][1]["allow_patterns"] == planned


@pytest.mark.parametrize(
    ("errors", "message"),
    [
        ({"create_repo": 403}, "permission denied"),
        ({"create_repo": 409}, "name clash"),
        ({"create_repo": 401}, "token was rejected"),
        ({"upload_folder": 403}, "uploading to someone/taken: permission denied"),
    ],
)
def test_hub_errors_are_explained(folder, errors, message):
    with pytest.raises(PublishError, match=message):
        publish(folder, "someone/taken", api=FakeHubApi(errors), report=lambda _: None)


def test_missing_token_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))  # an empty login cache
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(PublishError, match="no Hugging Face token: set HF_TOKEN"):
        resolve_token()
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert resolve_token() == "hf_test"


def test_bad_repo_id_and_folder(folder, tmp_path):
    with pytest.raises(PublishError, match="expected ORG/NAME"):
        plan_publish(folder, "no-slash")
    with pytest.raises(PublishError, match="no README.md"):
        plan_publish(tmp_path, "me/x")
    result = CliRunner().invoke(app, ["publish", str(tmp_path / "missing"), "--repo-id", "me/x", "--dry-run"])
    assert result.exit_code == 2 and "no such folder" in result.output

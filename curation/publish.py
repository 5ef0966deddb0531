"""`thinktoggle publish`: upload an exported folder to a Hugging Face dataset repo.

What is uploaded is decided here once (`plan_publish`) and used both for `--dry-run` and for the upload: the
card, the data, the plots and stats.json; never hidden files, unfinished writes or a stage's bookkeeping.
The upload is one `HfApi.upload_folder` call whatever the size: since huggingface_hub 1.20 (with hf_xet, a
default dependency) it streams, commits a big folder in several commits and resumes when rerun after an
interruption; 2.0 removed `upload_large_folder` in its favour.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Side outputs of the export stage that are not part of the dataset.
NOT_PUBLISHED = ("logs/*", "ranks/*", "provenance/*", "failed/*", "dropped/*")


class PublishError(Exception):
    """A problem the user can fix: no token, a bad repo id, a name clash, no permission."""


@dataclass
class PublishPlan:
    folder: Path
    repo_id: str
    files: list[tuple[str, int]] = field(default_factory=list)  # (path relative to folder, bytes)

    @property
    def total_bytes(self) -> int:
        return sum(size for _path, size in self.files)

    def lines(self) -> list[str]:
        width = max((len(path) for path, _ in self.files), default=0)
        rows = [f"{path:<{width}}  {size:>14,} B" for path, size in self.files]
        return [
            *rows,
            f"{len(self.files)} files, {self.total_bytes:,} bytes -> datasets/{self.repo_id} (upload_folder)",
        ]


def _published(relative: str) -> bool:
    parts = relative.split("/")
    if any(part.startswith(".") or ".tmp" in part for part in parts):
        return False
    return not any(fnmatch.fnmatch(relative, pattern) for pattern in NOT_PUBLISHED)


def plan_publish(folder: str | Path, repo_id: str) -> PublishPlan:
    """Every file that would be uploaded, with its size. Checks the folder and the repo id."""
    folder = Path(folder)
    if not REPO_ID.fullmatch(repo_id):
        raise PublishError(f"--repo-id: expected ORG/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")
    if not folder.is_dir():
        raise PublishError(f"{folder}: no such folder")
    if not (folder / "README.md").exists():
        raise PublishError(f"{folder}: no README.md (dataset card): run `thinktoggle export` first")
    plan = PublishPlan(folder, repo_id)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and _published(relative):
            plan.files.append((relative, path.stat().st_size))
    return plan


def resolve_token(token: str | None = None) -> str:
    """The token to use: given, else HF_TOKEN, else the login cache (`hf auth login`)."""
    from huggingface_hub import get_token

    token = token or os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token: set HF_TOKEN or log in with `hf auth login` (a token with write access)"
        )
    return token


def _http_status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _explain(exc: Exception, repo_id: str, action: str) -> PublishError:
    status = _http_status(exc)
    owner = repo_id.split("/")[0]
    if status == 401:
        return PublishError(f"{action} {repo_id}: the token was rejected (401): log in again or set a valid HF_TOKEN")
    if status == 403:
        return PublishError(
            f"{action} {repo_id}: permission denied (403): the token cannot write to {owner!r} — is it your user "
            f"name or an organisation you can write to, and does the token have write access? If {repo_id} "
            "belongs to someone else, choose another name"
        )
    if status == 409:
        return PublishError(f"{action} {repo_id}: name clash (409): {exc}")
    return PublishError(f"{action} {repo_id}: {exc}")


def publish(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    api: Any = None,
    report: Callable[[str], None] = print,
) -> PublishPlan:
    """Create the dataset repo (if needed) and upload the planned files. `--dry-run` only reports the plan."""
    plan = plan_publish(folder, repo_id)
    if dry_run:
        for line in plan.lines():
            report(line)
        return plan
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=resolve_token(token))
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    except Exception as exc:
        raise _explain(exc, repo_id, "creating") from None
    try:
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(plan.folder),
            repo_type="dataset",
            revision=revision,
            commit_message=f"thinktoggle publish: {len(plan.files)} files",
            allow_patterns=[path for path, _ in plan.files],
        )
    except Exception as exc:
        raise _explain(exc, repo_id, "uploading to") from None
    report(f"published {len(plan.files)} files to https://huggingface.co/datasets/{repo_id}")
    return plan

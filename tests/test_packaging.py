"""The wheel holds `thinktoggle` and its dist-info and nothing else; the console script lists the stages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from thinktoggle.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
# Source folders that are not part of the package.
NOT_PACKAGED = {"tests", "bench", "docs", "runs", "build", "dist", ".venv", ".git", ".ci"}


def source_files() -> list[Path]:
    """The working tree as a fresh clone would have it (tracked plus new, not ignored), relative to ROOT."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    return [Path(name) for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[zipfile.ZipFile, list[Path]]:
    """A wheel built the way `pip install .` builds it, from a copy of the tree (so no stale build/ leaks in)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = source_files()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (path,) = (tmp / "dist").glob("thinktoggle-*.whl")
    return zipfile.ZipFile(path), files


def test_the_wheel_has_one_top_level_name(wheel):
    archive, _ = wheel
    top = {name.split("/", 1)[0] for name in archive.namelist()}
    dist_info = [t for t in top if t.endswith(".dist-info")]
    assert top == {"thinktoggle", *dist_info} and len(dist_info) == 1, top
    entry_points = archive.read(f"{dist_info[0]}/entry_points.txt").decode()
    assert "thinktoggle = thinktoggle.cli.main:main" in entry_points


def test_installing_the_wheel_adds_only_thinktoggle(wheel, tmp_path):
    """`pip install` of the wheel into an empty site folder: `thinktoggle`, its dist-info, and the script."""
    archive, _ = wheel
    site = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "-q",
            "--target",
            str(site),
            archive.filename,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    entries = {p.name for p in site.iterdir()}
    assert entries - {"bin"} == {"thinktoggle", Path(archive.filename).name.split("-py3")[0] + ".dist-info"}
    assert (site / "bin" / "thinktoggle").exists()
    probe = "import thinktoggle.schemas.published as p, thinktoggle.cli.main; print(p.__file__)"
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the editable install of the working tree
    run = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith(str(site)), run.stderr


def test_the_wheel_holds_every_package_module_and_recipe(wheel):
    archive, files = wheel
    names = set(archive.namelist())
    for module in ("__init__", "record", "published", "arrow", "convert", "io", "think"):
        assert f"thinktoggle/schemas/{module}.py" in names
    packaged = [f for f in files if f.parts[0] not in NOT_PACKAGED and (f.suffix == ".py" or f.parts[0] == "recipes")]
    missing = [str(f) for f in packaged if f"thinktoggle/{f.as_posix()}" not in names]
    assert not missing, f"not in the wheel (add the package or data to pyproject.toml): {missing}"
    assert any(f.parts[0] == "recipes" and f.suffix == ".yaml" for f in packaged) or not (ROOT / "recipes").exists()
    assert not [n for n in names if n.startswith(("thinktoggle/tests/", "thinktoggle/bench/"))]


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = ("check", "ingest", "generate", "filter", "dedup", "export", "train", "validate", "run", "publish")
    for command in commands:
        assert command in result.output
    for command in commands:
        sub = CliRunner().invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output


def test_the_console_script_help():
    script = Path(sys.executable).parent / "thinktoggle"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout and "ingest" in result.stdout

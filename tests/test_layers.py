"""The layers: a lower package never imports a higher one (docs/ARCHITECTURE.md, "Layers").

    orchestration   runner/  cli/  demo.py  report/
    features        generators/  filters/  training/  curation/   (curation may use the other three)
    core            core/    the stage contract
    ground          schemas/

Every import counts, the lazy ones inside functions too: they are read from the source, not from sys.modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = {"runner", "cli", "demo", "report"}
FEATURES = {"generators", "filters", "training", "curation"}
# What each package may import from the project (besides itself).
ALLOWED = {
    "schemas": set(),
    "core": {"schemas"},
    "generators": {"schemas", "core"},
    "filters": {"schemas", "core", "generators"},  # the LLM judge uses the teacher engines
    "training": {"schemas", "core", "generators", "filters"},  # validation scores with the filters
    "curation": {"schemas", "core", "generators", "filters", "training"},
    "report": {"schemas", "core"},  # orchestration that reads every stage's folder through core, never a feature
}


def project_imports(path: Path) -> set[str]:
    """The top-level thinktoggle packages that `path` imports (`thinktoggle.x.y` -> `x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "thinktoggle" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(path for package in ALLOWED for path in (ROOT / package).rglob("*.py"))


def test_every_package_is_walked():
    assert {path.relative_to(ROOT).parts[0] for path in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_reaches_a_higher_layer(path: Path):
    package = path.relative_to(ROOT).parts[0]
    wrong = project_imports(path) - ALLOWED[package] - {package, "__version__"}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}: a lower layer must not import a higher one"


def test_the_checker_sees_lazy_imports(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from thinktoggle.runner.recipe import load_recipe\n    import thinktoggle.cli.main\n"
    )
    assert project_imports(module) == {"runner", "cli"}


def test_the_kept_folder_has_one_name():
    from thinktoggle.core.layout import KEPT
    from thinktoggle.schemas.io import KEPT_FOLDER

    assert KEPT == KEPT_FOLDER

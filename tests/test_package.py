"""The package Azure runs: built by .funcignore as azd and Core Tools build it, installed from
requirements.txt alone into a clean venv, serving the same functions as the local host; and
`pip install .` (what `azd restore` runs) installs the product only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# api/ and its layers' packages, as the source tree has them.
PRODUCT_MODULES = {p.relative_to(ROOT).as_posix() for p in (ROOT / "api").rglob("*.py")}
sys.path.insert(0, str(ROOT / "scripts"))
import package  # noqa: E402  # scripts/package.py

NEVER_SHIPPED = (
    "tests/",
    "devhost/",
    "sandbox/",
    "clients/",
    "bench/",
    "infra/",
    "scripts/",
    ".venv",
    "node_modules/",
    ".github/",
    "local.settings.json",
)

LIST_FUNCTIONS = """
import json, function_app
from azure.functions.decorators.http import HttpTrigger
listed = []
for f in function_app.app.get_functions():
    trigger = f.get_trigger()
    entry = {"name": f.get_function_name(), "trigger": type(trigger).__name__}
    if isinstance(trigger, HttpTrigger):
        entry["route"] = trigger.route
        entry["methods"] = sorted(str(m.value) for m in trigger.methods or [])
        entry["auth"] = str(trigger.auth_level.value) if trigger.auth_level else None
    listed.append(entry)
print(json.dumps(sorted(listed, key=lambda e: e["name"])))
"""


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("package")
    target = folder / "ahoy.zip"
    names = package.build(target)
    assert names == zipfile.ZipFile(target).namelist()
    site = folder / "site"
    zipfile.ZipFile(target).extractall(site)
    return site


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with requirements.txt alone (pinned as CI tested), nothing of the dev tools."""
    folder = tmp_path_factory.mktemp("venv")
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "-r", str(ROOT / "requirements.txt"), "-c", str(ROOT / "constraints.txt")],
        check=True,
        capture_output=True,
    )
    return python


def test_the_zip_holds_the_app_at_its_root_and_nothing_else(unpacked: Path) -> None:
    files = {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()}
    assert {"function_app.py", "host.json", "requirements.txt", "api/__init__.py"} <= files
    assert {f for f in files if f.startswith("api/")} == PRODUCT_MODULES
    assert not [f for f in files if f.startswith(NEVER_SHIPPED) or "__pycache__" in f]
    assert not [f for f in files if f.endswith((".pyc", ".md", ".toml"))]


def test_the_unpacked_app_serves_the_same_functions_with_only_its_requirements(
    unpacked: Path, clean_venv: Path
) -> None:
    def listed(python: Path, folder: Path) -> list[dict[str, object]]:
        out = subprocess.run(
            [str(python), "-c", LIST_FUNCTIONS],
            cwd=folder,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result: list[dict[str, object]] = json.loads(out)
        return result

    deployed = listed(clean_venv, unpacked)
    local = listed(Path(sys.executable), ROOT)  # what the local host serves
    assert deployed == local
    routes = {f["route"] for f in deployed if "route" in f}
    assert {"sendSms", "makeCall", "twiml", "health"} <= routes


def test_pip_install_dot_installs_the_product_only(clean_venv: Path, tmp_path: Path) -> None:
    # As `azd restore` runs it; the build backend comes from PyPI (build isolation).
    # From a copy: pip builds in the source tree (build/, ahoy.egg-info).
    source = tmp_path / "source"
    litter = (".venv*", ".git", "node_modules", ".azurite", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*litter, "artifacts"))
    pip = [str(clean_venv), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--no-deps", str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    report = subprocess.run(
        [
            str(clean_venv),
            "-c",
            "import json, importlib.metadata as m;"
            "print(json.dumps({'files': [str(f) for f in m.files('ahoy')],"
            " 'requires': m.requires('ahoy')}))",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    installed = json.loads(report)
    product = {f for f in installed["files"] if ".dist-info/" not in f and "__pycache__" not in f}
    assert product == {"function_app.py"} | PRODUCT_MODULES
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    required = [Requirement(line) for line in lines if line and not line.startswith("#")]
    assert [Requirement(r) for r in installed["requires"]] == required


def _imported_modules() -> set[str]:
    """Every module api/ and function_app.py import that is neither stdlib nor Ahoy's."""
    import ast

    found: set[str] = set()
    for path in [*(ROOT / "api").rglob("*.py"), ROOT / "function_app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] not in (*sys.stdlib_module_names, "api")}


def test_every_third_party_module_the_product_imports_is_declared() -> None:
    # Azure installs requirements.txt's ranges, not constraints.txt: a module that arrives only
    # as another package's dependency can change or vanish under Ahoy (azure-core, requests and
    # urllib3 did: imported by api/ and declared nowhere).
    import importlib.util
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    owner = {}
    for dist in distributions():
        for file in dist.files or []:
            owner[str(file)] = canonicalize_name(dist.metadata["Name"])
    declared = {
        canonicalize_name(Requirement(line).name)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    undeclared = {}
    for module in _imported_modules():
        spec = importlib.util.find_spec(module)
        assert spec is not None, module
        assert spec.origin, module
        site = max((p for p in sys.path if p and spec.origin.startswith(p + "/")), key=len)
        distribution = owner[str(Path(spec.origin).relative_to(site))]
        if distribution not in declared:
            undeclared[module] = distribution
    assert undeclared == {}

"""The layers, beyond what import-linter expresses (its contracts run in scripts/test).

import-linter cannot name a subpackage of an external package (`twilio.rest`,
`azure.functions`), a module outside a package (`function_app.py`) or a read of
`os.environ`; these tests read the source's syntax trees, imports inside functions included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [*sorted((ROOT / "api").rglob("*.py")), ROOT / "function_app.py"]
EDGE = {path.stem for path in (ROOT / "api" / "edge").glob("*.py")} - {"__init__"}


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, anywhere in it (`from a import b` yields `a` and `a.b`)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _importers_of(prefix: str) -> set[str]:
    return {
        path.stem
        for path in PRODUCT
        if any(name == prefix or name.startswith(prefix + ".") for name in _imports(path))
    }


def test_only_the_twilio_adapter_imports_twilio_rest() -> None:
    assert _importers_of("twilio.rest") == {"twilio_service"}


def test_azure_functions_is_not_imported_below_the_edge() -> None:
    assert _importers_of("azure.functions") <= EDGE | {"function_app"}


def test_only_settings_reads_the_environment() -> None:
    readers = set()
    for path in PRODUCT:
        for node in ast.walk(ast.parse(path.read_text())):
            reads = (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and any(alias.name in ("environ", "getenv") for alias in node.names)
            )
            if reads:
                readers.add(path.stem)
    assert readers == {"settings"}


def test_the_entry_point_registers_the_edge_only() -> None:
    imported = {name for name in _imports(ROOT / "function_app.py") if name.startswith("api.")}
    assert imported
    assert {name.split(".")[1] for name in imported} == {"edge"}


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("api.services.call_flows", "api.services.voicemail"),  # inside _voicemail_saved
        ("api.edge.app_routes", "api.services.messaging"),  # inside the handlers
    ],
)
def test_the_import_graph_counts_imports_inside_functions(importer: str, imported: str) -> None:
    """What import-linter's contracts see: grimp's graph, with function-level imports in it."""
    graph = grimp.build_graph("api", cache_dir=None)
    assert graph.direct_import_exists(importer=importer, imported=imported)

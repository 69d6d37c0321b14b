"""The contract as client generators read it: the OpenAPI document passes Redocly's recommended
rules, the TypeScript client generated from it (clients/typescript) cannot drift from it,
type-checks with `tsc --strict`, and drives the local host and the sandbox as an app would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Account, Sandbox
from tests.support.azurite import Azurite
from tests.support.devhost_process import sandbox_app
from tests.support.settings import ACCOUNT_SID, AUTH_TOKEN

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "clients" / "typescript"
BIN = ROOT / "node_modules" / ".bin"

sys.path.insert(0, str(ROOT / "scripts"))
import openapi_document  # noqa: E402  # scripts/openapi_document.py

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="Node is needed (scripts/setup installs the packages)"
)


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_committed_document_is_what_the_app_serves() -> None:
    assert (CLIENT / "openapi.json").read_text() == openapi_document.render(), (
        "clients/typescript is stale: run scripts/client"
    )


def test_the_committed_types_are_what_openapi_typescript_generates(tmp_path: Path) -> None:
    generated = tmp_path / "schema.d.ts"
    result = run(BIN / "openapi-typescript", CLIENT / "openapi.json", "--output", generated)
    assert result.returncode == 0, result.stderr
    assert (CLIENT / "src" / "schema.d.ts").read_text() == generated.read_text(), (
        "clients/typescript/src/schema.d.ts is stale: run scripts/client"
    )


def test_redocly_recommended_rules_pass_with_nothing_unexplained() -> None:
    result = run(BIN / "redocly", "lint", CLIENT / "openapi.json", "--format=json")
    assert result.returncode == 0, result.stdout + result.stderr
    totals = json.loads(result.stdout)["totals"]
    # the one ignored warning is explained in .redocly.lint-ignore.yaml
    assert totals == {"errors": 0, "warnings": 0, "ignored": 1}


def test_the_client_type_checks_strictly(tmp_path: Path) -> None:
    result = run(BIN / "tsc", "-p", CLIENT, "--noEmit")
    assert result.returncode == 0, result.stdout
    config = json.loads((CLIENT / "tsconfig.json").read_text())["compilerOptions"]
    assert config["strict"] is True


def test_tsc_would_refuse_a_problem_type_the_client_does_not_handle(tmp_path: Path) -> None:
    """The exhaustive switch in remedyFor is a real check: a new type in the document breaks
    the build until the client handles it."""
    copy = tmp_path / "client"
    shutil.copytree(CLIENT, copy, ignore=shutil.ignore_patterns("dist"))
    schema = copy / "src" / "schema.d.ts"
    schema.write_text(
        schema.read_text().replace(
            '"urn:ahoy:problem:conflict" |',
            '"urn:ahoy:problem:conflict" | "urn:ahoy:problem:brand-new" |',
            1,
        )
    )
    (copy / "node_modules").symlink_to(ROOT / "node_modules")
    result = run(BIN / "tsc", "-p", copy, "--noEmit")
    assert result.returncode != 0
    assert "brand-new" in result.stdout


@pytest.fixture
def app(azurite: Azurite, tmp_path: Path) -> Iterator[str]:
    sandbox = Sandbox(Account(ACCOUNT_SID, AUTH_TOKEN), step_seconds=0.05).start()
    try:
        host = sandbox_app(sandbox.url, azurite, tmp_path)
        try:
            yield host.url
        finally:
            host.stop()
    finally:
        sandbox.stop()


def test_the_generated_client_drives_the_local_host_and_the_sandbox(app: str) -> None:
    built = run(BIN / "tsc", "-p", CLIENT)  # to clients/typescript/dist (git-ignored)
    assert built.returncode == 0, built.stdout
    env = {**os.environ, "AHOY_URL": app}
    result = run("node", "--test", CLIENT / "dist" / "test" / "e2e.test.js", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 4" in result.stdout
    assert "# fail 0" in result.stdout

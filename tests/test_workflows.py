"""The GitHub workflows: valid against GitHub's workflow schema (offline), current actions,
CI runs the README's test command, deploy signs in with OIDC."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK = ROOT / ".venv-checks" / "bin" / "check-jsonschema"
# Majors that run on node24; older ones (checkout@v4, setup-python@v5, azure/login@v2) run on
# the deprecated node20.
CURRENT = {"actions/checkout": 5, "actions/setup-python": 6, "azure/login": 3}


def schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_workflows_are_valid_against_githubs_schema() -> None:
    assert {w.name for w in WORKFLOWS} == {"ci.yml", "deploy.yml"}
    result = schema_check(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: true\n")  # no runs-on
    assert schema_check(broken).returncode != 0


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_actions_are_current_majors(workflow: Path) -> None:
    for action, major in re.findall(r"uses:\s*([\w./-]+)@v(\d+)", workflow.read_text()):
        assert action in CURRENT, action
        assert int(major) >= CURRENT[action], f"{action}@v{major}"


def test_ci_runs_the_readmes_test_command() -> None:
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run", "") for step in ci["jobs"]["test"]["steps"]]
    assert "scripts/test" in runs
    assert "scripts/test" in (ROOT / "README.md").read_text()


def test_deploy_signs_in_with_a_federated_credential_and_keeps_secrets_in_secrets() -> None:
    text = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    deploy = yaml.safe_load(text)
    assert deploy["permissions"]["id-token"] == "write"
    assert "--federated-credential-provider github" in text
    env = deploy["jobs"]["deploy"]["env"]
    for secret in ("TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SECRET", "AHOY_FLOW_KEY"):
        assert env[secret] == "${{ secrets." + secret + " }}"
    assert not any("secrets." in str(value) for name, value in env.items() if "SID" in name)


def test_deploy_passes_every_parameter_the_template_reads_from_the_environment() -> None:
    # A variable the workflow leaves out reaches the template as its default, and ARM then
    # replaces the app settings with that: the operator's value is undone on every push.
    parameters = (ROOT / "infra" / "main.parameters.json").read_text()
    wanted = set(re.findall(r"\$\{([A-Z_]+)", parameters)) - {"AZURE_PRINCIPAL_ID"}  # azd's own
    env = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"][
        "deploy"
    ]["env"]
    assert wanted - set(env) == set()


def test_deploy_runs_only_after_the_tests_passed_on_main() -> None:
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    triggers = deploy[True]  # PyYAML reads the key `on` as True
    assert set(triggers) == {"workflow_run"}  # no push or manual trigger that skips the tests
    ci_name = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["name"]
    assert triggers["workflow_run"] == {
        "workflows": [ci_name],
        "types": ["completed"],
        "branches": ["main"],
    }
    job = deploy["jobs"]["deploy"]
    assert "github.event.workflow_run.conclusion == 'success'" in job["if"]
    checkout = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"  # what CI tested

"""The Azure template (infra/), checked offline: checkov's policies, and the template against
the code (pycep, the parser checkov uses): every setting the app requires, secrets only from
Key Vault, no development switch, nothing Flex Consumption rejects, the runtime CI tests."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from api.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
CHECKS = ROOT / ".venv-checks" / "bin"

SECRETS = {"TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SECRET", "AHOY_FLOW_KEY"}
DEVELOPMENT_SWITCHES = {
    "DEV_PRINCIPAL",
    "TWILIO_VALIDATE_SIGNATURES",
    "TWILIO_SANDBOX",
    "TWILIO_API_BASE_URL",
    "DEVHOST_BIND",
    "DEVHOST_FUNCTION_KEY",
    "DEVHOST_MASTER_KEY",
    "WEBSITE_AUTH_ENABLED",  # the platform injects it; a template that sets it lies
}
FLEX_REJECTS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "WEBSITE_TIME_ZONE",
    "AzureWebJobsStorage",  # a connection string needs shared keys, which are off
}
ROLES = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
}
# What azd would be given for the parameters that have no default (README, "Deploy to Azure").
AZD_ENVIRONMENT = {
    "twilioAccountSid": "AC" + "1" * 32,
    "twilioFromNumber": "+14155550100",
    "entraClientId": "11111111-2222-3333-4444-555555555555",
}
# What Azure resolves the references to once deployed.
HOST_NAME = "func-ahoy-abc.azurewebsites.net"
CLIENT_ID = "66666666-7777-8888-9999-000000000000"
RESOLVED = {
    "identity.properties.clientId": CLIENT_ID,
    "site.properties.defaultHostName": HOST_NAME,
    "insights.properties.ConnectionString": "InstrumentationKey=00000000-0000-0000-0000-0",
    "storage.name": "stahoyabc",
    # what the account reports (its primaryEndpoints), trailing slash included
    "storage.properties.primaryEndpoints.table": "https://stahoyabc.table.core.windows.net/",
}
# The template's conditions, as the parameters they test.
CONDITIONS = {
    "hasApiKey": "twilioApiKeySecret",
    "hasSecondaryToken": "twilioAuthTokenSecondary",
    "hasSharedKey": "twilioWebhookSharedKey",
    "hasSecondarySharedKey": "twilioWebhookSharedKeySecondary",
}
KEY_VAULT_VALUES = {
    "authTokenSecret": "a-resolved-auth-token",
    "apiKeySecret": "a-resolved-api-key-secret",
    "secondaryTokenSecret": "a-resolved-secondary-token",
    "sharedKeySecret": "a-resolved-shared-key",
    "secondarySharedKeySecret": "a-resolved-secondary-shared-key",
    "flowKeySecret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
}


@cache
def template(name: str) -> dict[str, Any]:
    parsed: Any = BicepParser().parse(file_path=INFRA / name)
    return dict(parsed)


def resource(name: str) -> dict[str, Any]:
    config: dict[str, Any] = template("app.bicep")["resources"][name]["config"]
    return config


def app_settings() -> dict[str, Any]:
    settings: dict[str, Any] = resource("appSettings")["properties"]
    return settings


def evaluate(expression: Any) -> str:
    """An app setting's value as deployed, for the subset of Bicep the template uses there."""
    app_params, main_params = (
        template("app.bicep")["parameters"],
        template("main.bicep")["parameters"],
    )
    if isinstance(expression, str):
        if expression in app_params:  # a parameter, passed through from main.bicep
            default = main_params[expression].get("default")
            return str(AZD_ENVIRONMENT.get(expression, "" if default is None else default))
        if expression.startswith("@Microsoft.KeyVault(SecretUri=${"):
            secret = expression.removeprefix("@Microsoft.KeyVault(SecretUri=${").split(".")[0]
            return KEY_VAULT_VALUES[secret]
        for reference, value in RESOLVED.items():
            expression = expression.replace("${" + reference + "}", value)
        assert "${" not in expression, expression
        return expression
    if "function" in expression and expression["function"]["type"] == "string":
        return evaluate(expression["function"]["parameters"]["value_to_convert"])
    operator = expression["operator"]
    if operator["type"] == "conditional":
        condition = operator["operands"]["condition"]
        value = evaluate(CONDITIONS.get(condition, condition))
        chosen = "true_value" if value and value.lower() != "false" else "false_value"
        return evaluate(operator["operands"][chosen])
    assert operator["type"] == "property_accessor"
    accessed = _accessor(expression)
    return RESOLVED[accessed]


def _accessor(expression: Any) -> str:
    if isinstance(expression, str):
        return expression
    operands = expression["operator"]["operands"]
    return f"{_accessor(operands['operand_1'])}.{_accessor(operands['operand_2'])}"


def deployed_environment() -> dict[str, str]:
    env = {name: evaluate(value) for name, value in app_settings().items()}
    return {**env, "WEBSITE_INSTANCE_ID": "instance-1", "WEBSITE_SITE_NAME": "func-ahoy-abc"}


def test_the_app_starts_on_the_settings_the_template_writes() -> None:
    settings = Settings.from_environ(deployed_environment())  # raises, naming what is missing
    assert settings.public_base_url == f"https://{HOST_NAME}"
    assert settings.storage.connection_string is None
    assert settings.storage.table_endpoint == "https://stahoyabc.table.core.windows.net"
    assert settings.storage.managed_identity
    assert settings.storage.client_id == CLIENT_ID
    assert settings.caller_auth == "easyauth"


def test_every_setting_the_code_requires_is_in_the_template() -> None:
    from api.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as nothing_set:
        Settings.from_environ({})
    required = set(nothing_set.value.settings) - {"AzureWebJobsStorage"}
    assert required <= set(app_settings())
    assert {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential"} <= set(
        app_settings()
    )


def test_limits_and_policy_default_to_what_the_code_and_readme_say() -> None:
    deployed = Settings.from_environ(deployed_environment())
    minimal = Settings.from_environ(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
            "TWILIO_AUTH_TOKEN": "x",
            "TWILIO_FROM_NUMBER": "+14155550100",
            "PUBLIC_BASE_URL": "https://example.net",
            "AHOY_FLOW_KEY": KEY_VAULT_VALUES["flowKeySecret"],
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        }
    )
    for name in (
        "rate_limit_per_minute",
        "daily_quota",
        "destination_limit_per_hour",
        "global_daily_cap",
        "allowed_countries",
        "allowed_number_types",
        "allowed_twiml_hosts",
    ):
        assert getattr(deployed, name) == getattr(minimal, name), name


def test_secrets_come_only_from_key_vault_references() -> None:
    settings = app_settings()
    for name in ("TWILIO_AUTH_TOKEN", "AHOY_FLOW_KEY"):
        assert settings[name].startswith("@Microsoft.KeyVault(SecretUri=${"), name
    for optional in (
        "TWILIO_API_KEY_SECRET",
        "TWILIO_AUTH_TOKEN_SECONDARY",
        "TWILIO_WEBHOOK_SHARED_KEY",
        "TWILIO_WEBHOOK_SHARED_KEY_SECONDARY",
    ):
        choice = settings[optional]["operator"]["operands"]
        assert choice["true_value"].startswith("@Microsoft.KeyVault(SecretUri=${"), optional
        assert choice["false_value"] == ""
    secure = {
        name
        for name, param in template("app.bicep")["parameters"].items()
        if {"type": "secure"} in param["decorators"]
    }
    assert secure == {
        "twilioAuthToken",
        "twilioAuthTokenSecondary",
        "twilioWebhookSharedKey",
        "twilioWebhookSharedKeySecondary",
        "twilioApiKeySecret",
        "flowKey",
    }
    plain_values = json.dumps(settings)
    assert not any(f'"{name}"' in plain_values for name in secure)
    secret_names = {
        resource(name)["name"] if "name" in resource(name) else resource(name)["config"]["name"]
        for name in ("authTokenSecret", "apiKeySecret", "flowKeySecret")
    }
    assert secret_names == {"twilio-auth-token", "twilio-api-key-secret", "ahoy-flow-key"}
    vault = resource("vault")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert resource("site")["properties"]["keyVaultReferenceIdentity"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "identity", "operand_2": "id"},
        }
    }


def test_no_development_switch_and_nothing_flex_rejects() -> None:
    names = set(app_settings())
    assert not names & DEVELOPMENT_SWITCHES
    assert not names & FLEX_REJECTS


def test_flex_consumption_runs_the_python_ci_tests() -> None:
    site = resource("site")
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {
        "name": "python",
        "version": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    assert config["scaleAndConcurrency"]["triggers"]["http"]["perInstanceConcurrency"]
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert resource("plan")["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert site["properties"]["httpsOnly"] is True


def test_storage_takes_no_shared_key_and_the_identity_has_its_roles() -> None:
    storage = resource("storage")["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    granted = set()
    for spec in template("app.bicep")["resources"].values():
        if spec["type"] == "Microsoft.Authorization/roleAssignments" and "config" in spec:
            properties = spec["config"].get("properties") or {}
            principal = json.dumps(properties.get("principalId"))
            if '"identity"' in principal:
                role = properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
                granted.add(role)
    assert granted == set(ROLES)
    variables = template("app.bicep")["variables"]
    for variable, role_id in ROLES.items():
        assert variables[variable]["value"] == role_id


def test_easy_auth_lets_twilios_anonymous_webhooks_through() -> None:
    auth = resource("authSettings")
    assert auth["name"] == "authsettingsV2"
    validation = auth["properties"]["globalValidation"]
    assert validation == {
        "requireAuthentication": False,
        "unauthenticatedClientAction": "AllowAnonymous",
    }
    aad = auth["properties"]["identityProviders"]["azureActiveDirectory"]
    assert aad["registration"]["clientId"] == "entraClientId"


def test_outputs_are_the_urls_to_paste_into_twilio() -> None:
    """With the connection overrides Ahoy puts on the URLs it hands Twilio itself."""
    from api.core.urls import CONNECTION_OVERRIDES

    main = template("main.bicep")
    outputs = main["outputs"]
    assert main["variables"]["connectionOverrides"]["value"] == CONNECTION_OVERRIDES
    for name, path in (
        ("TWILIO_VOICE_URL", "/api/voice"),
        ("TWILIO_INCOMING_CALL_URL", "/api/incomingCall"),
        ("TWILIO_INCOMING_SMS_URL", "/api/incomingSms"),
    ):
        assert outputs[name]["value"] == "${app.outputs.baseUrl}" + path + "#${connectionOverrides}"
    assert outputs["TWILIO_VOICE_FALLBACK_URL"]["value"] == (
        "${app.outputs.baseUrl}/api/voiceFallback"
    )
    hook = (INFRA / "hooks" / "print-webhooks.sh").read_text()
    assert hook.count("${TWILIO_VOICE_FALLBACK_URL:-?}") == 2


def test_checkov_parses_every_file_and_every_failure_is_fixed_or_explained() -> None:
    command = [str(CHECKS / "checkov"), "-d", str(INFRA), "--framework", "bicep"]
    out = subprocess.run(
        [*command, "--skip-download", "-o", "json"],
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    summary = report["summary"]
    assert summary["parsing_errors"] == 0  # checkov exits 0 on a file it cannot parse
    assert summary["resource_count"] >= 20
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "").strip()
        assert len(reason) > 20, skipped["check_id"]
    scanned = {Path(c["file_path"]).name for c in report["results"]["passed_checks"]}
    assert "app.bicep" in scanned


FAKE_AZD = """#!/bin/sh
# azd env get-value / set, over a file of NAME=VALUE lines (what azd keeps in .azure/<env>/.env)
store="$AZD_STORE"
if [ "$1 $2" = "env get-value" ]; then
  line=$(grep "^$3=" "$store" || true)
  [ -n "$line" ] || { echo "ERROR: key '$3' not found" >&2; exit 1; }
  printf '%s\\n' "${line#*=}"
elif [ "$1 $2" = "env set" ]; then
  grep -v "^$3=" "$store" > "$store.tmp" || true
  printf '%s=%s\\n' "$3" "$4" >> "$store.tmp"
  mv "$store.tmp" "$store"
fi
"""


def run_flow_key_hook(tmp_path: Path, **env: str) -> dict[str, str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    azd = tmp_path / "bin" / "azd"
    azd.write_text(FAKE_AZD)
    azd.chmod(0o755)
    store = tmp_path / "env"
    store.touch()
    subprocess.run(
        ["/bin/sh", str(INFRA / "hooks" / "ensure-flow-key.sh")],
        env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "AZD_STORE": str(store), **env},
        check=True,
        capture_output=True,
    )
    return dict(line.split("=", 1) for line in store.read_text().splitlines())


def test_the_flow_key_is_made_once_per_environment_and_then_kept(tmp_path: Path) -> None:
    first = run_flow_key_hook(tmp_path)["AHOY_FLOW_KEY"]
    assert len(base64.b64decode(first, validate=True)) == 32
    assert Settings.from_environ({**deployed_environment(), "AHOY_FLOW_KEY": first})
    assert run_flow_key_hook(tmp_path)["AHOY_FLOW_KEY"] == first  # a redeploy keeps it


def test_a_flow_key_already_in_the_environment_is_kept(tmp_path: Path) -> None:
    given = KEY_VAULT_VALUES["flowKeySecret"]
    assert run_flow_key_hook(tmp_path, AHOY_FLOW_KEY=given) == {}


def test_the_runtimes_pool_is_as_wide_as_the_instances_http_concurrency() -> None:
    # Sync handlers on a pool narrower than perInstanceConcurrency would queue (bench/RESULTS.md:
    # p50 at 50 clients 3.0x the floor with the default pool here, 1.7x with 16 threads).
    concurrency = resource("site")["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    wanted = evaluate(concurrency["triggers"]["http"]["perInstanceConcurrency"])
    assert deployed_environment()["PYTHON_THREADPOOL_THREAD_COUNT"] == wanted
    assert int(wanted) >= 1  # the runtime refuses 0 and falls back to its default


# --- what Azure refuses or quietly undoes (each rule with its source) -----------------------

# siteConfig properties Flex Consumption refuses with ARM error 51021 (enforced region by region):
# the "Flex Consumption plan deprecations" table of Microsoft's app-settings reference
# (learn.microsoft.com/azure/azure-functions/functions-app-settings, that section).
FLEX_REJECTED_SITE_CONFIG = {
    "ftpsState",
    "alwaysOn",
    "linuxFxVersion",
    "windowsFxVersion",
    "use32BitWorkerProcess",
    "netFrameworkVersion",
    "javaVersion",
    "powerShellVersion",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "minimumElasticInstanceCount",
    "functionsRuntimeScaleMonitoringEnabled",
    "healthCheckPath",
    "scmType",
}


def test_the_site_sets_no_site_config_flex_consumption_refuses() -> None:
    site_config = resource("site")["properties"]["siteConfig"]
    assert set(site_config) & FLEX_REJECTED_SITE_CONFIG == set()
    assert set(site_config) == {"minTlsVersion", "http20Enabled"}


TOOLS_ON_EVERY_PLATFORM = ("sh", "grep", "head", "base64", "tr", "cat", "mv")


def test_the_hooks_need_no_python_and_run_as_sh_everywhere(tmp_path: Path) -> None:
    # azd runs `shell: sh` hooks with bash on Windows (Git for Windows), where python3 is often
    # missing: the hooks must need nothing beyond sh and the coreutils Git Bash ships.
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text())["hooks"]
    for name, hook in hooks.items():
        assert hook["shell"] == "sh", name
        assert "python" not in (ROOT / hook["run"]).read_text(), name
    bare = tmp_path / "bare"
    bare.mkdir()
    for tool in TOOLS_ON_EVERY_PLATFORM:
        (bare / tool).symlink_to(shutil.which(tool) or tool)
    key = run_flow_key_hook(tmp_path, PATH=f"{tmp_path / 'bin'}:{bare}")["AHOY_FLOW_KEY"]
    assert len(base64.b64decode(key, validate=True)) == 32


def test_the_post_provision_output_stays_on_screen_and_azd_honours_funcignore() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert config["hooks"]["postprovision"]["interactive"] is True  # azd hides it otherwise
    assert config["requiredVersions"]["azd"] == ">= 1.18.0"  # .funcignore honoured from 1.18.0


def test_the_vault_can_be_made_again_after_azd_down() -> None:
    protection = resource("vault")["properties"]["enablePurgeProtection"]
    operands = protection["operator"]["operands"]
    # ARM takes true or nothing for purge protection, never false
    assert (operands["condition"], operands["true_value"], operands["false_value"]) == (
        "keyVaultPurgeProtection",
        True,
        None,
    )
    main = template("main.bicep")["parameters"]
    assert main["keyVaultPurgeProtection"]["default"] is False  # so `azd down --purge` works
    assert main["keyVaultNameSuffix"]["default"] == ""
    name = template("app.bicep")["variables"]["vaultName"]["value"]
    operands = name["operator"]["operands"]
    assert operands["true_value"] == "kv-ahoy-${take(resourceToken, 15)}"  # unchanged when unset
    assert operands["false_value"].endswith("-${keyVaultNameSuffix}")


def readme_settings() -> dict[str, str]:
    """The README's settings table: name -> its 'required' column."""
    text = (ROOT / "README.md").read_text().split("## Settings", 1)[1].split("## HTTP contract")[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 3 and cells[0].startswith("`"):
            for name in re.findall(r"`([A-Za-z_]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


# Settings the README lists that the template rightly does not write, and why.
NOT_IN_TEMPLATE = {
    "AzureWebJobsStorage": "a connection string needs shared keys, which are off",
    "HTTP_PROXY": "the platform's network settings",
    "HTTPS_PROXY": "the platform's network settings",
    "NO_PROXY": "the platform's network settings",
    "REQUESTS_CA_BUNDLE": "the platform's network settings",
}


def test_the_template_owns_every_setting_an_operator_sets_in_azure() -> None:
    # ARM replaces a site's whole app-settings block on each deployment (Microsoft.Web/sites/
    # config 'appsettings'), so a setting set by hand in the portal is gone at the next
    # `azd provision`: each one the README offers is a template parameter instead.
    offered = {
        name
        for name, required in readme_settings().items()
        if required != "local only" and name not in NOT_IN_TEMPLATE
    }
    assert len(offered) > 30
    assert offered - set(app_settings()) == set()
    parameters_file = (INFRA / "main.parameters.json").read_text()
    for name, value in app_settings().items():
        if isinstance(value, str) and value in template("app.bicep")["parameters"]:
            main_default = template("main.bicep")["parameters"][value].get("default")
            if not isinstance(main_default, int):  # numbers: edit main.parameters.json
                assert f'"{value}"' in parameters_file, (name, value)


def test_storage_endpoints_come_from_the_account() -> None:
    # primaryEndpoints, never a public-cloud suffix (sovereign clouds have others).
    uri = app_settings()["AzureWebJobsStorage__tableServiceUri"]
    assert _accessor(uri) == "storage.properties.primaryEndpoints.table"
    settings = Settings.from_environ(deployed_environment())
    reported = RESOLVED["storage.properties.primaryEndpoints.table"]
    assert settings.storage.table_endpoint == reported.rstrip("/")


def test_easy_auth_accepts_tokens_of_the_mobile_apps_registration_only() -> None:
    validation = resource("authSettings")["properties"]["identityProviders"][
        "azureActiveDirectory"
    ]["validation"]
    allowed = validation["defaultAuthorizationPolicy"]["allowedApplications"]
    assert allowed == ["entraClientId"]
    registration = resource("authSettings")["properties"]["identityProviders"][
        "azureActiveDirectory"
    ]["registration"]
    assert registration["openIdIssuer"].endswith("/v2.0")
    # the issuer is v2.0, so the registration must issue v2 access tokens
    assert "api.requestedAccessTokenVersion=2" in (ROOT / "README.md").read_text()

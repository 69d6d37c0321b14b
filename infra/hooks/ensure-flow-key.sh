#!/bin/sh
# azd preprovision hook: make AHOY_FLOW_KEY (32 random bytes, base64) once per environment.
# Later runs keep it: a new key on every deploy would break calls in progress.
set -eu
valid() { printf '%s' "$1" | grep -Eq '^[A-Za-z0-9+/]{43}=$'; }

current=${AHOY_FLOW_KEY:-}
if ! valid "$current"; then
  current=$(azd env get-value AHOY_FLOW_KEY 2>/dev/null || true)
fi
if valid "$current"; then
  exit 0
fi
key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
azd env set AHOY_FLOW_KEY "$key"
echo "AHOY_FLOW_KEY: made a new key for this environment (provisioning puts it in Key Vault)."

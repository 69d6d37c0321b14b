#!/bin/sh
# azd preprovision hook: make AHOY_FLOW_KEY (32 random bytes, base64) once per environment.
# Later runs keep it: a new key on every deploy would break calls in progress.
# One script for every platform: azd runs `sh` hooks with sh on macOS and Linux and with bash
# (Git for Windows) on Windows. It needs only sh, grep, head, base64 and tr: no Python, which
# Windows machines often lack.
set -eu
valid() { printf '%s' "$1" | grep -Eq '^[A-Za-z0-9+/]{43}=$'; }

current=${AHOY_FLOW_KEY:-}
if ! valid "$current"; then
  current=$(azd env get-value AHOY_FLOW_KEY 2>/dev/null || true)
fi
if valid "$current"; then
  exit 0
fi
key=$(head -c 32 /dev/urandom | base64 | tr -d '\r\n')
valid "$key" || { echo "AHOY_FLOW_KEY: could not make a key (head, base64)" >&2; exit 1; }
azd env set AHOY_FLOW_KEY "$key"
echo "AHOY_FLOW_KEY: made a new key for this environment (provisioning puts it in Key Vault)."

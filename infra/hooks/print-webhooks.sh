#!/bin/sh
# azd postprovision hook: what to paste into Twilio's console (azd passes the outputs here).
set -eu
cat <<TEXT

Ahoy is provisioned: ${AHOY_BASE_URL:-?}
Paste into Twilio's console:
  TwiML App > Voice > Request URL (POST):          ${TWILIO_VOICE_URL:-?}
  TwiML App > Voice > Fallback URL (POST):         ${TWILIO_VOICE_FALLBACK_URL:-?}
  Phone number > A call comes in (Webhook, POST):  ${TWILIO_INCOMING_CALL_URL:-?}
  Phone number > Primary handler fails (POST):     ${TWILIO_VOICE_FALLBACK_URL:-?}
  Phone number > A message comes in (Webhook, POST): ${TWILIO_INCOMING_SMS_URL:-?}
Health: ${AHOY_HEALTH_URL:-?}
TEXT

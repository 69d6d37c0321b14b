// Ahoy on Azure: a resource group and everything in it (infra/app.bicep). Deployed by `azd up`.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names the resource group and tags every resource.')
param environmentName string

@minLength(1)
@description('Azure region for every resource (Flex Consumption must be offered there).')
param location string

@description('Object id of the user or service principal running azd: may deploy and rotate secrets.')
param principalId string = ''

@description('Twilio account SID (AC...).')
param twilioAccountSid string

@secure()
@description('Twilio auth token: stored in Key Vault only.')
param twilioAuthToken string

@secure()
@description('A second Twilio auth token accepted on webhooks while you rotate (Key Vault only); empty otherwise.')
param twilioAuthTokenSecondary string = ''

@secure()
@description('The secret of the Twilio SharedKey a Webhook Rule signs webhooks with (HMAC-SHA256); empty without one.')
param twilioWebhookSharedKey string = ''

@secure()
@description('A second SharedKey secret accepted while the key is rotated; empty otherwise.')
param twilioWebhookSharedKeySecondary string = ''

@description('Twilio API key SID (SK...), preferred for REST calls; empty to use the auth token.')
param twilioApiKeySid string = ''

@secure()
@description('Twilio API key secret: stored in Key Vault only; empty with no API key.')
param twilioApiKeySecret string = ''

@description('The Twilio number Ahoy calls and texts from (E.164).')
param twilioFromNumber string

@description('Messaging Service SID (MG...) for SMS; empty to send from the number.')
param twilioMessagingServiceSid string = ''

@description('TwiML App SID (AP...) for in-app calling; empty without the Voice SDK.')
param twilioTwimlAppSid string = ''

@secure()
@description('32 random bytes, base64: seals call flows. Made once per environment by the preprovision hook.')
param flowKey string

@description('Client id of the Entra app registration the mobile app signs in with.')
param entraClientId string

@description('Push credential SID (CR...) for incoming calls in the Voice SDK; empty for none.')
param twilioPushCredentialSid string = ''

@description('Push credential SIDs per platform: APNs VoIP production, APNs VoIP sandbox, FCM.')
param twilioPushCredentialSidIos string = ''
param twilioPushCredentialSidIosSandbox string = ''
param twilioPushCredentialSidAndroid string = ''

@description('Further numbers a forward flow may show as CallerId (comma-separated E.164).')
param twilioCallerIds string = ''

@description('The flow that answers /api/incomingCall, as a query string.')
param incomingCallFlow string = 'mode=voicemail&Message=Hello.+Please+leave+a+message+after+the+beep.'

@description('Auto-reply to inbound SMS; empty for none.')
param incomingSmsReply string = ''

@description('The answer to HELP and INFO (INCOMING_HELP_REPLY); empty: Twilio answers.')
param incomingHelpReply string = ''

@allowed(['', 'easyauth', 'jwt', 'key'])
@description('Who the caller is: App Service Authentication (easyauth), an OIDC JWT, or the function key; empty means easyauth.')
param callerAuth string = 'easyauth'

@description('Servers\' named keys: name:sha256hex entries, comma-separated (hashes, not keys).')
param callerKeys string = ''

@description('With callerAuth jwt: the token issuer, the audience Ahoy expects, the JWKS URL.')
param oidcIssuer string = ''
param oidcAudience string = ''
param oidcJwksUrl string = ''

@description('Prefix of Ahoy\'s table names.')
param tablePrefix string = 'ahoy'

@description('ISO region codes destinations may be in.')
param allowedCountries string = 'US,CA'

@description('Number types destinations may be.')
param allowedNumberTypes string = 'MOBILE,FIXED_LINE,FIXED_LINE_OR_MOBILE'

@description('Hosts of your own TwiML servers that makeCall url may name (comma-separated).')
param allowedTwimlHosts string = ''

@minValue(1)
param rateLimitPerMinute int = 5

@minValue(1)
param dailyQuota int = 50

@minValue(1)
param destinationLimitPerHour int = 5

@minValue(1)
param globalDailyCap int = 1000

@minValue(60)
@maxValue(86400)
param flowTtlSeconds int = 900

@minValue(60)
@maxValue(86400)
param tokenTtlSeconds int = 3600

@minValue(10)
@maxValue(14400)
param callTimeLimitSeconds int = 600

@minValue(1)
@maxValue(720)
param idempotencyTtlHours int = 24

@minValue(1)
@maxValue(3650)
param retentionDays int = 90

@description('Days a user who wrote to a number receives its replies (CONVERSATION_DAYS).')
@minValue(1)
@maxValue(365)
param conversationDays int = 30

@description('Days an opt-out is kept (OPT_OUT_KEEP_DAYS); 0: until the recipient opts back in.')
@minValue(0) // or 365 and more: the app refuses 1 to 364
@maxValue(36500)
param optOutKeepDays int = 0

// Key Vault keeps a deleted vault's name for its retention period. Purge protection forbids
// purging it early, so `azd down` followed by `azd up` fails for 90 days: off by default (then
// `azd down --purge` frees the name); when on, change keyVaultNameSuffix to create anew.
@description('Purge protection on the Key Vault (irreversible once on).')
param keyVaultPurgeProtection bool = false

@maxLength(6)
@description('Changes the Key Vault\'s name, to create the environment again while a deleted vault keeps the old one.')
param keyVaultNameSuffix string = ''

@minValue(1)
@maxValue(1000)
@description('Concurrent HTTP requests per instance before Flex Consumption adds one.')
param perInstanceConcurrency int = 16

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

var tags = { 'azd-env-name': environmentName }

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module app 'app.bicep' = {
  name: 'ahoy-app'
  scope: group
  params: {
    location: location
    tags: tags
    resourceToken: toLower(uniqueString(subscription().id, environmentName, location))
    principalId: principalId
    twilioAccountSid: twilioAccountSid
    twilioAuthToken: twilioAuthToken
    twilioAuthTokenSecondary: twilioAuthTokenSecondary
    twilioWebhookSharedKey: twilioWebhookSharedKey
    twilioWebhookSharedKeySecondary: twilioWebhookSharedKeySecondary
    twilioApiKeySid: twilioApiKeySid
    twilioApiKeySecret: twilioApiKeySecret
    twilioFromNumber: twilioFromNumber
    twilioMessagingServiceSid: twilioMessagingServiceSid
    twilioTwimlAppSid: twilioTwimlAppSid
    flowKey: flowKey
    entraClientId: entraClientId
    twilioPushCredentialSid: twilioPushCredentialSid
    twilioPushCredentialSidIos: twilioPushCredentialSidIos
    twilioPushCredentialSidIosSandbox: twilioPushCredentialSidIosSandbox
    twilioPushCredentialSidAndroid: twilioPushCredentialSidAndroid
    twilioCallerIds: twilioCallerIds
    incomingCallFlow: incomingCallFlow
    incomingSmsReply: incomingSmsReply
    incomingHelpReply: incomingHelpReply
    optOutKeepDays: optOutKeepDays
    callerAuth: callerAuth
    callerKeys: callerKeys
    oidcIssuer: oidcIssuer
    oidcAudience: oidcAudience
    oidcJwksUrl: oidcJwksUrl
    tablePrefix: tablePrefix
    flowTtlSeconds: flowTtlSeconds
    tokenTtlSeconds: tokenTtlSeconds
    callTimeLimitSeconds: callTimeLimitSeconds
    idempotencyTtlHours: idempotencyTtlHours
    retentionDays: retentionDays
    conversationDays: conversationDays
    keyVaultPurgeProtection: keyVaultPurgeProtection
    keyVaultNameSuffix: keyVaultNameSuffix
    allowedCountries: allowedCountries
    allowedNumberTypes: allowedNumberTypes
    allowedTwimlHosts: allowedTwimlHosts
    rateLimitPerMinute: rateLimitPerMinute
    dailyQuota: dailyQuota
    destinationLimitPerHour: destinationLimitPerHour
    globalDailyCap: globalDailyCap
    perInstanceConcurrency: perInstanceConcurrency
    maximumInstanceCount: maximumInstanceCount
  }
}

output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output AHOY_BASE_URL string = app.outputs.baseUrl
output AHOY_HEALTH_URL string = '${app.outputs.baseUrl}/api/health'
// Twilio's connection overrides (a URL fragment Twilio reads and never sends), as Ahoy puts
// them on every URL it hands Twilio (api/core/urls.py: CONNECTION_OVERRIDES).
var connectionOverrides = 'ct=3000&rt=6000&tt=14000&rc=2&rp=ct,rt,5xx'
output TWILIO_VOICE_URL string = '${app.outputs.baseUrl}/api/voice#${connectionOverrides}'
output TWILIO_INCOMING_CALL_URL string = '${app.outputs.baseUrl}/api/incomingCall#${connectionOverrides}'
output TWILIO_INCOMING_SMS_URL string = '${app.outputs.baseUrl}/api/incomingSms#${connectionOverrides}'
output TWILIO_VOICE_FALLBACK_URL string = '${app.outputs.baseUrl}/api/voiceFallback'
output AZURE_KEY_VAULT_NAME string = app.outputs.keyVaultName

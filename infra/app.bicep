// Everything Ahoy runs on, in one resource group: a Flex Consumption Function App with a
// user-assigned identity, its storage (shared keys off), Key Vault for the secrets,
// Application Insights (local auth off) and App Service Authentication (Entra ID).
// Plain resources only (no registry modules), in the Bicep subset checkov parses.

param location string
param tags object
param resourceToken string
param principalId string
param twilioAccountSid string
@secure()
param twilioAuthToken string
@secure()
param twilioAuthTokenSecondary string
@secure()
param twilioWebhookSharedKey string
@secure()
param twilioWebhookSharedKeySecondary string
param twilioApiKeySid string
@secure()
param twilioApiKeySecret string
param twilioFromNumber string
param twilioMessagingServiceSid string
param twilioTwimlAppSid string
@secure()
param flowKey string
param entraClientId string
param twilioPushCredentialSid string
param twilioPushCredentialSidIos string
param twilioPushCredentialSidIosSandbox string
param twilioPushCredentialSidAndroid string
param twilioCallerIds string
param incomingCallFlow string
param incomingSmsReply string
param incomingHelpReply string
param optOutKeepDays int
param callerAuth string
param callerKeys string
param oidcIssuer string
param oidcAudience string
param oidcJwksUrl string
param tablePrefix string
param flowTtlSeconds int
param tokenTtlSeconds int
param callTimeLimitSeconds int
param idempotencyTtlHours int
param retentionDays int
param conversationDays int
param keyVaultPurgeProtection bool
param keyVaultNameSuffix string
param allowedCountries string
param allowedNumberTypes string
param allowedTwimlHosts string
param rateLimitPerMinute int
param dailyQuota int
param destinationLimitPerHour int
param globalDailyCap int
param perInstanceConcurrency int
param maximumInstanceCount int

var functionAppName = 'func-ahoy-${resourceToken}'
var deploymentContainer = 'app-package-${take(resourceToken, 10)}'
var hasApiKey = !empty(twilioApiKeySecret)
var hasSecondaryToken = !empty(twilioAuthTokenSecondary)
var hasSharedKey = !empty(twilioWebhookSharedKey)
var hasSecondarySharedKey = !empty(twilioWebhookSharedKeySecondary)
// A vault's name is taken while it sits deleted (soft delete); a suffix makes a new one.
var vaultName = empty(keyVaultNameSuffix) ? 'kv-ahoy-${take(resourceToken, 15)}' : 'kv-ahoy-${take(resourceToken, 9)}-${keyVaultNameSuffix}'
// Built-in role definition ids.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-ahoy-${resourceToken}'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-ahoy-${resourceToken}'
  location: location
  tags: tags
  properties: {
    retentionInDays: 30
    sku: {
      name: 'PerGB2018'
    }
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-ahoy-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stahoy${take(resourceToken, 17)}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    // checkov:skip=CKV_AZURE_35: Flex Consumption without a VNet reaches its storage over the public endpoint; shared keys are off and every request needs an Entra token.
    // checkov:skip=CKV_AZURE_59: as above: public network access with identity-only authentication.
    // checkov:skip=CKV_AZURE_206: LRS keeps a small app cheap; choose ZRS or GRS (skuName) where an outage of one datacenter must not lose the ledger.
    // checkov:skip=CKV_AZURE_43: false positive: the name is 'stahoy' and 17 characters of uniqueString(), 23 lowercase letters and digits; checkov cannot evaluate the interpolation.
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource packages 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
  properties: {
    publicAccess: 'None'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  tags: tags
  properties: {
    // checkov:skip=CKV_AZURE_109: Flex Consumption resolves Key Vault references only through the vault's public endpoint; access is by RBAC and Entra tokens only.
    // checkov:skip=CKV_AZURE_189: as above: the public endpoint stays on, with RBAC only.
    // checkov:skip=CKV_AZURE_110: purge protection is the keyVaultPurgeProtection parameter: once on, `azd down` locks the vault's name for 90 days (README); soft delete is always on.
    // checkov:skip=CKV_AZURE_42: recoverable through soft delete (90 days); purge protection as above.
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // The property takes true or nothing: ARM refuses false (Microsoft.KeyVault/vaults reference,
    // enablePurgeProtection: "does not accept false as its value").
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource authTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'twilio-auth-token'
  properties: {
    // checkov:skip=CKV_AZURE_41: Twilio's auth token has no expiry of its own; rotation is documented in the README.
    value: twilioAuthToken
    contentType: 'text/plain'
  }
}

resource apiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasApiKey) {
  parent: vault
  name: 'twilio-api-key-secret'
  properties: {
    // checkov:skip=CKV_AZURE_41: a Twilio API key has no expiry of its own; rotation is documented in the README.
    // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov does not read the properties of a conditional resource.
    value: twilioApiKeySecret
    contentType: 'text/plain'
  }
}

resource secondaryTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasSecondaryToken) {
  parent: vault
  name: 'twilio-auth-token-secondary'
  properties: {
    // checkov:skip=CKV_AZURE_41: set only while the auth token is rotated (README).
    // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov does not read the properties of a conditional resource.
    value: twilioAuthTokenSecondary
    contentType: 'text/plain'
  }
}

resource sharedKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasSharedKey) {
  parent: vault
  name: 'twilio-webhook-shared-key'
  properties: {
    // checkov:skip=CKV_AZURE_41: a Twilio SharedKey has no expiry of its own; rotation is documented in the README.
    // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov does not read the properties of a conditional resource.
    value: twilioWebhookSharedKey
    contentType: 'text/plain'
  }
}

resource secondarySharedKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasSecondarySharedKey) {
  parent: vault
  name: 'twilio-webhook-shared-key-secondary'
  properties: {
    // checkov:skip=CKV_AZURE_41: set only while the SharedKey is rotated (README).
    // checkov:skip=CKV_AZURE_114: false positive: contentType is set below; checkov does not read the properties of a conditional resource.
    value: twilioWebhookSharedKeySecondary
    contentType: 'text/plain'
  }
}

resource flowKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'ahoy-flow-key'
  properties: {
    // checkov:skip=CKV_AZURE_41: sealed flows live minutes; the key is rotated by setting a new one (README).
    value: flowKey
    contentType: 'text/plain'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-ahoy-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // checkov:skip=CKV_AZURE_225: Flex Consumption (FC1) scales out by itself; zone redundancy is not set on this plan.
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    // checkov:skip=CKV_AZURE_17: the mobile app and Twilio cannot present client certificates; callers are checked by Easy Auth and webhooks by Twilio's signature.
    // checkov:skip=CKV_AZURE_222: public by design: the mobile app and Twilio's webhooks reach it over the internet.
    // checkov:skip=CKV_AZURE_212: Flex Consumption adds instances on demand; "always ready" instances cost money and are a choice for the operator.
    // checkov:skip=CKV_AZURE_213: App Service health check does not apply to Flex Consumption; GET /api/health is there for monitors.
    // checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP deployment and refuses siteConfig.ftpsState (ARM error 51021).
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    // Only properties Flex Consumption supports: it refuses the others with ARM error 51021
    // (tests/test_infra.py holds the list, from the "Flex Consumption plan deprecations" table).
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
        triggers: {
          http: {
            perInstanceConcurrency: perInstanceConcurrency
          }
        }
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // checkov:skip=CKV_AZURE_13: false positive: checkov reads every sites/config as site config (authsettingsV2 below turns authentication on).
    // checkov:skip=CKV_AZURE_63: false positive: not site config (see CKV_AZURE_13); HTTP logs go to Application Insights.
    // checkov:skip=CKV_AZURE_65: false positive: not site config (see CKV_AZURE_13).
    // checkov:skip=CKV_AZURE_66: false positive: not site config (see CKV_AZURE_13).
    // checkov:skip=CKV_AZURE_80: false positive: not site config; the app runs Python, not .NET.
    // checkov:skip=CKV_AZURE_88: false positive: not site config; Flex Consumption uses no Azure Files share.
    // checkov:skip=CKV_AZURE_222: false positive: not site config (see the site's own skip).
    // Tables through the identity: the storage account takes no shared key.
    AzureWebJobsStorage__accountName: storage.name
    // Ahoy's tables at the endpoint the account reports, in whatever cloud it lives.
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identity.properties.clientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
    PUBLIC_BASE_URL: 'https://${site.properties.defaultHostName}'
    CALLER_AUTH: callerAuth
    CALLER_KEYS: callerKeys
    OIDC_ISSUER: oidcIssuer
    OIDC_AUDIENCE: oidcAudience
    OIDC_JWKS_URL: oidcJwksUrl
    TWILIO_ACCOUNT_SID: twilioAccountSid
    TWILIO_AUTH_TOKEN: '@Microsoft.KeyVault(SecretUri=${authTokenSecret.properties.secretUri})'
    TWILIO_AUTH_TOKEN_SECONDARY: hasSecondaryToken ? '@Microsoft.KeyVault(SecretUri=${secondaryTokenSecret.properties.secretUri})' : ''
    TWILIO_WEBHOOK_SHARED_KEY: hasSharedKey ? '@Microsoft.KeyVault(SecretUri=${sharedKeySecret.properties.secretUri})' : ''
    TWILIO_WEBHOOK_SHARED_KEY_SECONDARY: hasSecondarySharedKey ? '@Microsoft.KeyVault(SecretUri=${secondarySharedKeySecret.properties.secretUri})' : ''
    TWILIO_API_KEY_SID: twilioApiKeySid
    TWILIO_API_KEY_SECRET: hasApiKey ? '@Microsoft.KeyVault(SecretUri=${apiKeySecret.properties.secretUri})' : ''
    TWILIO_FROM_NUMBER: twilioFromNumber
    TWILIO_MESSAGING_SERVICE_SID: twilioMessagingServiceSid
    TWILIO_TWIML_APP_SID: twilioTwimlAppSid
    AHOY_FLOW_KEY: '@Microsoft.KeyVault(SecretUri=${flowKeySecret.properties.secretUri})'
    ALLOWED_COUNTRIES: allowedCountries
    ALLOWED_NUMBER_TYPES: allowedNumberTypes
    ALLOWED_TWIML_HOSTS: allowedTwimlHosts
    RATE_LIMIT_PER_MINUTE: string(rateLimitPerMinute)
    DAILY_QUOTA: string(dailyQuota)
    DESTINATION_LIMIT_PER_HOUR: string(destinationLimitPerHour)
    GLOBAL_DAILY_CAP: string(globalDailyCap)
    TWILIO_PUSH_CREDENTIAL_SID: twilioPushCredentialSid
    TWILIO_PUSH_CREDENTIAL_SID_IOS: twilioPushCredentialSidIos
    TWILIO_PUSH_CREDENTIAL_SID_IOS_SANDBOX: twilioPushCredentialSidIosSandbox
    TWILIO_PUSH_CREDENTIAL_SID_ANDROID: twilioPushCredentialSidAndroid
    TWILIO_CALLER_IDS: twilioCallerIds
    INCOMING_CALL_FLOW: incomingCallFlow
    INCOMING_SMS_REPLY: incomingSmsReply
    INCOMING_HELP_REPLY: incomingHelpReply
    OPT_OUT_KEEP_DAYS: string(optOutKeepDays)
    AHOY_TABLE_PREFIX: tablePrefix
    FLOW_TTL_SECONDS: string(flowTtlSeconds)
    TOKEN_TTL_SECONDS: string(tokenTtlSeconds)
    CALL_TIME_LIMIT_SECONDS: string(callTimeLimitSeconds)
    IDEMPOTENCY_TTL_HOURS: string(idempotencyTtlHours)
    RETENTION_DAYS: string(retentionDays)
    CONVERSATION_DAYS: string(conversationDays)
    // Ahoy's send handlers are sync and wait on Twilio and storage: the runtime's default pool
    // (min(32, cores + 4) threads) would queue an instance's concurrent requests behind a few
    // threads, so the pool is as wide as the HTTP concurrency Flex gives the instance.
    PYTHON_THREADPOOL_THREAD_COUNT: string(perInstanceConcurrency)
  }
  dependsOn: [
    identityReadsSecrets
    identityOwnsBlobs
    identityWritesTables
  ]
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    // checkov:skip=CKV_AZURE_13: false positive: checkov reads every sites/config as site config (authsettingsV2 below turns authentication on).
    // checkov:skip=CKV_AZURE_63: false positive: not site config (see CKV_AZURE_13); HTTP logs go to Application Insights.
    // checkov:skip=CKV_AZURE_65: false positive: not site config (see CKV_AZURE_13).
    // checkov:skip=CKV_AZURE_66: false positive: not site config (see CKV_AZURE_13).
    // checkov:skip=CKV_AZURE_80: false positive: not site config; the app runs Python, not .NET.
    // checkov:skip=CKV_AZURE_88: false positive: not site config; Flex Consumption uses no Azure Files share.
    // checkov:skip=CKV_AZURE_222: false positive: not site config (see the site's own skip).
    platform: {
      enabled: true
    }
    // Twilio's webhooks are anonymous (Ahoy checks their signature); Ahoy checks the signed-in
    // principal itself on the app's routes, so unauthenticated requests pass through.
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            entraClientId
            'api://${entraClientId}'
          ]
          // Tokens issued to the mobile app's registration only, not to any app in the tenant
          // (authsettingsV2: defaultAuthorizationPolicy.allowedApplications, the appid/azp claim).
          defaultAuthorizationPolicy: {
            allowedApplications: [
              entraClientId
            ]
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

resource identityOwnsBlobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource identityWritesTables 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource identityPublishesMetrics 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource identityReadsSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The one running azd may upload the package and set secrets (rotation).
resource deployerOwnsBlobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
  }
}

resource deployerManagesSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(vault.id, principalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: principalId
  }
}

output functionAppName string = site.name
output baseUrl string = 'https://${site.properties.defaultHostName}'
output keyVaultName string = vault.name

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { contentSafetyBlocklists } from '../../src/config.ts'
import { createAzureModerator } from '../../src/moderation/azure-content-safety.ts'
import type { ImageModerationProvider } from '../../src/moderation/azure-content-safety.ts'
import { createLocalModerator } from '../../src/moderation/local-moderator.ts'
import { loadTermsFile } from '../../src/moderation/terms-file.ts'
import type { ModerationProvider } from '../../src/moderation/types.ts'
import { createIdentityCredential, lazyCredential } from '../../src/vault/azure-credential.ts'

declare module 'fastify' {
  interface FastifyInstance {
    moderation: ModerationProvider
    /** Checks image-to-image input images; null unless a provider that can (azure, with images enabled) is on. */
    imageModeration: ImageModerationProvider | null
  }
}

/**
 * The moderation provider. `local` (term lists, optionally from MODERATION_TERMS_FILE) is the default; `azure` is
 * Azure AI Content Safety, with the local lists run first unless MODERATION_LOCAL_FIRST is false.
 */
export default fp(async function moderation (fastify: FastifyInstance, opts: AppOptions) {
  const { config, overrides = {} } = opts
  let provider = overrides.moderation
  let images: ImageModerationProvider | null = null
  if (!provider) {
    const fromFile = config.MODERATION_TERMS_FILE ? await loadTermsFile(config.MODERATION_TERMS_FILE) : {}
    const local = createLocalModerator(fromFile)
    if (config.MODERATION_PROVIDER === 'azure') {
      const azure = createAzureModerator({
        endpoint: config.AZURE_CONTENT_SAFETY_ENDPOINT!,
        key: config.AZURE_CONTENT_SAFETY_KEY,
        credential: overrides.azure?.credential ?? lazyCredential(() => createIdentityCredential({ kind: config.AZURE_CREDENTIAL, clientId: config.AZURE_CLIENT_ID })),
        thresholds: {
          Hate: config.AZURE_CONTENT_SAFETY_THRESHOLD_HATE,
          SelfHarm: config.AZURE_CONTENT_SAFETY_THRESHOLD_SELF_HARM,
          Sexual: config.AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL,
          Violence: config.AZURE_CONTENT_SAFETY_THRESHOLD_VIOLENCE
        },
        blocklists: contentSafetyBlocklists(config),
        timeoutMs: config.AZURE_CONTENT_SAFETY_TIMEOUT_MS,
        failureMode: config.MODERATION_FAILURE_MODE,
        ...(config.MODERATION_LOCAL_FIRST ? { precheck: local } : {}),
        clientOptions: { ...overrides.azure?.clientOptions },
        log: fastify.log.child({ component: 'moderation' })
      })
      provider = azure
      if (config.AZURE_CONTENT_SAFETY_IMAGES) images = azure
    } else {
      provider = local
    }
  }
  fastify.decorate('moderation', fastify.metrics.countModeration(provider))
  fastify.decorate('imageModeration', images)
}, { name: 'moderation', dependencies: ['metrics'] })

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createLocalModerator } from '../../src/moderation/local-moderator.ts'
import { loadTermsFile } from '../../src/moderation/terms-file.ts'
import type { ModerationProvider } from '../../src/moderation/types.ts'

declare module 'fastify' {
  interface FastifyInstance {
    moderation: ModerationProvider
  }
}

/** The prompt moderation provider. `local` (term lists, optionally from MODERATION_TERMS_FILE) is the default. */
export default fp(async function moderation (fastify: FastifyInstance, opts: AppOptions) {
  const { config, overrides = {} } = opts
  let provider = overrides.moderation
  if (!provider) {
    const fromFile = config.MODERATION_TERMS_FILE ? await loadTermsFile(config.MODERATION_TERMS_FILE) : {}
    provider = createLocalModerator(fromFile)
  }
  fastify.decorate('moderation', provider)
}, { name: 'moderation' })

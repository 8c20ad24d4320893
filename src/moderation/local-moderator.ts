import { DEFAULT_ALLOW_TERMS, DEFAULT_MINOR_TERMS, DEFAULT_MODERATION_TERMS } from './default-terms.ts'
import { compileAllowTerms, compileTerms, matchableText } from './term-matcher.ts'
import { MODERATION_CATEGORIES } from './types.ts'
import type { ModerationCategory, ModerationProvider, ModerationVerdict } from './types.ts'

/**
 * Content safety without a network call: term lists per category, matched after folding away
 * the usual disguises. Coarse by nature; a hosted classifier can sit behind the same interface.
 */

export interface LocalModeratorOptions {
  /** Term lists by category. A listed category replaces its default list (or extends it, see below); `[]` disables it. */
  terms?: Partial<Record<ModerationCategory, string[]>>
  /** Add `terms` and `allowTerms` to the defaults instead of replacing them. Default false. */
  extendDefaults?: boolean
  /** Phrases skipped before matching ("moby dick"); replaces DEFAULT_ALLOW_TERMS unless `extendDefaults`. */
  allowTerms?: string[]
}

export const LOCAL_PROVIDER_NAME = 'local'

export function createLocalModerator (opts: LocalModeratorOptions = {}): ModerationProvider {
  const extend = opts.extendDefaults === true
  for (const category of Object.keys(opts.terms ?? {})) {
    if (!(MODERATION_CATEGORIES as readonly string[]).includes(category)) {
      throw new TypeError(`Unknown moderation category "${category}": expected one of ${MODERATION_CATEGORIES.join(', ')}`)
    }
  }
  const matchers: Array<[ModerationCategory, RegExp]> = []
  for (const category of MODERATION_CATEGORIES) {
    const configured = opts.terms?.[category]
    const defaults = DEFAULT_MODERATION_TERMS[category]
    const list = configured === undefined ? defaults : extend ? [...defaults, ...configured] : configured
    const matcher = compileTerms(list)
    if (matcher !== undefined) matchers.push([category, matcher])
  }
  const allowList = opts.allowTerms === undefined
    ? DEFAULT_ALLOW_TERMS
    : extend ? [...DEFAULT_ALLOW_TERMS, ...opts.allowTerms] : opts.allowTerms
  const allow = compileAllowTerms(allowList)
  const minors = compileTerms(DEFAULT_MINOR_TERMS)

  function verdictOf (text: string): ModerationVerdict {
    const matchable = matchableText(text, allow)
    const found = new Set<ModerationCategory>()
    for (const [category, matcher] of matchers) {
      if (matcher.test(matchable)) found.add(category)
    }
    if (found.has('sexual') && minors?.test(matchable) === true) found.add('illegal')
    const categories = MODERATION_CATEGORIES.filter((category) => found.has(category))
    return { allowed: categories.length === 0, categories, provider: LOCAL_PROVIDER_NAME }
  }

  return {
    name: LOCAL_PROVIDER_NAME,
    async checkText (text, { signal } = {}) {
      signal?.throwIfAborted()
      return verdictOf(text)
    }
  }
}

import { readFile } from 'node:fs/promises'
import { MODERATION_CATEGORIES } from './types.ts'
import type { ModerationCategory } from './types.ts'
import type { LocalModeratorOptions } from './local-moderator.ts'

/**
 * Reads operator-maintained term lists from a JSON file:
 *
 * ```json
 * { "extendDefaults": true, "terms": { "violence": ["chainsaw massacre"] }, "allowTerms": ["moby dick"] }
 * ```
 *
 * Every member is optional. A malformed file throws an Error naming the file and the member, so a
 * bad setting stops the process at boot instead of silently weakening moderation.
 */
export async function loadTermsFile (path: string): Promise<LocalModeratorOptions> {
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new Error(`Moderation terms file ${path}: ${(err as Error).message}`, { cause: err })
  }
  const fail = (member: string, problem: string): never => {
    throw new Error(`Moderation terms file ${path}: ${member} ${problem}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('the document', 'must be an object')
  const doc = parsed as Record<string, unknown>
  for (const key of Object.keys(doc)) {
    if (!['terms', 'allowTerms', 'extendDefaults'].includes(key)) fail(key, 'is not a known member (terms, allowTerms, extendDefaults)')
  }

  const stringList = (member: string, value: unknown): string[] => {
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'string' && item.trim() !== '')) {
      return fail(member, 'must be an array of non-empty strings')
    }
    return value as string[]
  }

  const options: LocalModeratorOptions = {}
  if (doc.extendDefaults !== undefined) {
    if (typeof doc.extendDefaults !== 'boolean') fail('extendDefaults', 'must be a boolean')
    options.extendDefaults = doc.extendDefaults as boolean
  }
  if (doc.allowTerms !== undefined) options.allowTerms = stringList('allowTerms', doc.allowTerms)
  if (doc.terms !== undefined) {
    if (typeof doc.terms !== 'object' || doc.terms === null || Array.isArray(doc.terms)) fail('terms', 'must be an object')
    const terms: Partial<Record<ModerationCategory, string[]>> = {}
    for (const [category, list] of Object.entries(doc.terms as Record<string, unknown>)) {
      if (!(MODERATION_CATEGORIES as readonly string[]).includes(category)) {
        fail(`terms.${category}`, `is not a category (${MODERATION_CATEGORIES.join(', ')})`)
      }
      terms[category as ModerationCategory] = stringList(`terms.${category}`, list)
    }
    options.terms = terms
  }
  return options
}

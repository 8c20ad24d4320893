/**
 * The contract every content-safety provider meets (the local term matcher, a hosted service
 * later), so routes can moderate prompts without knowing which provider answers.
 */

export const MODERATION_CATEGORIES = ['sexual', 'violence', 'hate', 'illegal', 'self_harm'] as const
export type ModerationCategory = typeof MODERATION_CATEGORIES[number]

export interface ModerationVerdict {
  allowed: boolean
  /** Categories found, in MODERATION_CATEGORIES order. Never the matched text, so a verdict is safe to log. */
  categories: ModerationCategory[]
  /** The provider's `name`. */
  provider: string
}

export interface ModerationProvider {
  readonly name: string
  checkText (text: string, opts?: { signal?: AbortSignal }): Promise<ModerationVerdict>
}

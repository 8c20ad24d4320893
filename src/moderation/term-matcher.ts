import { readingsOf, termWords } from './normalise.ts'

/**
 * Term lists compiled into one regular expression each. Matching runs over a "matchable" text:
 * the words of every reading joined by spaces, one reading per line, followed by one line per
 * spelled-out word prefixed with a tab.
 *
 * - A term matches whole words only (Scunthorpe, Essex and therapist pass).
 * - A letter repeated in the text still matches ("nuuuude"), but the term's own doubled letters
 *   are required ("boob" does not match "bob").
 * - A trailing "s"/"es" is accepted; a term ending in "*" matches as a word prefix ("masturbat*").
 * - The words of a phrase may be written together ("selfharm" for "self harm").
 * - Inside a spelled-out word the term may appear anywhere ("i a m n u d e").
 */

const WORD_START = '(?<![^ \\n])'
const WORD_END = '(?![^ \\n])'
// Marks the lines that hold spelled-out words.
const SPELLED_MARK = '\t'

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}

function wordPattern (word: string): string {
  let pattern = ''
  for (const run of word.matchAll(/(.)\1*/gsu)) {
    const count = [...run[0]].length
    pattern += escapeRegExp(run[1] ?? '') + (count === 1 ? '+' : `{${count},}`)
  }
  return pattern
}

/** The regex source of one term; throws when the term has no letters or digits. */
export function termPattern (term: string): string {
  const trimmed = term.trim()
  const prefix = trimmed.endsWith('*')
  const words = termWords(prefix ? trimmed.slice(0, -1) : trimmed)
  if (words.length === 0) throw new TypeError(`Moderation term "${term}" has no letters or digits`)
  return words.map(wordPattern).join(' ?') + (prefix ? '[\\p{L}\\p{N}]*' : '(?:e?s)?')
}

function alternation (terms: readonly string[]): string {
  // Longest first, so a phrase wins over a word it starts with when both are listed.
  const patterns = [...new Set(terms.map(termPattern))].sort((a, b) => b.length - a.length)
  return `(?:${patterns.join('|')})`
}

/** A matcher for a list of terms, or undefined when the list is empty. */
export function compileTerms (terms: readonly string[]): RegExp | undefined {
  if (terms.length === 0) return undefined
  const any = alternation(terms)
  return new RegExp(`${WORD_START}${any}${WORD_END}|\\t[^\\n]*?${any}`, 'u')
}

/** A replacer that blanks allowed phrases out of matchable text, or undefined when there are none. */
export function compileAllowTerms (terms: readonly string[]): RegExp | undefined {
  if (terms.length === 0) return undefined
  return new RegExp(`${WORD_START}${alternation(terms)}${WORD_END}`, 'gu')
}

/** The text that compiled matchers run over (see the module comment). */
export function matchableText (text: string, allow?: RegExp): string {
  const lines: string[] = []
  const spelled: string[] = []
  for (const reading of readingsOf(text)) {
    const line = reading.words.join(' ')
    // A newline, not a space, so no phrase can match across the removed words.
    lines.push(allow === undefined ? line : line.replace(allow, '\n'))
    for (const word of reading.spelled) spelled.push(SPELLED_MARK + word)
  }
  return [...lines, ...spelled].join('\n')
}

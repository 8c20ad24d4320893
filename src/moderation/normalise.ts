/**
 * Folding text so that disguised words look like the plain ones: Unicode compatibility forms,
 * diacritics, invisible characters, look-alike letters from other scripts, leetspeak, and
 * words spelled out one character at a time ("n.u.d.e", "N U D E").
 */

const CONTROLS = /\p{Cc}/gu
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/gu
const MARKS = /\p{M}/gu

// Letters that render like Latin ones, plus Latin letters that NFD does not decompose.
const LOOKALIKES: Record<string, string> = {
  // Cyrillic capitals, then small letters
  А: 'A', В: 'B', Е: 'E', Ѕ: 'S', І: 'I', Ј: 'J', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', Х: 'X', У: 'Y', Ү: 'Y', Ӏ: 'I',
  а: 'a', в: 'b', е: 'e', ѕ: 's', і: 'i', ј: 'j', к: 'k', м: 'm', н: 'h', о: 'o', р: 'p', с: 'c', т: 't', х: 'x', у: 'y', ү: 'y', ԁ: 'd', һ: 'h', ԛ: 'q', ԝ: 'w', ӏ: 'l',
  // Greek capitals, then small letters
  Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ο: 'O', Ρ: 'P', Τ: 'T', Υ: 'Y', Χ: 'X',
  α: 'a', β: 'b', γ: 'y', ε: 'e', ι: 'i', κ: 'k', ν: 'v', ο: 'o', ρ: 'p', τ: 't', υ: 'u', χ: 'x', ω: 'w',
  // Latin letters without a decomposition
  ø: 'o', Ø: 'O', ł: 'l', Ł: 'L', đ: 'd', Đ: 'D', ħ: 'h', ŧ: 't', ı: 'i', ȷ: 'j', ß: 'ss', æ: 'ae', Æ: 'AE', œ: 'oe', Œ: 'OE'
}
const LOOKALIKE_PATTERN = new RegExp(`[${Object.keys(LOOKALIKES).join('')}]`, 'gu')

// Characters that stand for a letter. "1", "|", "!" and a capital "I" may mean i or l; those are
// resolved by matching both readings (see `matchableText`).
const LEET: Record<string, string> = { 0: 'o', 3: 'e', 4: 'a', 5: 's', 7: 't', 8: 'b', 9: 'g', '@': 'a', $: 's', '€': 'e' }
const LEET_PATTERN = /[0345789@$€]/g
const EITHER_I_OR_L = '\u0001'
// "!" and "|" are letters only inside a word ("n!pple"), punctuation elsewhere ("nude!").
const INNER_BANG = /(?<=[\p{L}\p{N}@$])[!|]+(?=[\p{L}\p{N}@$])/gu

const SEPARATORS = /[^\p{L}\p{N}]+/u

function fold (text: string): string {
  return text
    .replace(CONTROLS, ' ')
    .normalize('NFKC')
    .replace(INVISIBLE, '')
    .normalize('NFD')
    .replace(MARKS, '')
    .replace(LOOKALIKE_PATTERN, (ch) => LOOKALIKES[ch] ?? ch)
    .replace(INNER_BANG, (bangs) => EITHER_I_OR_L.repeat(bangs.length))
    .replace(/[1I]/g, EITHER_I_OR_L)
    .toLowerCase()
    .replace(LEET_PATTERN, (ch) => LEET[ch] ?? ch)
}

export interface Tokens {
  words: string[]
  /** Words rebuilt from runs of single characters ("n u d e" → "nude"), also present in `words`. */
  spelled: string[]
}

/**
 * Splits folded text into words. Only runs of two or more single-character tokens are joined,
 * so "n u d e" becomes "nude" while "an u de" stays three words.
 */
function tokenise (folded: string): Tokens {
  const words: string[] = []
  const spelled: string[] = []
  let run: string[] = []
  const flush = (): void => {
    if (run.length >= 2) {
      const joined = run.join('')
      words.push(joined)
      spelled.push(joined)
    } else {
      words.push(...run)
    }
    run = []
  }
  for (const token of folded.split(SEPARATORS)) {
    if (token === '') continue
    if ([...token].length === 1) {
      run.push(token)
    } else {
      flush()
      words.push(token)
    }
  }
  flush()
  return { words, spelled }
}

/**
 * Every reading of the text, as word lists: one, or two when it has characters that may be i or l.
 */
export function readingsOf (text: string): Tokens[] {
  const folded = fold(text)
  if (!folded.includes(EITHER_I_OR_L)) return [tokenise(folded)]
  return [tokenise(folded.replaceAll(EITHER_I_OR_L, 'i')), tokenise(folded.replaceAll(EITHER_I_OR_L, 'l'))]
}

/** The words of a configured term, folded like text (ambiguous characters read as i). */
export function termWords (term: string): string[] {
  return tokenise(fold(term).replaceAll(EITHER_I_OR_L, 'i')).words
}

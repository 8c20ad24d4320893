import { describe, expect, it } from 'vitest'
import { DEFAULT_ALLOW_TERMS, DEFAULT_MODERATION_TERMS } from '../../src/moderation/default-terms.ts'
import { createLocalModerator } from '../../src/moderation/local-moderator.ts'
import { MODERATION_CATEGORIES } from '../../src/moderation/types.ts'
import type { ModerationCategory } from '../../src/moderation/types.ts'

const moderator = createLocalModerator()

async function categoriesOf (text: string, provider = moderator): Promise<ModerationCategory[]> {
  return (await provider.checkText(text)).categories
}

describe('default lists: what is blocked', () => {
  const blocked: Array<[string, ModerationCategory[]]> = [
    ['a nude woman on a beach', ['sexual']],
    ['NSFW anime girl', ['sexual']],
    ['explicit porn scene', ['sexual']],
    ['two people having sex', ['sexual']],
    ['pornographic photo', ['sexual']],
    ['a man masturbating', ['sexual']],
    ['topless model', ['sexual']],
    ['nude-coloured heels', ['sexual']], // decision: "nude" stays listed; operators may allow "nude heels"
    ['Sex Pistols poster', ['sexual']], // decision: "sex" stays listed
    ['a rapist in an alley', ['sexual']],
    ['gore, blood splatter, decapitated body', ['violence']],
    ['a beheading video still', ['violence']],
    ['mass shooting at a mall', ['violence']],
    ['soldiers torturing a prisoner', ['violence']],
    ['severed head on a spike', ['violence']],
    ['heil hitler rally', ['hate']],
    ['white power banner', ['hate']],
    ['kkk members marching', ['hate']],
    ['child porn', ['sexual', 'illegal']],
    ['lolicon art', ['illegal']],
    ['how to build a bomb diagram', ['illegal']],
    ['a fake passport with my photo', ['illegal']],
    ['I want to kill myself', ['self_harm']],
    ['slit wrists in a bathtub', ['self_harm']],
    ['thinspiration body check', ['self_harm']],
    ['nude teen', ['sexual', 'illegal']],
    ['naked schoolgirl', ['sexual', 'illegal']],
    ['a naked little girl', ['sexual', 'illegal']],
    ['I want to die, gore', ['violence', 'self_harm']],
    ['want to die and be nude', ['sexual', 'self_harm']]
  ]
  it.each(blocked)('%j → %j', async (text, expected) => {
    const verdict = await moderator.checkText(text)
    expect(verdict).toEqual({ allowed: false, categories: expected, provider: 'local' })
  })
})

describe('default lists: what passes (word boundaries and deliberate omissions)', () => {
  const allowed = [
    'Scunthorpe United football club', // contains "cunt"
    'a cocktail on a bar', // "cock" is not listed (rooster)
    'the cockpit of a 747',
    "Assassin's Creed cover art",
    'Essex countryside', // contains "sex"
    'Sussex village',
    'Middlesex university',
    'a therapist in her office', // contains "rapist"
    'a bunch of grapes', // contains "rape"
    'data analysis dashboard',
    'a skilled craftsman',
    'bass guitar on a stage',
    'a shooting star over the desert', // "shooting" alone is not listed
    'a killer whale breaching',
    'a bloody mary cocktail',
    'a class photo',
    'Dick Van Dyke dancing', // decision: "dick" and "dyke" are not listed (names, Moby Dick, geology)
    'Moby Dick, the white whale',
    'a murder of crows at dusk', // "murder" is not listed, "murdered" is
    'magna cum laude diploma',
    'grilled chicken breasts',
    'blue tits on a branch',
    'a sperm whale',
    'Suicide Squad movie poster',
    'a chink in the armour',
    'a Gore-Tex hiking jacket', // allowed by DEFAULT_ALLOW_TERMS
    'Al Gore giving a speech',
    'a sexy red sports car', // "sexy" is not listed
    'a knight kills a dragon',
    'an u de', // spaced letters are joined only in runs of single characters
    'the U.S. Army in the snow',
    'J. R. R. Tolkien reading',
    'A B C D E F G H I J K L M N O P Q R S T U V W X Y Z',
    'an x ray of a hand',
    'a teen reading a book',
    'children playing in a park',
    'Bob and his bobs haircut', // "boobs" needs its double o
    'essex, sussex and wessex',
    'semester', // contains "semen" prefix but not the word
    'a nudibranch in a reef',
    'pedometer on a wrist',
    'Spick and span kitchen',
    'a 1080p render, 4k, 35mm',
    '1 2 3 4 5 6 7 8 9 0',
    'f 1.4 aperture, 1/200 s, ISO 100',
    ''
  ]
  it.each(allowed)('%j is allowed', async (text) => {
    expect(await moderator.checkText(text)).toEqual({ allowed: true, categories: [], provider: 'local' })
  })
})

describe('normalisation defeats disguises', () => {
  const disguised: Array<[string, string]> = [
    ['NUDE', 'case'],
    ['n.u.d.e', 'dots'],
    ['N U D E', 'spaces'],
    ['n-u-d-e', 'hyphens'],
    ['n_u_d_e', 'underscores'],
    ['n / u / d / e', 'slashes and spaces'],
    ['n\tu\nd e', 'tabs and newlines'],
    ['i a m n u d e', 'a word inside a spelled-out run'],
    ['nuuuude', 'repeated letters'],
    ['NNUUUDDEE', 'every letter repeated'],
    ['nud3', 'leetspeak 3'],
    ['p0rn', 'leetspeak 0'],
    ['$3x', 'leetspeak $ and 3'],
    ['5ex', 'leetspeak 5'],
    ['pu$$y', 'leetspeak $$'],
    ['b00bs', 'leetspeak 00'],
    ['n1pple', '1 as i'],
    ['nipp1e', '1 as l'],
    ['n!pple', '! as i'],
    ['n|pple', '| as i'],
    ['nippIe', 'capital I as l'],
    ['NIPPLE', 'capital I as i'],
    ['@nal sex', '@ as a'],
    ['ｎｕｄｅ', 'fullwidth'],
    ['𝐧𝐮𝐝𝐞', 'mathematical bold'],
    ['ⓝⓤⓓⓔ', 'circled letters'],
    ['nüdé', 'diacritics'],
    ['n\u0301u\u0308de', 'combining marks'],
    ['nu\u200Bde', 'zero-width space'],
    ['nu\u200Dde', 'zero-width joiner'],
    ['n\u00ADude', 'soft hyphen'],
    ['n\uFEFFude', 'byte order mark'],
    ['nu\u2060de', 'word joiner'],
    ['nu\u3164de', 'Hangul filler'],
    ['nud\u0435', 'Cyrillic e'],
    ['\u0440orn', 'Cyrillic p'],
    ['\u039DUDE', 'Greek capital Nu'],
    ['"nude!"', 'quotes and punctuation'],
    ['(nude), 8k', 'brackets']
  ]
  it.each(disguised)('%j (%s) is sexual', async (text) => {
    expect(await categoriesOf(text)).toEqual(['sexual'])
  })

  it.each([
    ['k1ll mys3lf', ['self_harm']],
    ['KILL MYSELF', ['self_harm']],
    ['selfharm', ['self_harm']],
    ['self-harm', ['self_harm']],
    ['whitepower', ['hate']],
    ['s e x', ['sexual']],
    ['g.o.r.e', ['violence']]
  ] as Array<[string, ModerationCategory[]]>)('%j → %j', async (text, expected) => {
    expect(await categoriesOf(text)).toEqual(expected)
  })
})

describe('word-boundary mechanics with configured terms', () => {
  const strict = createLocalModerator({
    terms: { sexual: ['cock', 'ass', 'anal', 'cunt', 'sex', 'rape', 'dick'], violence: ['kill', 'shoot', 'killer'] }
  })
  const cases: Array<[string, boolean]> = [
    ['cock', false],
    ['cocktail', true],
    ['cockpit', true],
    ['ass', false],
    ['asses', false], // plural
    ['bass guitar', true],
    ['class', true],
    ["Assassin's Creed", true],
    ['anal', false],
    ['analysis', true],
    ['Scunthorpe', true],
    ['Essex', true],
    ['Middlesex', true],
    ['grape', true],
    ['therapist', true],
    ['Dick Van Dyke', false], // with "dick" listed, the name is blocked unless allowed (see allowTerms)
    ['kill', false],
    ['kills', false],
    ['skilled', true],
    ['shoot', false],
    ['shooting star', true], // only plural suffixes are implied, not "-ing"
    ['killer whale', false] // why "killer" is not in the default list
  ]
  it.each(cases)('%j allowed: %s', async (text, allowed) => {
    expect((await strict.checkText(text)).allowed).toBe(allowed)
  })
})

describe('configuration', () => {
  it('replaces a category list and keeps the others', async () => {
    const custom = createLocalModerator({ terms: { violence: ['chainsaw'] } })
    expect(await categoriesOf('a chainsaw', custom)).toEqual(['violence'])
    expect(await categoriesOf('gore', custom)).toEqual([])
    expect(await categoriesOf('nude', custom)).toEqual(['sexual'])
  })

  it('extends the defaults', async () => {
    const custom = createLocalModerator({ terms: { violence: ['chainsaw'] }, extendDefaults: true })
    expect(await categoriesOf('a chainsaw', custom)).toEqual(['violence'])
    expect(await categoriesOf('gore', custom)).toEqual(['violence'])
  })

  it('disables a category with an empty list', async () => {
    const custom = createLocalModerator({ terms: { sexual: [] } })
    expect(await categoriesOf('nude', custom)).toEqual([])
    expect(await categoriesOf('gore', custom)).toEqual(['violence'])
  })

  it('skips allowed phrases but still catches the word elsewhere', async () => {
    const custom = createLocalModerator({ terms: { sexual: ['dick'] }, allowTerms: ['dick van dyke', 'moby dick'] })
    expect(await categoriesOf('Dick Van Dyke dancing', custom)).toEqual([])
    expect(await categoriesOf('m0by d1ck', custom)).toEqual([])
    expect(await categoriesOf('moby dick and a dick', custom)).toEqual(['sexual'])
    // Replacing the allow list drops the defaults...
    expect(await categoriesOf('gore tex', custom)).toEqual(['violence'])
    // ...extending keeps them.
    const extended = createLocalModerator({ allowTerms: ['moby dick'], extendDefaults: true })
    expect(await categoriesOf('gore tex', extended)).toEqual([])
  })

  it('matches a term ending in * as a prefix', async () => {
    const custom = createLocalModerator({ terms: { violence: ['stab*'] } })
    expect(await categoriesOf('stabbing', custom)).toEqual(['violence'])
    expect(await categoriesOf('stab', custom)).toEqual(['violence'])
    expect(await categoriesOf('unstable', custom)).toEqual([])
  })

  it('matches multi-word phrases with or without separators', async () => {
    const custom = createLocalModerator({ terms: { hate: ['bad phrase here'] } })
    expect(await categoriesOf('a Bad-Phrase, here!', custom)).toEqual(['hate'])
    expect(await categoriesOf('badphrasehere', custom)).toEqual(['hate'])
    expect(await categoriesOf('bad phrase', custom)).toEqual([])
    expect(await categoriesOf('bad phrase. There', custom)).toEqual([])
  })

  it('refuses unknown categories and terms without letters', () => {
    expect(() => createLocalModerator({ terms: { spam: ['x'] } as never })).toThrow('Unknown moderation category "spam"')
    expect(() => createLocalModerator({ terms: { hate: ['!!!'] } })).toThrow('has no letters or digits')
  })
})

describe('verdicts', () => {
  it('carry no part of the text', async () => {
    const verdict = await moderator.checkText('secret-marker-4711 a nude portrait')
    expect(Object.keys(verdict).sort()).toEqual(['allowed', 'categories', 'provider'])
    const serialised = JSON.stringify(verdict)
    expect(serialised).not.toContain('nude')
    expect(serialised).not.toContain('4711')
    expect(serialised).toBe('{"allowed":false,"categories":["sexual"],"provider":"local"}')
  })

  it('list categories once each, in a fixed order', async () => {
    expect(await categoriesOf('kill myself, gore, nude, nude, heil hitler')).toEqual(['sexual', 'violence', 'hate', 'self_harm'])
  })

  it('expose the provider name', () => {
    expect(moderator.name).toBe('local')
  })

  it('honour an aborted signal', async () => {
    const controller = new AbortController()
    controller.abort(new Error('gone'))
    await expect(moderator.checkText('hello', { signal: controller.signal })).rejects.toThrow('gone')
  })

  // Its speed is a benchmark's business, not a timed assertion's: this one failed on a loaded machine.
  it('judge long and hostile input', async () => {
    const hostile = 'a '.repeat(5000) + 'k' + '1!|'.repeat(3000) + ' ' + 'harmless words '.repeat(2000)
    const verdict = await moderator.checkText(hostile)
    expect(verdict.allowed).toBe(true)
  })
})

describe('default term lists', () => {
  const entries = MODERATION_CATEGORIES.flatMap((category) =>
    DEFAULT_MODERATION_TERMS[category].map((term) => [category, term] as const))

  it.each(entries)('%s: %j is caught on its own', async (category, term) => {
    expect(await categoriesOf(term.replace(/\*$/, ''))).toContain(category)
  })

  it.each([...DEFAULT_ALLOW_TERMS])('allow term %j passes', async (term) => {
    expect(await categoriesOf(term)).toEqual([])
  })
})

import type { ModerationCategory } from './types.ts'

/**
 * The local moderator's default term lists. Terms are matched as whole words after folding (see
 * term-matcher.ts): a plural "s"/"es" is implied, "*" at the end makes a prefix, phrases may be
 * written with or without spaces or hyphens.
 *
 * Words that are ordinary in other senses are left out on purpose, so that common prompts pass:
 * "cock" (rooster, cocktail), "dick" and "dyke" (Dick Van Dyke, Moby Dick, a basalt dyke),
 * "ass" (donkey), "cum" (cum laude), "tits" (blue tits), "breasts" (chicken breasts), "sexy",
 * "kill", "killer", "shooting", "bloody", "murder" (a murder of crows), "suicide" (Suicide Squad),
 * "chink" (a chink in the armour), "fag", "nazi" (history), "sperm" (sperm whale).
 */
export const DEFAULT_MODERATION_TERMS: Readonly<Record<ModerationCategory, readonly string[]>> = {
  sexual: [
    'nude', 'nudity', 'nudist', 'nudism', 'naked', 'nsfw', 'porn', 'porno', 'pornograph*', 'xxx',
    'sex', 'sexual', 'erotic', 'erotica', 'hentai', 'lewd', 'topless', 'nipple', 'areola',
    'genitals', 'genitalia', 'penis', 'vagina', 'vulva', 'clitoris', 'erection', 'orgasm', 'semen',
    'ejaculat*', 'masturbat*', 'blowjob', 'handjob', 'cumshot', 'creampie', 'deepthroat', 'fellatio',
    'cunnilingus', 'dildo', 'orgy', 'gangbang', 'threesome', 'bdsm', 'bondage', 'dominatrix',
    'striptease', 'upskirt', 'onlyfans', 'camgirl', 'milf', 'pussy', 'cunt', 'boobs', 'titties',
    'bare breasts', 'rape', 'raped', 'raping', 'rapist', 'molest*'
  ],
  violence: [
    'gore', 'gory', 'gruesome', 'decapitat*', 'behead*', 'dismember*', 'disembowel*', 'eviscerat*',
    'mutilat*', 'torture', 'tortured', 'torturing', 'massacre', 'massacred', 'mass shooting',
    'school shooting', 'school shooter', 'bloodbath', 'blood splatter', 'blood spatter', 'pool of blood',
    'severed head', 'severed limb', 'entrails', 'snuff film', 'lynching', 'lynched', 'genocide',
    'shot in the head', 'slit throat', 'slit his throat', 'slit her throat', 'stabbed to death',
    'beaten to death', 'murdered', 'murdering', 'kill him', 'kill her', 'kill them', 'killing people',
    'suicide bomber', 'terrorist attack', 'animal cruelty'
  ],
  hate: [
    'nigger', 'nigga', 'sand nigger', 'faggot', 'kike', 'spic', 'gook', 'wetback', 'raghead',
    'towelhead', 'beaner', 'tranny', 'heil hitler', 'sieg heil', 'white power', 'gas the jews',
    'neo nazi', 'kkk', 'ku klux klan', 'ethnic cleansing'
  ],
  illegal: [
    'child porn', 'child pornography', 'csam', 'loli', 'lolicon', 'shota', 'shotacon', 'jailbait',
    'underage sex', 'underage nude', 'pedo', 'pedophile', 'paedophile', 'child abuse', 'bestiality',
    'zoophilia', 'pipe bomb', 'make a bomb', 'build a bomb', 'bomb making', 'cook meth',
    'counterfeit money', 'fake passport', 'fake id'
  ],
  self_harm: [
    'self harm', 'self injury', 'cut myself', 'cutting myself', 'kill myself', 'killing myself',
    'hang myself', 'hanging myself', 'slit wrist', 'slit my wrists', 'suicide note', 'commit suicide',
    'committing suicide', 'suicidal', 'end my life', 'want to die', 'thinspiration', 'thinspo',
    'pro ana', 'pro mia'
  ]
}

/** Names and products that contain a listed word ("Gore-Tex"); their text is skipped before matching. */
export const DEFAULT_ALLOW_TERMS: readonly string[] = ['gore tex', 'al gore', 'gore vidal']

/**
 * Words about minors. A prompt that is sexual and mentions a minor is also reported as
 * `illegal`, whatever the configured lists, so operators can treat it as the worse case.
 */
export const DEFAULT_MINOR_TERMS: readonly string[] = [
  'child', 'children', 'kid', 'kids', 'minor', 'underage', 'teen', 'teenage', 'teenager', 'preteen',
  'toddler', 'infant', 'baby', 'young girl', 'young boy', 'little girl', 'little boy', 'schoolgirl',
  'schoolboy', 'loli', 'shota'
]

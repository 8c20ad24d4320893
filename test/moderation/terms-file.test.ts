import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLocalModerator } from '../../src/moderation/local-moderator.ts'
import { loadTermsFile } from '../../src/moderation/terms-file.ts'

let dir: string

async function termsFile (name: string, content: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, content)
  return path
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moderation-terms-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('loadTermsFile', () => {
  it('reads terms, allowTerms and extendDefaults into moderator options', async () => {
    const path = await termsFile('ok.json', JSON.stringify({
      extendDefaults: true,
      terms: { violence: ['chainsaw massacre'], self_harm: ['jump off a bridge'] },
      allowTerms: ['moby dick']
    }))
    const options = await loadTermsFile(path)
    expect(options).toEqual({
      extendDefaults: true,
      terms: { violence: ['chainsaw massacre'], self_harm: ['jump off a bridge'] },
      allowTerms: ['moby dick']
    })
    const moderator = createLocalModerator(options)
    expect((await moderator.checkText('the Chainsaw Massacre')).categories).toEqual(['violence'])
    expect((await moderator.checkText('gore')).categories).toEqual(['violence'])
  })

  it('accepts an empty object', async () => {
    expect(await loadTermsFile(await termsFile('empty.json', '{}'))).toEqual({})
  })

  it.each([
    ['broken.json', '{ "terms": ', /broken\.json: /],
    ['array.json', '[]', /the document must be an object/],
    ['unknown-member.json', '{ "words": [] }', /words is not a known member/],
    ['unknown-category.json', '{ "terms": { "spam": ["x"] } }', /terms\.spam is not a category/],
    ['not-list.json', '{ "terms": { "hate": "x" } }', /terms\.hate must be an array of non-empty strings/],
    ['empty-string.json', '{ "allowTerms": [""] }', /allowTerms must be an array of non-empty strings/],
    ['number.json', '{ "terms": { "hate": [1] } }', /terms\.hate must be an array/],
    ['extend.json', '{ "extendDefaults": "yes" }', /extendDefaults must be a boolean/]
  ])('refuses %s', async (name, content, message) => {
    const path = await termsFile(name, content)
    await expect(loadTermsFile(path)).rejects.toThrow(message)
  })

  it('names a missing file', async () => {
    await expect(loadTermsFile(join(dir, 'missing.json'))).rejects.toThrow(/missing\.json: ENOENT/)
  })
})

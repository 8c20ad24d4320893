import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { PLAN_ALIASES, PLAN_NAMES, PLANS } from '../src/models/catalog.ts'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

/** The README paragraph that starts with `**<title>**`, up to the next blank line. */
function paragraph (title: string): string {
  const start = readme.indexOf(`**${title}**`)
  expect(start, `README has a **${title}** paragraph`).toBeGreaterThanOrEqual(0)
  const end = readme.indexOf('\n\n', start)
  return readme.slice(start, end < 0 ? undefined : end)
}

describe('README', () => {
  it('the Plans paragraph names every plan a key or DEFAULT_PLAN accepts, aliases with what they stand for', () => {
    const plans = paragraph('Plans')
    for (const name of PLAN_NAMES) expect(plans, name).toContain(`\`${name}\``)
    for (const [alias, plan] of Object.entries(PLAN_ALIASES)) {
      expect(plans).toMatch(new RegExp(`\`${alias}\`[^.]*\`${plan}\``))
    }
    // Each plan's default models, as the catalog has them.
    for (const [plan, spec] of Object.entries(PLANS)) {
      expect(plans, plan).toMatch(new RegExp(`\`${plan}\`[^;]*${spec.defaultModel.replace(/\./g, '\\.')}`))
    }
  })
})

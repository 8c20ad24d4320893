import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ConfigSchema } from '../src/config.ts'
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

  it('the Queue worker section names every worker setting and every reason the worker itself dead-letters with', () => {
    const start = readme.indexOf('## Queue worker')
    expect(start).toBeGreaterThanOrEqual(0)
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1))
    const settings = Object.keys(ConfigSchema.properties).filter((k) => k === 'WORKER' || k.startsWith('WORKER_') || k.startsWith('SERVICE_BUS_'))
    expect(settings.length).toBeGreaterThanOrEqual(7)
    for (const name of settings) expect(section, name).toContain(`\`${name}\``)
    const source = readFileSync(new URL('../src/worker/processor.ts', import.meta.url), 'utf8')
    const reasons = [...new Set([...source.matchAll(/new Refusal\('([a-z_]+)'/g)].map((m) => m[1]!))]
    expect(reasons.length).toBeGreaterThanOrEqual(4)
    for (const reason of reasons) expect(section, reason).toContain(`\`${reason}\``)
  })
})

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import { storeConformance } from './conformance.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'fgw-sqlite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

storeConformance('sqlite', async () => createSqliteStore({ path: path.join(dir, `s${n++}.sqlite`) }))

describe('sqlite store', () => {
  it('keeps its state in one WAL file across reopenings', async () => {
    const file = path.join(dir, 'reopen.sqlite')
    const first = createSqliteStore({ path: file })
    await first.reserve({ id: 'r', keyId: 'k', model: 'flux-dev', credits: 2, usd: 0.025, images: 1, budget: null, now: Date.now() })
    await first.close()
    const second = createSqliteStore({ path: file })
    expect(await second.getLedgerEntry('r')).toMatchObject({ state: 'reserved', credits: 2 })
    await second.close()
  })

  it('two connections to one file agree on a budget', async () => {
    const file = path.join(dir, 'shared.sqlite')
    const a = createSqliteStore({ path: file })
    const b = createSqliteStore({ path: file })
    const budget = { credits: 3, period: 'total' as const }
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      (i % 2 ? a : b).reserve({ id: `x${i}`, keyId: 'k', model: 'flux-schnell', credits: 1, usd: 0.003, images: 1, budget, now: Date.now() })))
    expect(results.filter((r) => r.ok)).toHaveLength(3)
    await a.close()
    await b.close()
  })
})

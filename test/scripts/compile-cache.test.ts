import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = path.resolve(import.meta.dirname, '../..')
const dir = mkdtempSync(path.join(tmpdir(), 'fgw-compile-cache-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Every file under `at`, recursively. */
const files = (at: string): string[] => readdirSync(at, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? files(path.join(at, e.name)) : [e.name])

describe('Node\'s compile cache', () => {
  it('is on for the npm scripts, under node_modules/.cache unless NODE_COMPILE_CACHE says otherwise', async () => {
    const env = { ...process.env }
    delete env.NODE_COMPILE_CACHE
    const { stdout } = await run(path.join(root, 'scripts/run-node'), ['-e', 'console.log(process.env.NODE_COMPILE_CACHE)'], { env })
    expect(path.resolve(stdout.trim())).toBe(path.join(root, 'node_modules/.cache/node-compile-cache'))
    const chosen = await run(path.join(root, 'scripts/run-node'), ['-e', 'console.log(process.env.NODE_COMPILE_CACHE)'], { env: { ...env, NODE_COMPILE_CACHE: dir } })
    expect(chosen.stdout.trim()).toBe(dir)
  })

  it('is filled by scripts/warm-compile-cache.ts with the modules the server loads, as the Docker image does at build time', async () => {
    const cache = path.join(dir, 'warm')
    const { stdout } = await run(process.execPath, ['--experimental-strip-types', 'scripts/warm-compile-cache.ts'], { cwd: root, env: { ...process.env, NODE_COMPILE_CACHE: cache } })
    expect(stdout).toContain(cache)
    // One entry per compiled module: the app, its plugins and routes, and their dependencies.
    expect(files(cache).length).toBeGreaterThan(100)
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8')
    expect(dockerfile).toMatch(/NODE_COMPILE_CACHE=\/app\/\.cache\/node-compile-cache/)
    expect(dockerfile).toContain('RUN node scripts/warm-compile-cache.ts')
    expect(dockerfile).toContain('scripts/warm-compile-cache.ts ./scripts/')
  }, 60_000)
})

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/**
 * The repository stands alone: no tracked file reads a path outside it. A clone with nothing beside it must run its
 * tests, so a relative path that climbs above the root (`new URL('../../../x', import.meta.url)`, `$(dirname
 * "$0")/../..`) or an absolute path into the directory that holds the clone or a developer's home is a defect.
 * Markdown is prose and is not scanned, nor is this file, whose examples climb out on purpose.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SELF = path.relative(ROOT, fileURLToPath(import.meta.url))

/** Absolute paths that only exist on someone's machine. */
const MACHINE_PATH = /(?<![\w.:/-])\/(?:work|home|Users|root|mnt|srv|opt)\/[\w.@+-]+/g
/** A relative path: one or more `../` and what follows. */
const CLIMB = /(?<![\w.\-/])((?:\.\.\/)+)([\w.@+\-/]*)/g
/** A shell script's own directory, climbed with `/..`. */
const SCRIPT_DIR_CLIMB = /\$\(\s*dirname\s+"?\$(?:0|\{BASH_SOURCE\[0\]\}|BASH_SOURCE)"?\s*\)((?:\/\.\.)+)/g

export interface Escape { file: string, line: number, text: string }

/** Every place in `content` (the file `file`, relative to `root`) that names a path outside `root`. */
export function escapes (root: string, file: string, content: string): Escape[] {
  const found: Escape[] = []
  const dir = path.dirname(path.join(root, file))
  const outside = (target: string): boolean => {
    const rel = path.relative(root, target)
    return rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)
  }
  const parent = path.dirname(root)
  content.split('\n').forEach((text, i) => {
    const hit = (): void => { found.push({ file, line: i + 1, text: text.trim() }) }
    for (const m of text.matchAll(CLIMB)) {
      if (outside(path.resolve(dir, m[1]! + m[2]!))) { hit(); return }
    }
    for (const m of text.matchAll(SCRIPT_DIR_CLIMB)) {
      if (outside(path.resolve(dir, m[1]!.slice(1)))) { hit(); return }
    }
    if (MACHINE_PATH.test(text)) { MACHINE_PATH.lastIndex = 0; hit(); return }
    // The clone's own surroundings, spelled out wherever it happens to be checked out.
    if (parent !== path.sep && text.includes(parent + path.sep) && !text.includes(root)) hit()
  })
  return found
}

function trackedFiles (): string[] {
  return execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter((f) => f !== '')
}

describe('the repository stands alone', () => {
  it('no tracked file reads a path outside the repository', () => {
    const files = trackedFiles().filter((f) => !f.endsWith('.md') && f !== SELF)
    expect(files.length).toBeGreaterThan(100)
    expect(files).toContain('test/fixtures/replicate/flux-models.json')
    const found: Escape[] = []
    for (const file of files) {
      const buf = readFileSync(path.join(ROOT, file))
      if (buf.includes(0)) continue // binary
      found.push(...escapes(ROOT, file, buf.toString('utf8')))
    }
    expect(found).toEqual([])
  })

  it('the check finds paths that climb out, and lets paths inside through', () => {
    const root = '/build/checkout/flux-gateway'
    const at = (file: string, content: string): number[] => escapes(root, file, content).map((e) => e.line)
    // What the model tests once read: a sibling directory of the clone.
    expect(at('test/models/reference.ts', "new URL('../../../references/replicate/flux-models.json', import.meta.url)")).toEqual([1])
    expect(at('test/models/reference.ts', "new URL('../fixtures/replicate/flux-models.json', import.meta.url)")).toEqual([])
    expect(at('plugins/app/readiness.ts', "new URL('../../package.json', import.meta.url)")).toEqual([])
    expect(at('x.ts', "import a from './a.ts'\nreadFileSync('../elsewhere/file')")).toEqual([2])
    expect(at('.ci/run', 'cd "$(dirname "$0")/.."')).toEqual([])
    expect(at('.ci/run', 'cd "$(dirname "$0")/../.."')).toEqual([1])
    expect(at('test/a.test.ts', "readFileSync('/home/dev/references/replicate/openapi.yaml')")).toEqual([1])
    expect(at('test/a.test.ts', "readFileSync('/build/checkout/references/openapi.yaml')")).toEqual([1])
    expect(at('test/a.test.ts', "readFileSync('/build/checkout/flux-gateway/package.json')")).toEqual([])
    // URL paths and system paths are not files of someone's machine.
    expect(at('src/a.ts', "fetch('/v1/predictions'); open('/dev/null'); mkdtemp('/tmp/x')")).toEqual([])
  })
})

import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

/**
 * scripts/ensure-node.sh picks the node the npm scripts run on: the machine's when it satisfies package.json's
 * `engines.node`, otherwise Node 24 in .tools/. Run against a copy of the script and package.json, with a fake `node`
 * first on PATH that reports a chosen version and a fake `npm` that records the install it is asked for and lays
 * down a fake Node 24, so the install path is observed without a network.
 */

const ROOT = path.join(import.meta.dirname, '..', '..')
const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }

let dir: string
let fakeBin: string
let tools: string
let npmLog: string

function executable (file: string, body: string): void {
  mkdirSync(path.dirname(file), { recursive: true })
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, 0o755)
}

/** A `node` that answers --version with `version` and otherwise says what it was asked to run. */
function fakeNode (file: string, version: string): void {
  executable(file, `if [ "$1" = --version ]; then echo v${version}; else echo "node ${version}: $*"; fi`)
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-ensure-node-'))
  mkdirSync(path.join(dir, 'scripts'))
  copyFileSync(path.join(ROOT, 'scripts', 'ensure-node.sh'), path.join(dir, 'scripts', 'ensure-node.sh'))
  copyFileSync(path.join(ROOT, 'scripts', 'run-node'), path.join(dir, 'scripts', 'run-node'))
  copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'))
  fakeBin = path.join(dir, 'bin')
  tools = path.join(dir, '.tools', 'node_modules', '.bin')
  npmLog = path.join(dir, 'npm-calls')
  // npm install --prefix <dir>/.tools … node@24: record it and install a Node 24 that reports itself.
  executable(path.join(fakeBin, 'npm'), [
    `echo "$*" >> '${npmLog}'`,
    `mkdir -p '${tools}'`,
    `printf '#!/bin/sh\\nif [ "$1" = --version ]; then echo v24.9.0; else echo "node 24.9.0: $*"; fi\\n' > '${tools}/node'`,
    `chmod +x '${tools}/node'`
  ].join('\n'))
})

afterEach(() => { rmSync(dir, { recursive: true, force: true }) })

/** Runs the copied script with the machine's node reporting `version`; returns the PATH prefix it printed. */
function ensureNode (version: string, script = 'ensure-node.sh', args: string[] = []): string {
  fakeNode(path.join(fakeBin, 'node'), version)
  return execFileSync(path.join(dir, 'scripts', script), args, {
    env: { PATH: `${fakeBin}:/usr/bin:/bin` },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe']
  }).trim()
}

const npmCalls = (): string[] => existsSync(npmLog) ? readFileSync(npmLog, 'utf8').trim().split('\n') : []

describe('scripts/ensure-node.sh', () => {
  it('reads the range from package.json', () => {
    expect(PACKAGE.engines.node).toBe('^22.19.0 || >=24')
  })

  it.each(['22.19.0', '22.23.3', '24.0.0', '24.21.0', '26.1.0'])('uses the machine\'s node %s, which satisfies engines, and installs nothing', (version) => {
    expect(ensureNode(version)).toBe(fakeBin)
    expect(npmCalls()).toEqual([])
    expect(existsSync(tools)).toBe(false)
  })

  it.each(['22.18.0', '22.13.0', '22.12.0', '20.19.5', '23.11.0', '18.20.8'])('installs Node 24 into .tools/ when the machine\'s node is %s', (version) => {
    expect(ensureNode(version)).toBe(tools)
    expect(npmCalls()).toEqual([`install --prefix ${path.join(dir, '.tools')} --no-save --no-audit --no-fund --loglevel=error node@24`])
  })

  it('uses a Node 24 already in .tools/ without installing again', () => {
    expect(ensureNode('20.19.5')).toBe(tools)
    expect(ensureNode('20.19.5')).toBe(tools)
    expect(npmCalls()).toHaveLength(1)
  })

  it('replaces a node in .tools/ that no longer satisfies engines', () => {
    fakeNode(path.join(tools, 'node'), '22.12.0')
    expect(ensureNode('20.19.5')).toBe(tools)
    expect(npmCalls()).toHaveLength(1)
  })

  it('follows package.json, not a version written into the script', () => {
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { engines: { node: string } }
    pkg.engines.node = '>=20.10 <21'
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2))
    expect(ensureNode('20.19.5')).toBe(fakeBin)
    // The installed Node 24 does not satisfy it either: a clear failure, not a silent wrong node.
    expect(() => ensureNode('24.21.0')).toThrow(/does not satisfy engines ">=20.10 <21"/)
  })

  it('run-node runs the chosen node with the arguments given', () => {
    expect(ensureNode('22.19.0', 'run-node', ['--version'])).toBe('v22.19.0')
    expect(ensureNode('20.19.5', 'run-node', ['-e', '1'])).toBe('node 24.9.0: -e 1')
  })
})

import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { batchedLines } from '../src/log-stream.ts'

let dir: string | undefined
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

/** Runs `script` (ESM, with batchedLines imported) in a child process; resolves with its stdout and exit code. */
function run (script: string): Promise<{ stdout: Buffer, code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--experimental-strip-types', '--input-type=module', '-e', `import { batchedLines } from ${JSON.stringify(path.resolve('src/log-stream.ts'))}\n${script}`], { stdio: ['ignore', 'pipe', 'inherit'] })
    const chunks: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ stdout: Buffer.concat(chunks), code }))
  })
}

describe('batched log lines', () => {
  it('writes the lines of one turn of the event loop together, in order, once that turn ends', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'fgw-lines-'))
    const file = path.join(dir, 'log')
    const fd = openSync(file, 'w')
    try {
      const sink = batchedLines(fd)
      sink.write('{"n":1}\n')
      sink.write('{"n":2}\n')
      sink.write('{"n":"é"}\n')
      expect(readFileSync(file, 'utf8')).toBe('')
      await new Promise((resolve) => setImmediate(resolve))
      expect(readFileSync(file, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":"é"}\n')
      sink.write('{"n":3}\n')
      await new Promise((resolve) => setImmediate(resolve))
      expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(4)
    } finally {
      closeSync(fd)
    }
  })

  it('writes what is pending when the process exits, even by process.exit() in the same turn', async () => {
    const { stdout, code } = await run('const sink = batchedLines(1)\nfor (let i = 0; i < 3; i++) sink.write(`line ${i}\\n`)\nprocess.exit(3)')
    expect(code).toBe(3)
    expect(stdout.toString()).toBe('line 0\nline 1\nline 2\n')
  })

  it('loses nothing when the reader is slower than the writer (a full pipe is waited on)', async () => {
    // 8 MB in one turn, far more than a pipe holds, read by this process at its own pace.
    const { stdout, code } = await run('const sink = batchedLines(1)\nconst line = "x".repeat(1023) + "\\n"\nfor (let i = 0; i < 8192; i++) sink.write(line)')
    expect(code).toBe(0)
    expect(stdout.length).toBe(8192 * 1024)
    expect(stdout.toString().split('\n').filter(Boolean).every((l) => l.length === 1023)).toBe(true)
  })
})

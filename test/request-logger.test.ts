import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { Bindings, ChildLoggerOptions, Logger } from 'pino'
import { describe, expect, it } from 'vitest'
import { lazyRequestLogger } from '../src/request-logger.ts'

/** A pino logger at `level` writing to an array, with its child() calls counted. */
function capture (level: string): { parent: Logger, lines: Array<Record<string, unknown>>, children: () => number } {
  const lines: Array<Record<string, unknown>> = []
  const parent = pino({ level, base: null }, new Writable({
    write (chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>)
      done()
    }
  }))
  let children = 0
  // Children inherit this through their prototype, so each call keeps its own receiver.
  const child = parent.child as unknown as (this: Logger, bindings: Bindings, opts?: ChildLoggerOptions) => Logger
  parent.child = function (this: Logger, bindings: Bindings, opts?: ChildLoggerOptions) {
    children++
    return child.call(this, bindings, opts)
  } as unknown as Logger['child']
  return { parent, lines, children: () => children }
}

describe('the request logger', () => {
  it('makes its child on the first line it writes, once, and binds the request id to every line', async () => {
    const { parent, lines, children } = capture('info')
    const log = lazyRequestLogger(parent, { request_id: 'r1' }, {})
    expect(children()).toBe(0)
    log.debug('below the level')
    expect(children()).toBe(0)
    log.info({ a: 1 }, 'first')
    log.warn('second')
    expect(children()).toBe(1)
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toEqual([
      expect.objectContaining({ level: 30, request_id: 'r1', a: 1, msg: 'first' }),
      expect.objectContaining({ level: 40, request_id: 'r1', msg: 'second' })
    ])
  })

  it('follows the route\'s own level, and its children carry the request id too', async () => {
    const { parent, lines } = capture('info')
    const log = lazyRequestLogger(parent, { request_id: 'r2' }, { level: 'warn' })
    expect(log.level).toBe('warn')
    expect((log as unknown as Logger).isLevelEnabled('info')).toBe(false)
    expect((log as unknown as Logger).isLevelEnabled('error')).toBe(true)
    log.info('not written')
    log.child({ step: 'x' }).error('written')
    await new Promise((resolve) => setImmediate(resolve))
    expect(lines).toEqual([expect.objectContaining({ level: 50, request_id: 'r2', step: 'x', msg: 'written' })])
  })
})

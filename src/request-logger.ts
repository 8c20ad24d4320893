import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino'

type LogMethod = (...args: unknown[]) => void

/**
 * Fastify's `childLoggerFactory`: each request's logger, bound to its id, made only when something logs through it.
 * Most requests never do (their access line is written apart, plugins/app/http.ts), and pino's `child()` on every
 * request was a fiftieth of the cost of a status read. A message below the level makes nothing.
 */
export function lazyRequestLogger (parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new RequestLogger(parent as Logger, bindings, opts) as unknown as FastifyBaseLogger
}

class RequestLogger {
  #parent: Logger
  #bindings: Bindings
  #opts: ChildLoggerOptions
  #child: Logger | undefined

  constructor (parent: Logger, bindings: Bindings, opts: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#opts = opts
  }

  get #logger (): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#opts)
    return this.#child
  }

  get level (): string {
    return this.#child?.level ?? this.#opts.level ?? this.#parent.level
  }

  set level (level: string) {
    this.#logger.level = level
  }

  isLevelEnabled (level: string): boolean {
    const values = this.#parent.levels.values
    const at = values[this.level]
    return at !== undefined && values[level] !== undefined && values[level] >= at
  }

  #log (level: Level, args: unknown[]): void {
    if (this.isLevelEnabled(level)) (this.#logger[level] as LogMethod)(...args)
  }

  trace (...args: unknown[]): void { this.#log('trace', args) }
  debug (...args: unknown[]): void { this.#log('debug', args) }
  info (...args: unknown[]): void { this.#log('info', args) }
  warn (...args: unknown[]): void { this.#log('warn', args) }
  error (...args: unknown[]): void { this.#log('error', args) }
  fatal (...args: unknown[]): void { this.#log('fatal', args) }
  silent (): void {}

  child (bindings: Bindings, opts?: ChildLoggerOptions): Logger {
    return this.#logger.child(bindings, opts)
  }

  bindings (): Bindings {
    return this.#logger.bindings()
  }
}

import { writeSync } from 'node:fs'

/** What pino writes its lines to. */
export interface LineSink { write (line: string): unknown }

/**
 * Where the server's log lines go. JSON lines on stdout everywhere a machine reads them; readable lines when a person
 * watches a terminal outside production. pino-pretty is a dev dependency, loaded only then, and absent from
 * production images: without it the lines stay JSON.
 */
export async function consoleLogStream (o: { isTTY: boolean | undefined, nodeEnv: string }): Promise<LineSink> {
  if (o.isTTY === true && o.nodeEnv !== 'production') {
    try {
      const { default: pretty } = await import('pino-pretty')
      return pretty({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', colorize: true, sync: true })
    } catch {
      // Not installed: JSON lines, below.
    }
  }
  return batchedLines(1)
}

// A full non-blocking pipe is waited on 1 ms at a time, as pino's own destination does.
const sleeper = new Int32Array(new SharedArrayBuffer(4))

/**
 * Lines to a file descriptor, written together once per turn of the event loop. Under load every request's access
 * line shares one write(2) with the others of its turn: pino's default destination made a system call per line, a
 * tenth of the cost of a status read, and sonic-boom's asynchronous mode measures its whole pending buffer again for
 * every line it adds. A line waits at most for the end of the current turn; what is pending when the process exits
 * is written then. Writes stay synchronous, so a reader that stops reading holds the process up rather than letting
 * lines pile up in memory, as with pino's default.
 */
export function batchedLines (fd: number): LineSink {
  let pending: string[] = []
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    if (pending.length === 0) return
    const chunk = Buffer.from(pending.length === 1 ? pending[0]! : pending.join(''))
    pending = []
    writeFully(fd, chunk)
  }
  process.on('exit', flush)
  return {
    write (line: string): boolean {
      pending.push(line)
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
      return true
    }
  }
}

function writeFully (fd: number, chunk: Buffer): void {
  let offset = 0
  while (offset < chunk.length) {
    try {
      offset += writeSync(fd, chunk, offset)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 1)
        continue
      }
      // Nobody reads any more (the pipe's reader is gone): the lines have nowhere to go.
      if (code === 'EPIPE') return
      throw err
    }
  }
}

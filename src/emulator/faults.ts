/**
 * Injected failures for the next matching calls, so a client's retry policy can be tested
 * against real sockets:
 * - `status`: answer with that status (429 carries Retry-After and `retry_after`);
 * - `reset`: destroy the socket as soon as the request arrives;
 * - `reset-after-body`: read, record and handle the whole request (a create does create a
 *   prediction), then destroy the socket instead of answering: the request reached the server,
 *   yet the client sees a network error;
 * - `delay`: hold the request `delayMs` real milliseconds, then handle it normally.
 */
export type FaultKind = 'status' | 'reset' | 'reset-after-body' | 'delay'

export type FaultSpec = {
  kind: FaultKind
  status?: number
  retryAfterSeconds?: number
  /** Real milliseconds, not scaled. */
  delayMs?: number
  /** How many matching calls; default 1. */
  count?: number
  method?: string
  /** Exact path (no query) or a RegExp; without it, any `/v1` call matches. */
  path?: string | RegExp
}

export const FAULT_KINDS: readonly FaultKind[] = ['status', 'reset', 'reset-after-body', 'delay']

interface QueuedFault {
  spec: FaultSpec
  remaining: number
}

export interface FaultQueue {
  inject(spec: FaultSpec): void
  clear(): void
  /** Consumes one use of the first queued fault that matches this call. */
  take(method: string, path: string): FaultSpec | undefined
  pending(): FaultSpec[]
}

export function checkFaultSpec (spec: FaultSpec): FaultSpec {
  if (!FAULT_KINDS.includes(spec.kind)) throw new TypeError(`fault kind must be one of ${FAULT_KINDS.join(', ')}, got ${String(spec.kind)}`)
  if (spec.kind === 'status' && (!Number.isInteger(spec.status) || spec.status! < 100 || spec.status! > 599)) {
    throw new TypeError(`a status fault needs an HTTP status, got ${String(spec.status)}`)
  }
  if (spec.kind === 'delay' && !(typeof spec.delayMs === 'number' && spec.delayMs >= 0)) {
    throw new TypeError(`a delay fault needs delayMs >= 0, got ${String(spec.delayMs)}`)
  }
  if (spec.count !== undefined && !(spec.count >= 1)) throw new TypeError(`fault count must be >= 1, got ${spec.count}`)
  return spec
}

function matches (spec: FaultSpec, method: string, path: string): boolean {
  if (spec.method && spec.method.toUpperCase() !== method.toUpperCase()) return false
  if (spec.path === undefined) return path === '/v1' || path.startsWith('/v1/')
  if (typeof spec.path === 'string') return spec.path === path
  spec.path.lastIndex = 0
  return spec.path.test(path)
}

export function createFaultQueue (): FaultQueue {
  let queue: QueuedFault[] = []
  return {
    inject (spec) {
      checkFaultSpec(spec)
      queue.push({ spec, remaining: spec.count ?? 1 })
    },
    clear () {
      queue = []
    },
    take (method, path) {
      const found = queue.find((q) => matches(q.spec, method, path))
      if (!found) return undefined
      found.remaining -= 1
      if (found.remaining <= 0) queue = queue.filter((q) => q !== found)
      return found.spec
    },
    pending: () => queue.map((q) => q.spec)
  }
}

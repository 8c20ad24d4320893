import type { FastifyBaseLogger } from 'fastify'
import type { ReplicateClient } from '../replicate/client.ts'
import { inputHash } from '../replicate/predictions.ts'
import type { Prediction } from '../replicate/types.ts'
import type { PendingCreate, StateStore } from '../stores/types.ts'

/**
 * Creates a process died in the middle of. A sync create learns the prediction's id only when it
 * returns, so a pending-create record is written before it is sent; one still there after the longest
 * possible create belongs to a dead process. Replicate echoes the input it got, so the prediction is
 * looked for by model and input in a window around the record: found, it is adopted; not found, the
 * create never reached Replicate and the credits are released.
 */

/** Our clock and Replicate's need not agree. */
const SKEW_MS = 120_000
const LEASE = 'reconcile:pending-creates'

export interface PendingReconcilerOptions {
  store: StateStore
  replicate: ReplicateClient
  log: FastifyBaseLogger
  instanceId: string
  leaseMs: number
  /** Records older than this are due. */
  afterMs: number
  now: () => number
  /** Records the found prediction with the pending record's owner and ledger entry, then finalizes or tracks it. */
  adopt: (pending: PendingCreate, prediction: Prediction) => Promise<void>
}

export type Outcome = 'adopted' | 'released' | 'already-recorded' | 'already-settled'

export interface PendingReconciler {
  /** Resolves with what became of each due record; several instances may run it at once (one works, by a lease). */
  run: (signal?: AbortSignal) => Promise<Outcome[]>
}

export function createPendingReconciler (o: PendingReconcilerOptions): PendingReconciler {
  const { store, log } = o

  function createdAt (p: Prediction): number {
    return Date.parse(p.created_at)
  }

  async function reconcileOne (pending: PendingCreate, listed: Prediction[]): Promise<Outcome> {
    const from = pending.createdAt - SKEW_MS
    const to = pending.createdAt + o.afterMs + SKEW_MS
    const candidates = listed
      .filter((p) => p.model === pending.replicateModel && createdAt(p) >= from && createdAt(p) <= to && inputHash(p.input) === pending.inputHash)
      .sort((a, b) => Math.abs(createdAt(a) - pending.createdAt) - Math.abs(createdAt(b) - pending.createdAt))
    let found: Prediction | undefined
    for (const candidate of candidates) {
      const existing = await store.getPrediction(candidate.id)
      if (existing?.ledgerId === pending.ledgerId) {
        // Recorded before the process died; the tracker has it.
        await store.deletePendingCreate(pending.ledgerId)
        return 'already-recorded'
      }
      // A twin request (same model and input) may own a candidate: it is not this one.
      if (!existing && !found) found = candidate
    }
    const ledger = await store.getLedgerEntry(pending.ledgerId)
    if (ledger?.state !== 'reserved') {
      await store.deletePendingCreate(pending.ledgerId)
      return 'already-settled'
    }
    if (found) {
      await o.adopt(pending, found)
      await store.deletePendingCreate(pending.ledgerId)
      log.info({ predictionId: found.id, ledgerId: pending.ledgerId }, 'adopted a prediction whose create was interrupted')
      return 'adopted'
    }
    await store.release(pending.ledgerId, o.now())
    await store.deletePendingCreate(pending.ledgerId)
    log.info({ ledgerId: pending.ledgerId }, 'interrupted create never reached Replicate; credits released')
    return 'released'
  }

  return {
    async run (signal) {
      const due = await store.listPendingCreates(o.now() - o.afterMs)
      if (due.length === 0) return []
      if (!(await store.lease(LEASE, o.instanceId, o.leaseMs, o.now()))) return []
      const outcomes: Outcome[] = []
      try {
        // One listing covers every due record: from the oldest to now.
        const oldest = Math.min(...due.map((p) => p.createdAt))
        const listed = await o.replicate.listPredictions({ createdAfter: new Date(oldest - SKEW_MS), createdBefore: new Date(o.now() + SKEW_MS), ...(signal ? { signal } : {}) })
        for (const pending of due) {
          if (signal?.aborted) break
          // Renewed per record: a lapsed lease means another instance may be at it.
          if (!(await store.lease(LEASE, o.instanceId, o.leaseMs, o.now()))) break
          outcomes.push(await reconcileOne(pending, listed))
        }
      } finally {
        await store.releaseLease(LEASE, o.instanceId).catch(() => {})
      }
      return outcomes
    }
  }
}

import type { Warning } from '../schemas/generation.ts'

/** What the gateway knows about a prediction beyond Replicate's object: the public model, the quote and the warnings. */
export interface PredictionRecord {
  id: string
  model: string
  creditsPerImage: number
  numImages: number
  warnings: Warning[]
  createdAt: number
}

export interface PredictionRecordStore {
  get: (id: string) => PredictionRecord | undefined
  set: (record: PredictionRecord) => void
}

/**
 * Bounded in-memory records, oldest dropped first. Replicate forgets a prediction's data after an
 * hour; a day of records is plenty for this single-instance store.
 */
export function createMemoryRecordStore ({ maxEntries = 50_000, ttlMs = 24 * 3600_000, now = Date.now } = {}): PredictionRecordStore {
  const records = new Map<string, PredictionRecord>()
  return {
    get (id) {
      const record = records.get(id)
      if (record && now() - record.createdAt > ttlMs) {
        records.delete(id)
        return undefined
      }
      return record
    },
    set (record) {
      records.delete(record.id)
      records.set(record.id, record)
      // Map keeps insertion order, so the first key is the oldest.
      while (records.size > maxEntries) records.delete(records.keys().next().value as string)
    }
  }
}

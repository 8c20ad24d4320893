import { Redis } from 'ioredis'
import { dayOf, monthOf, roundUsd, toBalance } from './types.ts'
import type {
  ApiKeyRecord, Balance, Budget, IdempotencyBegin, LedgerEntry, LedgerState, PredictionEntry, RateSpec, RateTake,
  ReserveRequest, ReserveResult, StateStore, StoredResponse, UsageReport, UsageRow, WebhookDelivery
} from './types.ts'

/**
 * The shared store for many instances. Every decision is one Lua script, so it is atomic on the
 * server whichever instance sends it. Meant for a single Redis primary (keys are not hash-tagged
 * for Cluster).
 */

const RESERVE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, 0, 0} end
local credits = tonumber(ARGV[3])
if ARGV[8] == '1' then
  local bk = KEYS[3]
  if ARGV[10] == 'month' then bk = KEYS[2] end
  local used = tonumber(redis.call('HGET', bk, 'used') or '0')
  local reserved = tonumber(redis.call('HGET', bk, 'reserved') or '0')
  if used + reserved + credits > tonumber(ARGV[9]) then return {0, used, reserved} end
end
redis.call('HSET', KEYS[1], 'keyId', ARGV[1], 'model', ARGV[2], 'state', 'reserved', 'credits', credits, 'usd', ARGV[4],
  'images', ARGV[5], 'month', ARGV[6], 'createdAt', ARGV[7], 'settledAt', '')
redis.call('HINCRBY', KEYS[2], 'reserved', credits)
redis.call('HINCRBY', KEYS[3], 'reserved', credits)
return {1, 0, 0}
`

// ARGV: prefix, mode ('settle' | 'release'), credits, usd, images, now, day
const FINISH = `
if redis.call('HGET', KEYS[1], 'state') ~= 'reserved' then return 0 end
local keyId = redis.call('HGET', KEYS[1], 'keyId')
local month = redis.call('HGET', KEYS[1], 'month')
local model = redis.call('HGET', KEYS[1], 'model')
local held = tonumber(redis.call('HGET', KEYS[1], 'credits'))
local p = ARGV[1]
local bm = p .. 'bal:' .. keyId .. ':m:' .. month
local bt = p .. 'bal:' .. keyId .. ':t'
redis.call('HINCRBY', bm, 'reserved', -held)
redis.call('HINCRBY', bt, 'reserved', -held)
if ARGV[2] == 'settle' then
  local credits = tonumber(ARGV[3])
  redis.call('HINCRBY', bm, 'used', credits)
  redis.call('HINCRBY', bt, 'used', credits)
  redis.call('HSET', KEYS[1], 'state', 'settled', 'credits', credits, 'usd', ARGV[4], 'images', ARGV[5], 'settledAt', ARGV[6])
  local uk = p .. 'use:' .. keyId .. ':' .. ARGV[7]
  redis.call('HINCRBY', uk, model .. '|p', 1)
  redis.call('HINCRBY', uk, model .. '|i', tonumber(ARGV[5]))
  redis.call('HINCRBY', uk, model .. '|c', credits)
  redis.call('HINCRBYFLOAT', uk, model .. '|u', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'released', 'credits', 0, 'usd', 0, 'images', 0, 'settledAt', ARGV[6])
end
return 1
`

// ARGV: fingerprint, now, lockMs, ttlMs
const IDEM_BEGIN = `
local r = redis.call('HMGET', KEYS[1], 'fp', 'state', 'response', 'locked')
if r[1] then
  if r[1] ~= ARGV[1] then return {'mismatch'} end
  if r[2] == 'completed' then return {'completed', r[3]} end
  if tonumber(r[4]) > tonumber(ARGV[2]) then return {'in_flight'} end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'in_flight', 'locked', tostring(tonumber(ARGV[2]) + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'started'}
`

const IDEM_COMPLETE = `
if redis.call('HGET', KEYS[1], 'fp') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'completed', 'response', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

const IDEM_ABANDON = `
if redis.call('HGET', KEYS[1], 'state') == 'in_flight' then redis.call('DEL', KEYS[1]) end
return 1
`

// GCRA, the same steps as gcra() in types.ts. ARGV: perMinute, burst, maxWaitMs, now
const RATE_TAKE = `
local interval = 60000 / tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxWait = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[4])
local base = math.max(tat, now)
local newTat = base + interval
local allowAt = newTat - burst * interval
local wait = allowAt - now
if wait > maxWait then
  return {0, '0', tostring(math.ceil(wait - maxWait)), 0, tostring(math.ceil(base - now))}
end
redis.call('SET', KEYS[1], string.format('%.3f', newTat), 'PX', math.ceil(newTat - now) + 1000)
local remaining = math.max(0, math.floor((now - allowAt) / interval))
return {1, tostring(math.max(0, math.ceil(wait))), '0', remaining, tostring(math.ceil(newTat - now))}
`

const LEASE = `
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

const LEASE_RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`

const REVOKE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'revokedAt', ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`

// KEYS: pred:<id>, pred:by:<owner>, pred:open. ARGV: doc, finalized (0|1), history member, createdAt, id.
// A finalized prediction stays final: a late write of an earlier state (a poll racing a webhook on another
// instance) is dropped, so the ledger and the record never disagree.
const PUT_PREDICTION = `
if ARGV[2] == '0' then
  local cur = redis.call('GET', KEYS[1])
  if cur and cjson.decode(cur).finalized == true then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
if ARGV[2] == '1' then redis.call('ZREM', KEYS[3], ARGV[5]) else redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5]) end
return 1
`

type Scripted = Redis & {
  fgwPutPrediction: (...args: (string | number)[]) => Promise<number>
  fgwReserve: (...args: (string | number)[]) => Promise<[number, number, number]>
  fgwFinish: (...args: (string | number)[]) => Promise<number>
  fgwIdemBegin: (...args: (string | number)[]) => Promise<[string, string?]>
  fgwIdemComplete: (...args: (string | number)[]) => Promise<number>
  fgwIdemAbandon: (...args: (string | number)[]) => Promise<number>
  fgwRateTake: (...args: (string | number)[]) => Promise<[number, string, string, number, string]>
  fgwLease: (...args: (string | number)[]) => Promise<number>
  fgwLeaseRelease: (...args: (string | number)[]) => Promise<number>
  fgwRevoke: (...args: (string | number)[]) => Promise<number>
}

export interface RedisStoreOptions {
  url: string
  /** Prepended to every key, so several deployments (or test runs) can share a server. */
  prefix?: string
}

const DAY_MS = 86_400_000
/** How many of an owner's predictions one history page reads at most while filtering; a short page then has a next cursor. */
const LIST_SCAN_MAX = 1_000
const LIST_BATCH = 100

function historyMember (createdAt: number, id: string): string {
  return `${String(createdAt).padStart(15, '0')}:${id}`
}

export function createRedisStore (opts: RedisStoreOptions): StateStore {
  const p = opts.prefix ?? 'fgw:'
  const redis = new Redis(opts.url, { maxRetriesPerRequest: 3, enableAutoPipelining: true, lazyConnect: false }) as Scripted
  const scripts: Record<string, [number, string]> = {
    fgwPutPrediction: [3, PUT_PREDICTION],
    fgwReserve: [3, RESERVE],
    fgwFinish: [1, FINISH],
    fgwIdemBegin: [1, IDEM_BEGIN],
    fgwIdemComplete: [1, IDEM_COMPLETE],
    fgwIdemAbandon: [1, IDEM_ABANDON],
    fgwRateTake: [1, RATE_TAKE],
    fgwLease: [1, LEASE],
    fgwLeaseRelease: [1, LEASE_RELEASE],
    fgwRevoke: [2, REVOKE]
  }
  for (const [name, [numberOfKeys, lua]] of Object.entries(scripts)) redis.defineCommand(name, { numberOfKeys, lua })

  async function keyFromHash (id: string): Promise<ApiKeyRecord | undefined> {
    const h = await redis.hgetall(`${p}key:${id}`)
    if (!h.doc) return undefined
    const key = JSON.parse(h.doc) as ApiKeyRecord
    return { ...key, revokedAt: h.revokedAt ? Number(h.revokedAt) : null, webhook: h.webhook ? h.webhook : null }
  }

  async function finish (id: string, mode: 'settle' | 'release', final: { credits: number, usd: number, images: number }, now: number): Promise<boolean> {
    const done = await redis.fgwFinish(`${p}led:${id}`, p, mode, final.credits, String(roundUsd(final.usd)), final.images, now, dayOf(now))
    return done === 1
  }

  async function balanceOf (keyId: string, budget: Budget | null, now: number): Promise<Balance> {
    const period = budget?.period ?? 'month'
    const h = await redis.hgetall(period === 'month' ? `${p}bal:${keyId}:m:${monthOf(now)}` : `${p}bal:${keyId}:t`)
    return toBalance(budget, Number(h.used ?? 0), Number(h.reserved ?? 0))
  }

  return {
    kind: 'redis',

    async insertKey (k) {
      const { revokedAt, webhook, ...doc } = k
      const fields: Record<string, string> = { doc: JSON.stringify(doc) }
      if (webhook) fields.webhook = webhook
      if (revokedAt !== null) fields.revokedAt = String(revokedAt)
      await redis.multi().hset(`${p}key:${k.id}`, fields).sadd(`${p}keys`, k.id).exec()
      if (revokedAt !== null) await redis.sadd(`${p}keys:revoked`, k.id)
    },
    getKey: keyFromHash,
    async listKeys () {
      const ids = await redis.smembers(`${p}keys`)
      const keys = (await Promise.all(ids.map(keyFromHash))).filter((k): k is ApiKeyRecord => k !== undefined)
      return keys.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
    },
    async setKeyWebhook (id, url) {
      if (!(await redis.exists(`${p}key:${id}`))) return false
      if (url === null) await redis.hdel(`${p}key:${id}`, 'webhook')
      else await redis.hset(`${p}key:${id}`, 'webhook', url)
      return true
    },
    async revokeKey (id, now) {
      return (await redis.fgwRevoke(`${p}key:${id}`, `${p}keys:revoked`, now, id)) === 1
    },
    async countActiveKeys () {
      const [all, revoked] = await Promise.all([redis.scard(`${p}keys`), redis.scard(`${p}keys:revoked`)])
      return all - revoked
    },
    async countKeys () {
      // Revoking adds to keys:revoked and leaves the key in keys, so this set is every key ever created.
      return redis.scard(`${p}keys`)
    },

    async putPrediction (e) {
      // pred:by:<owner> orders an owner's predictions by creation, for the history.
      const written = await redis.fgwPutPrediction(`${p}pred:${e.id}`, `${p}pred:by:${e.owner}`, `${p}pred:open`, JSON.stringify(e), e.finalized ? 1 : 0, historyMember(e.createdAt, e.id), e.createdAt, e.id)
      return written === 1
    },
    async getPrediction (id) {
      const doc = await redis.get(`${p}pred:${id}`)
      return doc ? JSON.parse(doc) as PredictionEntry : undefined
    },
    async listUnfinalized () {
      const ids = await redis.zrange(`${p}pred:open`, 0, -1)
      if (ids.length === 0) return []
      const docs = await redis.mget(ids.map((id) => `${p}pred:${id}`))
      return docs.filter((d): d is string => d !== null).map((d) => JSON.parse(d) as PredictionEntry).filter((e) => !e.finalized)
    },

    async listPredictions (owner, o) {
      // Members are `<created_at, 15 digits>:<id>` at score 0, so lexicographic order is (created_at, id) and a
      // cursor is an exact exclusive bound.
      let max = o.createdBefore === undefined ? undefined : historyMember(o.createdBefore, '')
      if (o.cursor) {
        const after = historyMember(o.cursor.createdAt, o.cursor.id)
        if (max === undefined || after < max) max = after
      }
      let bound = max === undefined ? '+' : `(${max}`
      // ';' sorts right after ':', so every member created at createdAfter itself is excluded.
      const min = o.createdAfter === undefined ? '-' : `(${historyMember(o.createdAfter, '').slice(0, -1)};`
      const found: PredictionEntry[] = []
      let scanned = 0
      while (scanned < LIST_SCAN_MAX) {
        const members = await redis.zrange(`${p}pred:by:${owner}`, bound, min, 'BYLEX', 'REV', 'LIMIT', 0, LIST_BATCH)
        if (members.length === 0) break
        const docs = await redis.mget(members.map((m) => `${p}pred:${m.slice(16)}`))
        for (const [i, doc] of docs.entries()) {
          scanned++
          bound = `(${members[i]!}`
          if (doc === null) continue
          const e = JSON.parse(doc) as PredictionEntry
          if (o.model !== undefined && e.model !== o.model) continue
          if (o.status !== undefined && (e.last as { status?: string } | null)?.status !== o.status) continue
          found.push(e)
          if (found.length > o.limit) {
            const last = found[o.limit - 1]!
            return { entries: found.slice(0, o.limit), next: { createdAt: last.createdAt, id: last.id } }
          }
        }
        if (members.length < LIST_BATCH) return { entries: found, next: null }
      }
      if (scanned < LIST_SCAN_MAX) return { entries: found, next: null }
      // The scan budget is spent: the next page starts after the last prediction read, matched or not.
      const last = bound.slice(1)
      return { entries: found, next: { createdAt: Number(last.slice(0, 15)), id: last.slice(16) } }
    },

    async reserve (req: ReserveRequest): Promise<ReserveResult> {
      const month = monthOf(req.now)
      const [ok] = await redis.fgwReserve(
        `${p}led:${req.id}`, `${p}bal:${req.keyId}:m:${month}`, `${p}bal:${req.keyId}:t`,
        req.keyId, req.model, req.credits, String(roundUsd(req.usd)), req.images, month, req.now,
        req.budget ? '1' : '0', req.budget?.credits ?? 0, req.budget?.period ?? 'month'
      )
      if (ok === 1) return { ok: true }
      return { ok: false, balance: await balanceOf(req.keyId, req.budget, req.now) }
    },
    settle: (id, final, now) => finish(id, 'settle', final, now),
    release: (id, now) => finish(id, 'release', { credits: 0, usd: 0, images: 0 }, now),
    async getLedgerEntry (id) {
      const h = await redis.hgetall(`${p}led:${id}`)
      if (!h.keyId) return undefined
      return {
        id,
        keyId: h.keyId,
        model: h.model ?? '',
        state: h.state as LedgerState,
        credits: Number(h.credits),
        usd: Number(h.usd),
        images: Number(h.images),
        month: h.month ?? '',
        createdAt: Number(h.createdAt),
        settledAt: h.settledAt ? Number(h.settledAt) : null
      } satisfies LedgerEntry
    },
    balance: balanceOf,
    async usage (keyId, since): Promise<UsageReport> {
      const days: string[] = []
      // Bounded: a year of days at most.
      for (let t = Math.max(since, Date.now() - 366 * DAY_MS); t <= Date.now() + DAY_MS; t += DAY_MS) days.push(dayOf(t))
      const hashes = await Promise.all([...new Set(days)].map(async (day) => [day, await redis.hgetall(`${p}use:${keyId}:${day}`)] as const))
      const report: UsageReport = { byModel: {}, byDay: {} }
      const sinceDay = dayOf(since)
      for (const [day, h] of hashes) {
        if (day < sinceDay) continue
        for (const [field, value] of Object.entries(h)) {
          const cut = field.lastIndexOf('|')
          const model = field.slice(0, cut)
          const kind = field.slice(cut + 1)
          const n = Number(value)
          for (const [table, name] of [[report.byModel, model], [report.byDay, day]] as const) {
            const row: UsageRow = table[name] ?? { predictions: 0, images: 0, credits: 0, usd: 0 }
            if (kind === 'p') row.predictions += n
            else if (kind === 'i') row.images += n
            else if (kind === 'c') row.credits += n
            else if (kind === 'u') row.usd = roundUsd(row.usd + n)
            table[name] = row
          }
        }
      }
      return report
    },

    async idempotencyBegin (scope, fingerprint, o): Promise<IdempotencyBegin> {
      const [state, response] = await redis.fgwIdemBegin(`${p}idem:${scope}`, fingerprint, o.now, o.lockMs, o.ttlMs)
      if (state === 'completed') return { state, response: JSON.parse(response ?? '{}') as StoredResponse }
      return { state: state as 'started' | 'in_flight' | 'mismatch' }
    },
    async idempotencyComplete (scope, fingerprint, response, o) {
      await redis.fgwIdemComplete(`${p}idem:${scope}`, fingerprint, JSON.stringify(response), o.ttlMs)
    },
    async idempotencyAbandon (scope) {
      await redis.fgwIdemAbandon(`${p}idem:${scope}`)
    },

    async rateTake (bucket: string, spec: RateSpec, now: number): Promise<RateTake> {
      const [allowed, waitMs, retryAfterMs, remaining, resetMs] = await redis.fgwRateTake(`${p}rl:${bucket}`, spec.perMinute, spec.burst, spec.maxWaitMs, now)
      return { allowed: allowed === 1, waitMs: Number(waitMs), retryAfterMs: Number(retryAfterMs), remaining: Number(remaining), resetMs: Number(resetMs) }
    },

    async addWebhookDelivery (d) {
      // SET NX decides; the indexes are written after, and rewriting them is harmless.
      if ((await redis.set(`${p}whd:${d.id}`, JSON.stringify(d), 'NX')) === null) return false
      const m = redis.multi().zadd(`${p}whd:by:${d.predictionId}`, d.createdAt, d.id)
      if (d.state === 'pending') m.zadd(`${p}whd:due`, d.nextAt, d.id)
      await m.exec()
      return true
    },
    async putWebhookDelivery (d) {
      // whd:by:<prediction> lists a prediction's deliveries; whd:due holds the pending ones by when they are due.
      const m = redis.multi().set(`${p}whd:${d.id}`, JSON.stringify(d)).zadd(`${p}whd:by:${d.predictionId}`, d.createdAt, d.id)
      if (d.state === 'pending') m.zadd(`${p}whd:due`, d.nextAt, d.id)
      else m.zrem(`${p}whd:due`, d.id)
      await m.exec()
    },
    async getWebhookDelivery (id) {
      const doc = await redis.get(`${p}whd:${id}`)
      return doc ? JSON.parse(doc) as WebhookDelivery : undefined
    },
    async listWebhookDeliveries (predictionId) {
      const ids = await redis.zrange(`${p}whd:by:${predictionId}`, 0, -1)
      if (ids.length === 0) return []
      const docs = await redis.mget(ids.map((id) => `${p}whd:${id}`))
      return docs.filter((d): d is string => d !== null).map((d) => JSON.parse(d) as WebhookDelivery)
    },
    async listDueWebhookDeliveries (now, limit) {
      const ids = await redis.zrangebyscore(`${p}whd:due`, '-inf', now, 'LIMIT', 0, limit)
      if (ids.length === 0) return []
      const docs = await redis.mget(ids.map((id) => `${p}whd:${id}`))
      return docs.filter((d): d is string => d !== null).map((d) => JSON.parse(d) as WebhookDelivery).filter((d) => d.state === 'pending')
    },

    async lease (name, holder, ttlMs) {
      return (await redis.fgwLease(`${p}lease:${name}`, holder, Math.max(1, Math.ceil(ttlMs)))) === 1
    },
    async releaseLease (name, holder) {
      await redis.fgwLeaseRelease(`${p}lease:${name}`, holder)
    },

    async getSecret (name) {
      return (await redis.get(`${p}secret:${name}`)) ?? undefined
    },
    async putSecret (name, value) {
      await redis.set(`${p}secret:${name}`, value)
    },
    async getOrCreateSecret (name, candidate) {
      // SET NX, then read: the first writer's secret wins, whichever instance it is.
      await redis.set(`${p}secret:${name}`, candidate, 'NX')
      return (await redis.get(`${p}secret:${name}`)) ?? candidate
    },

    async ping () {
      await redis.ping()
    },
    async close () {
      if (redis.status === 'end') return
      await redis.quit().catch(() => redis.disconnect())
    }
  }
}

import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import type { SQLInputValue } from 'node:sqlite'
import { dayOf, gcra, monthOf, roundUsd, toBalance } from './types.ts'
import type {
  ApiKeyRecord, Balance, Budget, BudgetPeriod, IdempotencyBegin, LedgerEntry, LedgerState, PredictionEntry, RateSpec,
  RateTake, ReserveRequest, ReserveResult, StateStore, StoredResponse, UsageReport, UsageRow, WebhookDelivery
} from './types.ts'

/**
 * The embedded store: one SQLite file in WAL mode, through Node's built-in `node:sqlite` (no native
 * addon to fetch). Decisions run in `BEGIN IMMEDIATE` transactions, so they stay atomic even when
 * several processes share the file (a busy timeout makes them queue rather than fail).
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL,
  name TEXT NOT NULL,
  plan TEXT NOT NULL,
  budget_credits INTEGER,
  budget_period TEXT NOT NULL,
  rate_limit_per_minute INTEGER,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS predictions (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  model TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  finalized INTEGER NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_unfinalized ON predictions (finalized, created_at);
CREATE INDEX IF NOT EXISTS predictions_owner_created ON predictions (owner, created_at, id);
CREATE TABLE IF NOT EXISTS ledger (
  id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  state TEXT NOT NULL,
  credits INTEGER NOT NULL,
  usd REAL NOT NULL,
  images INTEGER NOT NULL,
  month TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  settled_at INTEGER
);
CREATE INDEX IF NOT EXISTS ledger_key_month ON ledger (key_id, month, state);
CREATE INDEX IF NOT EXISTS ledger_key_settled ON ledger (key_id, settled_at);
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  state TEXT NOT NULL,
  response TEXT,
  locked_until INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_buckets (
  name TEXT PRIMARY KEY,
  tat REAL NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id TEXT PRIMARY KEY,
  prediction_id TEXT NOT NULL,
  state TEXT NOT NULL,
  next_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_prediction ON webhook_deliveries (prediction_id, created_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
`

type Row = Record<string, SQLInputValue>

function keyFromRow (r: Row): ApiKeyRecord {
  return {
    id: String(r.id),
    secretHash: String(r.secret_hash),
    name: String(r.name),
    plan: String(r.plan),
    budgetCredits: r.budget_credits === null ? null : Number(r.budget_credits),
    budgetPeriod: String(r.budget_period) as BudgetPeriod,
    rateLimitPerMinute: r.rate_limit_per_minute === null ? null : Number(r.rate_limit_per_minute),
    createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    webhook: r.webhook == null ? null : String(r.webhook)
  }
}

function ledgerFromRow (r: Row): LedgerEntry {
  return {
    id: String(r.id),
    keyId: String(r.key_id),
    model: String(r.model),
    state: String(r.state) as LedgerState,
    credits: Number(r.credits),
    usd: Number(r.usd),
    images: Number(r.images),
    month: String(r.month),
    createdAt: Number(r.created_at),
    settledAt: r.settled_at === null ? null : Number(r.settled_at)
  }
}

export interface SqliteStoreOptions {
  /** A file path, or `:memory:`. */
  path: string
  busyTimeoutMs?: number
}

export function createSqliteStore (opts: SqliteStoreOptions): StateStore {
  if (opts.path !== ':memory:') mkdirSync(path.dirname(path.resolve(opts.path)), { recursive: true })
  const db = new DatabaseSync(opts.path, { timeout: opts.busyTimeoutMs ?? 5_000 })
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;')
  db.exec(SCHEMA)
  // Files made before keys had a default webhook get the column.
  if (!(db.prepare('PRAGMA table_info(api_keys)').all() as Row[]).some((c) => c.name === 'webhook')) db.exec('ALTER TABLE api_keys ADD COLUMN webhook TEXT')

  const q = {
    insertKey: db.prepare(`INSERT INTO api_keys (id, secret_hash, name, plan, budget_credits, budget_period, rate_limit_per_minute, created_at, revoked_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    getKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
    listKeys: db.prepare('SELECT * FROM api_keys ORDER BY created_at, id'),
    revokeKey: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    setKeyWebhook: db.prepare('UPDATE api_keys SET webhook = ? WHERE id = ?'),
    countActive: db.prepare('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL'),
    countAll: db.prepare('SELECT COUNT(*) AS n FROM api_keys'),
    putPrediction: db.prepare(`INSERT INTO predictions (id, owner, model, created_at, finalized, doc) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET finalized = excluded.finalized, doc = excluded.doc WHERE predictions.finalized = 0 OR excluded.finalized = 1`),
    getPrediction: db.prepare('SELECT doc FROM predictions WHERE id = ?'),
    listUnfinalized: db.prepare('SELECT doc FROM predictions WHERE finalized = 0 ORDER BY created_at, id'),
    heldInMonth: db.prepare(`SELECT COALESCE(SUM(CASE WHEN state = 'settled' THEN credits ELSE 0 END), 0) AS used,
      COALESCE(SUM(CASE WHEN state = 'reserved' THEN credits ELSE 0 END), 0) AS reserved FROM ledger WHERE key_id = ? AND month = ?`),
    heldInTotal: db.prepare(`SELECT COALESCE(SUM(CASE WHEN state = 'settled' THEN credits ELSE 0 END), 0) AS used,
      COALESCE(SUM(CASE WHEN state = 'reserved' THEN credits ELSE 0 END), 0) AS reserved FROM ledger WHERE key_id = ?`),
    insertLedger: db.prepare(`INSERT INTO ledger (id, key_id, model, state, credits, usd, images, month, created_at, settled_at)
      VALUES (?, ?, ?, 'reserved', ?, ?, ?, ?, ?, NULL)`),
    settle: db.prepare(`UPDATE ledger SET state = 'settled', credits = ?, usd = ?, images = ?, settled_at = ? WHERE id = ? AND state = 'reserved'`),
    release: db.prepare(`UPDATE ledger SET state = 'released', credits = 0, usd = 0, images = 0, settled_at = ? WHERE id = ? AND state = 'reserved'`),
    getLedger: db.prepare('SELECT * FROM ledger WHERE id = ?'),
    usage: db.prepare(`SELECT model, settled_at, credits, usd, images FROM ledger WHERE key_id = ? AND state = 'settled' AND settled_at >= ?`),
    getIdem: db.prepare('SELECT * FROM idempotency WHERE scope = ?'),
    putIdem: db.prepare(`INSERT INTO idempotency (scope, fingerprint, state, response, locked_until, expires_at) VALUES (?, ?, 'in_flight', NULL, ?, ?)
      ON CONFLICT (scope) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'in_flight', response = NULL,
        locked_until = excluded.locked_until, expires_at = excluded.expires_at`),
    completeIdem: db.prepare(`UPDATE idempotency SET state = 'completed', response = ?, expires_at = ? WHERE scope = ? AND fingerprint = ?`),
    abandonIdem: db.prepare(`DELETE FROM idempotency WHERE scope = ? AND state = 'in_flight'`),
    purgeIdem: db.prepare('DELETE FROM idempotency WHERE expires_at < ?'),
    getBucket: db.prepare('SELECT tat, expires_at FROM rate_buckets WHERE name = ?'),
    putBucket: db.prepare(`INSERT INTO rate_buckets (name, tat, expires_at) VALUES (?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET tat = excluded.tat, expires_at = excluded.expires_at`),
    putDelivery: db.prepare(`INSERT INTO webhook_deliveries (id, prediction_id, state, next_at, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET state = excluded.state, next_at = excluded.next_at, doc = excluded.doc`),
    addDelivery: db.prepare(`INSERT INTO webhook_deliveries (id, prediction_id, state, next_at, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (id) DO NOTHING`),
    getDelivery: db.prepare('SELECT doc FROM webhook_deliveries WHERE id = ?'),
    listDeliveries: db.prepare('SELECT doc FROM webhook_deliveries WHERE prediction_id = ? ORDER BY created_at, id'),
    listDue: db.prepare(`SELECT doc FROM webhook_deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?`),
    getLease: db.prepare('SELECT holder, expires_at FROM leases WHERE name = ?'),
    putLease: db.prepare(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at`),
    dropLease: db.prepare('DELETE FROM leases WHERE name = ? AND holder = ?'),
    // INSERT OR IGNORE then read: the first writer's secret wins, whichever process it is.
    putSecret: db.prepare('INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)'),
    getSecret: db.prepare('SELECT value FROM secrets WHERE name = ?'),
    replaceSecret: db.prepare('INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value')
  }

  /** One owner's page, newest first; the filters are optional, so each is `? IS NULL OR …`. */
  const listOwned = db.prepare(`SELECT doc FROM predictions
    WHERE owner = :owner
      AND (:cursorAt IS NULL OR created_at < :cursorAt OR (created_at = :cursorAt AND id < :cursorId))
      AND (:after IS NULL OR created_at > :after)
      AND (:before IS NULL OR created_at < :before)
      AND (:model IS NULL OR model = :model)
      AND (:status IS NULL OR json_extract(doc, '$.last.status') = :status)
    ORDER BY created_at DESC, id DESC
    LIMIT :limit`)

  /** Runs `fn` as one write transaction; IMMEDIATE takes the write lock up front, so reads inside see the latest state. */
  function tx<T> (fn: () => T): T {
    db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      db.exec('COMMIT')
      return result
    } catch (err) {
      db.exec('ROLLBACK')
      throw err
    }
  }

  function held (keyId: string, period: BudgetPeriod, now: number): { used: number, reserved: number } {
    const row = (period === 'month' ? q.heldInMonth.get(keyId, monthOf(now)) : q.heldInTotal.get(keyId)) as Row
    return { used: Number(row.used), reserved: Number(row.reserved) }
  }

  function balanceOf (keyId: string, budget: Budget | null, now: number): Balance {
    const period = budget?.period ?? 'month'
    const { used, reserved } = held(keyId, period, now)
    return toBalance(budget, used, reserved)
  }

  let closed = false

  return {
    kind: 'sqlite',

    async insertKey (k) {
      q.insertKey.run(k.id, k.secretHash, k.name, k.plan, k.budgetCredits, k.budgetPeriod, k.rateLimitPerMinute, k.createdAt, k.revokedAt)
    },
    async getKey (id) {
      const row = q.getKey.get(id) as Row | undefined
      return row ? keyFromRow(row) : undefined
    },
    async listKeys () {
      return (q.listKeys.all() as Row[]).map(keyFromRow)
    },
    async setKeyWebhook (id, url) {
      return Number(q.setKeyWebhook.run(url, id).changes) > 0
    },
    async revokeKey (id, now) {
      return Number(q.revokeKey.run(now, id).changes) > 0
    },
    async countActiveKeys () {
      return Number((q.countActive.get() as Row).n)
    },
    async countKeys () {
      // Revoking only marks a key, so the table still holds every key ever created.
      return Number((q.countAll.get() as Row).n)
    },

    async putPrediction (e) {
      // A finalized prediction stays final: a late write of an earlier state is dropped (see the type).
      return Number(q.putPrediction.run(e.id, e.owner, e.model, e.createdAt, e.finalized ? 1 : 0, JSON.stringify(e)).changes) > 0
    },
    async getPrediction (id) {
      const row = q.getPrediction.get(id) as Row | undefined
      return row ? JSON.parse(String(row.doc)) as PredictionEntry : undefined
    },
    async listUnfinalized () {
      return (q.listUnfinalized.all() as Row[]).map((r) => JSON.parse(String(r.doc)) as PredictionEntry)
    },

    async listPredictions (owner, o) {
      const rows = listOwned.all({
        owner,
        cursorAt: o.cursor?.createdAt ?? null,
        cursorId: o.cursor?.id ?? null,
        after: o.createdAfter ?? null,
        before: o.createdBefore ?? null,
        model: o.model ?? null,
        status: o.status ?? null,
        limit: o.limit + 1
      }) as Row[]
      const entries = rows.slice(0, o.limit).map((r) => JSON.parse(String(r.doc)) as PredictionEntry)
      const last = entries.at(-1)
      return { entries, next: rows.length > o.limit && last ? { createdAt: last.createdAt, id: last.id } : null }
    },

    async reserve (req: ReserveRequest): Promise<ReserveResult> {
      return tx(() => {
        if (req.budget) {
          const balance = balanceOf(req.keyId, req.budget, req.now)
          if ((balance.remaining_credits ?? 0) < req.credits) return { ok: false, balance }
        }
        q.insertLedger.run(req.id, req.keyId, req.model, req.credits, roundUsd(req.usd), req.images, monthOf(req.now), req.now)
        return { ok: true }
      })
    },
    async settle (id, final, now) {
      return Number(q.settle.run(final.credits, roundUsd(final.usd), final.images, now, id).changes) > 0
    },
    async addWebhookDelivery (d) {
      return Number(q.addDelivery.run(d.id, d.predictionId, d.state, d.nextAt, d.createdAt, JSON.stringify(d)).changes) > 0
    },
    async putWebhookDelivery (d) {
      q.putDelivery.run(d.id, d.predictionId, d.state, d.nextAt, d.createdAt, JSON.stringify(d))
    },
    async getWebhookDelivery (id) {
      const row = q.getDelivery.get(id) as Row | undefined
      return row ? JSON.parse(String(row.doc)) as WebhookDelivery : undefined
    },
    async listWebhookDeliveries (predictionId) {
      return (q.listDeliveries.all(predictionId) as Row[]).map((r) => JSON.parse(String(r.doc)) as WebhookDelivery)
    },
    async listDueWebhookDeliveries (now, limit) {
      return (q.listDue.all(now, limit) as Row[]).map((r) => JSON.parse(String(r.doc)) as WebhookDelivery)
    },

    async release (id, now) {
      return Number(q.release.run(now, id).changes) > 0
    },
    async getLedgerEntry (id) {
      const row = q.getLedger.get(id) as Row | undefined
      return row ? ledgerFromRow(row) : undefined
    },
    async balance (keyId, budget, now) {
      return balanceOf(keyId, budget, now)
    },
    async usage (keyId, since): Promise<UsageReport> {
      const report: UsageReport = { byModel: {}, byDay: {} }
      for (const r of q.usage.all(keyId, since) as Row[]) {
        const add = (row: UsageRow | undefined): UsageRow => {
          const next = row ?? { predictions: 0, images: 0, credits: 0, usd: 0 }
          next.predictions += 1
          next.images += Number(r.images)
          next.credits += Number(r.credits)
          next.usd = roundUsd(next.usd + Number(r.usd))
          return next
        }
        report.byModel[String(r.model)] = add(report.byModel[String(r.model)])
        const day = dayOf(Number(r.settled_at))
        report.byDay[day] = add(report.byDay[day])
      }
      return report
    },

    async idempotencyBegin (scope, fingerprint, o): Promise<IdempotencyBegin> {
      return tx(() => {
        const row = q.getIdem.get(scope) as Row | undefined
        if (row && Number(row.expires_at) >= o.now) {
          if (String(row.fingerprint) !== fingerprint) return { state: 'mismatch' }
          if (row.state === 'completed') return { state: 'completed', response: JSON.parse(String(row.response)) as StoredResponse }
          if (Number(row.locked_until) > o.now) return { state: 'in_flight' }
          // The holder died mid-request (its lock ran out): this attempt takes over.
        }
        q.putIdem.run(scope, fingerprint, o.now + o.lockMs, o.now + o.ttlMs)
        return { state: 'started' }
      })
    },
    async idempotencyComplete (scope, fingerprint, response, o) {
      q.completeIdem.run(JSON.stringify(response), o.now + o.ttlMs, scope, fingerprint)
      // Expired records go on the write path, so the table stays the size of one TTL's traffic.
      q.purgeIdem.run(o.now)
    },
    async idempotencyAbandon (scope) {
      q.abandonIdem.run(scope)
    },

    async rateTake (bucket: string, spec: RateSpec, now: number): Promise<RateTake> {
      return tx(() => {
        const row = q.getBucket.get(bucket) as Row | undefined
        const tat = row && Number(row.expires_at) > now ? Number(row.tat) : undefined
        const { take, newTat } = gcra(tat, spec, now)
        if (newTat !== undefined) q.putBucket.run(bucket, newTat, Math.ceil(newTat) + 1)
        return take
      })
    },

    async lease (name, holder, ttlMs, now) {
      return tx(() => {
        const row = q.getLease.get(name) as Row | undefined
        if (row && String(row.holder) !== holder && Number(row.expires_at) > now) return false
        q.putLease.run(name, holder, now + ttlMs)
        return true
      })
    },
    async releaseLease (name, holder) {
      q.dropLease.run(name, holder)
    },

    async getSecret (name) {
      const row = q.getSecret.get(name) as Row | undefined
      return row ? String(row.value) : undefined
    },
    async putSecret (name, value) {
      q.replaceSecret.run(name, value)
    },
    async getOrCreateSecret (name, candidate) {
      q.putSecret.run(name, candidate)
      return String((q.getSecret.get(name) as Row).value)
    },

    async ping () {
      db.prepare('SELECT 1').get()
    },
    async close () {
      if (closed) return
      closed = true
      db.close()
    }
  }
}

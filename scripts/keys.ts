/**
 * Manage API keys in the configured state store (STATE_SQLITE_PATH, or REDIS_URL):
 *
 *   npm run keys -- create --plan basic [--budget 500] [--period month|total] [--rate 60] [--name "team a"]
 *   npm run keys -- list
 *   npm run keys -- revoke <key id>
 *   npm run keys -- webhook <key id> <https url | none>
 *   npm run keys -- webhook-secret <key id> [--rotate]
 *   npm run keys -- --help
 *
 * `create` prints the new key once; only its hash is stored.
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../src/config.ts'
import { loadEnvFile } from '../src/env-file.ts'
import { createRedisStore } from '../src/stores/redis.ts'
import { createSqliteStore } from '../src/stores/sqlite.ts'
import type { StateStore } from '../src/stores/types.ts'
import { createApiKey } from '../src/tenancy/keys.ts'
import { urlPolicyViolation } from '../src/net/url-policy.ts'
import { rotateWebhookSecret, webhookSecrets } from '../src/webhooks/secrets.ts'

const USAGE = 'usage: npm run keys -- create --plan free|basic|premium|pro [--budget N] [--period month|total] [--rate N] [--name TEXT] | list | revoke <id> | webhook <id> <url|none> | webhook-secret <id> [--rotate]'

const HELP = `Manage the gateway's API keys in its state store: the SQLite file (STATE_SQLITE_PATH, default
./data/flux-gateway.sqlite) or Redis when REDIS_URL is set (with REDIS_KEY_PREFIX). Settings come from the
environment and from .env, as for the server.

usage: npm run keys -- <command> [options]

commands:
  create --plan PLAN   make a key and print it once (only a hash of its secret is stored)
  list                 every key: id, active or revoked, plan, budget, rate, creation time, name
  revoke <id>          revoke a key by its id (or by the whole key); it cannot be undone
  webhook <id> <url>   the key's default webhook, used when a create names none (\`none\` clears it); https and public,
                       unless WEBHOOK_ALLOW_INSECURE is true
  webhook-secret <id>  the whsec_… secret the key's webhook deliveries are signed with (made on first need);
                       --rotate makes a new one, and the old one stays valid (both signatures are sent) for 24 h
  help                 this text (also --help, -h)

options of create:
  --plan PLAN          free, basic or premium (pro is another name for premium); required
  --budget N           credits the key may spend per period; default unlimited
  --period P           month (the default; resets on the 1st, UTC) or total (for the key's lifetime)
  --rate N             requests a minute (bursts up to N); default unlimited
  --name TEXT          a label shown by list

examples:
  npm run keys -- create --plan basic --budget 500
  npm run keys -- create --plan premium --budget 2000 --period total --rate 120 --name "team a"
  npm run keys -- list
  npm run keys -- revoke 3f2a9c0d41b7e655
  npm run keys -- webhook 3f2a9c0d41b7e655 https://hooks.example.com/flux
  npm run keys -- webhook-secret 3f2a9c0d41b7e655 --rotate
`

function positiveInteger (name: string, value: string | undefined): number | null {
  if (value === undefined) return null
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(value)}`)
  return n
}

const OPTIONS = {
  plan: { type: 'string' },
  budget: { type: 'string' },
  period: { type: 'string', default: 'month' },
  rate: { type: 'string' },
  name: { type: 'string', default: '' },
  rotate: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} as const

type Args = ReturnType<typeof parseArgs<{ args: string[], allowPositionals: true, options: typeof OPTIONS }>>

function parse (argv: string[]): Args {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS })
  } catch (err) {
    throw new Error(`${(err as Error).message}; see \`npm run keys -- --help\``, { cause: err })
  }
}

const keyIdOf = (arg: string): string => arg.startsWith('fgw_') ? arg.split('_')[1] ?? arg : arg

async function run (store: StateStore, { positionals, values }: Args, allowInsecureWebhooks: boolean): Promise<void> {
  const [command, arg] = positionals
  if (command === 'create') {
    if (!values.plan) throw new Error('--plan is required')
    if (values.period !== 'month' && values.period !== 'total') throw new Error('--period must be month or total')
    const { key, record } = await createApiKey(store, {
      name: values.name,
      plan: values.plan,
      budgetCredits: positiveInteger('budget', values.budget),
      budgetPeriod: values.period,
      rateLimitPerMinute: positiveInteger('rate', values.rate)
    })
    console.log(`created key ${record.id} (plan ${record.plan}, budget ${record.budgetCredits ?? 'unlimited'}${record.budgetCredits === null ? '' : ` per ${record.budgetPeriod}`}, rate ${record.rateLimitPerMinute ?? 'unlimited'}/min)`)
    console.log('store it now: it is not shown again')
    console.log(key)
  } else if (command === 'list') {
    const keys = await store.listKeys()
    if (keys.length === 0) console.log('no keys (authentication is off outside production)')
    for (const k of keys) {
      console.log([
        k.id,
        k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`,
        `plan=${k.plan}`,
        `budget=${k.budgetCredits === null ? 'unlimited' : `${k.budgetCredits}/${k.budgetPeriod}`}`,
        `rate=${k.rateLimitPerMinute ?? 'unlimited'}`,
        `created=${new Date(k.createdAt).toISOString()}`,
        k.name ? `name=${JSON.stringify(k.name)}` : ''
      ].filter(Boolean).join('  '))
    }
  } else if (command === 'revoke') {
    if (!arg) throw new Error('revoke needs a key id (see `list`)')
    const id = keyIdOf(arg)
    if (!(await store.revokeKey(id, Date.now()))) throw new Error(`no active key ${id}`)
    console.log(`revoked ${id}`)
  } else if (command === 'webhook') {
    const url = positionals[2]
    if (!arg || !url) throw new Error('webhook needs a key id and a URL (or none)')
    const id = keyIdOf(arg)
    if (url !== 'none') {
      let parsed: URL
      try { parsed = new URL(url) } catch { throw new Error(`${JSON.stringify(url)} is not an absolute URL`) }
      const why = urlPolicyViolation(parsed, { allowedSchemes: allowInsecureWebhooks ? ['https:', 'http:'] : ['https:'], allowPrivate: allowInsecureWebhooks })
      if (why !== undefined) throw new Error(`the webhook is refused: ${why}`)
    }
    if (!(await store.setKeyWebhook(id, url === 'none' ? null : url))) throw new Error(`no key ${id}`)
    console.log(url === 'none' ? `cleared the default webhook of ${id}` : `default webhook of ${id}: ${url}`)
  } else if (command === 'webhook-secret') {
    if (!arg) throw new Error('webhook-secret needs a key id (see `list`)')
    const id = keyIdOf(arg)
    if (!(await store.getKey(id))) throw new Error(`no key ${id}`)
    if (values.rotate) {
      const rotated = await rotateWebhookSecret(store, id, Date.now())
      console.log(`rotated; the previous secret stays valid until ${new Date(rotated.previousValidUntil).toISOString()}`)
      console.log(rotated.secret)
    } else {
      const [current] = await webhookSecrets(store, id, Date.now())
      console.log(current)
    }
  } else {
    throw new Error(`${USAGE}\n(npm run keys -- --help for more)`)
  }
}

let store: StateStore | undefined
try {
  // Arguments first: help and a mistyped option need neither the configuration nor the store.
  const args = parse(process.argv.slice(2))
  if (args.values.help || args.positionals[0] === 'help') {
    process.stdout.write(HELP)
  } else {
    // Keys live in the store alone: managing them needs no Replicate token, even in production.
    loadEnvFile()
    const config = loadConfig(process.env, { serving: false })
    store = config.REDIS_URL
      ? createRedisStore({ url: config.REDIS_URL, prefix: config.REDIS_KEY_PREFIX })
      : createSqliteStore({ path: config.STATE_SQLITE_PATH })
    await run(store, args, config.WEBHOOK_ALLOW_INSECURE)
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `keys: ${(err as Error).message}`)
  process.exitCode = err instanceof ConfigError ? 78 : 1
} finally {
  await store?.close()
}

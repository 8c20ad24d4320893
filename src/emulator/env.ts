import type { EmulatorOptions } from './options.ts'

/**
 * Settings of the standalone emulator, from the environment:
 * EMULATOR_PORT (default 8787), EMULATOR_HOST (default 127.0.0.1), EMULATOR_TIME_SCALE (default 1),
 * EMULATOR_TOKENS (comma-separated), EMULATOR_PUBLIC_URL, EMULATOR_WEBHOOK_SECRET.
 */
export class EnvError extends Error {}

function number (env: NodeJS.ProcessEnv, name: string, check: (n: number) => boolean, expected: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  if (!check(value)) throw new EnvError(`${name} must be ${expected}, got ${JSON.stringify(raw)}`)
  return value
}

export function optionsFromEnv (env: NodeJS.ProcessEnv): EmulatorOptions {
  const port = number(env, 'EMULATOR_PORT', (n) => Number.isInteger(n) && n >= 0 && n <= 65535, 'a port number (0-65535)') ?? 8787
  const timeScale = number(env, 'EMULATOR_TIME_SCALE', (n) => Number.isFinite(n) && n > 0, 'a positive number')
  const tokens = env.EMULATOR_TOKENS?.split(',').map((t) => t.trim()).filter((t) => t !== '')
  const secret = env.EMULATOR_WEBHOOK_SECRET
  if (secret !== undefined && secret !== '' && !secret.startsWith('whsec_')) throw new EnvError('EMULATOR_WEBHOOK_SECRET must look like whsec_<base64>')
  const publicUrl = env.EMULATOR_PUBLIC_URL
  if (publicUrl) {
    try {
      new URL(publicUrl)
    } catch {
      throw new EnvError(`EMULATOR_PUBLIC_URL must be an absolute URL, got ${JSON.stringify(publicUrl)}`)
    }
  }
  return {
    host: env.EMULATOR_HOST || '127.0.0.1',
    port,
    control: true,
    ...(timeScale !== undefined ? { timeScale } : {}),
    ...(tokens && tokens.length > 0 ? { tokens } : {}),
    ...(secret ? { webhookSecret: secret } : {}),
    ...(publicUrl ? { publicUrl } : {})
  }
}

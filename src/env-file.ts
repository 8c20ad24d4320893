import { existsSync } from 'node:fs'
import path from 'node:path'

/**
 * Reads `.env` from the working directory into process.env, when there is one, with Node's own parser. A variable
 * already in the environment wins, even an empty one. Skipped under NODE_ENV=test: a developer's `.env` (perhaps with
 * a real Replicate token) must never reach a test's process. Returns the file read, if any.
 */
export function loadEnvFile (env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | undefined {
  if (env.NODE_ENV === 'test') return undefined
  const file = path.join(cwd, '.env')
  if (!existsSync(file)) return undefined
  process.loadEnvFile(file)
  return file
}

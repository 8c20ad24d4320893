/**
 * Fills Node's compile cache (NODE_COMPILE_CACHE) with every module the server loads, by building the app once
 * without listening or calling anything: the Docker image runs it at build time, so a container's first start is
 * already warm. Settings here only choose which modules load (a token, so no emulator; SQLite in a temporary file).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { flushCompileCache, getCompileCacheDir } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'fgw-warm-'))
try {
  const config = loadConfig({
    NODE_ENV: 'development',
    LOG_LEVEL: 'silent',
    REPLICATE_API_TOKEN: 'placeholder-for-warming-the-compile-cache',
    STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'),
    IMAGE_STORAGE_DIR: path.join(dir, 'images')
  })
  const app = await buildApp({ config })
  await app.ready()
  await app.close()
  flushCompileCache()
  console.log(`compile cache: ${getCompileCacheDir() ?? 'off (set NODE_COMPILE_CACHE)'}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}

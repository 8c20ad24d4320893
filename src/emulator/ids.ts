import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto'

const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyz0123456789'

/** 26 lowercase alphanumerics, like `pw050dtb51rj40cjb2vrcw97b8`. */
export function newPredictionId (): string {
  let id = ''
  for (let i = 0; i < 26; i++) id += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]
  return id
}

/** Files API ids are base64 of a UUID in real responses (REFERENCE §1.8). */
export function newFileId (): string {
  return Buffer.from(randomUUID()).toString('base64').replace(/=+$/, '')
}

export function newWebhookMessageId (): string {
  return `msg_${randomBytes(18).toString('base64url')}`
}

/** A stable 64-hex version id per model, so `owner/name:<id>` and bare ids can be resolved. */
export function versionIdFor (modelRef: string): string {
  return createHash('sha256').update(`emulator-version:${modelRef}`).digest('hex')
}

export function randomSeed (): number {
  return randomInt(0, 1_000_000)
}

import { FAILURE_MESSAGES } from '../models/replicate-models.ts'
import type { ReplicateModelSpec } from '../models/replicate-models.ts'
import type { ResolvedOptions } from './options.ts'

/**
 * What the model itself does with an input, apart from timing: which images its safety checker
 * keeps, whether it fails, and the log text it prints (after cog-flux and the BFL models).
 */

/** Log text written on entering processing, at half time, and when the outputs are ready. */
export interface PlannedLogs {
  start: string
  middle: string
  end: string
}

function stepsOf (model: ReplicateModelSpec, input: Record<string, unknown>): number {
  if (typeof input.num_inference_steps === 'number') return input.num_inference_steps
  const fallback = model.input.properties.num_inference_steps?.default
  return typeof fallback === 'number' ? fallback : 28
}

function progressLine (done: number, total: number, seconds: number): string {
  const filled = Math.round((done / total) * 10)
  const bar = `${String(Math.round((done / total) * 100)).padStart(3)}%|${'█'.repeat(filled)}${' '.repeat(10 - filled)}| ${done}/${total}`
  if (done === 0) return `${bar} [00:00<?, ?it/s]\n`
  const elapsed = `00:${String(Math.min(59, Math.floor(seconds))).padStart(2, '0')}`
  return `${bar} [${elapsed}<00:00, ${(done / Math.max(seconds, 0.01)).toFixed(2)}it/s]\n`
}

function includesTrigger (prompt: string, trigger: string): boolean {
  return trigger !== '' && prompt.includes(trigger)
}

export interface Moderation {
  /** Indexes of the images that pass the safety checker. */
  kept: number[]
  failure?: { error: string, logs: string }
  /** `NSFW content detected in image i` lines. */
  safetyLogs: string
}

/** What the magic prompts do (see README): model failure, moderation, partial filtering. */
export function moderate (model: ReplicateModelSpec, input: Record<string, unknown>, requested: number, options: ResolvedOptions): Moderation {
  const prompt = typeof input.prompt === 'string' ? input.prompt : ''
  const all = Array.from({ length: requested }, (_, i) => i)
  if (includesTrigger(prompt, options.failTrigger)) {
    return { kept: all, failure: { error: options.failureMessage, logs: `${options.failureMessage}\n` }, safetyLogs: '' }
  }
  if (model.output === 'string') {
    // BFL-moderated models flag the request as a whole.
    const flagged = includesTrigger(prompt, options.nsfwTrigger) || includesTrigger(prompt, options.partialNsfwTrigger)
    return flagged
      ? { kept: all, failure: { error: FAILURE_MESSAGES.proFlagged, logs: 'Content flagged as sensitive\n' }, safetyLogs: '' }
      : { kept: all, safetyLogs: '' }
  }
  if (input.disable_safety_checker === true) return { kept: all, safetyLogs: '' }
  let kept = all
  // The partial trigger is checked first: with the defaults it contains the full one.
  if (includesTrigger(prompt, options.partialNsfwTrigger) && requested > 1) kept = all.filter((i) => i % 2 === 0)
  else if (includesTrigger(prompt, options.nsfwTrigger)) kept = []
  const safetyLogs = all.filter((i) => !kept.includes(i)).map((i) => `NSFW content detected in image ${i}\n`).join('')
  return kept.length === 0
    ? { kept, failure: { error: FAILURE_MESSAGES.allNsfw, logs: safetyLogs }, safetyLogs }
    : { kept, safetyLogs }
}

/** The logs of one run: seed, progress bars, and the safety summary or the failure. */
export function plannedLogs (
  model: ReplicateModelSpec,
  input: Record<string, unknown>,
  { seed, requested, seconds }: { seed: number, requested: number, seconds: number },
  outcome: Moderation
): PlannedLogs {
  if (model.output === 'string') {
    return {
      start: `Using seed: ${seed}\nRunning prediction\n`,
      middle: '',
      end: outcome.failure ? outcome.failure.logs : `Generated image in ${seconds.toFixed(1)}sec\n`
    }
  }
  const steps = stepsOf(model, input)
  const img2img = Object.hasOwn(model.input.properties, 'image') && typeof input.image === 'string'
  const mode = img2img
    ? 'img2img not supported with fp8 quantization; running with bf16\n'
    : input.go_fast === false ? 'running bf16 prediction\n' : 'running quantized prediction\n'
  const summary = outcome.failure && outcome.kept.length > 0
    ? outcome.failure.logs
    : `${outcome.safetyLogs}Total safe images: ${outcome.kept.length} out of ${requested}\n`
  return {
    start: `${mode}Using seed: ${seed}\n${progressLine(0, steps, 0)}`,
    middle: progressLine(Math.floor(steps / 2), steps, seconds / 2),
    end: progressLine(steps, steps, seconds) + summary
  }
}

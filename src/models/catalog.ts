/**
 * Our public FLUX models, the plans that may use them, and what they cost.
 *
 * Facts that Replicate owns (price, typical predict time, output formats, images per prediction) are read from
 * REPLICATE_MODELS rather than restated, so the catalog cannot drift from the pinned upstream contract. The rest
 * is our policy:
 *
 * | model            | tier    | credits | quality | steps (default) | guidance (default) | t2i | i2i |
 * |------------------|---------|---------|---------|-----------------|--------------------|-----|-----|
 * | flux-schnell     | free    | 1       | good    | 1–4 (4)         | none               | yes | no  |
 * | flux-dev         | basic   | 2       | better  | 20–50 (28)      | 1–10 (3)           | yes | yes |
 * | flux-1.1-pro     | premium | 5       | best    | none            | none               | yes | no  |
 * | flux-kontext-pro | premium | 5       | best    | none            | none               | yes | yes |
 *
 * - Steps: schnell takes the real model's 1–4 (the seed said "4, fixed"; 1–3 are valid and faster). dev takes the
 *   seed's 20–50, which the real 1–50 honours in full (upstream recommends 28–50 and says fewer steps give lower
 *   quality, so the seed's floor of 20 stays).
 *   The pro models have no steps input (the seed's 40–100 "pro" steps do not exist upstream).
 * - Guidance: only dev has it (`guidance`, real 0–10). We accept the intersection with the seed's 1–20, i.e. 1–10.
 * - Speed: `typical_seconds` is the real typical predict time (1 / 4 / 6 / 6 s, REFERENCE §8), not the seed's
 *   ~3 / ~10 / ~20 s, because clients size timeouts and progress hints on it and the seed's figures were guesses.
 * - Quality labels are the seed's good/better/best; kontext-pro shares 1.1-pro's "best" (same pro family).
 */
import { AppError, ValidationError, type FieldProblem } from '../errors.ts'
import type { ModelInfo, Quote } from '../schemas/generation.ts'
import { REPLICATE_MODELS, type JsonSchema, type ReplicateModelRef } from './replicate-models.ts'

export const MODEL_IDS = ['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro'] as const
export type ModelId = typeof MODEL_IDS[number]

export const TIERS = ['free', 'basic', 'premium'] as const
export type Tier = typeof TIERS[number]

export const CAPABILITIES = { textToImage: 'text-to-image', imageToImage: 'image-to-image' } as const
export type Capability = typeof CAPABILITIES[keyof typeof CAPABILITIES]

export type Quality = 'good' | 'better' | 'best'

/** The formats Replicate's FLUX models write (`jpeg` is our alias for `jpg`). */
export type UpstreamOutputFormat = 'webp' | 'jpg' | 'png'

export interface NumberRange {
  readonly min: number
  readonly max: number
  readonly default: number
}

export interface ModelSpec {
  readonly id: ModelId
  readonly name: string
  readonly description: string
  readonly replicateModel: ReplicateModelRef
  readonly tier: Tier
  readonly creditsPerImage: number
  readonly quality: Quality
  /** Our accepted `num_inference_steps`; null when the model has no steps input. */
  readonly steps: NumberRange | null
  /** Our accepted `guidance_scale` (sent as `guidance`); null when the model has none. */
  readonly guidance: NumberRange | null
  readonly supports: readonly Capability[]
  readonly defaultOutputFormat: UpstreamOutputFormat
  // Derived from REPLICATE_MODELS:
  readonly usdPerImage: number
  readonly typicalSeconds: number
  readonly maxOutputsPerPrediction: number
  readonly outputFormats: readonly UpstreamOutputFormat[]
}

type ModelPolicy = Omit<ModelSpec, 'id' | 'usdPerImage' | 'typicalSeconds' | 'maxOutputsPerPrediction' | 'outputFormats'>

const T2I = CAPABILITIES.textToImage
const I2I = CAPABILITIES.imageToImage

const MODEL_POLICIES = {
  'flux-schnell': {
    name: 'FLUX.1 [schnell]',
    description: 'Fastest and cheapest: a few steps, good for drafts and previews.',
    replicateModel: 'black-forest-labs/flux-schnell',
    tier: 'free',
    creditsPerImage: 1,
    quality: 'good',
    steps: { min: 1, max: 4, default: 4 },
    guidance: null,
    supports: [T2I],
    defaultOutputFormat: 'webp'
  },
  'flux-dev': {
    name: 'FLUX.1 [dev]',
    description: 'Balanced quality and speed, with tunable steps and guidance; also transforms an input image.',
    replicateModel: 'black-forest-labs/flux-dev',
    tier: 'basic',
    creditsPerImage: 2,
    quality: 'better',
    steps: { min: 20, max: 50, default: 28 },
    guidance: { min: 1, max: 10, default: 3 },
    supports: [T2I, I2I],
    defaultOutputFormat: 'webp'
  },
  'flux-1.1-pro': {
    name: 'FLUX1.1 [pro]',
    description: 'Best text-to-image quality and prompt adherence, at exact custom sizes up to 1440 px a side.',
    replicateModel: 'black-forest-labs/flux-1.1-pro',
    tier: 'premium',
    creditsPerImage: 5,
    quality: 'best',
    steps: null,
    guidance: null,
    supports: [T2I],
    defaultOutputFormat: 'webp'
  },
  'flux-kontext-pro': {
    name: 'FLUX.1 Kontext [pro]',
    description: 'Edits an input image by instruction ("make it night", "remove the car"); also generates from text.',
    replicateModel: 'black-forest-labs/flux-kontext-pro',
    tier: 'premium',
    creditsPerImage: 5,
    quality: 'best',
    steps: null,
    guidance: null,
    supports: [T2I, I2I],
    defaultOutputFormat: 'png'
  }
} as const satisfies Record<ModelId, ModelPolicy>

function withUpstreamFacts (id: ModelId, policy: ModelPolicy): ModelSpec {
  const upstream = REPLICATE_MODELS[policy.replicateModel]
  const properties: Record<string, JsonSchema> = upstream.input.properties
  return {
    id,
    ...policy,
    usdPerImage: upstream.priceUsdPerImage,
    typicalSeconds: upstream.typicalPredictSeconds,
    // Models without `num_outputs` make one image per prediction.
    maxOutputsPerPrediction: properties.num_outputs?.maximum ?? 1,
    outputFormats: (properties.output_format?.enum ?? []) as readonly UpstreamOutputFormat[]
  }
}

export const MODELS: Readonly<Record<ModelId, ModelSpec>> = Object.freeze(Object.fromEntries(
  MODEL_IDS.map((id) => [id, Object.freeze(withUpstreamFacts(id, MODEL_POLICIES[id]))])
) as Record<ModelId, ModelSpec>)

/** The most images one request may ask for (and be quoted for). */
export const MAX_IMAGES_PER_REQUEST = 4

export function isModelId (value: unknown): value is ModelId {
  return typeof value === 'string' && (MODEL_IDS as readonly string[]).includes(value)
}

/** The catalog entry for `model`, or undefined. */
export function findCatalogModel (model: string): ModelSpec | undefined {
  return isModelId(model) ? MODELS[model] : undefined
}

/** The catalog entry served by a Replicate model (`owner/name`), or undefined. */
export function findModelByReplicateRef (ref: string): ModelSpec | undefined {
  return MODEL_IDS.map((id) => MODELS[id]).find((spec) => spec.replicateModel === ref)
}

function unknownModelProblem (model: unknown): FieldProblem {
  return { field: 'model', message: `Unknown model ${JSON.stringify(model)}; models are ${MODEL_IDS.join(', ')}.` }
}

/** The catalog entry for `model`; a ValidationError on `model` when there is none. */
export function getModel (model: string): ModelSpec {
  if (!isModelId(model)) throw new ValidationError([unknownModelProblem(model)])
  return MODELS[model]
}

/** The catalog as the API shows it, in catalog order. */
export function listModels (): ModelInfo[] {
  return MODEL_IDS.map((id) => toModelInfo(MODELS[id]))
}

export function toModelInfo (spec: ModelSpec): ModelInfo {
  return {
    id: spec.id,
    name: spec.name,
    description: spec.description,
    replicate_model: spec.replicateModel,
    tier: spec.tier,
    credits_per_image: spec.creditsPerImage,
    usd_per_image: spec.usdPerImage,
    typical_seconds: spec.typicalSeconds,
    quality: spec.quality,
    steps: spec.steps === null ? null : { ...spec.steps },
    guidance: spec.guidance === null ? null : { ...spec.guidance },
    max_outputs_per_prediction: spec.maxOutputsPerPrediction,
    supports: [...spec.supports],
    output_formats: [...spec.outputFormats],
    default_output_format: spec.defaultOutputFormat
  }
}

// ---- cost -------------------------------------------------------------------------------------------------------

function checkCostArgs (model: unknown, numImages: unknown): ModelSpec {
  const problems: FieldProblem[] = []
  if (!isModelId(model)) problems.push(unknownModelProblem(model))
  if (!Number.isInteger(numImages) || (numImages as number) < 1 || (numImages as number) > MAX_IMAGES_PER_REQUEST) {
    problems.push({
      field: 'num_images',
      message: `num_images must be an integer from 1 to ${MAX_IMAGES_PER_REQUEST} (got ${JSON.stringify(numImages)}).`
    })
  }
  if (problems.length > 0) throw new ValidationError(problems)
  return MODELS[model as ModelId]
}

/**
 * Credits for `numImages` images of `model`. Billing is per output image upstream too, so this is linear.
 * One-image models are quoted per image as well (a request for several would be several predictions).
 */
export function calculateCost (model: string, numImages = 1): number {
  return checkCostArgs(model, numImages).creditsPerImage * numImages
}

/** Rounds away float noise (0.003 × 3 = 0.009000000000000001) to micro-dollars; list prices stay exact. */
function roundUsd (usd: number): number {
  return Math.round(usd * 1e6) / 1e6
}

export function quote (model: string, numImages = 1): Quote {
  const spec = checkCostArgs(model, numImages)
  return {
    model: spec.id,
    num_images: numImages,
    credits_per_image: spec.creditsPerImage,
    total_credits: spec.creditsPerImage * numImages,
    usd_per_image: spec.usdPerImage,
    total_usd: roundUsd(spec.usdPerImage * numImages)
  }
}

// ---- plans ------------------------------------------------------------------------------------------------------

export class UnknownPlanError extends AppError {
  constructor (plan: unknown) {
    super('unknown_plan', `Unknown plan ${JSON.stringify(plan)}; plans are ${PLAN_NAMES.join(', ')}.`, {
      plan,
      plans: [...PLAN_NAMES]
    })
  }
}

/** The plan does not include a model or a capability. 403: the request is well-formed, the plan does not allow it. */
export class NotInPlanError extends AppError {
  constructor (message: string, extra: Record<string, unknown>) {
    super('model_not_in_plan', message, extra)
  }
}

export interface PlanSpec {
  /** Models the plan may use; a plan includes every model of its tier and below. */
  readonly models: readonly ModelId[]
  /** Used for text-to-image when the request names no model. */
  readonly defaultModel: ModelId
  /** Used for image-to-image when the request names no model; null when the plan has no image-to-image. */
  readonly imageToImageModel: ModelId | null
}

export const PLANS = {
  free: { models: ['flux-schnell'], defaultModel: 'flux-schnell', imageToImageModel: null },
  basic: { models: ['flux-schnell', 'flux-dev'], defaultModel: 'flux-dev', imageToImageModel: 'flux-dev' },
  // kontext-pro rather than dev: instruction editing is the premium image-to-image experience.
  premium: { models: [...MODEL_IDS], defaultModel: 'flux-1.1-pro', imageToImageModel: 'flux-kontext-pro' }
} as const satisfies Record<Tier, PlanSpec>
export type PlanId = keyof typeof PLANS

/** Other names a subscription may carry; the seed calls the premium plan "pro". */
export const PLAN_ALIASES = { pro: 'premium' } as const satisfies Record<string, PlanId>
/** Every plan name the functions below accept. */
export type Plan = PlanId | keyof typeof PLAN_ALIASES

export const PLAN_NAMES = [...Object.keys(PLANS), ...Object.keys(PLAN_ALIASES)] as readonly string[]

/** The canonical plan for a plan name or alias; UnknownPlanError otherwise. */
export function resolvePlan (plan: string): PlanId {
  if (typeof plan === 'string') {
    if (Object.hasOwn(PLANS, plan)) return plan as PlanId
    if (Object.hasOwn(PLAN_ALIASES, plan)) return PLAN_ALIASES[plan as keyof typeof PLAN_ALIASES]
  }
  throw new UnknownPlanError(plan)
}

/** The text-to-image model a plan uses by default: free → schnell, basic → dev, premium/pro → 1.1-pro. */
export function getModelForPlan (plan: string): ModelId {
  return PLANS[resolvePlan(plan)].defaultModel
}

/** The cheapest model that does `capability` (the first in catalog order on a tie). */
export function cheapestModelFor (capability: Capability): ModelId {
  const capable = MODEL_IDS.map((id) => MODELS[id]).filter((spec) => spec.supports.includes(capability))
  return capable.reduce((best, spec) => (spec.creditsPerImage < best.creditsPerImage ? spec : best)).id
}

/**
 * The image-to-image model a plan uses by default: basic → dev, premium/pro → kontext-pro; free has none, so it
 * is a 403. An unrestricted caller (anonymous, with authentication off) may use every model, so when its plan has
 * no image-to-image model it gets the cheapest one that does it (flux-dev) rather than a refusal.
 */
export function getImageToImageModelForPlan (plan: string, o: { unrestricted?: boolean } = {}): ModelId {
  const id = resolvePlan(plan)
  const model = PLANS[id].imageToImageModel ?? (o.unrestricted === true ? cheapestModelFor(CAPABILITIES.imageToImage) : null)
  if (model === null) {
    throw new NotInPlanError(`The ${id} plan does not include image-to-image; the basic plan and above do.`, {
      plan: id,
      feature: CAPABILITIES.imageToImage
    })
  }
  return model
}

/** The models a plan may use, in catalog order. */
export function modelsForPlan (plan: string): readonly ModelId[] {
  return PLANS[resolvePlan(plan)].models
}

/** Whether `plan` may use `model`. An unknown plan throws (a misconfigured plan must not silently deny); an unknown model is in no plan. */
export function isModelInPlan (plan: string, model: string): boolean {
  return isModelId(model) && (modelsForPlan(plan) as readonly string[]).includes(model)
}

/** Throws NotInPlanError (403) unless `plan` may use `model`. */
export function assertModelInPlan (plan: string, model: string): void {
  const id = resolvePlan(plan)
  const spec = getModel(model)
  if (isModelInPlan(id, spec.id)) return
  throw new NotInPlanError(`The ${id} plan does not include ${spec.id}; it needs the ${spec.tier} plan.`, {
    plan: id,
    model: spec.id,
    allowed_models: [...PLANS[id].models]
  })
}

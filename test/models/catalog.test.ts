import { describe, expect, it } from 'vitest'
import { AppError, ValidationError } from '../../src/errors.ts'
import {
  MODELS,
  MODEL_IDS,
  NotInPlanError,
  PLANS,
  PLAN_ALIASES,
  TIERS,
  UnknownPlanError,
  assertModelInPlan,
  calculateCost,
  findCatalogModel,
  findModelByReplicateRef,
  cheapestModelFor,
  getImageToImageModelForPlan,
  getModel,
  getModelForPlan,
  isModelId,
  isModelInPlan,
  listModels,
  modelsForPlan,
  quote,
  resolvePlan,
  type ModelId
} from '../../src/models/catalog.ts'
import { GENERATION_SCHEMAS, ModelListSchema, QuoteSchema } from '../../src/schemas/generation.ts'
import { newAjv, referenceModel } from './reference.ts'

function thrown (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

function problemFields (fn: () => unknown): string[] {
  const err = thrown(fn)
  expect(err).toBeInstanceOf(ValidationError)
  return (err as ValidationError).errors.map((e) => e.field)
}

describe('model catalog', () => {
  it('lists the four models, cheapest first', () => {
    expect(MODEL_IDS).toEqual(['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro'])
    expect(listModels().map((m) => m.id)).toEqual([...MODEL_IDS])
  })

  it.each([
    ['flux-schnell', 'black-forest-labs/flux-schnell', 'free', 1, 'good', 0.003, 1],
    ['flux-dev', 'black-forest-labs/flux-dev', 'basic', 2, 'better', 0.025, 4],
    ['flux-1.1-pro', 'black-forest-labs/flux-1.1-pro', 'premium', 5, 'best', 0.04, 6],
    ['flux-kontext-pro', 'black-forest-labs/flux-kontext-pro', 'premium', 5, 'best', 0.04, 6]
  ] as const)('%s: %s, %s tier, %i credits, %s, $%d, ~%is', (id, ref, tier, credits, quality, usd, seconds) => {
    const m = MODELS[id]
    expect(m).toMatchObject({ id, replicateModel: ref, tier, creditsPerImage: credits, quality, usdPerImage: usd, typicalSeconds: seconds })
  })

  it('states steps, guidance, outputs, capabilities and formats per model', () => {
    const facts = Object.fromEntries(MODEL_IDS.map((id) => {
      const m = MODELS[id]
      return [id, {
        steps: m.steps,
        guidance: m.guidance,
        max: m.maxOutputsPerPrediction,
        supports: m.supports,
        formats: m.outputFormats,
        defaultFormat: m.defaultOutputFormat
      }]
    }))
    expect(facts).toEqual({
      'flux-schnell': {
        steps: { min: 1, max: 4, default: 4 },
        guidance: null,
        max: 4,
        supports: ['text-to-image'],
        formats: ['webp', 'jpg', 'png'],
        defaultFormat: 'webp'
      },
      'flux-dev': {
        steps: { min: 20, max: 50, default: 28 },
        guidance: { min: 1, max: 10, default: 3 },
        max: 4,
        supports: ['text-to-image', 'image-to-image'],
        formats: ['webp', 'jpg', 'png'],
        defaultFormat: 'webp'
      },
      'flux-1.1-pro': {
        steps: null,
        guidance: null,
        max: 1,
        supports: ['text-to-image'],
        formats: ['webp', 'jpg', 'png'],
        defaultFormat: 'webp'
      },
      'flux-kontext-pro': {
        steps: null,
        guidance: null,
        max: 1,
        supports: ['text-to-image', 'image-to-image'],
        formats: ['jpg', 'png'],
        defaultFormat: 'png'
      }
    })
  })

  // Our ranges are policy, but each must be one the real model can honour in full.
  describe.each(MODEL_IDS)('%s against the reference schema', (id) => {
    const m = MODELS[id]
    const props = referenceModel(m.replicateModel).input.properties

    it('accepts steps only within the real num_inference_steps range, and defaults inside it', () => {
      const upstream = props.num_inference_steps
      if (m.steps === null) {
        expect(upstream).toBeUndefined()
        return
      }
      expect(upstream).toBeDefined()
      expect(m.steps.min).toBeGreaterThanOrEqual(upstream?.minimum ?? -Infinity)
      expect(m.steps.max).toBeLessThanOrEqual(upstream?.maximum ?? Infinity)
      expect(m.steps.default).toBeGreaterThanOrEqual(m.steps.min)
      expect(m.steps.default).toBeLessThanOrEqual(m.steps.max)
    })

    it('accepts guidance only within the real guidance range, and defaults inside it', () => {
      const upstream = props.guidance
      if (m.guidance === null) {
        expect(upstream).toBeUndefined()
        return
      }
      expect(m.guidance.min).toBeGreaterThanOrEqual(upstream?.minimum ?? -Infinity)
      expect(m.guidance.max).toBeLessThanOrEqual(upstream?.maximum ?? Infinity)
      expect(m.guidance.default).toBeGreaterThanOrEqual(m.guidance.min)
      expect(m.guidance.default).toBeLessThanOrEqual(m.guidance.max)
    })

    it('claims image-to-image exactly when the model takes an image to edit', () => {
      const takesImage = props.image !== undefined || props.input_image !== undefined
      expect(m.supports.includes('image-to-image')).toBe(takesImage)
    })

    it('writes its default format and takes outputs as the reference says', () => {
      expect(props.output_format?.enum).toContain(m.defaultOutputFormat)
      expect(m.maxOutputsPerPrediction).toBe(props.num_outputs?.maximum ?? 1)
    })
  })

  it('shows the catalog in the ModelList schema', () => {
    const ajv = newAjv()
    for (const schema of GENERATION_SCHEMAS) ajv.addSchema(schema)
    const validate = ajv.getSchema('ModelList') ?? ajv.compile(ModelListSchema)
    const list = { models: listModels() }
    expect(validate(list), JSON.stringify(validate.errors)).toBe(true)
    expect(list.models[1]).toEqual({
      id: 'flux-dev',
      name: 'FLUX.1 [dev]',
      description: expect.any(String),
      replicate_model: 'black-forest-labs/flux-dev',
      tier: 'basic',
      credits_per_image: 2,
      usd_per_image: 0.025,
      typical_seconds: 4,
      quality: 'better',
      steps: { min: 20, max: 50, default: 28 },
      guidance: { min: 1, max: 10, default: 3 },
      max_outputs_per_prediction: 4,
      supports: ['text-to-image', 'image-to-image'],
      output_formats: ['webp', 'jpg', 'png'],
      default_output_format: 'webp'
    })
  })

  it('hands out copies, so callers cannot change the catalog', () => {
    const [first] = listModels()
    first?.supports.push('image-to-image')
    expect(MODELS['flux-schnell'].supports).toEqual(['text-to-image'])
    expect(Object.isFrozen(MODELS['flux-schnell'])).toBe(true)
  })

  it('looks models up by id and by Replicate ref', () => {
    expect(isModelId('flux-dev')).toBe(true)
    expect(isModelId('flux-pro')).toBe(false)
    expect(isModelId(undefined)).toBe(false)
    expect(getModel('flux-dev')).toBe(MODELS['flux-dev'])
    expect(problemFields(() => getModel('flux-pro'))).toEqual(['model'])
    expect(findCatalogModel('flux-1.1-pro')).toBe(MODELS['flux-1.1-pro'])
    expect(findCatalogModel('constructor')).toBeUndefined()
    expect(findModelByReplicateRef('black-forest-labs/flux-kontext-pro')?.id).toBe('flux-kontext-pro')
    expect(findModelByReplicateRef('black-forest-labs/flux-pro')).toBeUndefined()
  })
})

describe('cost', () => {
  it.each([
    ['flux-schnell', 1, 1],
    ['flux-schnell', 4, 4],
    ['flux-dev', 1, 2],
    ['flux-dev', 3, 6],
    ['flux-1.1-pro', 1, 5],
    ['flux-1.1-pro', 4, 20],
    ['flux-kontext-pro', 2, 10]
  ] as const)('%s × %i = %i credits', (model, n, credits) => {
    expect(calculateCost(model, n)).toBe(credits)
  })

  it('defaults to one image', () => {
    expect(calculateCost('flux-dev')).toBe(2)
  })

  it('refuses an unknown model on `model`', () => {
    const err = thrown(() => calculateCost('flux-pro'))
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).code).toBe('validation_error')
    expect((err as ValidationError).statusCode).toBe(400)
    expect((err as ValidationError).errors).toEqual([
      { field: 'model', message: 'Unknown model "flux-pro"; models are flux-schnell, flux-dev, flux-1.1-pro, flux-kontext-pro.' }
    ])
  })

  it.each([0, -1, 5, 1.5, Number.NaN, Infinity])('refuses %d images on `num_images`', (n) => {
    expect(problemFields(() => calculateCost('flux-dev', n))).toEqual(['num_images'])
  })

  it('names both fields when both are bad', () => {
    expect(problemFields(() => calculateCost('nope', 0))).toEqual(['model', 'num_images'])
  })
})

describe('quote', () => {
  it('prices credits and USD', () => {
    expect(quote('flux-1.1-pro', 4)).toEqual({
      model: 'flux-1.1-pro',
      num_images: 4,
      credits_per_image: 5,
      total_credits: 20,
      usd_per_image: 0.04,
      total_usd: 0.16
    })
    expect(quote('flux-dev')).toEqual({
      model: 'flux-dev',
      num_images: 1,
      credits_per_image: 2,
      total_credits: 2,
      usd_per_image: 0.025,
      total_usd: 0.025
    })
  })

  it('rounds float noise away', () => {
    // 0.003 * 3 is 0.009000000000000001 in floating point.
    expect(quote('flux-schnell', 3).total_usd).toBe(0.009)
    expect(quote('flux-dev', 3).total_usd).toBe(0.075)
  })

  it('fits the Quote schema for every model and count', () => {
    const ajv = newAjv()
    for (const schema of GENERATION_SCHEMAS) ajv.addSchema(schema)
    const validate = ajv.getSchema('Quote') ?? ajv.compile(QuoteSchema)
    for (const model of MODEL_IDS) {
      for (const n of [1, 2, 3, 4]) {
        const q = quote(model, n)
        expect(validate(q), JSON.stringify(validate.errors)).toBe(true)
        expect(q.total_credits).toBe(calculateCost(model, n))
      }
    }
  })

  it('refuses what calculateCost refuses', () => {
    expect(problemFields(() => quote('flux-dev', 5))).toEqual(['num_images'])
    expect(problemFields(() => quote('dall-e', 1))).toEqual(['model'])
  })
})

describe('plans', () => {
  it.each([
    ['free', 'flux-schnell'],
    ['basic', 'flux-dev'],
    ['premium', 'flux-1.1-pro'],
    ['pro', 'flux-1.1-pro']
  ])('%s generates with %s by default', (plan, model) => {
    expect(getModelForPlan(plan)).toBe(model)
  })

  it.each([
    ['basic', 'flux-dev'],
    ['premium', 'flux-kontext-pro'],
    ['pro', 'flux-kontext-pro']
  ])('%s transforms images with %s by default', (plan, model) => {
    expect(getImageToImageModelForPlan(plan)).toBe(model)
  })

  it('gives an unrestricted (anonymous) caller the cheapest image-to-image model when its plan has none', () => {
    expect(cheapestModelFor('image-to-image')).toBe('flux-dev')
    expect(cheapestModelFor('text-to-image')).toBe('flux-schnell')
    expect(getImageToImageModelForPlan('free', { unrestricted: true })).toBe('flux-dev')
    // A plan with its own image-to-image model keeps it.
    expect(getImageToImageModelForPlan('premium', { unrestricted: true })).toBe('flux-kontext-pro')
  })

  it('has no image-to-image on the free plan', () => {
    const err = thrown(() => getImageToImageModelForPlan('free'))
    expect(err).toBeInstanceOf(NotInPlanError)
    expect(err).toMatchObject({
      code: 'model_not_in_plan',
      statusCode: 403,
      message: 'The free plan does not include image-to-image; the basic plan and above do.',
      extra: { plan: 'free', feature: 'image-to-image' }
    })
  })

  it.each(['gold', '', 'Premium', 'toString', '__proto__'])('refuses the unknown plan %j', (plan) => {
    for (const fn of [getModelForPlan, getImageToImageModelForPlan, modelsForPlan, resolvePlan]) {
      const err = thrown(() => fn(plan))
      expect(err).toBeInstanceOf(UnknownPlanError)
      expect(err).toBeInstanceOf(AppError)
      expect(err).toMatchObject({ code: 'unknown_plan', statusCode: 400, extra: { plan, plans: ['free', 'basic', 'premium', 'pro'] } })
    }
    expect(() => isModelInPlan(plan, 'flux-schnell')).toThrow(UnknownPlanError)
  })

  it('lets each plan use its tier and below', () => {
    const matrix = Object.fromEntries(['free', 'basic', 'premium', 'pro'].map((plan) => [
      plan,
      MODEL_IDS.filter((model) => isModelInPlan(plan, model))
    ]))
    expect(matrix).toEqual({
      free: ['flux-schnell'],
      basic: ['flux-schnell', 'flux-dev'],
      premium: ['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro'],
      pro: ['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro']
    })
    expect(isModelInPlan('premium', 'flux-pro')).toBe(false)
  })

  it('keeps PLANS consistent with the model tiers', () => {
    for (const [plan, spec] of Object.entries(PLANS)) {
      const rank = TIERS.indexOf(plan as typeof TIERS[number])
      expect(rank).toBeGreaterThanOrEqual(0)
      expect(spec.models).toEqual(MODEL_IDS.filter((id) => TIERS.indexOf(MODELS[id].tier) <= rank))
      expect(spec.models).toContain(spec.defaultModel)
      expect(MODELS[spec.defaultModel].supports).toContain('text-to-image')
      if (spec.imageToImageModel !== null) {
        expect(spec.models).toContain(spec.imageToImageModel)
        expect(MODELS[spec.imageToImageModel].supports).toContain('image-to-image')
      }
    }
    expect(PLAN_ALIASES).toEqual({ pro: 'premium' })
    expect(resolvePlan('pro')).toBe('premium')
  })

  it('asserts a model is in a plan with a 403 that lists what the plan allows', () => {
    expect(() => assertModelInPlan('basic', 'flux-dev')).not.toThrow()
    expect(() => assertModelInPlan('pro', 'flux-kontext-pro')).not.toThrow()
    const err = thrown(() => assertModelInPlan('basic', 'flux-1.1-pro'))
    expect(err).toBeInstanceOf(NotInPlanError)
    expect(err).toMatchObject({
      code: 'model_not_in_plan',
      statusCode: 403,
      message: 'The basic plan does not include flux-1.1-pro; it needs the premium plan.',
      extra: { plan: 'basic', model: 'flux-1.1-pro', allowed_models: ['flux-schnell', 'flux-dev'] }
    })
    expect(problemFields(() => assertModelInPlan('basic', 'flux-pro' as ModelId))).toEqual(['model'])
  })
})

import { describe, expect, it } from 'vitest'
import { PIXELS_AT_1MP, REPLICATE_MODELS, findReplicateModel } from '../../src/models/replicate-models.ts'
import { REFERENCE, referenceModel } from './reference.ts'

// The pinned upstream contract must equal the reference copy, so a drift is a failing test rather than a 422 in production.
describe('REPLICATE_MODELS against test/fixtures/replicate/flux-models.json', () => {
  it('pins exactly the reference models', () => {
    expect(Object.keys(REPLICATE_MODELS).sort()).toEqual(Object.keys(REFERENCE.models).sort())
  })

  for (const [ref, spec] of Object.entries(REPLICATE_MODELS)) {
    describe(ref, () => {
      const reference = referenceModel(ref)

      it('has the reference input schema, deep-equal', () => {
        expect(JSON.parse(JSON.stringify(spec.input))).toStrictEqual(reference.input)
      })

      it('has the reference output shape, price and typical predict time', () => {
        expect(spec.ref).toBe(ref)
        expect(spec.output).toBe(reference['x-output'])
        expect(spec.priceUsdPerImage).toBe(reference['x-price-usd-per-image'])
        expect(spec.typicalPredictSeconds).toBe(reference['x-typical-predict-seconds'])
      })

      it('is found by its ref', () => {
        expect(findReplicateModel(ref)).toBe(spec)
      })
    })
  }

  it('has the reference pixel sizes at 1 MP', () => {
    expect(JSON.parse(JSON.stringify(PIXELS_AT_1MP))).toStrictEqual(REFERENCE['x-pixels-at-1mp'])
  })

  it('finds nothing for other refs', () => {
    expect(findReplicateModel('black-forest-labs/flux-pro')).toBeUndefined()
    expect(findReplicateModel('toString')).toBeUndefined()
  })
})

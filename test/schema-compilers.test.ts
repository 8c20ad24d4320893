import { describe, expect, it } from 'vitest'
import { buildSerializerCompiler } from '../src/serialization.ts'
import { buildValidatorCompiler } from '../src/validation.ts'

const Shared = { $id: 'Shared', type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false }

describe('schema compilers', () => {
  it('compile a validator on its first use, not when the route is set up, and report its errors', () => {
    const compile = buildValidatorCompiler({ Shared })
    // A schema Ajv cannot compile: only its first use may fail.
    const broken = compile({ schema: { $ref: 'Missing' }, httpPart: 'body' })
    expect(() => broken({})).toThrow(/Missing/)

    const validate = compile({ schema: { $ref: 'Shared' }, httpPart: 'body' })
    expect(validate({ n: 1 })).toBe(true)
    expect(validate({ n: '1' })).toBe(false)
    expect(validate.errors).toMatchObject([{ instancePath: '/n', keyword: 'type' }])
    // Querystrings are coerced, bodies are not.
    expect(compile({ schema: { $ref: 'Shared' }, httpPart: 'querystring' })({ n: '1' })).toBe(true)
  })

  it('compile a serializer on its first use, with the shared schemas', () => {
    const compile = buildSerializerCompiler({ Shared })
    const broken = compile({ schema: { $ref: 'Missing' } })
    expect(() => broken({})).toThrow()
    const serialize = compile({ schema: { $ref: 'Shared' } })
    expect(serialize({ n: 2, secret: 'dropped' })).toBe('{"n":2}')
    expect(compile({ schema: { $ref: 'Shared' } })({ n: 3 })).toBe('{"n":3}')
  })
})

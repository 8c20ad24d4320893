import { describe, expect, it } from 'vitest'
import { ValidationError } from '../../src/errors.ts'
import {
  aspectMegapixelsSize,
  customSize,
  imageToImageOutputSize,
  mapImageToImage,
  mapTextToImage,
  nearestAspectRatio,
  type ImageInput,
  type MappedRequest
} from '../../src/models/mapping.ts'
import type { ImageToImageRequest, TextToImageRequest } from '../../src/schemas/generation.ts'

const prompt = 'A lighthouse on a cliff at dusk'

function t2i (model: string, fields: Omit<TextToImageRequest, 'prompt'> = {}): MappedRequest {
  return mapTextToImage({ prompt, ...fields }, model)
}

function problems (fn: () => unknown): { field: string, message: string }[] {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).statusCode).toBe(400)
    return (err as ValidationError).errors
  }
  throw new Error('expected a ValidationError')
}

const fields = (fn: () => unknown) => problems(fn).map((p) => p.field)
const warned = (m: MappedRequest) => m.warnings.map((w) => `${w.field}:${w.code}`)

describe('mapTextToImage: exact inputs', () => {
  it.each<[string, string, Omit<TextToImageRequest, 'prompt'>, Record<string, unknown>, { width: number, height: number } | undefined, string[]]>([
    ['512×512 on schnell is 1:1 at 0.25 MP, exactly', 'flux-schnell', { width: 512, height: 512 },
      { aspect_ratio: '1:1', megapixels: '0.25', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' },
      { width: 512, height: 512 }, []],
    ['no size is 1024×1024', 'flux-schnell', {},
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['1024×768 on dev is 4:3 at 1 MP = 1152×896', 'flux-dev', { width: 1024, height: 768 },
      { aspect_ratio: '4:3', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' },
      { width: 1152, height: 896 }, ['width:adjusted', 'height:adjusted']],
    ['1536×1024 on dev is 3:2 = 1216×832', 'flux-dev', { width: 1536, height: 1024 },
      { aspect_ratio: '3:2', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' },
      { width: 1216, height: 832 }, ['width:adjusted', 'height:adjusted']],
    ['512×768 on schnell is 2:3 at 0.25 MP = 416×608', 'flux-schnell', { width: 512, height: 768 },
      { aspect_ratio: '2:3', megapixels: '0.25', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' },
      { width: 416, height: 608 }, ['width:adjusted', 'height:adjusted']],
    ['768×1536 on schnell is 9:16 = 768×1344', 'flux-schnell', { width: 768, height: 1536 },
      { aspect_ratio: '9:16', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' },
      { width: 768, height: 1344 }, ['width:adjusted', 'height:adjusted']],
    ['1536×1536 on dev is at most 1024×1024', 'flux-dev', { width: 1536, height: 1536 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, ['width:adjusted', 'height:adjusted']],
    ['only a width means a square', 'flux-schnell', { width: 512 },
      { aspect_ratio: '1:1', megapixels: '0.25', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' },
      { width: 512, height: 512 }, []],
    ['only a height of 768 is a 768 square, served at 1024 and warned on height alone', 'flux-dev', { height: 768 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, ['height:adjusted']],
    ['1536×1536 on 1.1-pro is custom 1440×1440', 'flux-1.1-pro', { width: 1536, height: 1536 },
      { aspect_ratio: 'custom', width: 1440, height: 1440, output_format: 'webp' },
      { width: 1440, height: 1440 }, ['width:adjusted', 'height:adjusted']],
    ['1536×1024 on 1.1-pro keeps 3:2 at 1440×960', 'flux-1.1-pro', { width: 1536, height: 1024 },
      { aspect_ratio: 'custom', width: 1440, height: 960, output_format: 'webp' },
      { width: 1440, height: 960 }, ['width:adjusted', 'height:adjusted']],
    ['768×512 on 1.1-pro is exact', 'flux-1.1-pro', { width: 768, height: 512 },
      { aspect_ratio: 'custom', width: 768, height: 512, output_format: 'webp' },
      { width: 768, height: 512 }, []],
    ['no size on 1.1-pro is custom 1024×1024', 'flux-1.1-pro', {},
      { aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['no size on kontext-pro is 1:1, png, unwarned', 'flux-kontext-pro', {},
      { aspect_ratio: '1:1', output_format: 'png' },
      undefined, []],
    ['1024×768 on kontext-pro is 4:3 and the model picks the size', 'flux-kontext-pro', { width: 1024, height: 768 },
      { aspect_ratio: '4:3', output_format: 'png' },
      undefined, ['width:adjusted', 'height:adjusted']],
    ['1536×768 on kontext-pro uses its own 2:1', 'flux-kontext-pro', { width: 1536, height: 768 },
      { aspect_ratio: '2:1', output_format: 'png' },
      undefined, ['width:adjusted', 'height:adjusted']],
    ['guidance 7.5 on dev is guidance 7.5', 'flux-dev', { width: 1024, height: 1024, guidance_scale: 7.5 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 7.5, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['guidance on schnell is ignored', 'flux-schnell', { guidance_scale: 7.5 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, ['guidance_scale:ignored']],
    ['steps and guidance on 1.1-pro are ignored', 'flux-1.1-pro', { num_inference_steps: 50, guidance_scale: 3 },
      { aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'webp' },
      { width: 1024, height: 1024 }, ['num_inference_steps:ignored', 'guidance_scale:ignored']],
    ['steps on kontext-pro are ignored', 'flux-kontext-pro', { num_inference_steps: 30 },
      { aspect_ratio: '1:1', output_format: 'png' },
      undefined, ['num_inference_steps:ignored']],
    ['schnell takes 1 step', 'flux-schnell', { num_inference_steps: 1 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 1, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['dev takes 20 and 50 steps', 'flux-dev', { num_inference_steps: 50, guidance_scale: 1 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 50, guidance: 1, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['negative_prompt is never sent', 'flux-dev', { negative_prompt: 'blurry' },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, ['negative_prompt:ignored']],
    ['4 outputs on schnell pass through', 'flux-schnell', { num_outputs: 4 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 4, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['1 output on 1.1-pro is not sent', 'flux-1.1-pro', { num_outputs: 1 },
      { aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['jpeg is jpg', 'flux-dev', { output_format: 'jpeg' },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'jpg' },
      { width: 1024, height: 1024 }, []],
    ['webp on kontext-pro is jpg, adjusted', 'flux-kontext-pro', { output_format: 'webp' },
      { aspect_ratio: '1:1', output_format: 'jpg' },
      undefined, ['output_format:adjusted']],
    ['png on 1.1-pro is png', 'flux-1.1-pro', { output_format: 'png' },
      { aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'png' },
      { width: 1024, height: 1024 }, []],
    ['a seed on schnell turns fp8 off', 'flux-schnell', { seed: 42 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, seed: 42, go_fast: false, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['a seed on 1.1-pro passes through', 'flux-1.1-pro', { seed: 4294967295 },
      { aspect_ratio: 'custom', width: 1024, height: 1024, seed: 4294967295, output_format: 'webp' },
      { width: 1024, height: 1024 }, []],
    ['seed 0 on dev means random there, so it is not sent', 'flux-dev', { seed: 0 },
      { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' },
      { width: 1024, height: 1024 }, ['seed:ignored']],
    ['seed 0 on kontext-pro is sent', 'flux-kontext-pro', { seed: 0 },
      { aspect_ratio: '1:1', seed: 0, output_format: 'png' },
      undefined, []]
  ])('%s', (_name, model, request, input, expectedSize, warnings) => {
    const mapped = t2i(model, request)
    expect(mapped.model).toBe(model)
    expect(mapped.replicateModel).toBe(`black-forest-labs/${model}`)
    expect(mapped.input).toStrictEqual({ prompt, ...input })
    expect(mapped.expectedSize).toStrictEqual(expectedSize)
    expect(warned(mapped)).toEqual(warnings)
    expect(mapped.numImages).toBe(input.num_outputs ?? 1)
  })

  it('explains each warning in words', () => {
    const mapped = t2i('flux-dev', { width: 1024, height: 768, negative_prompt: 'blurry' })
    expect(mapped.warnings).toEqual([
      { field: 'width', code: 'adjusted', message: 'flux-dev makes 1152×896 for 1024×768 (aspect ratio 4:3 at 1 MP, the nearest size it makes).' },
      { field: 'height', code: 'adjusted', message: 'flux-dev makes 1152×896 for 1024×768 (aspect ratio 4:3 at 1 MP, the nearest size it makes).' },
      { field: 'negative_prompt', code: 'ignored', message: 'FLUX models have no negative prompt; negative_prompt was not used. Say what you want in prompt instead.' }
    ])
    expect(t2i('flux-1.1-pro', { width: 1536, height: 1536 }).warnings[0]?.message)
      .toBe('flux-1.1-pro makes 1440×1440 for 1536×1536 (sides 256–1440 px in multiples of 32, aspect ratio kept).')
    expect(t2i('flux-kontext-pro', { output_format: 'webp' }).warnings[0]?.message)
      .toBe('flux-kontext-pro cannot write webp; it makes jpg instead.')
  })
})

describe('mapTextToImage: refusals', () => {
  it('refuses 60 steps on dev, naming num_inference_steps and the range', () => {
    expect(problems(() => t2i('flux-dev', { num_inference_steps: 60 }))).toEqual([
      { field: 'num_inference_steps', message: 'num_inference_steps must be an integer from 20 to 50 on flux-dev (got 60).' }
    ])
  })

  it.each([
    ['flux-dev', 19, '20 to 50'],
    ['flux-dev', 51, '20 to 50'],
    ['flux-schnell', 5, '1 to 4'],
    ['flux-schnell', 28, '1 to 4']
  ])('refuses %s with %i steps (%s)', (model, steps, range) => {
    const [problem] = problems(() => t2i(model, { num_inference_steps: steps }))
    expect(problem?.field).toBe('num_inference_steps')
    expect(problem?.message).toContain(range)
  })

  it.each([0, 0.99, 10.01, 20])('refuses guidance %d on dev', (guidance) => {
    expect(problems(() => t2i('flux-dev', { guidance_scale: guidance }))).toEqual([
      { field: 'guidance_scale', message: `guidance_scale must be from 1 to 10 on flux-dev (got ${guidance}).` }
    ])
  })

  it.each(['flux-1.1-pro', 'flux-kontext-pro'])('refuses several outputs on %s: one image per prediction', (model) => {
    expect(problems(() => t2i(model, { num_outputs: 2 }))).toEqual([{
      field: 'num_outputs',
      message: `${model} makes one image per prediction, so num_outputs must be 1 (got 2); flux-schnell and flux-dev make up to 4.`
    }])
  })

  it('names every bad field at once', () => {
    expect(fields(() => mapTextToImage({ prompt: ' \n ', num_inference_steps: 60, guidance_scale: 12, num_outputs: 4, negative_prompt: 'x' }, 'flux-dev')))
      .toEqual(['prompt', 'num_inference_steps', 'guidance_scale'])
    expect(fields(() => t2i('flux-schnell', { num_inference_steps: 8, num_outputs: 5, seed: -1, output_format: 'gif' as 'png' })))
      .toEqual(['num_inference_steps', 'num_outputs', 'seed', 'output_format'])
    expect(fields(() => t2i('flux-1.1-pro', { width: 0 as 512, num_outputs: 3, seed: 1.5 })))
      .toEqual(['width', 'num_outputs', 'seed'])
  })

  it('refuses an unknown model on `model`', () => {
    expect(problems(() => t2i('flux-pro'))).toEqual([
      { field: 'model', message: 'Unknown model "flux-pro"; models are flux-schnell, flux-dev, flux-1.1-pro, flux-kontext-pro.' }
    ])
  })

  it('reads the model from its argument, not from the request', () => {
    expect(mapTextToImage({ prompt, model: 'flux-dev' }, 'flux-schnell').model).toBe('flux-schnell')
  })
})

describe('mapImageToImage', () => {
  const https: ImageInput = { url: 'https://example.com/street.jpg', width: 1024, height: 768 }
  const request = (fields: Partial<ImageToImageRequest> = {}): ImageToImageRequest =>
    ({ prompt: 'make it night', image_url: https.url, ...fields })

  it('sends the image to dev with prompt_strength, and the output keeps the input size', () => {
    const mapped = mapImageToImage(request(), 'flux-dev', https)
    expect(mapped).toStrictEqual({
      model: 'flux-dev',
      replicateModel: 'black-forest-labs/flux-dev',
      input: {
        prompt: 'make it night',
        image: 'https://example.com/street.jpg',
        prompt_strength: 0.8,
        num_inference_steps: 28,
        guidance: 3,
        num_outputs: 1,
        output_format: 'webp'
      },
      warnings: [],
      expectedSize: { width: 1024, height: 768 },
      numImages: 1
    })
  })

  it('passes prompt_strength, guidance, seed and format to dev', () => {
    const mapped = mapImageToImage(request({ prompt_strength: 0.35, guidance_scale: 4.5, seed: 7, output_format: 'jpeg' }), 'flux-dev', https)
    expect(mapped.input).toMatchObject({ prompt_strength: 0.35, guidance: 4.5, seed: 7, go_fast: false, output_format: 'jpg' })
    expect(mapped.warnings).toEqual([])
  })

  it.each([
    [4000, 3000, 1440, 1088],
    [1000, 600, 992, 608],
    [1025, 777, 1024, 784],
    [300, 200, 304, 192],
    [1440, 1440, 1440, 1440],
    [3000, 500, 1440, 240]
  ])('dev makes %i×%i input into %i×%i', (w, h, ew, eh) => {
    expect(mapImageToImage(request(), 'flux-dev', { url: https.url, width: w, height: h }).expectedSize).toEqual({ width: ew, height: eh })
  })

  it('gives no expectedSize when the input size is unknown', () => {
    expect(mapImageToImage(request(), 'flux-dev', { url: https.url }).expectedSize).toBeUndefined()
  })

  it('sends the image to kontext-pro as input_image matching its aspect ratio', () => {
    const data = 'data:image/png;base64,iVBORw0KGgo='
    const mapped = mapImageToImage(request({ image_url: data }), 'flux-kontext-pro', { url: data, width: 800, height: 600 })
    expect(mapped.input).toStrictEqual({
      prompt: 'make it night',
      input_image: data,
      aspect_ratio: 'match_input_image',
      output_format: 'png'
    })
    expect(mapped.expectedSize).toBeUndefined()
    expect(mapped.warnings).toEqual([])
  })

  it('ignores prompt_strength and guidance on kontext-pro, and makes jpg for webp', () => {
    const mapped = mapImageToImage(request({ prompt_strength: 0.5, guidance_scale: 3, output_format: 'webp', seed: 3 }), 'flux-kontext-pro', https)
    expect(mapped.input).toStrictEqual({
      prompt: 'make it night',
      input_image: https.url,
      aspect_ratio: 'match_input_image',
      seed: 3,
      output_format: 'jpg'
    })
    expect(warned(mapped)).toEqual(['prompt_strength:ignored', 'guidance_scale:ignored', 'output_format:adjusted'])
  })

  it.each(['flux-schnell', 'flux-1.1-pro'])('refuses image-to-image on %s, naming `model`', (model) => {
    expect(problems(() => mapImageToImage(request({ guidance_scale: 99 }), model, https))).toEqual([
      { field: 'model', message: `${model} does not do image-to-image; use flux-dev or flux-kontext-pro.` }
    ])
  })

  it('names every bad field at once', () => {
    expect(fields(() => mapImageToImage(
      { prompt: '', image_url: 'http://example.com/a.png', prompt_strength: 1.5, guidance_scale: 0.5 },
      'flux-dev',
      { url: 'http://example.com/a.png' }
    ))).toEqual(['prompt', 'image_url', 'prompt_strength', 'guidance_scale'])
  })
})

describe('size arithmetic', () => {
  const ratios = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21']

  it('picks the nearest ratio on a log scale', () => {
    expect(nearestAspectRatio(1024, 1024, ratios)).toBe('1:1')
    expect(nearestAspectRatio(2048, 1024, ratios)).toBe('16:9')
    expect(nearestAspectRatio(1536, 512, ratios)).toBe('21:9')
    expect(nearestAspectRatio(1000, 1100, ratios)).toBe('1:1')
    expect(nearestAspectRatio(1000, 1200, ratios)).toBe('4:5')
    // 2:1 and 1:2 are equally far from 1:1 on a log scale; the first listed wins.
    expect(nearestAspectRatio(1, 1, ['2:1', '1:2'])).toBe('2:1')
  })

  it('halves both sides at 0.25 MP and switches at 0.45 MP', () => {
    expect(aspectMegapixelsSize(768, 512, ratios)).toEqual({ aspect_ratio: '3:2', megapixels: '0.25', size: { width: 608, height: 416 } })
    expect(aspectMegapixelsSize(1024, 512, ratios)).toEqual({ aspect_ratio: '16:9', megapixels: '1', size: { width: 1344, height: 768 } })
    expect(aspectMegapixelsSize(686, 686, ratios).megapixels).toBe('0.25')
    expect(aspectMegapixelsSize(687, 687, ratios).megapixels).toBe('1')
  })

  it('fits 1.1-pro custom sizes in 256–1440 at multiples of 32', () => {
    const limits = { min: 256, max: 1440, multiple: 32 }
    expect(customSize(1536, 768, limits)).toEqual({ width: 1440, height: 736 })
    expect(customSize(1536, 512, limits)).toEqual({ width: 1440, height: 480 })
    expect(customSize(100, 2000, limits)).toEqual({ width: 256, height: 1440 })
    expect(customSize(1000, 1000, limits)).toEqual({ width: 992, height: 992 })
  })

  it('rounds dev image-to-image sides half to even, as Python does', () => {
    expect(imageToImageOutputSize(8 * 16 + 8, 9 * 16 + 8)).toEqual({ width: 128, height: 160 })
  })
})

import { findCatalogModel, findModelByReplicateRef } from '../models/catalog.ts'
import { failureError, normalizeOutput } from '../replicate/predictions.ts'
import type { Prediction } from '../replicate/types.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { Warning } from '../schemas/generation.ts'
import type { PredictionEntry } from '../stores/types.ts'

/** What the gateway knows about a prediction beyond Replicate's object: its own id, the public model, the quote, the warnings. */
export interface PredictionFacts {
  id: string
  model: string
  creditsPerImage: number
  numImages: number
  warnings: Warning[]
}

function predictionUrls (id: string) {
  return { get: `/v1/predictions/${id}`, cancel: `/v1/predictions/${id}/cancel` }
}

function publicStatus (p: Prediction): PublicPrediction['status'] {
  // Sync mode hands over the files while Replicate still says `processing`; for our callers the images are done.
  if (p.status === 'processing' && normalizeOutput(p.output).length > 0) return 'succeeded'
  return p.status
}

function publicError (p: Prediction): PublicPrediction['error'] {
  if (p.status === 'failed') {
    const err = failureError(p)
    return { code: err.code === 'REPLICATE_CONTENT_SAFETY' ? 'content_policy_violation' : 'prediction_failed', message: err.message }
  }
  if (p.status === 'aborted') return { code: 'deadline_exceeded', message: 'The prediction reached its deadline before the model started.' }
  return null
}

/**
 * Credits as the ledger will count them: the quote while running, images delivered on success,
 * nothing for a failure or for a prediction that never started.
 */
function costCredits (p: Prediction, facts: Pick<PredictionFacts, 'creditsPerImage' | 'numImages'>): number {
  const status = publicStatus(p)
  if (status === 'succeeded') return facts.creditsPerImage * normalizeOutput(p.output).length
  if (status === 'failed' || status === 'aborted') return 0
  if (status === 'canceled') return p.started_at ? facts.creditsPerImage * facts.numImages : 0
  return facts.creditsPerImage * facts.numImages
}

/** Replicate's prediction as our callers see it: under the gateway's id, with our model name, quote and warnings. */
export function toPublicPrediction (p: Prediction, facts: PredictionFacts | undefined): PublicPrediction {
  const catalogModel = facts ? findCatalogModel(facts.model) : findModelByReplicateRef(p.model)
  const quote = facts ?? { creditsPerImage: catalogModel?.creditsPerImage ?? 0, numImages: Number(p.input?.num_outputs ?? 1) || 1 }
  const output = normalizeOutput(p.output)
  const id = facts?.id ?? p.id
  return {
    id,
    status: publicStatus(p),
    model: facts?.model ?? catalogModel?.id ?? p.model,
    created_at: p.created_at,
    started_at: p.started_at ?? null,
    completed_at: p.completed_at ?? null,
    output: output.length > 0 ? output : null,
    error: publicError(p),
    cost_credits: costCredits(p, quote),
    warnings: facts?.warnings ?? [],
    urls: predictionUrls(id)
  }
}

/** A prediction accepted but not yet created upstream: starting, at its quote. */
export function acceptedPrediction (facts: PredictionFacts, createdAt: number): PublicPrediction {
  return {
    id: facts.id,
    status: 'starting',
    model: facts.model,
    created_at: new Date(createdAt).toISOString(),
    started_at: null,
    completed_at: null,
    output: null,
    error: null,
    cost_credits: facts.creditsPerImage * facts.numImages,
    warnings: facts.warnings,
    urls: predictionUrls(facts.id)
  }
}

export function imageUrl (baseUrl: string, id: string, index: number): string {
  return `${baseUrl}/v1/predictions/${id}/images/${index}`
}

/** A stored prediction as its owner sees it: once its images are kept, our URLs for them (signed on the way out). */
export function presentEntry (entry: PredictionEntry, baseUrl: string): PublicPrediction {
  const pub = entry.last as PublicPrediction
  const kept = entry.kept.length > 0 && pub.status === 'succeeded'
  return {
    ...pub,
    model: entry.model,
    warnings: entry.warnings as Warning[],
    output: kept ? entry.kept.map((_k, i) => imageUrl(baseUrl, entry.id, i)) : pub.output
  }
}

/** Replicate's prediction object (openapi.yaml `schemas_prediction_response`), as far as we rely on it. */

export const PREDICTION_STATUSES = ['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'] as const
export type PredictionStatus = typeof PREDICTION_STATUSES[number]

/** `aborted` is terminal too: the official clients miss it and poll forever (REFERENCE §2.2). */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled', 'aborted'])

export type WebhookEvent = 'start' | 'output' | 'logs' | 'completed'

export interface Prediction {
  id: string
  model: string
  version: string
  input: Record<string, unknown>
  /** FLUX: `string[]` (schnell, dev) or one URI string (pro, kontext); null until ready and after removal. */
  output: unknown
  logs?: string | null
  /** A string per the contract; typed loosely because clients have seen other shapes. */
  error: unknown
  status: PredictionStatus
  data_removed: boolean
  created_at: string
  started_at?: string | null
  completed_at?: string | null
  deadline?: string
  metrics?: { predict_time?: number, total_time?: number, [k: string]: unknown }
  urls: { get: string, cancel: string, web?: string, stream?: string }
  webhook?: string
  webhook_events_filter?: WebhookEvent[]
  source?: 'api' | 'web'
  [k: string]: unknown
}

export interface Account {
  type: 'user' | 'organization'
  username: string
  name?: string
  github_url?: string
  avatar_url?: string
}

export interface ModelInfo {
  url: string
  owner: string
  name: string
  description: string | null
  visibility: 'public' | 'private'
  is_official?: boolean
  latest_version: {
    id: string
    created_at: string
    cog_version: string
    openapi_schema: { components?: { schemas?: { Input?: unknown, Output?: unknown } }, [k: string]: unknown }
  } | null
  [k: string]: unknown
}

import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'

const CheckSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('fail')]),
  detail: Type.Optional(Type.String())
}, { additionalProperties: false })

export const ReadinessSchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  checks: Type.Object({
    draining: CheckSchema,
    token: CheckSchema,
    upstream: CheckSchema,
    worker: Type.Optional({ ...CheckSchema, description: 'Present when this process runs the queue worker: its receiver link is attached.' })
  }, { additionalProperties: false })
}, { $id: 'Readiness', additionalProperties: false, description: 'What readiness checked and how each check went.' })

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  version: Type.String(),
  uptime_seconds: Type.Number(),
  draining: Type.Boolean(),
  upstream: Type.Object({
    base_url: Type.String(),
    emulated: Type.Boolean({ description: 'True when the local Replicate emulator stands in for Replicate.' }),
    last_check_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    last_check: Type.Union([Type.Literal('ok'), Type.Literal('fail'), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()])
  }, { additionalProperties: false }),
  moderation: Type.Object({ provider: Type.String() }, { additionalProperties: false }),
  predictions: Type.Object({
    tracked: Type.Integer({ description: 'Unfinished predictions this instance follows upstream.' }),
    queued: Type.Integer({ description: 'Accepted creates waiting here for an upstream slot.' }),
    following: Type.Array(Type.Object({
      id: Type.String({ description: 'Our prediction id.' }),
      upstream_id: Type.Union([Type.String(), Type.Null()], { description: "Replicate's id, once its create has answered." }),
      stage: Type.String({ description: '`queued`, `sending` (the create is held), `following` or `done`.' })
    }, { additionalProperties: false }), { description: 'Up to 20 of them, with Replicate\'s ids.' })
  }, { additionalProperties: false }),
  sync_wait_seconds: Type.Integer(),
  default_plan: Type.String()
}, { $id: 'Health', additionalProperties: false, description: 'Service detail for operators.' })

export type Readiness = Static<typeof ReadinessSchema>
export type Check = Readiness['checks']['token']
export type Health = Static<typeof HealthSchema>

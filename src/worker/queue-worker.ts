import type { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver, ServiceBusSender } from '@azure/service-bus'
import type { FastifyBaseLogger } from 'fastify'
import { abortableSleep } from '../replicate/retry.ts'
import type { SafePoster } from '../net/safe-fetch.ts'
import type { ReplyTo } from '../schemas/queue-message.ts'
import type { MessageProcessor, Outcome } from './processor.ts'

/**
 * The Service Bus side of the worker: a peek-lock receiver handing each message to the processor, with its lock
 * renewed by the SDK for as long as the processor runs, then settled as the outcome says, after any reply was sent.
 */

/** Service Bus keeps DeadLetterErrorDescription short; the whole problem goes to reply_to. */
const DESCRIPTION_MAX = 1024
/** A safety cap on renewing one message's lock: far beyond any prediction (Replicate cancels at Cancel-After). */
const LOCK_RENEWAL_CAP_MS = 60 * 60_000
/** After the grace, in-flight messages are told to stop; this bounds waiting for them to be abandoned. */
const ABANDON_WAIT_MS = 10_000
/** Backoff before a transient failure is abandoned (Service Bus redelivers at once): 2 s, 4 s, 8 s… up to a minute. */
const RETRY_BASE_MS = 2_000
const RETRY_MAX_MS = 60_000

/**
 * How long to hold a message, its lock renewed, before abandoning it after its `deliveries`th delivery failed for now:
 * the upstream's Retry-After when it gave one, else exponential with full jitter, so a short outage does not use up
 * WORKER_MAX_DELIVERIES in a second and many workers do not come back at once.
 */
export function retryDelayMs (deliveries: number, retryAfterSeconds: number | undefined, random: () => number = Math.random): number {
  if (retryAfterSeconds !== undefined && retryAfterSeconds > 0) return Math.min(RETRY_MAX_MS, retryAfterSeconds * 1000)
  const cap = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (deliveries - 1))
  return Math.round(cap / 2 + random() * cap / 2)
}

export interface QueueWorkerOptions {
  client: ServiceBusClient
  queue: string
  concurrency: number
  /** At this many deliveries a transient failure dead-letters the message instead of abandoning it again. */
  maxDeliveries: number
  processor: MessageProcessor
  /** Posts to reply_to.webhook under the address policy of image fetching. */
  webhooks: SafePoster
  /** Told each settlement, with its reason (a problem code; '' for a completion): metrics. */
  onSettled?: (outcome: 'completed' | 'abandoned' | 'dead_lettered', reason: string) => void
  /** Waits out a backoff; rejects when the signal aborts (tests record the delays). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  log: FastifyBaseLogger
}

export interface QueueWorkerStatus {
  /** The receiver link is attached and the subscription takes messages. */
  receiving: boolean
  inFlight: number
}

export interface QueueWorker {
  start: () => void
  status: () => QueueWorkerStatus
  /** Takes no more messages; those in flight go on. */
  stopReceiving: () => Promise<void>
  /** Waits for in-flight messages until `deadline` (epoch ms), abandons the rest, and closes the links. */
  close: (deadline: number) => Promise<void>
}

/** A reply carries the request's correlationId, or its messageId when it had none. */
function correlationOf (message: ServiceBusReceivedMessage): string | undefined {
  const id = message.correlationId ?? message.messageId
  return id === undefined ? undefined : String(id)
}

export function createQueueWorker (opts: QueueWorkerOptions): QueueWorker {
  const { client, log } = opts
  const sleep = opts.sleep ?? abortableSleep
  const inFlight = new Map<ServiceBusReceivedMessage, AbortController>()
  const senders = new Map<string, ServiceBusSender>()
  let receiver: ServiceBusReceiver | undefined
  let subscription: { close: () => Promise<void> } | undefined
  // The SDK retries attaching the link forever; only this (or closing the receiver) ends that, also for close().
  const attaching = new AbortController()
  /** Aborted when receiving stops: a message waiting out a backoff is abandoned at once instead. */
  const stopping = new AbortController()
  let idle: (() => void) | undefined

  function senderFor (queue: string): ServiceBusSender {
    let sender = senders.get(queue)
    if (!sender) senders.set(queue, sender = client.createSender(queue))
    return sender
  }

  async function reply (replyTo: ReplyTo, message: ServiceBusReceivedMessage, body: unknown, contentType: string): Promise<void> {
    const correlationId = correlationOf(message)
    if ('queue' in replyTo) {
      const id = (body as { id?: unknown }).id
      await senderFor(replyTo.queue).sendMessages({
        // One id per request: duplicate detection on the reply queue can drop a reply sent again after a redelivery.
        messageId: `reply:${String(message.messageId ?? correlationId)}`,
        body,
        contentType,
        correlationId,
        subject: contentType === 'application/json' ? 'prediction' : 'problem',
        applicationProperties: typeof id === 'string' ? { prediction_id: id, status: String((body as { status?: unknown }).status) } : {}
      })
      return
    }
    const status = await opts.webhooks.post(replyTo.webhook, body, { 'content-type': contentType, ...(correlationId === undefined ? {} : { 'x-correlation-id': correlationId }) })
    if (status >= 300) throw new Error(`the webhook answered ${status}`)
  }

  async function settle (message: ServiceBusReceivedMessage, outcome: Outcome, signal: AbortSignal): Promise<void> {
    const r = receiver!
    const deliveries = (message.deliveryCount ?? 0) + 1
    if (outcome.action === 'complete') {
      if (outcome.replyTo) {
        try {
          await reply(outcome.replyTo, message, outcome.prediction, 'application/json')
        } catch (err) {
          // The prediction is final; a redelivery finds it by its idempotency key and replies again.
          log.warn({ messageId: message.messageId, err: (err as Error).message }, 'could not send the reply: abandoning the message so it is sent again')
          await settle(message, { action: 'abandon', reason: 'reply_failed', description: `The reply could not be sent: ${(err as Error).message}`, replyTo: undefined }, signal)
          return
        }
      }
      await r.completeMessage(message)
      opts.onSettled?.('completed', '')
      log.info({ messageId: message.messageId, predictionId: outcome.prediction.id, status: outcome.prediction.status }, 'queued request done')
      return
    }
    if (outcome.action === 'abandon' && (outcome.reason === 'shutting_down' || deliveries < opts.maxDeliveries)) {
      if (outcome.reason !== 'shutting_down') {
        // Shutdown cuts the wait short: the message is abandoned at once either way.
        await sleep(retryDelayMs(deliveries, outcome.retryAfterSeconds), AbortSignal.any([signal, stopping.signal])).catch(() => {})
      }
      await r.abandonMessage(message)
      opts.onSettled?.('abandoned', outcome.reason)
      return
    }
    const description = outcome.action === 'abandon'
      ? `${outcome.description} Gave up after ${deliveries} deliveries.`
      : outcome.description
    if (outcome.replyTo) {
      const problem = outcome.action === 'dead-letter' && outcome.problem !== undefined && 'code' in outcome.problem
        ? outcome.problem
        : { code: outcome.reason, detail: description, ...(outcome.action === 'dead-letter' ? outcome.problem : {}) }
      await reply(outcome.replyTo, message, problem, 'application/problem+json')
        .catch((err: unknown) => log.warn({ messageId: message.messageId, err: (err as Error).message }, 'could not send the refusal to reply_to'))
    }
    await r.deadLetterMessage(message, { deadLetterReason: outcome.reason, deadLetterErrorDescription: description.slice(0, DESCRIPTION_MAX) })
    opts.onSettled?.('dead_lettered', outcome.reason)
  }

  async function handle (message: ServiceBusReceivedMessage): Promise<void> {
    const controller = new AbortController()
    inFlight.set(message, controller)
    try {
      const messageId = message.messageId === undefined ? undefined : String(message.messageId)
      const outcome = await opts.processor.process({ body: message.body, messageId, deliveryCount: message.deliveryCount ?? 0 }, controller.signal)
      await settle(message, outcome, controller.signal)
    } catch (err) {
      // Settling failed (the lock was lost, the link dropped): Service Bus delivers the message again.
      log.warn({ messageId: message.messageId, err: (err as Error).message }, 'could not settle a message; it will be delivered again')
    } finally {
      inFlight.delete(message)
      if (inFlight.size === 0) idle?.()
    }
  }

  function whenIdle (ms: number): Promise<void> {
    if (inFlight.size === 0 || ms <= 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      idle = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  return {
    start () {
      receiver = client.createReceiver(opts.queue, { receiveMode: 'peekLock', maxAutoLockRenewalDurationInMs: LOCK_RENEWAL_CAP_MS })
      subscription = receiver.subscribe({
        processMessage: handle,
        async processError (args) {
          const code = (args.error as { code?: string }).code
          log.warn({ errorSource: args.errorSource, code, err: args.error.message }, 'Service Bus receiver error')
        }
      }, { autoCompleteMessages: false, maxConcurrentCalls: opts.concurrency, abortSignal: attaching.signal })
      log.info({ queue: opts.queue, concurrency: opts.concurrency }, 'queue worker receiving')
    },

    status () {
      // The SDK has no public "link is up"; this is what its own subscribe checks before refusing a second one.
      const receiving = (receiver as unknown as { _isReceivingMessages?: () => boolean } | undefined)?._isReceivingMessages?.() ?? false
      return { receiving, inFlight: inFlight.size }
    },

    async stopReceiving () {
      const s = subscription
      subscription = undefined
      attaching.abort(new Error('the worker is stopping'))
      stopping.abort(new Error('the worker is stopping'))
      await s?.close()
    },

    async close (deadline) {
      await this.stopReceiving()
      await whenIdle(deadline - Date.now())
      if (inFlight.size > 0) {
        log.warn({ inFlight: inFlight.size }, 'shutdown grace over: abandoning messages still in flight')
        for (const controller of inFlight.values()) controller.abort(new Error('shutting down'))
        await whenIdle(ABANDON_WAIT_MS)
      }
      await receiver?.close()
      await Promise.allSettled([...senders.values()].map((s) => s.close()))
      await opts.webhooks.close()
    }
  }
}

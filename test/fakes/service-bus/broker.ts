import { randomBytes } from 'node:crypto'
import type { AddressInfo, Server } from 'node:net'
import rhea from 'rhea'
import type { Connection, Delivery, EventContext, Message, Receiver, Sender } from 'rhea'

/**
 * A loopback AMQP 1.0 broker speaking the part of Azure Service Bus that `@azure/service-bus` uses to receive in
 * peek-lock mode and to send, reached with a connection string carrying `UseDevelopmentEmulator=true` (plain AMQP, no
 * TLS). See README.md for what it covers and where each exchange comes from.
 */

export interface FakeServiceBusOptions {
  /** The queue's LockDuration. Default 30 s. */
  lockDurationMs?: number
  /** The queue's MaxDeliveryCount: at this many deliveries the broker dead-letters a message itself. Default 10. */
  maxDeliveryCount?: number
}

export interface StoredMessage {
  /** As the sender gave it (AMQP properties, application properties, body sections). */
  message: Message
  messageId: string | undefined
  sequenceNumber: number
  enqueuedAt: number
  /** Deliveries so far; the AMQP header carries the count of earlier ones, as Service Bus does. */
  deliveries: number
}

export interface DeadLetteredMessage extends StoredMessage {
  reason: string | undefined
  description: string | undefined
}

export type BrokerEvent =
  | { type: 'put-token', audience: string, tokenType: string }
  | { type: 'enqueued', queue: string, messageId: string | undefined }
  | { type: 'delivered', queue: string, messageId: string | undefined, deliveryCount: number, lockToken: string }
  | { type: 'complete' | 'abandon' | 'lock-expired', queue: string, messageId: string | undefined, lockToken: string }
  | { type: 'dead-letter', queue: string, messageId: string | undefined, lockToken: string, reason: string | undefined, description: string | undefined }
  | { type: 'renew-lock', queue: string, lockTokens: string[], found: number }
  | { type: 'settle-lock-lost', queue: string, lockToken: string }
  | { type: 'receiver-attached' | 'receiver-detached', queue: string }

interface Lock {
  stored: StoredMessage
  queue: string
  delivery: Delivery
  lockedUntil: number
  timer: NodeJS.Timeout
}

export interface FakeQueue {
  /** Messages waiting to be delivered. */
  available: StoredMessage[]
  /** Dead-lettered messages, as `<queue>/$deadletterqueue` would hold them. */
  deadLetters: DeadLetteredMessage[]
  completed: StoredMessage[]
}

export interface FakeServiceBus {
  port: number
  /** A connection string the SDK accepts for this broker. */
  connectionString: string
  queue: (name: string) => FakeQueue
  /** Everything that happened, in order. */
  events: BrokerEvent[]
  /** Peek-lock receiver links now attached to a queue. */
  receivers: (queue: string) => number
  /** Messages delivered and neither settled nor expired. */
  locked: (queue: string) => number
  /** Resolves once the predicate holds; rejects after `timeoutMs`, naming what it waited for. */
  waitFor: (what: string, predicate: () => boolean, timeoutMs?: number) => Promise<void>
  close: () => Promise<void>
}

/** The lock token the SDK reads from a delivery tag (it reorders the first eight bytes, as .NET writes a Guid). */
function lockTokenOf (tag: Buffer): string {
  const b = tag
  const ordered = Buffer.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)])
  return rhea.uuid_to_string(ordered)
}

/** The attach frame we answer with, which rhea sends after the open event (rhea's typings leave it out). */
function localAttach (link: Sender | Receiver): Record<string, unknown> {
  return (link as unknown as { local: { attach: Record<string, unknown> } }).local.attach
}

/** Delivery outcomes as rhea encodes them (missing from its typings). */
const outcomes = rhea.message as unknown as {
  accepted: () => { described: () => unknown }
  rejected: (fields: { error: { condition: string, description: string } }) => { described: () => unknown }
}

function addressOf (terminus: unknown): string | undefined {
  const address = (terminus as { address?: unknown } | undefined)?.address
  // Service Bus takes the dead-letter sub-queue's name in any case.
  return typeof address === 'string' ? address.replace(/\/\$deadletterqueue$/i, '/$DeadLetterQueue') : undefined
}

function messageIdOf (message: Message): string | undefined {
  const id = message.message_id
  return id === undefined || id === null ? undefined : String(id)
}

export async function startFakeServiceBus (o: FakeServiceBusOptions = {}): Promise<FakeServiceBus> {
  const lockDurationMs = o.lockDurationMs ?? 30_000
  const maxDeliveryCount = o.maxDeliveryCount ?? 10
  const queues = new Map<string, FakeQueue>()
  const events: BrokerEvent[] = []
  const locks = new Map<string, Lock>()
  /** Our senders to peek-lock receivers, by queue. */
  const consumers = new Map<string, Set<Sender>>()
  /** Our senders to request/response receivers, by the reply address the client listens on. */
  const replyLinks = new Map<string, Sender>()
  const connections = new Set<Connection>()
  let sequence = 0

  function queue (name: string): FakeQueue {
    let q = queues.get(name)
    if (!q) {
      q = { available: [], deadLetters: [], completed: [] }
      queues.set(name, q)
    }
    return q
  }

  function deadLetter (queueName: string, stored: StoredMessage, reason: string | undefined, description: string | undefined): void {
    queue(queueName).deadLetters.push({ ...stored, reason, description })
    // Readable as Service Bus shows it: on `<queue>/$DeadLetterQueue`, the reason and description as application properties.
    const properties = { ...(stored.message.application_properties ?? {}), ...(reason === undefined ? {} : { DeadLetterReason: reason }), ...(description === undefined ? {} : { DeadLetterErrorDescription: description }) }
    enqueue(`${queueName}/$DeadLetterQueue`, { ...stored.message, application_properties: properties }, false)
  }

  function requeue (queueName: string, stored: StoredMessage): void {
    if (stored.deliveries >= maxDeliveryCount) {
      deadLetter(queueName, stored, 'MaxDeliveryCountExceeded', `Message could not be consumed after ${maxDeliveryCount} delivery attempts.`)
      return
    }
    // Back where it was in the queue: ahead of anything enqueued after it.
    const q = queue(queueName)
    const at = q.available.findIndex((m) => m.sequenceNumber > stored.sequenceNumber)
    if (at === -1) q.available.push(stored)
    else q.available.splice(at, 0, stored)
    dispatch(queueName)
  }

  function lockExpired (token: string): void {
    const lock = locks.get(token)
    if (!lock) return
    locks.delete(token)
    events.push({ type: 'lock-expired', queue: lock.queue, messageId: lock.stored.messageId, lockToken: token })
    requeue(lock.queue, lock.stored)
  }

  /** Transfers handed to rhea per link; rhea spends credit only when it writes them, so this keeps us within it. */
  const handed = new WeakMap<Sender, number>()
  function credit (sender: Sender): number {
    const link = sender as Sender & { credit: number, delivery_count: number }
    const unwritten = Math.max(0, (handed.get(sender) ?? 0) - link.delivery_count)
    return link.credit - unwritten
  }

  function dispatch (queueName: string): void {
    const q = queue(queueName)
    for (const sender of consumers.get(queueName) ?? []) {
      while (q.available.length > 0 && sender.is_open() && credit(sender) > 0) {
        const stored = q.available.shift()!
        const tag = randomBytes(16)
        const token = lockTokenOf(tag)
        const lockedUntil = Date.now() + lockDurationMs
        const outgoing: Message = {
          ...stored.message,
          delivery_count: stored.deliveries,
          message_annotations: {
            ...(stored.message.message_annotations ?? {}),
            'x-opt-enqueued-time': new Date(stored.enqueuedAt),
            'x-opt-sequence-number': stored.sequenceNumber,
            'x-opt-locked-until': new Date(lockedUntil)
          }
        }
        stored.deliveries++
        handed.set(sender, (handed.get(sender) ?? 0) + 1)
        const delivery = sender.send(outgoing, tag)
        locks.set(token, { stored, queue: queueName, delivery, lockedUntil, timer: setTimeout(lockExpired, lockDurationMs, token) })
        events.push({ type: 'delivered', queue: queueName, messageId: stored.messageId, deliveryCount: stored.deliveries - 1, lockToken: token })
      }
      if (q.available.length === 0 && (sender as Sender & { _draining?: boolean })._draining) sender.set_drained(true)
    }
  }

  function enqueue (queueName: string, message: Message, record = true): void {
    const stored: StoredMessage = { message, messageId: messageIdOf(message), sequenceNumber: ++sequence, enqueuedAt: Date.now(), deliveries: 0 }
    queue(queueName).available.push(stored)
    if (record) events.push({ type: 'enqueued', queue: queueName, messageId: stored.messageId })
    dispatch(queueName)
  }

  function lockFor (delivery: Delivery): [string, Lock] | undefined {
    for (const entry of locks) if (entry[1].delivery === delivery) return entry
    return undefined
  }

  /** Where a locked message goes, by outcome: the same whether it came as a disposition or through $management. */
  function settleLock (token: string, lock: Lock, outcome: 'complete' | 'abandon' | 'dead-letter', reasonValue: unknown, descriptionValue: unknown): void {
    clearTimeout(lock.timer)
    locks.delete(token)
    const base = { queue: lock.queue, messageId: lock.stored.messageId, lockToken: token }
    if (outcome === 'complete') {
      queue(lock.queue).completed.push(lock.stored)
      events.push({ type: 'complete', ...base })
    } else if (outcome === 'abandon') {
      events.push({ type: 'abandon', ...base })
      requeue(lock.queue, lock.stored)
    } else {
      const reason = typeof reasonValue === 'string' ? reasonValue : undefined
      const description = typeof descriptionValue === 'string' ? descriptionValue : undefined
      events.push({ type: 'dead-letter', ...base, reason, description })
      deadLetter(lock.queue, lock.stored, reason, description)
    }
  }

  /** A disposition from a peek-lock receiver: the outcome decides where the message goes. */
  function settle (context: EventContext, outcome: 'complete' | 'abandon' | 'dead-letter'): void {
    const delivery = context.delivery!
    const source = addressOf(context.sender?.source)
    if (source === undefined || !consumers.get(source)?.has(context.sender!)) {
      // A reply on $cbs or $management, taken by the client.
      delivery.update(true)
      return
    }
    const found = lockFor(delivery)
    if (!found) {
      // The lock expired (and the message went back to the queue) before this disposition came.
      events.push({ type: 'settle-lock-lost', queue: source, lockToken: lockTokenOf(delivery.tag as Buffer) })
      delivery.update(true, outcomes.rejected({ error: { condition: 'com.microsoft:message-lock-lost', description: 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.' } }).described())
      return
    }
    const [token, lock] = found
    const state = delivery.remote_state as { error?: { info?: Record<string, unknown> } } | undefined
    const info = state?.error?.info ?? {}
    settleLock(token, lock, outcome, info.DeadLetterReason, info.DeadLetterErrorDescription)
    delivery.update(true, outcomes.accepted().described())
  }

  /** `$cbs` put-token and `<queue>/$management` requests, answered on the link listening at `reply_to`. */
  function answer (context: EventContext, node: string): void {
    const request = context.message!
    const props = (request.application_properties ?? {}) as Record<string, unknown>
    const operation = String(props.operation ?? '')
    let status = 200
    let body: unknown = null
    if (node === '$cbs') {
      events.push({ type: 'put-token', audience: String(props.name ?? ''), tokenType: String(props.type ?? '') })
    } else if (operation === 'com.microsoft:renew-lock') {
      const queueName = node.replace(/\/\$management$/, '')
      const raw = ((request.body ?? {}) as Record<string, unknown>)['lock-tokens']
      const tokens = (Array.isArray(raw) ? raw : []).map((t) => (Buffer.isBuffer(t) ? rhea.uuid_to_string(t) : String(t)))
      const expirations: Date[] = []
      for (const token of tokens) {
        const lock = locks.get(token)
        if (!lock) continue
        clearTimeout(lock.timer)
        lock.lockedUntil = Date.now() + lockDurationMs
        lock.timer = setTimeout(lockExpired, lockDurationMs, token)
        expirations.push(new Date(lock.lockedUntil))
      }
      events.push({ type: 'renew-lock', queue: queueName, lockTokens: tokens, found: expirations.length })
      if (expirations.length < tokens.length) status = 410
      else body = { expirations }
    } else if (operation === 'com.microsoft:update-disposition') {
      // What the SDK sends when the receiving link is gone: settlement by lock token.
      const requestBody = (request.body ?? {}) as Record<string, unknown>
      const raw = requestBody['lock-tokens']
      const tokens = (Array.isArray(raw) ? raw : []).map((t) => (Buffer.isBuffer(t) ? rhea.uuid_to_string(t) : String(t)))
      const outcome = ({ completed: 'complete', abandoned: 'abandon', suspended: 'dead-letter' } as const)[String(requestBody['disposition-status']) as 'completed']
      for (const token of tokens) {
        const lock = locks.get(token)
        if (!lock || outcome === undefined) {
          status = outcome === undefined ? 501 : 410
          continue
        }
        settleLock(token, lock, outcome, requestBody['deadletter-reason'], requestBody['deadletter-description'])
      }
    } else {
      status = 501
    }
    const replyTo = request.reply_to === undefined ? undefined : String(request.reply_to)
    const link = replyTo === undefined ? undefined : replyLinks.get(replyTo)
    link?.send({
      correlation_id: request.message_id,
      application_properties: {
        'status-code': status,
        'status-description': status === 200 ? 'OK' : status === 410 ? 'The lock supplied is invalid.' : 'Not implemented by the fake.',
        ...(status === 410 ? { 'error-condition': 'com.microsoft:message-lock-lost' } : {})
      },
      body
    })
  }

  // Settled by hand, so a late disposition can be answered with lock-lost; `modified` (abandon) kept apart from `released`.
  const container = rhea.create_container({ id: 'fake-service-bus', autosettle: false, treat_modified_as_released: false } as Parameters<typeof rhea.create_container>[0])
  container.sasl_server_mechanisms.enable_anonymous()
  container.sasl_server_mechanisms.enable_plain((_user: string, _pass: string) => true)

  container.on('connection_open', (context: EventContext) => { connections.add(context.connection) })
  container.on('disconnected', (context: EventContext) => { connections.delete(context.connection) })

  // The client receives: from a queue (peek-lock), or answers from $cbs / $management.
  container.on('sender_open', (context: EventContext) => {
    const sender = context.sender!
    const source = addressOf(sender.source) ?? ''
    const target = addressOf(sender.target)
    localAttach(sender).source = sender.source
    localAttach(sender).target = sender.target
    if (source === '$cbs' || source.endsWith('/$management')) {
      // Replies go to `reply_to`: the SDK names it as the receiving link's target ($management) or its name ($cbs).
      replyLinks.set(target ?? sender.name, sender)
      replyLinks.set(sender.name, sender)
      return
    }
    localAttach(sender).snd_settle_mode = sender.snd_settle_mode
    localAttach(sender).rcv_settle_mode = sender.rcv_settle_mode
    let set = consumers.get(source)
    if (!set) consumers.set(source, set = new Set())
    set.add(sender)
    events.push({ type: 'receiver-attached', queue: source })
    dispatch(source)
  })
  container.on('sendable', (context: EventContext) => {
    const source = addressOf(context.sender?.source)
    if (source !== undefined && consumers.get(source)?.has(context.sender!)) dispatch(source)
  })
  container.on('sender_draining', (context: EventContext) => {
    const source = addressOf(context.sender?.source)
    if (source !== undefined) dispatch(source)
    context.sender!.set_drained(true)
  })
  container.on('accepted', (context: EventContext) => settle(context, 'complete'))
  container.on('modified', (context: EventContext) => settle(context, 'abandon'))
  container.on('rejected', (context: EventContext) => settle(context, 'dead-letter'))
  container.on('released', (context: EventContext) => settle(context, 'abandon'))

  // The client sends: to a queue, or a request to $cbs / $management.
  container.on('receiver_open', (context: EventContext) => {
    const receiver = context.receiver as Receiver
    localAttach(receiver).source = receiver.source
    localAttach(receiver).target = receiver.target
    // The SDK refuses to send a message larger than the link's max-message-size (Standard tier: 256 KB; 1 MB here).
    localAttach(receiver).max_message_size = 1024 * 1024
  })
  container.on('message', (context: EventContext) => {
    const target = addressOf(context.receiver?.target) ?? ''
    if (target === '$cbs' || target.endsWith('/$management')) answer(context, target)
    else enqueue(target, context.message!)
  })

  function detached (context: EventContext): void {
    const sender = context.sender
    if (!sender) return
    const source = addressOf(sender.source) ?? ''
    if (consumers.get(source)?.delete(sender)) events.push({ type: 'receiver-detached', queue: source })
    for (const [address, link] of replyLinks) if (link === sender) replyLinks.delete(address)
  }
  container.on('sender_close', detached)
  container.on('connection_close', (context: EventContext) => {
    for (const [queueName, set] of consumers) {
      for (const sender of set) {
        if (sender.connection === context.connection) {
          set.delete(sender)
          events.push({ type: 'receiver-detached', queue: queueName })
        }
      }
    }
  })
  container.on('error', () => { /* a client that went away; the events above already record it */ })

  const server = container.listen({ port: 0, host: '127.0.0.1' }) as unknown as Server
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const port = (server.address() as AddressInfo).port

  return {
    port,
    connectionString: `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true`,
    queue,
    events,
    receivers: (name) => consumers.get(name)?.size ?? 0,
    locked: (name) => [...locks.values()].filter((l) => l.queue === name).length,
    async waitFor (what, predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    },
    async close () {
      for (const lock of locks.values()) clearTimeout(lock.timer)
      locks.clear()
      for (const connection of connections) connection.close()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}

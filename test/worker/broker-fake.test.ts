import { ServiceBusClient, isServiceBusError } from '@azure/service-bus'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeServiceBus } from '../fakes/service-bus/broker.ts'
import type { FakeServiceBus } from '../fakes/service-bus/broker.ts'

/**
 * The broker fake against what the SDK documents for a peek-lock receiver: the properties a received message has, the
 * delivery count after an abandon, dead letters read back from the dead-letter sub-queue with their reason, lock
 * renewal, and a settlement after the lock expired failing with MessageLockLost.
 */
let bus: FakeServiceBus
let client: ServiceBusClient

beforeAll(async () => {
  bus = await startFakeServiceBus({ lockDurationMs: 1_000 })
  client = new ServiceBusClient(bus.connectionString)
})
afterAll(async () => {
  await client.close()
  await bus.close()
})

async function receiveOne (queue: string, o: { subQueueType?: 'deadLetter' } = {}) {
  const receiver = client.createReceiver(queue, { receiveMode: 'peekLock', maxAutoLockRenewalDurationInMs: 0, ...o })
  for (let i = 0; i < 20; i++) {
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 })
    if (message) return { receiver, message }
  }
  await receiver.close()
  throw new Error(`nothing arrived on ${queue}`)
}

describe('the Service Bus fake, through @azure/service-bus', () => {
  it('delivers what was sent, with the broker properties of a peek-locked message', async () => {
    const sender = client.createSender('conformance-a')
    const before = Date.now()
    await sender.sendMessages({ messageId: 'm-1', correlationId: 'c-1', subject: 's', contentType: 'application/json', body: { n: 1 }, applicationProperties: { tenant: 'x', n: 2 } })
    await sender.close()
    const { receiver, message } = await receiveOne('conformance-a')
    expect(message).toMatchObject({ messageId: 'm-1', correlationId: 'c-1', subject: 's', contentType: 'application/json', body: { n: 1 }, applicationProperties: { tenant: 'x', n: 2 }, deliveryCount: 0 })
    expect(message.lockToken).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(message.lockedUntilUtc!.getTime()).toBeGreaterThan(before)
    expect(message.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(before - 1)
    expect(Number(message.sequenceNumber)).toBeGreaterThan(0)
    const renewed = await receiver.renewMessageLock(message)
    expect(renewed.getTime()).toBeGreaterThanOrEqual(message.lockedUntilUtc!.getTime())
    await receiver.completeMessage(message)
    await receiver.close()
    expect(bus.queue('conformance-a').completed.map((m) => m.messageId)).toEqual(['m-1'])
  })

  it('counts a delivery after an abandon, and reads dead letters back with their reason', async () => {
    const sender = client.createSender('conformance-b')
    await sender.sendMessages({ messageId: 'm-2', body: 'x' })
    await sender.close()
    const first = await receiveOne('conformance-b')
    await first.receiver.abandonMessage(first.message)
    await first.receiver.close()
    const second = await receiveOne('conformance-b')
    expect(second.message.deliveryCount).toBe(1)
    await second.receiver.deadLetterMessage(second.message, { deadLetterReason: 'why', deadLetterErrorDescription: 'because' })
    await second.receiver.close()
    const dead = await receiveOne('conformance-b', { subQueueType: 'deadLetter' })
    expect(dead.message).toMatchObject({ messageId: 'm-2', deadLetterReason: 'why', deadLetterErrorDescription: 'because' })
    await dead.receiver.completeMessage(dead.message)
    await dead.receiver.close()
  })

  it('puts a message back when its lock expires; settling it then fails with MessageLockLost', async () => {
    const sender = client.createSender('conformance-c')
    await sender.sendMessages({ messageId: 'm-3', body: 'x' })
    await sender.close()
    const { receiver, message } = await receiveOne('conformance-c')
    await bus.waitFor('the lock to expire', () => bus.events.some((e) => e.type === 'lock-expired' && e.messageId === 'm-3'), 5_000)
    const error = await receiver.completeMessage(message).then(() => undefined, (err: unknown) => err)
    expect(isServiceBusError(error) && error.code).toBe('MessageLockLost')
    await receiver.close()
    expect(bus.queue('conformance-c').available.map((m) => [m.messageId, m.deliveries])).toEqual([['m-3', 1]])
  })
})

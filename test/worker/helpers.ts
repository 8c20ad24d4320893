import { ServiceBusClient } from '@azure/service-bus'
import type { ServiceBusMessage, ServiceBusReceivedMessage } from '@azure/service-bus'
import type { AppOverrides } from '../../src/app.ts'
import type { EmulatorOptions } from '../../src/emulator/index.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import type { FakeServiceBus } from '../fakes/service-bus/broker.ts'

export const QUEUE = 'generations'

/** The gateway with WORKER=on, consuming QUEUE on the fake broker, its image URLs on its own address. */
export function startWorkerGateway (bus: FakeServiceBus, o: { env?: Record<string, string>, emulator?: EmulatorOptions, overrides?: AppOverrides } = {}): Promise<TestGateway> {
  return startGateway({
    selfBaseUrl: true,
    emulator: o.emulator,
    // Reply webhooks go to receivers the tests run on loopback, over plain http.
    overrides: { ...o.overrides, worker: { webhook: { allowedSchemes: ['http:', 'https:'], allowAddresses: ['127.0.0.1'] }, ...o.overrides?.worker } },
    env: {
      WORKER: 'on',
      SERVICE_BUS_CONNECTION_STRING: bus.connectionString,
      SERVICE_BUS_QUEUE: QUEUE,
      WORKER_CONCURRENCY: '4',
      LOG_LEVEL: 'warn',
      ...o.env
    }
  })
}

/** A sending and reply-reading client of the fake broker: the real SDK, as a backend would use it. */
export interface Backend {
  send: (message: ServiceBusMessage) => Promise<void>
  /** The next `count` messages on a queue, completed as they are read. */
  receive: (queue: string, count: number) => Promise<ServiceBusReceivedMessage[]>
  close: () => Promise<void>
}

export function backend (bus: FakeServiceBus): Backend {
  const client = new ServiceBusClient(bus.connectionString)
  const sender = client.createSender(QUEUE)
  return {
    send: (message) => sender.sendMessages(message),
    async receive (queue, count) {
      // No lock renewal: the SDK keys it by messageId, and a reply sent twice carries the same one.
      const receiver = client.createReceiver(queue, { receiveMode: 'peekLock', maxAutoLockRenewalDurationInMs: 0 })
      const out: ServiceBusReceivedMessage[] = []
      try {
        for (let round = 0; round < 20 && out.length < count; round++) {
          const got = await receiver.receiveMessages(count - out.length, { maxWaitTimeInMs: 1_000 })
          for (const m of got) await receiver.completeMessage(m)
          out.push(...got)
        }
      } finally {
        await receiver.close()
      }
      return out
    },
    async close () {
      await sender.close()
      await client.close()
    }
  }
}

export const creates = (gw: TestGateway) => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

/** Events of one message on the broker, by type. */
export function eventsOf (bus: FakeServiceBus, messageId: string): string[] {
  return bus.events.filter((e) => 'messageId' in e && e.messageId === messageId && e.type !== 'enqueued').map((e) => e.type)
}

/**
 * Where the server's log lines go. JSON lines on stdout everywhere a machine reads them; readable lines when a person
 * watches a terminal outside production. pino-pretty is a dev dependency, loaded only then, and absent from
 * production images: without it the lines stay JSON.
 */
export async function consoleLogStream (o: { isTTY: boolean | undefined, nodeEnv: string }): Promise<NodeJS.WritableStream | undefined> {
  if (o.isTTY !== true || o.nodeEnv === 'production') return undefined
  try {
    const { default: pretty } = await import('pino-pretty')
    return pretty({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', colorize: true, sync: true })
  } catch {
    return undefined
  }
}

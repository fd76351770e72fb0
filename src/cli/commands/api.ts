/** `npe api`: the HTTP API in queue mode (needs REDIS_URL); see serve.ts. */
import { run as serve } from './serve.js'

export function run(argv: string[]): Promise<number> {
  return serve(argv, { queueOnly: true })
}

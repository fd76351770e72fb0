/**
 * `npe serve`: the HTTP service. Without REDIS_URL: one process (embedded mode,
 * the model in-process). With REDIS_URL: the API enqueues to BullMQ and
 * `npe worker` processes do the work; `--workers N` starts N of them here.
 * `npe api` is the same in queue mode only (it refuses to run embedded).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig } from '../../config.js'
import { createService } from '../../runtime.js'
import { intFlag, UsageError } from '../flags.js'

const USAGE = `usage: npe serve [--port P] [--host H] [--workers N]
       npe api   [--port P] [--host H]

Settings come from the environment (see the README's table): REDIS_URL unset = embedded mode
(in-memory sessions, the model in this process); set = queue mode (BullMQ + npe worker).`

export function webRoot(): string | undefined {
  const dir = fileURLToPath(new URL('../../../web', import.meta.url))
  return existsSync(dir) ? dir : undefined
}

export async function run(argv: string[], opts: { queueOnly?: boolean } = {}): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        workers: { type: 'string', default: '0' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values
  } catch (err) {
    console.error(`npe serve: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  let config
  try {
    config = loadConfig({ ...process.env, ...(values.port ? { PORT: values.port } : {}), ...(values.host ? { HOST: values.host } : {}) })
  } catch (err) {
    console.error(`npe serve: ${(err as Error).message}`)
    return 2
  }
  let workers: number
  try {
    workers = intFlag('workers', values.workers, 0, 64)
  } catch (err) {
    console.error(`npe serve: ${(err as UsageError).message}\n\n${USAGE}`)
    return 2
  }
  if ((opts.queueOnly || workers > 0) && !config.REDIS_URL) {
    console.error(`npe ${opts.queueOnly ? 'api' : 'serve --workers'}: queue mode needs REDIS_URL`)
    return 2
  }
  const service = await createService(config, { level: config.LOG_LEVEL }, { webRoot: webRoot() })
  const log = service.app.log
  const { deps } = service
  log.info(
    deps.mode === 'embedded'
      ? { mode: 'embedded', backend: deps.backend, model: config.MODEL_DIR, step: deps.model.step }
      : { mode: 'queue', queue: config.QUEUE_NAME, model: config.MODEL_DIR },
    deps.mode === 'embedded'
      ? 'embedded mode: in-memory sessions, in-process jobs (set REDIS_URL for the queue and worker processes)'
      : 'queue mode: jobs go to BullMQ; run npe worker processes',
  )
  const children: ChildProcess[] = []
  // the CLI entry next to this file (index.js when built, index.ts under the TypeScript loader)
  const cli = fileURLToPath(new URL(`../index${extname(fileURLToPath(import.meta.url))}`, import.meta.url))
  for (let i = 0; i < workers; i++) {
    // local workers share this environment: their probe port (if any) would collide
    const child = fork(cli, ['worker'], { execArgv: process.execArgv, env: { ...process.env, WORKER_PORT: '0' } })
    child.on('exit', (code, signal) => log.warn({ pid: child.pid, code, signal }, 'worker process exited'))
    children.push(child)
  }
  await service.app.listen({ port: config.PORT, host: config.HOST })
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'shutting down: no new requests, finishing in-flight work')
    const exits = children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve(null) : c.once('exit', resolve))))
    for (const c of children) c.kill('SIGTERM')
    await service.close()
    await Promise.all(exits)
    log.info('stopped')
    process.exit(0)
  }
  process.once('SIGTERM', () => void stop('SIGTERM'))
  process.once('SIGINT', () => void stop('SIGINT'))
  return new Promise<number>(() => undefined) // runs until a signal
}

/** `npe worker`: a worker process for queue mode (settings from the environment). */
import { pino } from 'pino'
import { loadConfig } from '../../config.js'
import { startWorker } from '../../workers/worker.js'

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log('usage: npe worker\n\nPulls jobs from the BullMQ queue at REDIS_URL and runs them with the model at MODEL_DIR\n(settings: see the README). SIGTERM finishes active jobs, then exits.')
    return 0
  }
  let config
  try {
    config = loadConfig()
  } catch (err) {
    console.error(`npe worker: ${(err as Error).message}`)
    return 2
  }
  const log = pino({ level: config.LOG_LEVEL, base: { pid: process.pid, role: 'worker' } })
  const running = await startWorker(config, log)
  const stop = async (signal: string) => {
    log.info({ signal }, 'stopping')
    await running.close()
    process.exit(0)
  }
  process.once('SIGTERM', () => void stop('SIGTERM'))
  process.once('SIGINT', () => void stop('SIGINT'))
  return new Promise<number>(() => undefined)
}

/**
 * Every setting of the service and the workers: one zod schema over the
 * environment, read once. Nothing else in the project reads process.env
 * for settings (the README's table lists every variable).
 */
import { z } from 'zod'
import { BACKEND_PREFERENCES } from './model/backend.js'

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback)
const list = z
  .string()
  .default('')
  .transform((s) =>
    s
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean),
  )

export const configSchema = z.object({
  PORT: int(0, 65535, 8080),
  HOST: z.string().default('0.0.0.0'),
  /** Unset: embedded mode (in-memory sessions, in-process jobs). Set: queue mode. */
  REDIS_URL: z.string().url().optional(),
  /** Key prefix for sessions and the BullMQ queue. */
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('npe'),
  QUEUE_NAME: z.string().regex(/^[A-Za-z0-9_-]+$/).default('npe'),
  MODEL_DIR: z.string().default('models/default'),
  TFJS_BACKEND: z.enum(BACKEND_PREFERENCES).default('auto'),
  /** Jobs of one kind run together, up to BATCH_MAX, gathered for at most BATCH_WAIT_MS. */
  BATCH_MAX: int(1, 256, 8),
  BATCH_WAIT_MS: int(0, 600_000, 5),
  /** Waiting jobs beyond which new work is refused with 503. */
  QUEUE_MAX: int(1, 1_000_000, 100),
  /** How long the API waits for a job before answering 504 (the job is dropped if not started). */
  JOB_DEADLINE_MS: int(100, 600_000, 30_000),
  /** Worker lock duration / stalled-job check interval (BullMQ). */
  WORKER_LOCK_MS: int(1_000, 600_000, 60_000),
  WORKER_STALLED_INTERVAL_MS: int(500, 600_000, 30_000),
  /** Workers: port of their /healthz, /readyz and /metrics endpoint (0 = none). */
  WORKER_PORT: int(0, 65535, 0),
  SESSION_TTL_S: int(10, 30 * 86_400, 3_600),
  HISTORY_LIMIT: int(0, 100, 10),
  UPLOAD_MAX_BYTES: int(1_024, 1_073_741_824, 15 * 1024 * 1024),
  UPLOAD_MAX_PIXELS: int(1, 1_000_000_000, 40_000_000),
  /** Comma-separated API keys; empty: no authentication. */
  API_KEYS: list,
  /** Comma-separated allowed origins, or '*'; empty: no CORS headers. */
  CORS_ORIGINS: list,
  RATE_LIMIT_MAX: int(0, 1_000_000, 600),
  RATE_LIMIT_WINDOW_MS: int(100, 86_400_000, 60_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Mask smoothing in model pixels (default: 0.7 px at 64x64, scaled). */
  MASK_SIGMA: z.coerce.number().min(0).max(16).optional(),
  TRUST_PROXY: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
})

export type Config = z.infer<typeof configSchema>

/** Parses the environment; throws one error listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const relevant = Object.fromEntries(Object.keys(configSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]))
  const parsed = configSchema.safeParse(relevant)
  if (!parsed.success) {
    throw new Error(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  }
  return parsed.data
}

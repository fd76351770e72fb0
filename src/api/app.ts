/**
 * The Fastify application as one function of its dependencies: external
 * plugins (security headers, CORS, rate limit, multipart, docs), then the
 * app's own hooks (request ids, auth, metrics, problem+json errors), then the
 * routes. Only src/cli/commands/serve.ts listens.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import multipart from '@fastify/multipart'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { Redis } from 'ioredis'
import { parse as parseYaml } from 'yaml'
import type { Config } from '../config.js'
import { AppError } from '../errors.js'
import type { BlobStore } from '../jobs/blobs.js'
import type { JobRunner } from '../jobs/types.js'
import type { Metrics } from '../metrics.js'
import type { SessionStore } from '../sessions/types.js'
import { authHook, keyIdOf } from './auth.js'
import { fromFastifyError, sendProblem } from './problem.js'
import { editingRoutes } from './routes/editing.js'
import { operationsRoutes } from './routes/operations.js'
import { sessionRoutes } from './routes/sessions.js'

export interface ModelInfo {
  resolution: number
  latentSize: number
  step: number
}

export interface AppDeps {
  config: Config
  mode: 'embedded' | 'queue'
  runner: JobRunner
  store: SessionStore
  blobs: BlobStore
  metrics: Metrics
  model: ModelInfo
  backend: string
  /** Queue mode: rate-limit counters are shared through Redis. */
  redis?: Redis
  /** Static web client to serve at / (optional). */
  webRoot?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps
  }
  interface FastifyRequest {
    /** Id of the API key used ('' without keys). */
    owner: string
  }
}

export const OPENAPI_PATH = new URL('../../openapi.yaml', import.meta.url)

export function loadOpenApi(): { yaml: string; document: Record<string, unknown> } {
  const yaml = readFileSync(OPENAPI_PATH, 'utf8')
  return { yaml, document: parseYaml(yaml) as Record<string, unknown> }
}

export async function buildApp(deps: AppDeps, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const { config } = deps
  const app = Fastify({
    logger,
    trustProxy: config.TRUST_PROXY,
    bodyLimit: 1024 * 1024,
    requestIdHeader: 'x-request-id',
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,128}$/.test(given) ? given : randomUUID()
    },
  })
  app.decorate('deps', deps)
  app.decorateRequest('owner', '')

  // Graceful shutdown: once closing, in-flight responses carry `Connection: close` and idle
  // keep-alive connections are dropped, so close() does not wait out keep-alive timeouts.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
    app.server.closeIdleConnections?.()
  })
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
  app.addHook('onResponse', async () => {
    if (closing) app.server.closeIdleConnections?.()
  })

  app.setErrorHandler((err: FastifyError | AppError, request, reply) => {
    const e = err instanceof AppError ? err : fromFastifyError(err as FastifyError)
    if (e.code === 'internal') request.log.error({ err }, 'unhandled error')
    return sendProblem(reply, e)
  })
  app.setNotFoundHandler((request, reply) => sendProblem(reply, new AppError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)))

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        styleSrc: ["'self'", "'unsafe-inline'"],
        scriptSrc: ["'self'"],
        connectSrc: ["'self'"],
        // helmet's default would make browsers fetch the page's own scripts over https, which breaks
        // the web editor at / when served over plain http on a non-localhost address (LAN, docker);
        // the page loads only same-origin relative URLs, so over https nothing changes.
        upgradeInsecureRequests: null,
      },
    },
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  })
  if (config.CORS_ORIGINS.length > 0) {
    await app.register(cors, {
      origin: config.CORS_ORIGINS.includes('*') ? true : config.CORS_ORIGINS,
      methods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
      allowedHeaders: ['content-type', 'authorization', 'x-request-id', 'accept'],
      exposedHeaders: ['x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
      maxAge: 600,
    })
  }
  // auth before the rate limit so the limit is per key
  app.addHook('onRequest', authHook(config.API_KEYS))
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  if (config.RATE_LIMIT_MAX > 0) {
    await app.register(rateLimit, {
      max: config.RATE_LIMIT_MAX,
      timeWindow: config.RATE_LIMIT_WINDOW_MS,
      keyGenerator: (request) => (request.owner ? `key:${request.owner}` : `ip:${request.ip}`),
      allowList: (request) => /^\/(healthz|readyz|metrics)$/.test(request.url.split('?')[0]!),
      ...(deps.redis ? { redis: deps.redis, nameSpace: `${config.REDIS_PREFIX}:ratelimit:` } : {}),
      errorResponseBuilder: (_request, context) => {
        const err = new AppError('rate_limited', `rate limit of ${context.max} requests per ${context.after} exceeded`)
        return Object.assign(err, { statusCode: 429 })
      },
    })
  }
  await app.register(multipart, {
    limits: { files: 1, fileSize: config.UPLOAD_MAX_BYTES, fields: 4, fieldSize: 256, parts: 6, headerPairs: 100 },
  })

  const openapi = loadOpenApi()
  await app.register(swagger, { mode: 'static', specification: { document: openapi.document as never } })
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
  app.get('/openapi.json', { schema: { hide: true } }, async () => openapi.document)
  app.get('/openapi.yaml', { schema: { hide: true } }, async (_request, reply) => reply.type('application/yaml').send(openapi.yaml))

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    deps.metrics.httpDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })
  deps.metrics.setSources({ queueDepth: () => deps.runner.depth(), liveSessions: () => deps.store.count() })

  await app.register(operationsRoutes)
  await app.register(editingRoutes)
  await app.register(sessionRoutes)
  if (deps.webRoot) {
    const { default: fastifyStatic } = await import('@fastify/static' as string)
    await app.register(fastifyStatic, { root: deps.webRoot, prefix: '/', decorateReply: false, index: ['index.html'] })
  }
  return app
}

export { keyIdOf }

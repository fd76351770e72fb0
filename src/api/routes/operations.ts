/** /healthz (alive), /readyz (model, store and queue), /metrics (Prometheus). */
import type { FastifyInstance } from 'fastify'

export async function operationsRoutes(app: FastifyInstance): Promise<void> {
  const { deps } = app
  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const [store, queue] = await Promise.all([
      deps.store.ping().then(
        () => 'ok' as const,
        () => 'down' as const,
      ),
      deps.runner.kind === 'inline'
        ? Promise.resolve('inline' as const)
        : deps.runner.ping().then(
            () => 'ok' as const,
            () => 'down' as const,
          ),
    ])
    const ready = store === 'ok' && queue !== 'down'
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not_ready',
      mode: deps.mode,
      backend: deps.backend,
      model: { loaded: true, ...deps.model },
      store,
      queue,
    })
  })

  app.get('/metrics', async (_request, reply) => {
    reply.type(deps.metrics.registry.contentType)
    return deps.metrics.registry.metrics()
  })
}

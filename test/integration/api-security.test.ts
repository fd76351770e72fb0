/** CORS allow-list, rate limiting, security headers (embedded service). */
import t from 'tap'
import { buildService } from '../helpers/service.js'

t.test('CORS: allowed origins get the headers, others do not', async (t) => {
  const s = await buildService({ CORS_ORIGINS: 'https://editor.example' })
  t.teardown(() => s.close())
  const ok = await s.app.inject({ method: 'OPTIONS', url: '/edit', headers: { origin: 'https://editor.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' } })
  t.equal(ok.statusCode, 204)
  t.equal(ok.headers['access-control-allow-origin'], 'https://editor.example')
  t.match(String(ok.headers['access-control-allow-headers']), /authorization/)
  const other = await s.app.inject({ method: 'OPTIONS', url: '/edit', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
  t.equal(other.headers['access-control-allow-origin'], undefined)
  const get = await s.app.inject({ method: 'GET', url: '/healthz', headers: { origin: 'https://editor.example' } })
  t.equal(get.headers['access-control-allow-origin'], 'https://editor.example')
})

t.test('rate limit per client: 429 problem+json, probes exempt', async (t) => {
  const s = await buildService({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' })
  t.teardown(() => s.close())
  const codes: number[] = []
  for (let i = 0; i < 4; i++) codes.push((await s.app.inject({ method: 'GET', url: '/sessions/' + '0'.repeat(32) })).statusCode)
  t.same(codes, [404, 404, 404, 429])
  const limited = await s.app.inject({ method: 'GET', url: '/sessions/' + '0'.repeat(32) })
  t.equal(limited.statusCode, 429)
  t.match(String(limited.headers['content-type']), /application\/problem\+json/)
  t.equal(limited.json().code, 'rate_limited')
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After')
  t.equal((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'probes are not limited')
  const other = await s.app.inject({ method: 'GET', url: '/sessions/' + '0'.repeat(32), remoteAddress: '10.9.9.9' })
  t.equal(other.statusCode, 404, 'another client has its own budget')
})

t.test('security headers', async (t) => {
  const s = await buildService()
  t.teardown(() => s.close())
  const res = await s.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['x-frame-options'], 'SAMEORIGIN')
  t.match(String(res.headers['content-security-policy']), /default-src 'self'/)
  t.match(String(res.headers['strict-transport-security']), /max-age=/)
  t.equal(res.headers['x-powered-by'], undefined)
})

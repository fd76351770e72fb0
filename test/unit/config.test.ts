import t from 'tap'
import { loadConfig } from '../../src/config.js'

t.test('defaults', async (t) => {
  const c = loadConfig({})
  t.equal(c.PORT, 8080)
  t.equal(c.REDIS_URL, undefined, 'embedded mode by default')
  t.equal(c.MODEL_DIR, 'models/default')
  t.equal(c.TFJS_BACKEND, 'auto')
  t.equal(c.BATCH_MAX, 8)
  t.equal(c.JOB_DEADLINE_MS, 30_000)
  t.equal(c.SESSION_TTL_S, 3600)
  t.same(c.API_KEYS, [])
  t.same(c.CORS_ORIGINS, [])
  t.equal(c.TRUST_PROXY, false)
})

t.test('parsing and lists', async (t) => {
  const c = loadConfig({ PORT: '9000', REDIS_URL: 'redis://r:6379/1', API_KEYS: ' a, b ,,c', CORS_ORIGINS: 'https://x.example', TRUST_PROXY: 'true', MASK_SIGMA: '1.5', PATH: '/usr/bin' })
  t.equal(c.PORT, 9000)
  t.equal(c.REDIS_URL, 'redis://r:6379/1')
  t.same(c.API_KEYS, ['a', 'b', 'c'])
  t.same(c.CORS_ORIGINS, ['https://x.example'])
  t.equal(c.TRUST_PROXY, true)
  t.equal(c.MASK_SIGMA, 1.5)
  t.equal(loadConfig({ REDIS_URL: '' }).REDIS_URL, undefined, 'empty means unset')
})

t.test('every bad variable is reported at once', async (t) => {
  let message = ''
  try {
    loadConfig({ PORT: 'eighty', TFJS_BACKEND: 'tpu', BATCH_MAX: '0', REDIS_URL: 'not a url' })
  } catch (err) {
    message = (err as Error).message
  }
  for (const name of ['PORT', 'TFJS_BACKEND', 'BATCH_MAX', 'REDIS_URL']) t.match(message, name)
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
  t.throws(() => loadConfig({ REDIS_PREFIX: 'a:b' }), /REDIS_PREFIX/)
})

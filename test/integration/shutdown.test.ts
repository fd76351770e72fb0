/**
 * Graceful shutdown: SIGTERM to `npe serve` (embedded) lets an in-flight request finish,
 * refuses new connections, and exits 0; SIGTERM to a worker finishes and exits 0.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { tinyModelDir } from '../helpers/service.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const loader = new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url).href

t.test('SIGTERM during a request: the request completes, then the process exits 0', async (t) => {
  const model = await tinyModelDir()
  t.teardown(model.cleanup)
  const port = 20000 + Math.floor(Math.random() * 20000)
  // a long batch wait keeps the request in flight when the signal arrives
  const child = spawn(process.execPath, [`--import=${loader}`, 'src/cli/index.ts', 'serve'], {
    cwd: root,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', PORT: String(port), HOST: '127.0.0.1', MODEL_DIR: model.dir, TFJS_BACKEND: 'wasm', BATCH_WAIT_MS: '1500', REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  for (let i = 0; i < 300 && !out.includes('Server listening'); i++) await new Promise((r) => setTimeout(r, 100))
  t.match(out, /embedded mode/, 'the log says embedded mode')
  const inflight = fetch(`http://127.0.0.1:${port}/sample?seed=1`)
  await new Promise((r) => setTimeout(r, 300))
  child.kill('SIGTERM')
  const res = await inflight
  t.equal(res.status, 201, 'the in-flight request completed')
  t.equal(((await res.json()) as { seed: number }).seed, 1)
  t.equal(await exited, 0, 'clean exit')
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'no longer listening')
  t.match(out, /shutting down/)
})

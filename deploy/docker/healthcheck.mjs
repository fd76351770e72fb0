// Container health check for both roles of the image (Docker HEALTHCHECK, compose).
// Kubernetes does not use it: the manifests probe the HTTP endpoints directly.
//
//   node deploy/docker/healthcheck.mjs [api|worker|auto]    (default: auto)
//
// api:    GET http://127.0.0.1:$PORT/healthz                  (PORT default 8080)
// worker: GET http://127.0.0.1:$WORKER_PORT/readyz             (200 once the model is loaded and the
//         BullMQ worker runs); with WORKER_PORT unset or 0 the worker has no endpoint: exit 0
//         with a note rather than mark every such worker unhealthy.
// auto:   'worker' when PID 1 is `node dist/cli/index.js worker`, else 'api'.
//
// Plain Node (no curl in the images), no dependencies; exit 0 = healthy, 1 = not.
import { readFileSync } from 'node:fs'

function role() {
  const mode = process.argv[2] ?? 'auto'
  if (mode === 'api' || mode === 'worker') return mode
  try {
    const argv = readFileSync('/proc/1/cmdline', 'utf8').split('\0')
    const cli = argv.findIndex((a) => a.endsWith('cli/index.js'))
    return cli >= 0 && argv[cli + 1] === 'worker' ? 'worker' : 'api'
  } catch {
    return 'api'
  }
}

const port = (name, fallback) => {
  const v = process.env[name]
  return v === undefined || v === '' ? fallback : Number(v)
}

async function main() {
  const r = role()
  const p = r === 'worker' ? port('WORKER_PORT', 0) : port('PORT', 8080)
  if (r === 'worker' && !(p > 0)) {
    console.log('worker without WORKER_PORT: no endpoint to probe')
    return 0
  }
  const url = `http://127.0.0.1:${p}${r === 'worker' ? '/readyz' : '/healthz'}`
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) })
  console.log(`${url} -> ${res.status}`)
  return res.ok ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.log(`health check failed: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  },
)

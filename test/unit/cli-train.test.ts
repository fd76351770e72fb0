import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { UsageError, choiceFlag, intFlag, numberFlag, weightFlag } from '../../src/cli/flags.js'
import { formatDuration, progressReporter } from '../../src/cli/progress.js'
import { progressLine, run } from '../../src/cli/commands/train.js'

const repo = fileURLToPath(new URL('../..', import.meta.url))
const loader = pathToFileURL(join(repo, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')).href
const root = await mkdtemp(join(tmpdir(), 'npe-cli-train-'))
t.teardown(() => rm(root, { recursive: true, force: true }))

t.test('flag parsing helpers', async (t) => {
  t.equal(intFlag('steps', '20', 1, 100), 20)
  t.equal(intFlag('steps', undefined, 1, 100, 7), 7)
  t.throws(() => intFlag('steps', undefined, 1, 100), new UsageError('--steps is required'))
  t.throws(() => intFlag('batch', '1', 2, 1024), { message: "--batch must be an integer in 2..1024, got '1'" })
  t.throws(() => intFlag('batch', '4.5', 2, 1024), UsageError)
  t.equal(numberFlag('lr', '2e-4', 0, 1), 2e-4)
  t.throws(() => numberFlag('lr', '0', 0, 1), { message: "--lr must be a number greater than 0 and at most 1, got '0'" })
  t.throws(() => numberFlag('lr', 'fast', 0, 1), UsageError)
  t.equal(weightFlag('lambda-adv', '0', 1000), 0, 'a loss weight may be 0 (the term off)')
  t.equal(weightFlag('lambda-adv', '0.02', 1000), 0.02)
  t.throws(() => weightFlag('lambda-adv', '-0.1', 1000), { message: "--lambda-adv must be a number in 0..1000, got '-0.1'" })
  t.throws(() => weightFlag('lambda-kl', '', 1000), UsageError)
  t.throws(() => weightFlag('lambda-kl', '1001', 1000), UsageError)
  t.equal(choiceFlag('backend', 'wasm', ['auto', 'wasm'] as const), 'wasm')
  t.throws(() => choiceFlag('backend', 'tpu', ['auto', 'wasm'] as const), { message: "--backend must be one of auto, wasm, got 'tpu'" })
})

t.test('progress: a line per 2% when not a TTY, in place on a TTY', async (t) => {
  t.equal(formatDuration(3725), '1:02:05')
  t.equal(formatDuration(65), '1:05')
  t.equal(formatDuration(NaN), '?')
  const plain: string[] = []
  const p = progressReporter<number>({ write: (s) => plain.push(s) }, { line: (n) => `at ${n}`, fraction: (n) => n / 100, lines: 50 })
  for (let i = 1; i <= 100; i++) p.update(i)
  p.note('hello')
  t.equal(plain.length, 51 + 1, 'buckets 0..50, plus the note')
  t.equal(plain.at(-2), 'at 100\n')
  t.equal(plain.at(-1), 'hello\n')

  const tty: string[] = []
  const q = progressReporter<number>({ write: (s) => tty.push(s), isTTY: true }, { line: (n) => `at ${n}`, fraction: (n) => n / 100, minIntervalMs: 60_000 })
  for (let i = 1; i <= 100; i++) q.update(i)
  t.same(tty, ['\rat 1\x1b[K', '\rat 100\x1b[K'], 'throttled, but the final state is always drawn')
  q.note('saved')
  t.equal(tty.at(-1), '\rsaved\x1b[K\nat 100\x1b[K', 'a note goes above the redrawn progress line')
  q.end()
  t.equal(tty.at(-1), '\n')

  const line = progressLine({
    step: 50,
    total: 200,
    startStep: 0,
    batch: 16,
    elapsedSeconds: 100,
    stepsPerSec: 0.5,
    imagesPerSec: 8,
    etaSeconds: 300,
    lr: 2e-4,
    losses: { ge: 1, d: 1, gAdv: 1.25, dAdv: 3.3, pixel: 0.5, feature: 0.125, kl: 2, orthoG: 0, orthoD: 0, dAccuracy: 0.5 },
  })
  t.equal(line, 'train: 50/200 (25.0%)  0.50 steps/s  8.0 img/s  ETA 5:00  pixel 0.500 feature 0.125 kl 2.00 gAdv 1.25 dAdv 3.30')
})

async function captureStderr(fn: () => Promise<number>): Promise<{ code: number; stderr: string }> {
  const original = console.error
  const lines: string[] = []
  console.error = (...args: unknown[]) => void lines.push(args.join(' '))
  try {
    return { code: await fn(), stderr: lines.join('\n') }
  } finally {
    console.error = original
  }
}

t.test('npe train: bad flags exit 2 with a clear message', async (t) => {
  const out = join(root, 'never')
  const cases: [string[], RegExp][] = [
    [['--preset', 'tiny-16', '--data', 'facesjs'], /--out is required/],
    [['--data', 'facesjs', '--out', out], /--preset is required for a new run/],
    [['--preset', 'tiny-16', '--out', out], /--data is required for a new run/],
    [['--preset', 'huge', '--data', 'facesjs', '--out', out], /--preset must be one of paper-64, simple-64, small-64, tiny-16, got 'huge'/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--batch', '1'], /--batch must be an integer in 2\.\.1024, got '1'/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--lr', 'x'], /--lr must be a number/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--backend', 'tpu'], /--backend must be one of/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--lr-schedule', 'cosine'], /--lr-schedule must be one of step, constant/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--frobnicate'], /Unknown option '--frobnicate'/],
    [['--out', out, '--resume', '--init-from', 'models/default'], /--init-from starts a new run; it cannot be combined with --resume/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--init-from', ''], /--init-from must be a checkpoint directory/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--lambda-adv=-1'], /--lambda-adv must be a number in 0\.\.1000, got '-1'/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--lambda-feature', 'lots'], /--lambda-feature must be a number in 0\.\.1000/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--lambda-pixel', 'NaN'], /--lambda-pixel must be a number/],
    [['--preset', 'tiny-16', '--data', 'facesjs', '--out', out, '--lambda-kl', 'Infinity'], /--lambda-kl must be a number/],
  ]
  for (const [argv, pattern] of cases) {
    const { code, stderr } = await captureStderr(() => run(argv))
    t.equal(code, 2, argv.join(' '))
    t.match(stderr, pattern)
    t.match(stderr, /usage: npe train/)
  }
  const { code, stderr } = await captureStderr(() => run(['--out', join(root, 'empty'), '--resume', '--backend', 'wasm']))
  t.equal(code, 1, '--resume without a checkpoint fails')
  t.match(stderr, /npe train: cannot resume: .* has no checkpoint/)
})

/** `npe train ...` in a child process through tap's TypeScript loader (no build needed). */
function spawnTrain(args: string[]) {
  const child = spawn(process.execPath, [`--import=${loader}`, 'src/cli/index.ts', 'train', ...args], {
    cwd: repo,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  return { child, exit, output: () => output }
}

async function waitForLogStep(path: string, minStep: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '')
    const steps = text.trim() === '' ? [] : text.trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step)
    if (steps.length > 0 && steps.at(-1)! >= minStep) return
    if (Date.now() > deadline) throw new Error(`no log line for step ${minStep} in ${path} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function lastLogStep(path: string): Promise<number> {
  const lines = (await readFile(path, 'utf8')).trim().split('\n')
  return (JSON.parse(lines.at(-1)!) as { step: number }).step
}

t.test('SIGINT and SIGTERM finish the step, save a checkpoint and exit 130 / 143', async (t) => {
  const out = join(root, 'run-signal')
  const log = join(out, 'log.jsonl')
  const common = ['--out', out, '--backend', 'wasm', '--quiet']
  const first = spawnTrain([...common, '--preset', 'tiny-16', '--data', 'facesjs', '--steps', '100000', '--batch', '4', '--log-every', '1', '--seed', '2'])
  await waitForLogStep(log, 1, 60_000)
  first.child.kill('SIGINT')
  const r1 = await first.exit
  t.equal(r1.code, 130, 'exit code 130 after SIGINT', { output: first.output() })
  t.match(first.output(), /SIGINT: finishing the current step/)
  t.match(first.output(), /stopped \(SIGINT\)/)
  const ck1 = JSON.parse(await readFile(join(out, 'checkpoint', 'checkpoint.json'), 'utf8'))
  const reached = await lastLogStep(log)
  t.ok(reached >= 1)
  t.equal(ck1.step, reached, `the checkpoint holds the step that was reached (${reached})`)
  t.equal(ck1.metadata.preset, 'tiny-16')
  t.equal(ck1.metadata.backend, 'wasm')

  // Reusing the run without --resume is refused; --resume takes the run's own settings.
  const again = spawnTrain([...common, '--preset', 'tiny-16', '--data', 'facesjs'])
  t.equal((await again.exit).code, 1)
  t.match(again.output(), /already exists; pass --resume to continue that run/)

  const resumed = spawnTrain([...common, '--resume'])
  await waitForLogStep(log, reached + 1, 60_000)
  resumed.child.kill('SIGTERM')
  const r2 = await resumed.exit
  t.equal(r2.code, 143, 'exit code 143 after SIGTERM', { output: resumed.output() })
  t.match(resumed.output(), new RegExp(`resuming at step ${reached} `))
  const ck2 = JSON.parse(await readFile(join(out, 'checkpoint', 'checkpoint.json'), 'utf8'))
  t.equal(ck2.step, await lastLogStep(log))
  t.ok(ck2.step > reached, 'the resumed run went on')
  t.equal(ck2.metadata.batch, 4, 'with the settings of the run')
  t.equal(ck2.metadata.seed, 2)
})

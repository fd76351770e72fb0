/**
 * `npe dataset facesjs --n N --size S --seed K --out DIR`: render a labelled facesjs portrait
 * dataset to disk (see src/data/facesjs.ts for the layout). Re-running with the same flags
 * resumes: valid images already written are kept.
 */
import { parseArgs } from 'node:util'
import { ATTRIBUTE_SCHEMA, writeDataset, type WriteProgress } from '../../data/facesjs.js'
import { UsageError, intFlag } from '../flags.js'
import { formatDuration, progressReporter } from '../progress.js'

const USAGE = `usage: npe dataset facesjs --n N --size S --seed K --out DIR [flags]

Render N labelled cartoon portraits (facesjs) as S x S PNGs:
  DIR/images/000000.png ...   the images
  DIR/labels.jsonl            one {file, index, split, seed, attributes} per line
  DIR/dataset.json            generator, versions, n, size, seed, split counts, attribute schema

Face i depends only on (seed, i); the same flags give the same bytes. Re-running into the
same DIR resumes (valid images are kept); a DIR holding another seed/size is refused.

flags:
  --n N              number of images (required)
  --size S           image side in pixels, 8..1024 (default 64)
  --seed K           dataset seed, a non-negative integer (default 0)
  --out DIR          output directory (required)
  --concurrency C    renders in flight (default: the CPU count, clamped to 4..8)
  --quiet            no progress output
  -h, --help         this help

attribute targets: ${ATTRIBUTE_SCHEMA.map((t) => `${t.name} (${t.numClasses})`).join(', ')}`

/** The dataset progress line; drawn by the shared reporter (a line per ~5% when not a TTY). */
function datasetLine(p: WriteProgress): string {
  const secs = p.elapsedMs / 1000
  const rate = secs > 0 ? p.done / secs : 0
  const eta = rate > 0 ? (p.total - p.done) / rate : NaN
  const pct = p.total > 0 ? ((100 * p.done) / p.total).toFixed(1) : '100.0'
  const kept = p.skipped > 0 ? `  (${p.skipped} kept)` : ''
  return `dataset: ${p.done}/${p.total} (${pct}%)  ${rate.toFixed(1)} img/s  ETA ${formatDuration(eta)}${kept}`
}

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        n: { type: 'string' },
        size: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        concurrency: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    console.error(`npe dataset: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const [kind, ...extra] = positionals
  if (kind !== 'facesjs' || extra.length > 0) {
    console.error(
      `npe dataset: ${kind === undefined ? 'missing generator' : `unknown generator '${[kind, ...extra].join(' ')}'`}` +
        ` (only 'facesjs' is available)\n\n${USAGE}`,
    )
    return 2
  }

  let n: number, size: number, seed: number, concurrency: number | undefined
  try {
    n = intFlag('n', values.n, 1, 100_000_000)
    size = intFlag('size', values.size, 8, 1024, 64)
    seed = intFlag('seed', values.seed, 0, 0xffffffff, 0)
    concurrency = values.concurrency === undefined ? undefined : intFlag('concurrency', values.concurrency, 1, 256)
    if (!values.out) throw new UsageError('--out is required')
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`npe dataset: ${err.message}\n\n${USAGE}`)
    return 2
  }
  const out = values.out

  const progress = values.quiet
    ? undefined
    : progressReporter<WriteProgress>(process.stderr, {
        line: datasetLine,
        fraction: (p) => (p.total > 0 ? p.done / p.total : 1),
        lines: 20,
      })
  try {
    const result = await writeDataset({
      n,
      size,
      seed,
      out,
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(progress ? { onProgress: progress.update } : {}),
    })
    progress?.end()
    const { splits } = result.manifest
    const secs = result.elapsedMs / 1000
    console.log(
      `wrote ${result.written} images` +
        (result.skipped > 0 ? ` (${result.skipped} already present)` : '') +
        ` of ${n} at ${size}x${size}, seed ${seed}, to ${out} in ${secs.toFixed(1)} s` +
        ` (${(n / Math.max(secs, 1e-3)).toFixed(1)} img/s); splits train ${splits.train} / val ${splits.val} / test ${splits.test}`,
    )
    return 0
  } catch (err) {
    progress?.end()
    console.error(`npe dataset: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
}

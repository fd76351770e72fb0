/** `npe sample`: a PNG grid of samples G(z), z ~ N(0, I) from seeds K, K+1, ... */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { encodePng } from '../../data/image.js'
import { tileImages } from '../../data/grid.js'
import { Editor } from '../../editor/editor.js'
import { initBackend, BACKEND_PREFERENCES, type BackendPreference } from '../../model/backend.js'
import { loadCheckpoint } from '../../model/checkpoint-dir.js'
import { choiceFlag, failure, intFlag, UsageError } from '../flags.js'

const USAGE = `usage: npe sample --out grid.png [--model DIR] [--n 16] [--seed K] [--columns C] [--backend B]

Sample i uses seed K + i (the same sample as GET /sample?seed=K+i).`

export async function run(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', default: 'models/default' },
        out: { type: 'string' },
        n: { type: 'string', default: '16' },
        seed: { type: 'string', default: '0' },
        columns: { type: 'string' },
        backend: { type: 'string', default: 'auto' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
    if (values.help) {
      console.log(USAGE)
      return 0
    }
    if (!values.out) throw new UsageError('--out is required')
    const n = intFlag('n', values.n, 1, 1024)
    const seed = intFlag('seed', values.seed, 0, Number.MAX_SAFE_INTEGER - 1024)
    const columns = intFlag('columns', values.columns, 1, 1024, Math.ceil(Math.sqrt(n)))
    await initBackend(choiceFlag<BackendPreference>('backend', values.backend, BACKEND_PREFERENCES))
    const { model } = await loadCheckpoint(values.model)
    const editor = new Editor(model)
    const states: ReturnType<Editor['sample']> = []
    for (let i = 0; i < n; i += 32) states.push(...editor.sample(Array.from({ length: Math.min(32, n - i) }, (_, j) => seed + i + j)))
    const R = model.config.resolution
    const grid = tileImages(states.map((s) => s.output), R, columns, 2)
    await writeFile(values.out, await encodePng(grid.rgb, grid.width, grid.height))
    console.error(`npe sample: ${n} samples (seeds ${seed}..${seed + n - 1}) -> ${values.out}`)
    return 0
  } catch (err) {
    return failure('sample', USAGE, err, /^checkpoint_/)
  }
}

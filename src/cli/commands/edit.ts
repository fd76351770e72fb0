/**
 * `npe edit`: encode a photo, paint one stroke, blend, write the PNG (same size as the input).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { decodeImage, encodePng } from '../../data/image.js'
import { Editor, type PaintMode } from '../../editor/editor.js'
import { parseBox, parseHexColor, parsePoints } from '../../editor/parse.js'
import { initBackend, BACKEND_PREFERENCES, type BackendPreference } from '../../model/backend.js'
import { loadCheckpoint } from '../../model/checkpoint-dir.js'
import { choiceFlag, failure, numberFlag, UsageError } from '../flags.js'

const USAGE = `usage: npe edit --image IN --out OUT --stroke "x1,y1;x2,y2;..." --radius R [flags]

Encodes IN (PNG, JPEG or WebP), paints one stroke (one gradient step on z per point), blends the
change onto the photo (paper eq. 1-2) and writes OUT as a PNG of the same size as IN.

flags:
  --model DIR        checkpoint directory (default models/default)
  --image IN         input photo (required)
  --out OUT          output PNG (required)
  --crop x,y,w,h     region to edit, in photo pixels (default: the centred square)
  --stroke POINTS    brush centres in photo pixels, "x1,y1;x2,y2;..." (required)
  --radius R         brush radius in photo pixels (required)
  --color #rrggbb    target colour (default #000000; mode color)
  --mode M           color | lighten | darken (default color)
  --strength S       step-size multiplier (default 1)
  --backend B        ${BACKEND_PREFERENCES.join(' | ')} (default auto)
  --reconstruction F also write G(E(X)) at model resolution to F`

export async function run(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string', default: 'models/default' },
        image: { type: 'string' },
        out: { type: 'string' },
        crop: { type: 'string' },
        stroke: { type: 'string' },
        radius: { type: 'string' },
        color: { type: 'string', default: '#000000' },
        mode: { type: 'string', default: 'color' },
        strength: { type: 'string', default: '1' },
        backend: { type: 'string', default: 'auto' },
        reconstruction: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
    if (values.help) {
      console.log(USAGE)
      return 0
    }
    if (!values.image || !values.out || !values.stroke) throw new UsageError('--image, --out and --stroke are required')
    const points = parsePoints(values.stroke)
    if (!points) throw new UsageError(`--stroke must look like "x1,y1;x2,y2", got '${values.stroke}'`)
    const color = parseHexColor(values.color)
    if (!color) throw new UsageError(`--color must be #rrggbb, got '${values.color}'`)
    const crop = values.crop === undefined ? undefined : parseBox(values.crop)
    if (values.crop !== undefined && !crop) throw new UsageError(`--crop must be x,y,w,h in whole pixels, got '${values.crop}'`)
    const radius = numberFlag('radius', values.radius, 0, 1e6)
    const strength = numberFlag('strength', values.strength, -1e-12, 1e3)
    const mode = choiceFlag<PaintMode>('mode', values.mode, ['color', 'lighten', 'darken'])
    const backend = choiceFlag<BackendPreference>('backend', values.backend, BACKEND_PREFERENCES)

    const info = await initBackend(backend)
    const { model, json } = await loadCheckpoint(values.model)
    console.error(`npe edit: model ${values.model} (step ${json.step}), backend ${info.name}`)
    const photo = await decodeImage(await readFile(values.image))
    const editor = new Editor(model)
    const t0 = performance.now()
    const [state] = editor.encode([{ rgb: photo.data, width: photo.width, height: photo.height, crop }])
    const [edited] = editor.paint([{ state: state!, stroke: { points, radius }, color, mode, strength }])
    await writeFile(values.out, await encodePng(edited!.output, edited!.width, edited!.height))
    if (values.reconstruction) {
      const { floatToRgb } = await import('../../data/pixels.js')
      const R = model.config.resolution
      await writeFile(values.reconstruction, await encodePng(floatToRgb(state!.xHat), R, R))
    }
    console.error(`npe edit: ${photo.width}x${photo.height}, ${points.length} point(s), ${(performance.now() - t0).toFixed(0)} ms -> ${values.out}`)
    return 0
  } catch (err) {
    return failure('edit', USAGE, err, /^(image_|checkpoint_|invalid_request)/)
  }
}

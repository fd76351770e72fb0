// @ts-check
/**
 * The Neural Photo Editor page: upload and crop a photo (or sample a face),
 * paint on the output with the contextual brush, paint z on the latent canvas,
 * undo / redo / reset / update, download, and interpolate between two sessions.
 * Everything goes through the typed client (client.js) and one request lane
 * (lane.js): at most one request in flight, brush points that arrive meanwhile
 * are merged into the next POST /edit.
 */
import { ApiClient, ApiError } from './client.js'
import { CropBox } from './crop.js'
import { Lane } from './lane.js'
import { LatentCanvas } from './latent.js'

/** @typedef {import('./client.js').EditResponse} EditResponse */
/** @typedef {import('./client.js').EncodeResponse} EncodeResponse */
/** @typedef {import('./client.js').SampleResponse} SampleResponse */
/** @typedef {import('./lane.js').Task} Task */
/** @typedef {{ x: number, y: number, w: number, h: number }} Box */
/** @typedef {'color' | 'lighten' | 'darken'} Mode */
/** @typedef {{ photo: string | null, reconstruction: string | null, crop: Box }} Base */
/** @typedef {{ id: string, count: number }} Group */
/**
 * @typedef {object} SessionView
 * @property {string} id
 * @property {'photo' | 'sample'} mode
 * @property {number} width
 * @property {number} height
 * @property {Box} crop
 * @property {number} version
 * @property {number[]} latent
 * @property {string} image data URL of the current output
 * @property {string} baseKey key of the inferred latent whose base is shown
 * @property {number} undoDepth
 * @property {number} redoDepth
 * @property {number} [seed]
 */

/** An element by id, typed by its constructor. */
function $(/** @type {string} */ id) {
  const el = document.getElementById(id)
  if (!el) throw new Error(`#${id} is missing from index.html`)
  return el
}
/** @template {HTMLElement} T @param {string} id @param {new () => T} type @returns {T} */
function el(id, type) {
  const found = $(id)
  if (!(found instanceof type)) throw new Error(`#${id} is not a ${type.name}`)
  return found
}

const ui = {
  modelInfo: $('model-info'),
  apiKey: el('api-key', HTMLInputElement),
  busy: $('busy'),
  busyText: $('busy-text'),
  error: $('error'),
  errorText: $('error-text'),
  errorClose: el('error-close', HTMLButtonElement),
  drop: $('drop'),
  file: el('file', HTMLInputElement),
  fileName: $('file-name'),
  cropStage: $('crop-stage'),
  cropCanvas: el('crop-canvas', HTMLCanvasElement),
  cropBox: $('crop-box'),
  cropFields: el('crop-fields', HTMLFieldSetElement),
  cropX: el('crop-x', HTMLInputElement),
  cropY: el('crop-y', HTMLInputElement),
  cropSize: el('crop-size', HTMLInputElement),
  encode: el('encode', HTMLButtonElement),
  seed: el('seed', HTMLInputElement),
  sample: el('sample', HTMLButtonElement),
  latent: el('latent', HTMLCanvasElement),
  latentReadout: $('latent-readout'),
  sessionInfo: $('session-info'),
  outputWrap: $('output-wrap'),
  outputView: $('output-view'),
  viewToggle: el('view-toggle', HTMLButtonElement),
  output: el('output', HTMLCanvasElement),
  overlay: el('overlay', HTMLCanvasElement),
  outputEmpty: $('output-empty'),
  reconstruction: el('reconstruction', HTMLCanvasElement),
  original: el('original', HTMLCanvasElement),
  brush: el('brush', HTMLInputElement),
  brushOut: el('brush-out', HTMLOutputElement),
  color: el('color', HTMLInputElement),
  strength: el('strength', HTMLInputElement),
  strengthOut: el('strength-out', HTMLOutputElement),
  undo: el('undo', HTMLButtonElement),
  redo: el('redo', HTMLButtonElement),
  reset: el('reset', HTMLButtonElement),
  commit: el('commit', HTMLButtonElement),
  download: el('download', HTMLButtonElement),
  pinA: el('pin-a', HTMLButtonElement),
  pinB: el('pin-b', HTMLButtonElement),
  pinAImg: el('pin-a-img', HTMLImageElement),
  pinBImg: el('pin-b-img', HTMLImageElement),
  steps: el('steps', HTMLInputElement),
  interpolate: el('interpolate', HTMLButtonElement),
  frames: $('interp-frames'),
}

// ---------------------------------------------------------------- state

const KEY_STORAGE = 'npe.apiKey'
ui.apiKey.value = sessionStorage.getItem(KEY_STORAGE) ?? ''
ui.apiKey.addEventListener('change', () => sessionStorage.setItem(KEY_STORAGE, ui.apiKey.value.trim()))

const api = new ApiClient({ apiKey: () => ui.apiKey.value })

const model = { resolution: 64, latentSize: 100 }
/** @type {SessionView | null} */
let session = null
/**
 * What the Reconstruction and Original views show, by inferred latent (so undoing an Update shows the older base again).
 * @type {Map<string, Base>}
 */
const bases = new Map()
/**
 * Undo groups: one stroke, one latent drag or one button press may be several server steps.
 * @type {{ undo: Group[], redo: Group[] }}
 */
const history = { undo: [], redo: [] }
/** Latent entries painted but not yet acknowledged by the server (kept on top of the answers). */
const latentOverlay = new Map()
/** @type {{ A: { id: string, image: string } | null, B: { id: string, image: string } | null }} */
const pins = { A: null, B: null }
/** The photo chosen for encoding. */
/** @type {{ blob: Blob, name: string } | null} */
let chosen = null
/** A refresh of the session (history depths, base) is due when the lane empties. */
let dirty = false
let opCounter = 0

/** @param {number[]} z */
const latentKey = (z) => z.map((v) => v.toFixed(5)).join(',')

// ---------------------------------------------------------------- errors and busy

/** @param {unknown} err */
function showError(err) {
  let text
  if (err instanceof ApiError) text = `${err.detail || err.title}${err.status ? ` (${err.code}, HTTP ${err.status})` : ''}`
  else text = err instanceof Error ? err.message : String(err)
  ui.errorText.textContent = text
  ui.error.hidden = false
}
function hideError() {
  ui.error.hidden = true
  ui.errorText.textContent = ''
}
ui.errorClose.addEventListener('click', hideError)

const lane = new Lane({
  onChange({ busy, label }) {
    ui.busy.hidden = !busy
    ui.busyText.textContent = label ? `${label}…` : 'Working…'
    document.body.dataset.idle = String(!busy)
    document.body.setAttribute('aria-busy', String(busy))
  },
  onError(err) {
    dirty = session !== null
    showError(err)
  },
  onDrain() {
    if (!dirty || !session) return null
    dirty = false
    const id = session.id
    return { label: 'Syncing', run: () => refresh(id) }
  },
})

// ---------------------------------------------------------------- drawing

/**
 * Decodes a data URL (or blob URL) into an image element.
 * @param {string} src
 * @returns {Promise<HTMLImageElement>}
 */
async function loadImage(src) {
  const img = new Image()
  img.src = src
  await img.decode()
  return img
}

/**
 * Where the output is drawn: `scale` CSS px per photo px, and the photo's top-left corner in the
 * view (`left`, `top`, zero or negative when zoomed on the crop).
 */
const view = { scale: 1, left: 0, top: 0, width: 0, height: 0, zoomed: false }
/** 'auto': the whole photo unless that shows the crop at less than 4x the model's resolution. */
let viewChoice = /** @type {'auto' | 'photo' | 'crop'} */ ('auto')

/** @param {number} v @param {number} lo @param {number} hi */
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi)

/** Fits the output in its box: large, and the crop at least 4x the model's resolution (zoomed in when the whole photo would not allow it). */
function layoutOutput() {
  const { output, overlay, outputWrap, outputView } = ui
  if (!session) return
  const W = output.width
  const H = output.height
  const { crop } = session
  const avail = Math.max(64, outputWrap.clientWidth)
  const maxH = Math.max(window.innerHeight * 0.72, model.resolution * 4)
  const fit = Math.min(avail / W, maxH / H)
  const croppable = session.mode === 'photo' && (crop.w < W || crop.h < H)
  const zoom = croppable && (viewChoice === 'crop' || (viewChoice === 'auto' && fit * crop.w < 4 * model.resolution))
  if (!zoom) {
    Object.assign(view, { scale: fit, left: 0, top: 0, width: Math.floor(W * fit), height: Math.floor(H * fit), zoomed: false })
  } else {
    // the crop with a margin of 12% on each side, centred, the photo's edges kept in the view
    const scale = Math.min(avail / (crop.w * 1.24), maxH / (crop.h * 1.24))
    const width = Math.floor(Math.min(avail, W * scale))
    const height = Math.floor(Math.min(maxH, H * scale))
    const left = clamp(width / 2 - (crop.x + crop.w / 2) * scale, width - W * scale, 0)
    const top = clamp(height / 2 - (crop.y + crop.h / 2) * scale, height - H * scale, 0)
    Object.assign(view, { scale, left, top, width, height, zoomed: true })
  }
  outputView.style.width = `${view.width}px`
  outputView.style.height = `${view.height}px`
  output.style.width = `${W * view.scale}px`
  output.style.height = `${H * view.scale}px`
  output.style.left = `${view.left}px`
  output.style.top = `${view.top}px`
  output.classList.toggle('pixelated', view.scale >= 2)
  ui.viewToggle.hidden = !croppable
  ui.viewToggle.textContent = zoom ? 'Whole photo' : 'Zoom to crop'
  ui.viewToggle.setAttribute('aria-pressed', String(zoom))
  const dpr = window.devicePixelRatio || 1
  overlay.width = Math.round(view.width * dpr)
  overlay.height = Math.round(view.height * dpr)
  drawOverlay()
}
ui.viewToggle.addEventListener('click', () => {
  viewChoice = view.zoomed ? 'photo' : 'crop'
  layoutOutput()
})
new ResizeObserver(() => layoutOutput()).observe(ui.outputWrap)

/** @param {string} dataUrl */
async function showOutput(dataUrl) {
  const img = await loadImage(dataUrl)
  const { output } = ui
  const resized = output.width !== img.naturalWidth || output.height !== img.naturalHeight
  if (resized) {
    output.width = img.naturalWidth
    output.height = img.naturalHeight
  }
  const ctx = /** @type {CanvasRenderingContext2D} */ (output.getContext('2d', { willReadFrequently: true }))
  ctx.clearRect(0, 0, output.width, output.height)
  ctx.drawImage(img, 0, 0)
  if (resized) layoutOutput()
}

/**
 * Draws an image (or a part of it) into a canvas at the canvas's size; clears it when there is none.
 * @param {HTMLCanvasElement} canvas
 * @param {string | null} src
 * @param {Box} [box] the part of the image
 */
async function showInto(canvas, src, box) {
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'))
  const figure = canvas.closest('figure')
  if (!src) {
    canvas.width = model.resolution
    canvas.height = model.resolution
    ctx.fillStyle = '#0b0d11'
    ctx.fillRect(0, 0, canvas.width, canvas.height)
    canvas.dataset.empty = 'true'
    if (figure) figure.dataset.empty = session?.mode === 'sample' ? 'sample' : 'none'
    return
  }
  const img = await loadImage(src)
  const b = box ?? { x: 0, y: 0, w: img.naturalWidth, h: img.naturalHeight }
  const scale = Math.min(1, 512 / b.w)
  canvas.width = Math.max(1, Math.round(b.w * scale))
  canvas.height = Math.max(1, Math.round(b.h * scale))
  ctx.imageSmoothingQuality = 'high'
  ctx.drawImage(img, b.x, b.y, b.w, b.h, 0, 0, canvas.width, canvas.height)
  delete canvas.dataset.empty
  if (figure) delete figure.dataset.empty
}

/** @param {Base} base */
async function showBase(base) {
  await Promise.all([showInto(ui.reconstruction, base.reconstruction), showInto(ui.original, base.photo, base.crop)])
}

/** @type {{ x: number, y: number } | null} the brush position in photo pixels */
let cursor = null

function drawOverlay() {
  const { overlay } = ui
  const ctx = /** @type {CanvasRenderingContext2D} */ (overlay.getContext('2d'))
  ctx.setTransform(1, 0, 0, 1, 0, 0)
  ctx.clearRect(0, 0, overlay.width, overlay.height)
  if (!session) return
  const dpr = window.devicePixelRatio || 1
  // photo pixels -> overlay pixels
  const k = view.scale * dpr
  const ox = view.left * dpr
  const oy = view.top * dpr
  const { crop } = session
  if (session.mode === 'photo' && (crop.w < session.width || crop.h < session.height)) {
    ctx.setLineDash([6 * dpr, 5 * dpr])
    ctx.lineWidth = 1.5 * dpr
    ctx.strokeStyle = 'rgba(255,255,255,0.7)'
    ctx.strokeRect(ox + crop.x * k, oy + crop.y * k, crop.w * k, crop.h * k)
    ctx.setLineDash([])
  }
  if (cursor) {
    const r = brushRadius() * k
    const x = ox + cursor.x * k
    const y = oy + cursor.y * k
    ctx.lineWidth = 2.5 * dpr
    ctx.strokeStyle = 'rgba(0,0,0,0.6)'
    ctx.beginPath()
    ctx.arc(x, y, r, 0, Math.PI * 2)
    ctx.stroke()
    ctx.lineWidth = 1.2 * dpr
    ctx.strokeStyle = brushMode() === 'color' ? ui.color.value : '#ffffff'
    ctx.beginPath()
    ctx.arc(x, y, r, 0, Math.PI * 2)
    ctx.stroke()
  }
}

// ---------------------------------------------------------------- session state

function updateInfo() {
  const s = session
  document.body.dataset.session = s?.id ?? ''
  document.body.dataset.version = s ? String(s.version) : ''
  ui.sessionInfo.textContent = s
    ? `· ${s.mode === 'sample' ? `sample${s.seed !== undefined ? ` (seed ${s.seed})` : ''}` : 'photo'} ${s.width}×${s.height} · session ${s.id.slice(0, 8)} · v${s.version}`
    : ''
  const has = s !== null
  for (const b of [ui.reset, ui.commit, ui.download, ui.pinA, ui.pinB]) b.disabled = !has
  ui.undo.disabled = !has || (history.undo.length === 0 && s.undoDepth === 0)
  ui.redo.disabled = !has || (history.redo.length === 0 && s.redoDepth === 0)
  ui.interpolate.disabled = !(pins.A && pins.B)
  ui.outputEmpty.hidden = has
  ui.output.hidden = !has
  ui.outputWrap.classList.toggle('ready', has)
}

/**
 * Applies an answer that carries the session's new state.
 * @param {EditResponse} res
 */
async function apply(res) {
  if (!session || res.sessionId !== session.id) return
  session.version = res.version
  session.latent = res.latent
  session.image = res.image
  const z = res.latent.slice()
  for (const [i, v] of latentOverlay) z[i] = v
  latentCanvas.set(z, true)
  await showOutput(res.image)
  updateInfo()
}

/** @param {string} groupId a change the server added to its undo history */
function record(groupId) {
  if (!session) return
  const top = history.undo[history.undo.length - 1]
  if (top && top.id === groupId) top.count++
  else history.undo.push({ id: groupId, count: 1 })
  history.redo = []
  session.undoDepth++
  session.redoDepth = 0
  dirty = true
}

/**
 * Starts showing a new session (after encode or sample).
 * @param {EncodeResponse | SampleResponse} res
 * @param {'photo' | 'sample'} mode
 */
async function startSession(res, mode) {
  lane.clear()
  latentOverlay.clear()
  bases.clear()
  viewChoice = 'auto'
  history.undo = []
  history.redo = []
  const crop = 'crop' in res ? res.crop : { x: 0, y: 0, w: res.width, h: res.height }
  session = {
    id: res.sessionId,
    mode,
    width: res.width,
    height: res.height,
    crop,
    version: res.version,
    latent: res.latent,
    image: res.image,
    baseKey: '',
    undoDepth: 0,
    redoDepth: 0,
    seed: 'seed' in res ? res.seed : undefined,
  }
  const info = await api.session(res.sessionId)
  /** @type {Base} */
  const base = mode === 'photo' && 'reconstruction' in res ? { photo: res.image, reconstruction: res.reconstruction, crop } : { photo: null, reconstruction: null, crop }
  session.baseKey = latentKey(info.inferredLatent)
  bases.set(session.baseKey, base)
  latentCanvas.set(res.latent, true)
  await Promise.all([showOutput(res.image), showBase(base)])
  layoutOutput()
  updateInfo()
}

/**
 * Re-reads the session: history depths (the server keeps a bounded history) and,
 * when the inferred latent changed (Update, or undoing one), the base views.
 * @param {string} id
 */
async function refresh(id) {
  const info = await api.session(id)
  if (!session || session.id !== id) return
  session.undoDepth = info.undoDepth
  session.redoDepth = info.redoDepth
  session.version = info.version
  trim(history.undo, info.undoDepth)
  trim(history.redo, info.redoDepth)
  const key = latentKey(info.inferredLatent)
  if (key !== session.baseKey) {
    let base = bases.get(key)
    if (!base) {
      // not seen here (another tab, say): the reconstruction is G(z0), the first frame of z0 -> z0
      const frames = await api.interpolate({ from: { latent: info.inferredLatent }, to: { latent: info.inferredLatent }, steps: 2 })
      base = { photo: null, reconstruction: frames.frames[0]?.image ?? null, crop: info.crop }
      bases.set(key, base)
    }
    session.baseKey = key
    await showBase(base)
  }
  updateInfo()
}

/** Drops the oldest groups beyond what the server still remembers. @param {Group[]} groups @param {number} depth */
function trim(groups, depth) {
  let total = groups.reduce((n, g) => n + g.count, 0)
  while (total > depth && groups.length > 0) {
    const first = /** @type {Group} */ (groups[0])
    const cut = Math.min(first.count, total - depth)
    first.count -= cut
    total -= cut
    if (first.count === 0) groups.shift()
  }
}

// ---------------------------------------------------------------- tasks

/** Brush points of one stroke with the same settings: merged while they wait. */
class EditTask {
  /**
   * @param {string} sessionId
   * @param {string} group
   * @param {{ radius: number, color: string, mode: Mode, strength: number }} brush
   * @param {{ x: number, y: number }} point
   */
  constructor(sessionId, group, brush, point) {
    this.sessionId = sessionId
    this.group = group
    this.brush = brush
    this.points = [point]
    this.label = brush.mode === 'color' ? 'Painting' : brush.mode === 'lighten' ? 'Lightening' : 'Darkening'
    this.key = `edit|${sessionId}|${group}|${brush.mode}|${brush.color}|${brush.radius}|${brush.strength}`
  }

  /** @param {Task} next */
  absorb(next) {
    if (!(next instanceof EditTask) || this.points.length + next.points.length > 256) return false
    this.points.push(...next.points)
    return true
  }

  async run() {
    const { radius, color, mode, strength } = this.brush
    const res = await api.edit({
      sessionId: this.sessionId,
      stroke: { points: this.points, radius },
      mode,
      strength,
      ...(mode === 'color' ? { color } : {}),
    })
    if (session?.id !== this.sessionId) return
    record(this.group)
    await apply(res)
  }
}

/** Latent tiles of one drag: merged while they wait. */
class LatentTask {
  /** @param {string} sessionId @param {string} group @param {Map<number, number>} entries */
  constructor(sessionId, group, entries) {
    this.sessionId = sessionId
    this.group = group
    this.entries = entries
    this.label = 'Setting z'
    this.key = `latent|${sessionId}|${group}`
  }

  /** @param {Task} next */
  absorb(next) {
    if (!(next instanceof LatentTask)) return false
    for (const [i, v] of next.entries) this.entries.set(i, v)
    return true
  }

  async run() {
    const sent = [...this.entries].map(([index, value]) => ({ index, value }))
    const res = await api.setLatent(this.sessionId, { entries: sent })
    for (const { index, value } of sent) if (latentOverlay.get(index) === value) latentOverlay.delete(index)
    if (session?.id !== this.sessionId) return
    record(this.group)
    await apply(res)
  }
}

/**
 * A one-off task on the current session.
 * @param {string} label
 * @param {(id: string) => Promise<void>} fn
 */
function sessionTask(label, fn) {
  if (!session) return
  const id = session.id
  lane.push({ label, run: () => fn(id) })
}

/** Brush radius in photo pixels: the slider is in model pixels. */
function brushRadius() {
  const size = Number(ui.brush.value)
  if (!session) return size
  return Math.max(0.5, Math.round(((size * session.crop.w) / model.resolution) * 100) / 100)
}

/** @returns {Mode} */
function brushMode() {
  const checked = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="mode"]:checked'))
  return /** @type {Mode} */ (checked?.value ?? 'color')
}

/**
 * One brush event: a point in photo pixels, queued (or merged into the waiting request).
 * @param {{ x: number, y: number }} point
 * @param {Mode} mode
 * @param {string} group
 */
function paint(point, mode, group) {
  if (!session) return
  const brush = { radius: brushRadius(), color: ui.color.value, mode, strength: Number(ui.strength.value) }
  lane.push(new EditTask(session.id, group, brush, { x: Math.round(point.x * 10) / 10, y: Math.round(point.y * 10) / 10 }))
}

// ---------------------------------------------------------------- photo: pick, drop, crop, encode

const crop = new CropBox({
  stage: ui.cropStage,
  canvas: ui.cropCanvas,
  box: ui.cropBox,
  inputs: { x: ui.cropX, y: ui.cropY, size: ui.cropSize },
})

/** @param {File} file */
async function choose(file) {
  hideError()
  chosen = { blob: file, name: file.name || 'photo' }
  ui.fileName.textContent = `${file.name || 'photo'} · ${(file.size / 1024).toFixed(0)} KB`
  let bitmap
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' })
  } catch {
    bitmap = null
  }
  if (!bitmap) {
    // the browser cannot preview it: let the API judge (it may read it, or say why not)
    ui.cropStage.hidden = true
    ui.cropFields.disabled = true
    ui.encode.disabled = true
    encode(false)
    return
  }
  crop.load(bitmap, bitmap.width, bitmap.height)
  bitmap.close()
  ui.cropFields.disabled = false
  ui.encode.disabled = false
  ui.encode.focus({ preventScroll: true })
}

/** @param {boolean} withCrop */
function encode(withCrop) {
  if (!chosen) return
  const { blob, name } = chosen
  const box = withCrop ? crop.crop : undefined
  hideError()
  lane.clear()
  lane.push({
    label: 'Encoding',
    run: async () => {
      const res = await api.encode(blob, box, name)
      await startSession(res, 'photo')
    },
  })
}

ui.file.addEventListener('change', () => {
  const file = ui.file.files?.[0]
  if (file) void choose(file)
  ui.file.value = ''
})
for (const type of ['dragenter', 'dragover']) {
  ui.drop.addEventListener(type, (e) => {
    e.preventDefault()
    ui.drop.classList.add('over')
  })
}
for (const type of ['dragleave', 'drop']) ui.drop.addEventListener(type, () => ui.drop.classList.remove('over'))
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault()
  const file = /** @type {DragEvent} */ (e).dataTransfer?.files?.[0]
  if (file) void choose(file)
})
ui.drop.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault()
    ui.file.click()
  }
})
// a photo dropped anywhere else must not replace the page
window.addEventListener('dragover', (e) => e.preventDefault())
window.addEventListener('drop', (e) => e.preventDefault())
ui.encode.addEventListener('click', () => encode(true))

// ---------------------------------------------------------------- sample

ui.sample.addEventListener('click', () => {
  hideError()
  const text = ui.seed.value.trim()
  const seed = text === '' ? undefined : Number(text)
  if (seed !== undefined && !(Number.isSafeInteger(seed) && seed >= 0)) {
    showError(new Error('the seed must be a whole number ≥ 0 (or empty for a random face)'))
    return
  }
  lane.clear()
  lane.push({
    label: 'Sampling',
    run: async () => {
      const res = await api.sample(seed)
      await startSession(res, 'sample')
    },
  })
})

// ---------------------------------------------------------------- painting on the output

/** @param {PointerEvent | WheelEvent} e @returns {{ x: number, y: number } | null} the point in photo pixels */
function photoPoint(e) {
  if (!session) return null
  const rect = ui.output.getBoundingClientRect()
  if (rect.width === 0) return null
  return { x: ((e.clientX - rect.left) / rect.width) * session.width, y: ((e.clientY - rect.top) / rect.height) * session.height }
}
/** In the photo and in the visible part of the view. @param {PointerEvent | WheelEvent} e @param {{ x: number, y: number }} p */
function inside(e, p) {
  if (!session || p.x < 0 || p.y < 0 || p.x >= session.width || p.y >= session.height) return false
  const v = ui.outputView.getBoundingClientRect()
  return e.clientX >= v.left && e.clientX < v.right && e.clientY >= v.top && e.clientY < v.bottom
}

/** @type {{ id: number, group: string, last: { x: number, y: number } } | null} */
let stroke = null

ui.outputWrap.addEventListener('pointerdown', (e) => {
  if (!session || (e.pointerType === 'mouse' && e.button !== 0)) return
  const p = photoPoint(e)
  if (!p || !inside(e, p)) return
  e.preventDefault()
  hideError()
  ui.outputWrap.setPointerCapture(e.pointerId)
  stroke = { id: e.pointerId, group: `stroke:${++opCounter}`, last: p }
  paint(p, brushMode(), stroke.group)
})
ui.outputWrap.addEventListener('pointermove', (e) => {
  const p = photoPoint(e)
  const over = p !== null && inside(e, p)
  cursor = over ? p : null
  drawOverlay()
  if (!stroke || !p || e.pointerId !== stroke.id || !over) return
  // one gradient step per brush event, as in the paper; skip moves under half a photo pixel
  if (Math.hypot(p.x - stroke.last.x, p.y - stroke.last.y) < 0.5) return
  stroke.last = p
  paint(p, brushMode(), stroke.group)
})
for (const type of ['pointerup', 'pointercancel']) {
  ui.outputWrap.addEventListener(type, (e) => {
    if (stroke && /** @type {PointerEvent} */ (e).pointerId === stroke.id) stroke = null
  })
}
ui.outputWrap.addEventListener('pointerleave', () => {
  cursor = null
  drawOverlay()
})
let wheel = { at: 0, mode: '', group: '' }
ui.outputWrap.addEventListener(
  'wheel',
  (e) => {
    const p = photoPoint(e)
    if (!p || !inside(e, p)) return
    e.preventDefault()
    const mode = e.deltaY < 0 ? 'lighten' : 'darken'
    const now = performance.now()
    if (now - wheel.at > 700 || wheel.mode !== mode) wheel = { at: now, mode, group: `wheel:${++opCounter}` }
    wheel.at = now
    paint(p, mode, wheel.group)
  },
  { passive: false },
)

ui.brush.addEventListener('input', () => {
  ui.brushOut.value = ui.brush.value
  drawOverlay()
})
ui.strength.addEventListener('input', () => {
  ui.strengthOut.value = ui.strength.value
})
ui.color.addEventListener('input', () => drawOverlay())

// ---------------------------------------------------------------- latent canvas

const latentCanvas = new LatentCanvas(ui.latent, {
  readout: ui.latentReadout,
  onPaint(index, value, strokeId) {
    if (!session) return
    latentOverlay.set(index, value)
    lane.push(new LatentTask(session.id, `latent:${strokeId}`, new Map([[index, value]])))
  },
})

// ---------------------------------------------------------------- history, update, download

/** @param {'undo' | 'redo'} kind */
function step(kind) {
  sessionTask(kind === 'undo' ? 'Undoing' : 'Redoing', async (id) => {
    if (!session || session.id !== id) return
    const from = kind === 'undo' ? history.undo : history.redo
    const to = kind === 'undo' ? history.redo : history.undo
    const group = from.pop() ?? { id: `${kind}:${++opCounter}`, count: 1 }
    let done = 0
    try {
      for (; done < group.count; done++) {
        const res = await api.history(kind, id)
        if (session?.id === id) {
          const d = kind === 'undo' ? 1 : -1
          session.undoDepth = Math.max(0, session.undoDepth - d)
          session.redoDepth = Math.max(0, session.redoDepth + d)
        }
        await apply(res)
      }
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'nothing_to_undo' || err.code === 'nothing_to_redo') && done > 0) {
        from.length = 0 // the server's bounded history ran out part-way: nothing older is left
      } else {
        if (done > 0) to.push({ id: group.id, count: done })
        dirty = true
        throw err
      }
    } finally {
      dirty = true
    }
    if (done > 0) to.push({ id: group.id, count: done })
    updateInfo()
  })
}
ui.undo.addEventListener('click', () => step('undo'))
ui.redo.addEventListener('click', () => step('redo'))

ui.reset.addEventListener('click', () => {
  sessionTask('Resetting', async (id) => {
    const res = await api.history('reset', id)
    record(`reset:${++opCounter}`)
    await apply(res)
  })
})

ui.commit.addEventListener('click', () => {
  sessionTask('Updating', async (id) => {
    const res = await api.history('commit', id)
    record(`commit:${++opCounter}`)
    const info = await api.session(id)
    if (!session || session.id !== id) return
    const base = { photo: res.image, reconstruction: res.reconstruction ?? null, crop: session.crop }
    session.baseKey = latentKey(info.inferredLatent)
    bases.set(session.baseKey, base)
    await Promise.all([apply(res), showBase(base)])
  })
})

ui.download.addEventListener('click', () => {
  sessionTask('Preparing the PNG', async (id) => {
    const blob = await api.image(id)
    const url = URL.createObjectURL(blob)
    const a = document.createElement('a')
    a.href = url
    a.download = `neural-photo-${id.slice(0, 8)}-v${session?.version ?? 0}.png`
    document.body.append(a)
    a.click()
    a.remove()
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
  })
})

window.addEventListener('keydown', (e) => {
  const target = /** @type {HTMLElement} */ (e.target)
  if (!session || target.matches('input[type="number"], input[type="password"], input[type="text"]')) return
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') {
    e.preventDefault()
    step(e.shiftKey ? 'redo' : 'undo')
  } else if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'y') {
    e.preventDefault()
    step('redo')
  }
})

// ---------------------------------------------------------------- interpolation

/** @param {'A' | 'B'} which */
function pin(which) {
  if (!session) return
  pins[which] = { id: session.id, image: session.image }
  const img = which === 'A' ? ui.pinAImg : ui.pinBImg
  img.src = ui.output.toDataURL('image/png')
  img.alt = `${which}: session ${session.id.slice(0, 8)}`
  img.hidden = false
  updateInfo()
}
ui.pinA.addEventListener('click', () => pin('A'))
ui.pinB.addEventListener('click', () => pin('B'))

ui.interpolate.addEventListener('click', () => {
  const { A, B } = pins
  if (!A || !B) return
  hideError()
  const steps = Math.round(Number(ui.steps.value) || 8)
  lane.push({
    label: 'Interpolating',
    run: async () => {
      const res = await api.interpolate({ from: { sessionId: A.id }, to: { sessionId: B.id }, steps })
      ui.frames.replaceChildren(
        ...res.frames.map((frame, i) => {
          const button = document.createElement('button')
          button.type = 'button'
          button.title = 'Use this latent in the current session'
          const img = document.createElement('img')
          img.src = frame.image
          img.alt = `Frame ${i + 1} of ${res.frames.length}`
          button.append(img)
          button.addEventListener('click', () => {
            if (!session) return
            const id = session.id
            const group = `frame:${++opCounter}`
            lane.push({
              label: 'Setting z',
              run: async () => {
                const out = await api.setLatent(id, { latent: frame.latent })
                record(group)
                await apply(out)
              },
            })
          })
          return button
        }),
      )
    },
  })
})

// ---------------------------------------------------------------- start

async function start() {
  updateInfo()
  latentCanvas.set(new Array(model.latentSize).fill(0), false)
  try {
    const ready = await api.readyz()
    if (ready.model.resolution) model.resolution = ready.model.resolution
    if (ready.model.latentSize) model.latentSize = ready.model.latentSize
    document.documentElement.style.setProperty('--model-px', `${model.resolution}px`)
    ui.modelInfo.textContent = `model ${model.resolution}×${model.resolution}, z ${model.latentSize}, step ${ready.model.step ?? 0} · ${ready.mode} · ${ready.backend}`
    if (!session) latentCanvas.set(new Array(model.latentSize).fill(0), false)
    await Promise.all([showInto(ui.reconstruction, null), showInto(ui.original, null)])
  } catch (err) {
    ui.modelInfo.textContent = 'API unreachable'
    showError(err)
  }
  document.body.dataset.ready = 'true'
}
void start()

// @ts-check
/**
 * The latent canvas (paper, figure 1): z drawn as a grid of tiles, ceil(sqrt(L))
 * wide (10x10 for L = 100), red for positive values and blue for negative ones,
 * brighter the larger |z_i|. Dragging over tiles pushes their values up (left
 * button) or down (Shift, or the right button); the keyboard does the same for
 * the selected tile (arrows select, + / - change it).
 */

/** |z| at which a tile is at full colour. */
const FULL = 2.5
/** How far one pointer event over a tile (or one key press) moves its value. */
export const LATENT_STEP = 0.2
/** Values are kept within this range (a few standard deviations of the prior). */
export const LATENT_LIMIT = 4

const BG = [28, 32, 41]
const POS = [255, 64, 56]
const NEG = [52, 130, 255]

/** @param {number} v */
export function tileColor(v) {
  const t = Math.min(Math.abs(v) / FULL, 1)
  const c = v >= 0 ? POS : NEG
  const mix = BG.map((b, i) => Math.round(b + (c[/** @type {0|1|2} */ (i)] - b) * Math.sqrt(t)))
  return `rgb(${mix[0]}, ${mix[1]}, ${mix[2]})`
}

export class LatentCanvas {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{
   *   readout?: HTMLElement,
   *   onPaint?: (index: number, value: number, strokeId: number) => void,
   * }} [hooks] onPaint: called for every change the user makes (value is the new one)
   */
  constructor(canvas, hooks = {}) {
    this.canvas = canvas
    this.hooks = hooks
    /** @type {number[]} */
    this.z = []
    this.enabled = false
    this.selected = 0
    /** @type {number | null} */
    this.hover = null
    /** @type {{ id: number, sign: number } | null} */
    this.drag = null
    this.strokeId = 0
    canvas.addEventListener('contextmenu', (e) => e.preventDefault())
    canvas.addEventListener('pointerdown', (e) => this.#down(e))
    canvas.addEventListener('pointermove', (e) => this.#move(e))
    canvas.addEventListener('pointerup', (e) => this.#up(e))
    canvas.addEventListener('pointercancel', (e) => this.#up(e))
    canvas.addEventListener('pointerleave', () => {
      this.hover = null
      this.#readout()
      this.draw()
    })
    canvas.addEventListener('keydown', (e) => this.#key(e))
    for (const type of ['focus', 'blur']) {
      canvas.addEventListener(type, () => {
        this.#readout()
        this.draw()
      })
    }
    new ResizeObserver(() => this.draw()).observe(canvas)
  }

  get cols() {
    return Math.max(1, Math.ceil(Math.sqrt(this.z.length)))
  }

  get rows() {
    return Math.max(1, Math.ceil(this.z.length / this.cols))
  }

  /** @param {number[]} z @param {boolean} enabled */
  set(z, enabled = true) {
    this.z = z.slice()
    this.enabled = enabled
    this.selected = Math.min(this.selected, Math.max(0, z.length - 1))
    this.canvas.setAttribute('aria-disabled', String(!enabled))
    this.canvas.setAttribute('aria-label', `Latent canvas: ${z.length} values of z in a ${this.cols} by ${this.rows} grid; red positive, blue negative. Drag to push values up, Shift-drag or right-drag to push them down; arrow keys select a tile, plus and minus change it.`)
    this.#readout()
    this.draw()
  }

  /** @param {number} index @param {number} value */
  setValue(index, value) {
    this.z[index] = value
    this.draw()
    this.#readout()
  }

  draw() {
    const { canvas } = this
    const rect = canvas.getBoundingClientRect()
    const dpr = window.devicePixelRatio || 1
    const w = Math.max(1, Math.round(rect.width * dpr))
    const h = Math.max(1, Math.round(rect.height * dpr))
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w
      canvas.height = h
    }
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'))
    ctx.fillStyle = '#12151b'
    ctx.fillRect(0, 0, w, h)
    const { cols, rows } = this
    const tw = w / cols
    const th = h / rows
    const gap = Math.max(1, Math.round(dpr))
    for (let i = 0; i < this.z.length; i++) {
      const cx = (i % cols) * tw
      const cy = Math.floor(i / cols) * th
      ctx.fillStyle = tileColor(this.z[i] ?? 0)
      ctx.globalAlpha = this.enabled ? 1 : 0.45
      ctx.fillRect(cx + gap / 2, cy + gap / 2, tw - gap, th - gap)
    }
    ctx.globalAlpha = 1
    const mark = (/** @type {number | null} */ i, /** @type {string} */ color) => {
      if (i === null || i >= this.z.length) return
      ctx.strokeStyle = color
      ctx.lineWidth = 2 * dpr
      ctx.strokeRect((i % cols) * tw + dpr, Math.floor(i / cols) * th + dpr, tw - 2 * dpr, th - 2 * dpr)
    }
    if (this.enabled && document.activeElement === canvas) mark(this.selected, '#ffd166')
    if (this.enabled) mark(this.hover, 'rgba(255,255,255,0.85)')
  }

  /** @param {number} clientX @param {number} clientY @returns {number | null} */
  indexAt(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect()
    const col = Math.floor(((clientX - rect.left) / rect.width) * this.cols)
    const row = Math.floor(((clientY - rect.top) / rect.height) * this.rows)
    if (col < 0 || row < 0 || col >= this.cols || row >= this.rows) return null
    const i = row * this.cols + col
    return i < this.z.length ? i : null
  }

  /** @param {number} index @param {number} sign */
  #push(index, sign) {
    const old = this.z[index] ?? 0
    const value = Math.round(Math.min(LATENT_LIMIT, Math.max(-LATENT_LIMIT, old + sign * LATENT_STEP)) * 1000) / 1000
    if (value === old) return
    this.selected = index
    this.setValue(index, value)
    this.hooks.onPaint?.(index, value, this.strokeId)
  }

  /** @param {PointerEvent} e */
  #down(e) {
    if (!this.enabled) return
    const i = this.indexAt(e.clientX, e.clientY)
    if (i === null) return
    e.preventDefault()
    this.canvas.focus({ preventScroll: true })
    const sign = e.button === 2 || e.shiftKey ? -1 : 1
    this.drag = { id: e.pointerId, sign }
    this.strokeId++
    this.canvas.setPointerCapture(e.pointerId)
    this.#push(i, sign)
  }

  /** @param {PointerEvent} e */
  #move(e) {
    const i = this.indexAt(e.clientX, e.clientY)
    if (i !== this.hover) {
      this.hover = i
      this.#readout()
      this.draw()
    }
    if (!this.drag || e.pointerId !== this.drag.id || i === null) return
    this.#push(i, this.drag.sign)
  }

  /** @param {PointerEvent} e */
  #up(e) {
    if (this.drag && e.pointerId === this.drag.id) this.drag = null
  }

  /** @param {KeyboardEvent} e */
  #key(e) {
    if (!this.enabled || this.z.length === 0) return
    const { cols } = this
    const n = this.z.length
    /** @type {Record<string, number>} */
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols }
    if (e.key in moves) {
      e.preventDefault()
      this.selected = Math.min(n - 1, Math.max(0, this.selected + (moves[e.key] ?? 0)))
      this.#readout()
      this.draw()
    } else if (e.key === '+' || e.key === '=' || e.key === '-') {
      e.preventDefault()
      if (!e.repeat) this.strokeId++
      this.#push(this.selected, e.key === '-' ? -1 : 1)
    }
  }

  #readout() {
    const el = this.hooks.readout
    if (!el) return
    const i = this.hover ?? (document.activeElement === this.canvas ? this.selected : null)
    const v = i === null ? undefined : this.z[i]
    el.textContent = i === null || v === undefined ? `z: ${this.z.length} values` : `z[${i}] = ${v >= 0 ? '+' : ''}${v.toFixed(2)}`
  }
}

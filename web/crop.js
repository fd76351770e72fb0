// @ts-check
/**
 * The crop box: a square over a preview of the photo, moved by dragging it and
 * resized by dragging its corner handles (or the wheel over it), with number
 * inputs for exact values. Coordinates are photo pixels, which is what
 * POST /encode takes as `crop=x,y,w,h`.
 */

/** @typedef {{ x: number, y: number, size: number }} Square */

const MIN_SIZE = 8

/** @param {number} v @param {number} lo @param {number} hi */
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi)

export class CropBox {
  /**
   * @param {{
   *   stage: HTMLElement, canvas: HTMLCanvasElement, box: HTMLElement,
   *   inputs: { x: HTMLInputElement, y: HTMLInputElement, size: HTMLInputElement },
   *   onChange?: (square: Square) => void,
   * }} parts
   */
  constructor(parts) {
    this.parts = parts
    this.width = 0
    this.height = 0
    /** @type {Square} */
    this.square = { x: 0, y: 0, size: 0 }
    /** @type {{ id: number, mode: string, start: Square, px: number, py: number } | null} */
    this.drag = null
    const { box, inputs } = parts
    box.addEventListener('pointerdown', (e) => this.#down(e))
    box.addEventListener('pointermove', (e) => this.#move(e))
    box.addEventListener('pointerup', (e) => this.#up(e))
    box.addEventListener('pointercancel', (e) => this.#up(e))
    box.addEventListener('wheel', (e) => {
      if (!this.width) return
      e.preventDefault()
      const s = this.square
      const step = Math.max(2, Math.round(Math.min(this.width, this.height) / 40)) * (e.deltaY < 0 ? 1 : -1)
      const size = clamp(s.size + step, Math.min(MIN_SIZE, this.width, this.height), Math.min(this.width, this.height))
      const d = (size - s.size) / 2
      this.set({ x: s.x - d, y: s.y - d, size })
    }, { passive: false })
    box.addEventListener('keydown', (e) => {
      const s = this.square
      const k = e.shiftKey ? 10 : 1
      /** @type {Record<string, Square>} */
      const moves = {
        ArrowLeft: { ...s, x: s.x - k },
        ArrowRight: { ...s, x: s.x + k },
        ArrowUp: { ...s, y: s.y - k },
        ArrowDown: { ...s, y: s.y + k },
        '+': { ...s, size: s.size + k },
        '=': { ...s, size: s.size + k },
        '-': { ...s, size: s.size - k },
      }
      const next = moves[e.key]
      if (next) {
        e.preventDefault()
        this.set(next)
      }
    })
    for (const input of [inputs.x, inputs.y, inputs.size]) {
      input.addEventListener('change', () => {
        this.set({ x: Number(inputs.x.value), y: Number(inputs.y.value), size: Number(inputs.size.value) })
      })
    }
  }

  /**
   * Shows a photo and puts the box on its centred square (the API's default crop).
   * @param {CanvasImageSource} image
   * @param {number} width
   * @param {number} height
   */
  load(image, width, height) {
    const { canvas, stage } = this.parts
    this.width = width
    this.height = height
    // the preview is at most 1024 px on its long side; the box is placed in photo pixels
    const scale = Math.min(1, 1024 / Math.max(width, height))
    canvas.width = Math.max(1, Math.round(width * scale))
    canvas.height = Math.max(1, Math.round(height * scale))
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'))
    ctx.imageSmoothingQuality = 'high'
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height)
    stage.style.aspectRatio = `${width} / ${height}`
    stage.hidden = false
    const size = Math.min(width, height)
    this.set({ x: Math.floor((width - size) / 2), y: Math.floor((height - size) / 2), size })
  }

  /** @param {Square} s clamped into the photo and rounded to whole pixels */
  set(s) {
    if (!this.width) return
    const max = Math.min(this.width, this.height)
    const size = Math.round(clamp(Number.isFinite(s.size) ? s.size : max, Math.min(MIN_SIZE, max), max))
    const x = Math.round(clamp(Number.isFinite(s.x) ? s.x : 0, 0, this.width - size))
    const y = Math.round(clamp(Number.isFinite(s.y) ? s.y : 0, 0, this.height - size))
    this.square = { x, y, size }
    const { box, inputs } = this.parts
    box.style.left = `${(x / this.width) * 100}%`
    box.style.top = `${(y / this.height) * 100}%`
    box.style.width = `${(size / this.width) * 100}%`
    box.style.height = `${(size / this.height) * 100}%`
    inputs.x.max = String(this.width - size)
    inputs.y.max = String(this.height - size)
    inputs.size.max = String(max)
    inputs.x.value = String(x)
    inputs.y.value = String(y)
    inputs.size.value = String(size)
    this.parts.onChange?.(this.square)
  }

  /** The crop as POST /encode takes it. */
  get crop() {
    const { x, y, size } = this.square
    return { x, y, w: size, h: size }
  }

  /** Photo pixels per CSS pixel of the preview. */
  #scale() {
    const rect = this.parts.stage.getBoundingClientRect()
    return rect.width > 0 ? this.width / rect.width : 1
  }

  /** @param {PointerEvent} e */
  #down(e) {
    if (!this.width || e.button !== 0) return
    const target = /** @type {HTMLElement} */ (e.target)
    const mode = target.dataset.handle ?? 'move'
    this.drag = { id: e.pointerId, mode, start: { ...this.square }, px: e.clientX, py: e.clientY }
    this.parts.box.setPointerCapture(e.pointerId)
    this.parts.box.classList.add('dragging')
    e.preventDefault()
  }

  /** @param {PointerEvent} e */
  #move(e) {
    const d = this.drag
    if (!d || e.pointerId !== d.id) return
    const k = this.#scale()
    const dx = (e.clientX - d.px) * k
    const dy = (e.clientY - d.py) * k
    const s = d.start
    if (d.mode === 'move') return this.set({ ...s, x: s.x + dx, y: s.y + dy })
    // a corner: the opposite corner stays put; the square follows the larger of the two moves
    const sx = d.mode.includes('w') ? -1 : 1
    const sy = d.mode.includes('n') ? -1 : 1
    const grow = Math.abs(dx) > Math.abs(dy) ? sx * dx : sy * dy
    const max = Math.min(this.width, this.height)
    // room toward the dragged corner, measured from the fixed one
    const room = Math.min(sx > 0 ? this.width - s.x : s.x + s.size, sy > 0 ? this.height - s.y : s.y + s.size, max)
    const size = clamp(s.size + grow, Math.min(MIN_SIZE, max), room)
    this.set({ size, x: sx > 0 ? s.x : s.x + s.size - size, y: sy > 0 ? s.y : s.y + s.size - size })
  }

  /** @param {PointerEvent} e */
  #up(e) {
    if (!this.drag || e.pointerId !== this.drag.id) return
    this.drag = null
    this.parts.box.classList.remove('dragging')
  }
}

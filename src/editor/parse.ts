/** Text forms of editor inputs shared by the CLI and the HTTP API. */
import type { Box, Rgb } from './editor.js'

/** '#rrggbb' (or 'rrggbb', case-insensitive) -> [r, g, b]; undefined if malformed. */
export function parseHexColor(text: string): Rgb | undefined {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(text.trim())
  if (!m) return undefined
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)]
}

/** 'x,y,w,h' of whole non-negative pixels -> Box; undefined if malformed. */
export function parseBox(text: string): Box | undefined {
  const parts = text.split(',').map((p) => p.trim())
  if (parts.length !== 4 || !parts.every((p) => /^\d+$/.test(p))) return undefined
  const [x, y, w, h] = parts.map(Number) as [number, number, number, number]
  return { x, y, w, h }
}

/** 'x1,y1;x2,y2;...' -> points; undefined if malformed. */
export function parsePoints(text: string): { x: number; y: number }[] | undefined {
  const pts = text
    .split(';')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => p.split(',').map((v) => Number(v.trim())))
  if (pts.length === 0 || pts.some((p) => p.length !== 2 || !p.every(Number.isFinite))) return undefined
  return pts.map(([x, y]) => ({ x: x!, y: y! }))
}

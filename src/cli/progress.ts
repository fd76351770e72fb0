/**
 * Progress lines for long `npe` commands (dataset generation, training), on stderr: rewritten
 * in place on a TTY (at most ~10 times a second), otherwise one line each time another
 * 1/`lines` of the work is done (so logs of non-interactive runs stay short).
 */

/** Seconds as m:ss or h:mm:ss ('?' when unknown). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?'
  const s = Math.max(0, Math.round(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`
}

export interface ProgressStream {
  write(chunk: string): unknown
  isTTY?: boolean
}

export interface ProgressReporter<P> {
  /** Report the current state; drawn or not depending on the stream and the throttle. */
  update(p: P): void
  /** Print a message line without losing the progress line (a TTY redraws it below). */
  note(message: string): void
  /** Finish the in-place line (TTY). */
  end(): void
}

export interface ProgressOptions<P> {
  /** The progress line (no newline). */
  line: (p: P) => string
  /** Fraction done in [0, 1]; 1 is always drawn. */
  fraction: (p: P) => number
  /** Non-TTY: one line per 1/lines of the work (default 20, i.e. every 5%). */
  lines?: number
  /** TTY: minimum milliseconds between redraws (default 100). */
  minIntervalMs?: number
}

export function progressReporter<P>(stream: ProgressStream, opts: ProgressOptions<P>): ProgressReporter<P> {
  const tty = stream.isTTY === true
  const lines = Math.max(1, opts.lines ?? 20)
  const minIntervalMs = opts.minIntervalMs ?? 100
  let lastDraw = 0
  let lastBucket = -1
  let drawn: string | undefined
  return {
    update(p) {
      const fraction = Math.min(1, Math.max(0, opts.fraction(p)))
      const final = fraction >= 1
      if (tty) {
        const now = Date.now()
        if (!final && now - lastDraw < minIntervalMs) return
        lastDraw = now
        drawn = opts.line(p)
        stream.write(`\r${drawn}\x1b[K`)
      } else {
        const bucket = Math.floor(lines * fraction)
        if (bucket === lastBucket) return
        lastBucket = bucket
        stream.write(`${opts.line(p)}\n`)
      }
    },
    note(message) {
      if (tty && drawn !== undefined) stream.write(`\r${message}\x1b[K\n${drawn}\x1b[K`)
      else stream.write(`${message}\n`)
    },
    end() {
      if (tty && drawn !== undefined) stream.write('\n')
      drawn = undefined
    },
  }
}

/**
 * Micro-batching: items of one kind that arrive within `waitMs` (up to
 * `maxBatch`) are handed to the handler together. One batch runs at a time
 * (tensor work is synchronous anyway); kinds take turns in arrival order.
 */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown }

export type BatchHandler = (kind: string, items: unknown[]) => Promise<Settled<unknown>[]>

interface Pending {
  payload: unknown
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

export interface BatcherStats {
  /** Called after each batch with its kind, size and duration. */
  onBatch?: (kind: string, size: number, ms: number) => void
}

export class Batcher {
  private readonly queues = new Map<string, Pending[]>()
  private readonly order: string[] = []
  private running = false
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly handle: BatchHandler,
    private readonly opts: { maxBatch: number; waitMs: number } & BatcherStats,
  ) {}

  /** Items waiting (not yet handed to the handler). */
  get pending(): number {
    let n = 0
    for (const q of this.queues.values()) n += q.length
    return n
  }

  submit<R>(kind: string, payload: unknown): Promise<R> {
    if (this.closed) return Promise.reject(new Error('batcher is closed'))
    return new Promise<R>((resolve, reject) => {
      let q = this.queues.get(kind)
      if (!q) {
        q = []
        this.queues.set(kind, q)
      }
      q.push({ payload, resolve: resolve as (v: unknown) => void, reject })
      if (!this.order.includes(kind)) this.order.push(kind)
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.running || this.timer) return
    const full = [...this.queues.values()].some((q) => q.length >= this.opts.maxBatch)
    if (full || this.opts.waitMs === 0) {
      setImmediate(() => void this.drain())
      this.running = true
      return
    }
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.running = true
      void this.drain()
    }, this.opts.waitMs)
  }

  private async drain(): Promise<void> {
    try {
      while (this.order.length > 0) {
        const kind = this.order.shift()!
        const q = this.queues.get(kind)!
        const batch = q.splice(0, this.opts.maxBatch)
        if (q.length > 0) this.order.push(kind)
        else this.queues.delete(kind)
        if (batch.length === 0) continue
        const t0 = performance.now()
        let results: Settled<unknown>[]
        try {
          results = await this.handle(kind, batch.map((p) => p.payload))
        } catch (err) {
          results = batch.map(() => ({ ok: false as const, error: err }))
        }
        this.opts.onBatch?.(kind, batch.length, performance.now() - t0)
        batch.forEach((p, i) => {
          const r = results[i]
          if (r?.ok) p.resolve(r.value)
          else p.reject(r ? r.error : new Error('batch handler returned too few results'))
        })
      }
    } finally {
      this.running = false
      if (this.pending > 0) this.schedule()
    }
  }

  /** Rejects everything still waiting. */
  close(): void {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    for (const q of this.queues.values()) for (const p of q) p.reject(new Error('batcher is closed'))
    this.queues.clear()
    this.order.length = 0
  }
}

// @ts-check
/**
 * One lane for everything that changes a session: at most one request in
 * flight, tasks run in order, and a task that arrives while an equal-keyed task
 * is still waiting is merged into it (brush points into one POST /edit, tile
 * changes into one PUT /latent), so the page never builds a backlog of requests
 * however fast the pointer moves.
 */

/**
 * @typedef {object} Task
 * @property {string} label what the busy indicator says
 * @property {string} [key] tasks with the same key may merge while waiting
 * @property {(next: Task) => boolean} [absorb] merge `next` into this waiting task; false to queue it after
 * @property {() => Promise<void>} run
 */

export class Lane {
  /** @type {Task[]} */
  #queue = []
  /** @type {Task | null} */
  #current = null
  /** @type {(() => void)[]} */
  #idleWaiters = []

  /**
   * @param {{
   *   onChange?: (state: { busy: boolean, label: string, waiting: number }) => void,
   *   onError?: (err: unknown, task: Task) => void,
   *   onDrain?: () => Task | null,
   * }} hooks onDrain: called when the queue empties; may return one last task (e.g. a refresh)
   */
  constructor(hooks = {}) {
    this.hooks = hooks
  }

  get busy() {
    return this.#current !== null || this.#queue.length > 0
  }

  /** Tasks waiting (not counting the one in flight). */
  get waiting() {
    return this.#queue.length
  }

  /** @param {Task} task */
  push(task) {
    const tail = this.#queue[this.#queue.length - 1]
    if (tail && task.key !== undefined && tail.key === task.key && tail.absorb?.(task)) {
      this.#changed()
      return
    }
    this.#queue.push(task)
    this.#changed()
    if (!this.#current) void this.#pump()
  }

  /** Drops the waiting tasks (the one in flight finishes). */
  clear() {
    this.#queue.length = 0
    this.#changed()
  }

  /** @returns {Promise<void>} resolves when nothing is in flight or waiting */
  idle() {
    if (!this.busy) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  async #pump() {
    let drained = false
    for (;;) {
      let task = this.#queue.shift()
      if (!task && !drained) {
        drained = true
        task = this.hooks.onDrain?.() ?? undefined
      }
      if (!task) break
      if (this.#queue.length > 0) drained = false
      this.#current = task
      this.#changed()
      try {
        await task.run()
        if (this.#queue.length > 0) drained = false
      } catch (err) {
        // what waited was built on the state that failed: drop it rather than pile up errors
        this.#queue.length = 0
        this.hooks.onError?.(err, task)
      }
      this.#current = null
    }
    this.#changed()
    for (const resolve of this.#idleWaiters.splice(0)) resolve()
  }

  #changed() {
    const label = this.#current?.label ?? this.#queue[0]?.label ?? ''
    this.hooks.onChange?.({ busy: this.busy, label, waiting: this.#queue.length })
  }
}

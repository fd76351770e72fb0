/**
 * Parameter store: named tf.Variables, created lazily on first use with a
 * seeded initialiser so that a model is a pure function of (config, seed).
 *
 * Naming: `G/...` generator, `D/...` discriminator trunk + adversarial head,
 * `E/...` encoder head (dense layers on D's last conv), `bn:` prefix for the
 * non-trainable batch-norm moving statistics.
 */
import * as tf from '@tensorflow/tfjs'

export type Initialiser = (shape: number[], seed: number) => tf.Tensor

export const init = {
  normal:
    (std: number): Initialiser =>
    (shape, seed) =>
      tf.randomNormal(shape, 0, std, 'float32', seed),
  constant:
    (value: number): Initialiser =>
    (shape) =>
      tf.fill(shape, value),
}

/** FNV-1a over the name, mixed with the model seed: a stable per-parameter seed. */
export function paramSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h
}

export class ParamStore {
  private readonly vars = new Map<string, tf.Variable>()
  /** When frozen, asking for an unknown parameter is an error (a loaded checkpoint must be complete). */
  frozen = false

  constructor(readonly seed: number) {}

  /** The variable `name`, created with `initialiser` if it does not exist yet. */
  get(name: string, shape: number[], initialiser: Initialiser, trainable = true): tf.Variable {
    const existing = this.vars.get(name)
    if (existing) {
      if (!tf.util.arraysEqual(existing.shape, shape)) {
        throw new Error(`parameter ${name} has shape [${existing.shape}] but the network asks for [${shape}]`)
      }
      return existing
    }
    if (this.frozen) throw new Error(`parameter ${name} is missing`)
    const value = tf.tidy(() => initialiser(shape, paramSeed(this.seed, name)))
    const variable = tf.variable(value, trainable)
    value.dispose()
    this.vars.set(name, variable)
    return variable
  }

  has(name: string): boolean {
    return this.vars.has(name)
  }

  /** Sets an existing variable's value (shape must match). */
  assign(name: string, value: tf.Tensor): void {
    const v = this.vars.get(name)
    if (!v) throw new Error(`parameter ${name} is missing`)
    if (!tf.util.arraysEqual(v.shape, value.shape)) {
      throw new Error(`parameter ${name} has shape [${v.shape}], got [${value.shape}]`)
    }
    v.assign(value)
  }

  /** Adds a variable with a given value (used when loading checkpoints). */
  set(name: string, value: tf.Tensor, trainable: boolean): void {
    const old = this.vars.get(name)
    if (old) old.dispose()
    this.vars.set(name, tf.variable(value, trainable))
  }

  names(): string[] {
    return [...this.vars.keys()].sort()
  }

  entries(): [string, tf.Variable][] {
    return this.names().map((n) => [n, this.vars.get(n)!])
  }

  /** Trainable variables whose names start with one of the prefixes. */
  trainable(...prefixes: string[]): tf.Variable[] {
    return this.entries()
      .filter(([n, v]) => v.trainable && prefixes.some((p) => n.startsWith(p)))
      .map(([, v]) => v)
  }

  byName(name: string): tf.Variable | undefined {
    return this.vars.get(name)
  }

  nameOf(variable: tf.Variable): string {
    for (const [n, v] of this.vars) if (v === variable) return n
    throw new Error(`variable ${variable.name} is not in this store`)
  }

  countParameters(...prefixes: string[]): number {
    return this.entries()
      .filter(([n, v]) => v.trainable && (prefixes.length === 0 || prefixes.some((p) => n.startsWith(p))))
      .reduce((sum, [, v]) => sum + v.size, 0)
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose()
    this.vars.clear()
  }
}

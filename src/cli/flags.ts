/**
 * Flag values for the `npe` commands: node:util parseArgs gives strings; these turn them into
 * checked numbers and choices, and throw a UsageError (exit code 2, message plus usage) for
 * anything out of range.
 */

/** A bad flag value or a missing required flag: the command prints the message and its usage. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** An integer flag in min..max (decimal digits only); `fallback` when absent, else required. */
export function intFlag(name: string, value: string | undefined, min: number, max: number, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`)
    return fallback
  }
  const v = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new UsageError(`--${name} must be an integer in ${min}..${max}, got '${value}'`)
  }
  return v
}

/** `value` as a finite decimal number (e.g. `2e-4`, `0.0001`), or NaN. */
function decimal(value: string): number {
  return value.trim() === '' ? NaN : Number(value)
}

/** A finite decimal number flag with min < value <= max. */
export function numberFlag(name: string, value: string | undefined, min: number, max: number, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`)
    return fallback
  }
  const v = decimal(value)
  if (!Number.isFinite(v) || v <= min || v > max) {
    throw new UsageError(`--${name} must be a number greater than ${min} and at most ${max}, got '${value}'`)
  }
  return v
}

/** A loss weight: a finite decimal number in 0..max (0 switches the term off). */
export function weightFlag(name: string, value: string, max: number): number {
  const v = decimal(value)
  if (!Number.isFinite(v) || v < 0 || v > max) {
    throw new UsageError(`--${name} must be a number in 0..${max}, got '${value}'`)
  }
  return v
}

/** One of a fixed list of strings. */
export function choiceFlag<T extends string>(name: string, value: string | undefined, choices: readonly T[], fallback?: T): T {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`)
    return fallback
  }
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${value}'`)
  }
  return value as T
}

/**
 * The exit code for an error a command caught: usage errors (bad or unknown flags) print the
 * message and the usage and give 2; errors whose `code` matches `expected` (bad inputs, missing
 * checkpoints) print the message and give 1; anything else is rethrown (a bug: the stack is shown).
 */
export function failure(command: string, usage: string, err: unknown, expected: RegExp): number {
  if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    console.error(`npe ${command}: ${(err as Error).message}\n\n${usage}`)
    return 2
  }
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && expected.test(code)) {
    console.error(`npe ${command}: ${(err as Error).message} (${code})`)
    return 1
  }
  throw err
}

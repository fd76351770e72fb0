/**
 * Request validation with zod, mirroring openapi.yaml (the contract). Bodies
 * are parsed here rather than by Fastify's JSON-schema validator so that every
 * failure becomes one `invalid_request` problem listing each issue.
 */
import { z } from 'zod'
import { AppError } from '../errors.js'
import type { components } from './openapi.gen.js'

export const sessionIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex characters')
const baseVersion = z.number().int().min(1).optional()
const finite = z.number().refine(Number.isFinite, 'must be a finite number')

export const editBodySchema = z
  .object({
    sessionId: sessionIdSchema,
    stroke: z
      .object({
        points: z
          .array(z.object({ x: finite, y: finite }).strict())
          .min(1)
          .max(256),
        radius: finite.refine((r) => r > 0, 'must be > 0'),
      })
      .strict(),
    color: z
      .string()
      .regex(/^#[0-9a-fA-F]{6}$/, 'must be #rrggbb')
      .optional(),
    mode: z.enum(['color', 'lighten', 'darken']).default('color'),
    strength: finite.refine((s) => s >= 0 && s <= 100, 'must be in 0..100').default(1),
    baseVersion,
  })
  .strict()
  .refine((b) => b.mode !== 'color' || b.color !== undefined, { message: 'color is required when mode is color', path: ['color'] })

export const latentBodySchema = z
  .object({
    latent: z.array(finite).optional(),
    entries: z
      .array(z.object({ index: z.number().int().min(0), value: finite }).strict())
      .min(1)
      .optional(),
    baseVersion,
  })
  .strict()
  .refine((b) => (b.latent === undefined) !== (b.entries === undefined), { message: 'give either latent or entries' })

export const versionedBodySchema = z.object({ baseVersion }).strict()

const latentSource = z
  .object({ sessionId: sessionIdSchema.optional(), latent: z.array(finite).optional() })
  .strict()
  .refine((s) => (s.sessionId === undefined) !== (s.latent === undefined), { message: 'give either sessionId or latent' })

export const interpolateBodySchema = z
  .object({ from: latentSource, to: latentSource, steps: z.number().int().min(2).max(32).default(8) })
  .strict()

export const sampleQuerySchema = z
  .object({
    seed: z
      .string()
      .regex(/^\d{1,16}$/, 'must be a non-negative integer')
      .transform(Number)
      .refine(Number.isSafeInteger, 'too large')
      .optional(),
  })
  .strict()

/** Parses or throws an invalid_request AppError listing every issue. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : what}: ${i.message}`)
  throw new AppError('invalid_request', `invalid ${what}: ${issues.join('; ')}`)
}

// Compile-time checks that what the validators accept fits the OpenAPI contract's types.
type Fits<T extends U, U> = T
export type EditRequestFits = Fits<z.infer<typeof editBodySchema>, components['schemas']['EditRequest']>
export type LatentRequestFits = Fits<z.infer<typeof latentBodySchema>, components['schemas']['LatentRequest']>
export type InterpolateRequestFits = Fits<z.infer<typeof interpolateBodySchema>, components['schemas']['InterpolateRequest']>

/**
 * TensorFlow.js backend selection: tfjs-node-gpu (CUDA), then tfjs-node
 * (libtensorflow on CPU), then wasm (SIMD), then the pure-JS cpu backend.
 * A preference ('gpu' | 'node' | 'wasm' | 'cpu' | 'auto') overrides the order;
 * it comes from the TFJS_BACKEND setting, read by the caller (src/config.ts).
 */
import * as tf from '@tensorflow/tfjs'
import { registerCpuConvGradients, registerWasmTrainingKernels } from './wasm-kernels.js'

export const BACKEND_PREFERENCES = ['auto', 'gpu', 'node', 'wasm', 'cpu'] as const
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number]

export interface BackendInfo {
  /** What was asked for. */
  preference: BackendPreference
  /** The tfjs backend name now active: 'tensorflow' (tfjs-node / -gpu), 'wasm' or 'cpu'. */
  name: string
  /** The package that provides it. */
  package: string
  /** True when ops run on a GPU. */
  gpu: boolean
  /** Candidates that were tried and failed, with the reason. */
  skipped: { candidate: string; reason: string }[]
}

type Candidate = { id: Exclude<BackendPreference, 'auto'>; pkg: string; load: () => Promise<string> }

const CANDIDATES: Candidate[] = [
  {
    id: 'gpu',
    pkg: '@tensorflow/tfjs-node-gpu',
    load: async () => {
      await import('@tensorflow/tfjs-node-gpu' as string)
      return 'tensorflow'
    },
  },
  {
    id: 'node',
    pkg: '@tensorflow/tfjs-node',
    load: async () => {
      await import('@tensorflow/tfjs-node' as string)
      return 'tensorflow'
    },
  },
  {
    id: 'wasm',
    pkg: '@tensorflow/tfjs-backend-wasm',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm')
      registerWasmTrainingKernels()
      return 'wasm'
    },
  },
  {
    id: 'cpu',
    pkg: '@tensorflow/tfjs-backend-cpu',
    load: async () => {
      registerCpuConvGradients()
      return 'cpu'
    },
  },
]

let active: BackendInfo | undefined

function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.split('\n')[0]!.slice(0, 300)
}

/**
 * Activates the first backend that loads, in preference order. With an
 * explicit preference only that backend is tried, and failure is an error.
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendInfo> {
  if (!BACKEND_PREFERENCES.includes(preference)) {
    throw new Error(`unknown backend '${preference}' (use one of ${BACKEND_PREFERENCES.join(', ')})`)
  }
  const candidates = preference === 'auto' ? CANDIDATES : CANDIDATES.filter((c) => c.id === preference)
  const skipped: BackendInfo['skipped'] = []
  for (const c of candidates) {
    try {
      const name = await c.load()
      if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') returned false`)
      await tf.ready()
      if (name === 'tensorflow' && c.id === 'gpu' && !(await hasGpu())) {
        throw new Error('tfjs-node-gpu loaded but TensorFlow sees no GPU')
      }
      active = { preference, name, package: c.pkg, gpu: c.id === 'gpu', skipped }
      return active
    } catch (err) {
      skipped.push({ candidate: c.pkg, reason: message(err) })
    }
  }
  throw new Error(`no TensorFlow.js backend could be started: ${skipped.map((s) => `${s.candidate}: ${s.reason}`).join('; ')}`)
}

/** The backend chosen by initBackend, if any. */
export function activeBackend(): BackendInfo | undefined {
  return active
}

async function hasGpu(): Promise<boolean> {
  // tfjs-node-gpu falls back to CPU kernels silently when CUDA is missing; its
  // binding exposes the device list through the backend's `isUsingGpuDevice`.
  const backend = tf.backend() as unknown as { isUsingGpuDevice?: boolean }
  return backend.isUsingGpuDevice !== false
}

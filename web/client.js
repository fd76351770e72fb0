// @ts-check
/**
 * Typed client for the Neural Photo Editor API.
 *
 * The types are the ones openapi-typescript generates from openapi.yaml
 * (src/api/openapi.gen.ts): `request(method, path, ...)` only accepts a path and
 * method the contract has, the JSON body and parameters that operation takes,
 * and resolves to the JSON of its 200/201 response. This file is plain ES2022
 * served as is (no build step); `npx tsc -p web` checks it against the
 * generated types. Errors are `application/problem+json` (RFC 9457) and are
 * thrown as `ApiError`, which carries the problem (its `detail`, stable `code`,
 * `requestId`).
 */

/** @typedef {import('../src/api/openapi.gen.js').paths} paths */
/** @typedef {import('../src/api/openapi.gen.js').components} components */
/** @typedef {components['schemas']['Problem']} Problem */
/** @typedef {components['schemas']['EncodeResponse']} EncodeResponse */
/** @typedef {components['schemas']['EditRequest']} EditRequest */
/** @typedef {components['schemas']['EditResponse']} EditResponse */
/** @typedef {components['schemas']['SampleResponse']} SampleResponse */
/** @typedef {components['schemas']['Session']} Session */
/** @typedef {components['schemas']['LatentRequest']} LatentRequest */
/** @typedef {components['schemas']['InterpolateRequest']} InterpolateRequest */
/** @typedef {components['schemas']['InterpolateResponse']} InterpolateResponse */
/** @typedef {components['schemas']['Readiness']} Readiness */

/** @typedef {'get' | 'put' | 'post' | 'delete'} Method */
/**
 * The methods the contract defines on `P`.
 * @template {keyof paths} P
 * @typedef {{ [K in Method]: paths[P][K] extends undefined ? never : K }[Method]} MethodsOf
 */
/**
 * The operation object of `M` on `P`.
 * @template {keyof paths} P
 * @template {Method} M
 * @typedef {NonNullable<paths[P][M]>} Op
 */
/**
 * JSON body of an operation's 200 or 201 response (undefined for 204-only operations).
 * @template O
 * @typedef {O extends { responses: { 200: { content: { 'application/json': infer J } } } } ? J
 *   : O extends { responses: { 201: { content: { 'application/json': infer J } } } } ? J
 *   : undefined} JsonResult
 */
/**
 * JSON request body of an operation (never when it takes none or another media type).
 * @template O
 * @typedef {O extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never} JsonBody
 */
/**
 * @template O
 * @typedef {O extends { parameters: { path: infer A } } ? A : never} PathParams
 */
/**
 * @template O
 * @typedef {O extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never} QueryParams
 */
/**
 * @template O
 * @typedef {{
 *   path?: PathParams<O>,
 *   query?: QueryParams<O>,
 *   body?: JsonBody<O>,
 *   form?: FormData,
 *   accept?: string,
 *   signal?: AbortSignal,
 * }} RequestOptions
 */

/** `Problem['code']`, plus `network_error` when no HTTP answer came back. */
/** @typedef {Problem['code'] | 'network_error'} ErrorCode */

/** An error answer of the API (problem+json), or a failure to reach it. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: no answer)
   * @param {Problem | { type: string, title: string, status: number, code: 'network_error', detail?: string }} problem
   */
  constructor(status, problem) {
    super(problem.detail || problem.title)
    this.name = 'ApiError'
    /** @type {number} */
    this.status = status
    /** @type {ErrorCode} */
    this.code = problem.code
    /** @type {string} */
    this.title = problem.title
    /** @type {string | undefined} */
    this.detail = problem.detail
    /** @type {string | undefined} */
    this.requestId = 'requestId' in problem ? problem.requestId : undefined
  }
}

/**
 * Builds the problem of an error response: the server's problem+json, or one
 * made from the status when something else answered (a proxy's HTML page).
 * @param {Response} res
 * @returns {Promise<Problem>}
 */
async function problemOf(res) {
  const text = await res.text().catch(() => '')
  const type = res.headers.get('content-type') ?? ''
  if (/^application\/(problem\+)?json/.test(type)) {
    try {
      const body = JSON.parse(text)
      if (body && typeof body === 'object' && typeof body.title === 'string') return /** @type {Problem} */ (body)
    } catch {
      // not JSON after all: fall through
    }
  }
  return {
    type: 'about:blank',
    title: res.statusText || `HTTP ${res.status}`,
    status: res.status,
    code: res.status === 404 ? 'not_found' : 'internal',
    detail: text ? text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200) : `HTTP ${res.status} ${res.statusText}`,
  }
}

export class ApiClient {
  /**
   * @param {{ baseUrl?: string, apiKey?: () => string, fetch?: typeof fetch }} [options]
   *   baseUrl: where the API is ('' = this page's origin); apiKey: read before every request, sent as `Authorization: Bearer` when not empty.
   */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/$/, '')
    this.apiKey = options.apiKey ?? (() => '')
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  }

  /**
   * One request of the contract. Resolves to the JSON of the success response;
   * rejects with an ApiError.
   * @template {keyof paths} P
   * @template {MethodsOf<P>} M
   * @param {M} method
   * @param {P} path a path of openapi.yaml, e.g. '/sessions/{id}/undo'
   * @param {RequestOptions<Op<P, M>>} [options]
   * @returns {Promise<JsonResult<Op<P, M>>>}
   */
  async request(method, path, options = {}) {
    const res = await this.raw(method, path, options)
    if (res.status === 204) return /** @type {JsonResult<Op<P, M>>} */ (undefined)
    return /** @type {Promise<JsonResult<Op<P, M>>>} */ (res.json())
  }

  /**
   * The same, resolving to the Response (for binary answers such as PNGs).
   * @template {keyof paths} P
   * @template {MethodsOf<P>} M
   * @param {M} method
   * @param {P} path
   * @param {RequestOptions<Op<P, M>>} [options]
   * @returns {Promise<Response>}
   */
  async raw(method, path, options = {}) {
    /** @type {Record<string, unknown>} */
    const params = options.path ?? {}
    let url = this.baseUrl + String(path).replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(String(params[name])))
    /** @type {Record<string, unknown>} */
    const query = options.query ?? {}
    const search = new URLSearchParams()
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') search.set(k, String(v))
    if ([...search].length > 0) url += `?${search}`
    /** @type {Record<string, string>} */
    const headers = { accept: options.accept ?? 'application/json' }
    const key = this.apiKey().trim()
    if (key) headers.authorization = `Bearer ${key}`
    /** @type {BodyInit | undefined} */
    let body
    if (options.form) body = options.form
    else if (options.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(options.body)
    }
    let res
    try {
      res = await this.fetch(url, { method: String(method).toUpperCase(), headers, body, signal: options.signal })
    } catch (err) {
      throw new ApiError(0, {
        type: 'about:blank',
        title: 'Network error',
        status: 0,
        code: 'network_error',
        detail: `could not reach the API (${err instanceof Error ? err.message : String(err)})`,
      })
    }
    if (!res.ok) throw new ApiError(res.status, await problemOf(res))
    return res
  }

  // ---- the operations the editor uses ----

  /** @returns {Promise<Readiness>} the model's shape and backend (also when not ready: 503 carries the same body) */
  async readyz() {
    try {
      return await this.request('get', '/readyz')
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) {
        const res = await this.fetch(`${this.baseUrl}/readyz`, { headers: { accept: 'application/json' } })
        return /** @type {Readiness} */ (await res.json())
      }
      throw err
    }
  }

  /**
   * @param {Blob} image the photo (PNG, JPEG or WebP)
   * @param {{ x: number, y: number, w: number, h: number }} [crop] in photo pixels
   * @param {string} [filename]
   * @returns {Promise<EncodeResponse>}
   */
  encode(image, crop, filename = 'photo') {
    const form = new FormData()
    if (crop) form.append('crop', `${crop.x},${crop.y},${crop.w},${crop.h}`)
    form.append('image', image, filename)
    return this.request('post', '/encode', { form })
  }

  /** @param {EditRequest} body @returns {Promise<EditResponse>} */
  edit(body) {
    return this.request('post', '/edit', { body })
  }

  /** @param {number} [seed] @returns {Promise<SampleResponse>} */
  sample(seed) {
    return this.request('get', '/sample', { query: seed === undefined ? {} : { seed } })
  }

  /** @param {string} id @returns {Promise<Session>} */
  session(id) {
    return this.request('get', '/sessions/{id}', { path: { id } })
  }

  /** @param {string} id @returns {Promise<Blob>} the current output as a PNG */
  async image(id) {
    const res = await this.raw('get', '/sessions/{id}/image', { path: { id }, accept: 'image/png' })
    return res.blob()
  }

  /** @param {string} id @param {LatentRequest} body @returns {Promise<EditResponse>} */
  setLatent(id, body) {
    return this.request('put', '/sessions/{id}/latent', { path: { id }, body })
  }

  /**
   * Undo, redo, reset or commit (the paper's "Update").
   * @param {'undo' | 'redo' | 'reset' | 'commit'} kind
   * @param {string} id
   * @param {number} [baseVersion]
   * @returns {Promise<EditResponse>}
   */
  history(kind, id, baseVersion) {
    const options = { path: { id }, body: baseVersion === undefined ? {} : { baseVersion } }
    switch (kind) {
      case 'undo':
        return this.request('post', '/sessions/{id}/undo', options)
      case 'redo':
        return this.request('post', '/sessions/{id}/redo', options)
      case 'reset':
        return this.request('post', '/sessions/{id}/reset', options)
      case 'commit':
        return this.request('post', '/sessions/{id}/commit', options)
    }
  }

  /** @param {InterpolateRequest} body @returns {Promise<InterpolateResponse>} */
  interpolate(body) {
    return this.request('post', '/interpolate', { body })
  }

  /** @param {string} id @returns {Promise<void>} */
  async deleteSession(id) {
    await this.request('delete', '/sessions/{id}', { path: { id } })
  }
}

/** The SessionStore port and its adapters: memory (embedded mode) and redis (queue mode). */
export * from './types.js'
export { createMemorySessionStore } from './memory.js'
export { createRedisSessionStore, type RedisSessionStoreOptions } from './redis.js'
export { DEFAULT_APPLIED_LIMIT, LOCK_TTL_MS, LOCK_WAIT_MS, isSessionId, newSessionId } from './records.js'

/**
 * virtwork's configuration moved to `lib/virtwork/config.ts` (it serves both targets); this
 * module re-exports it for existing importers.
 * @module
 */
export * from "../virtwork/config.ts";

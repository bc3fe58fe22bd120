/**
 * What the front door (cli/foundry.ts) loads for `foundry list` and `get`: their module alone,
 * without the command tree. A file of its own beside `_foundry_program.ts` so that the bundle
 * gives it a fixed name next to the entry (tasks/bundle.ts).
 * @module
 */
export { runFast } from "./foundry/_inventory.ts";

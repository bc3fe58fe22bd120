/**
 * What an error of lib/foundry knows about getting past it: which option of the failed call would
 * (`force`, an explicit `name`) and what it would then do. lib/ names its own options only; the
 * CLI turns them into flags (`--force`) and words (cli/_program.ts).
 * @module
 */

/** An option of the failed call that overrides or resolves the error. */
export interface OptionHint {
  /** The call's option: `force` (do it anyway) or `name` (name the result explicitly). */
  option: "force" | "name";
  /** What the call does with the option, e.g. `delete it anyway`. */
  effect?: string;
}

/** The `options` of an error constructor that may carry an {@linkcode OptionHint}. */
export interface HintedErrorOptions extends ErrorOptions {
  /** The option that overrides or resolves the error. */
  hint?: OptionHint;
}

/**
 * The errors of VM operations, apart from the code that throws them so that a caller can test for
 * one (`e instanceof VmNotFoundError`) without loading that code.
 * @module
 */
import type { HintedErrorOptions, OptionHint } from "./option_hint.ts";

/** A failed VM operation (define, start, stop, undefine). */
export class VmOperationError extends Error {
  /** The option of the call that would get past this error, if one would. */
  readonly hint: OptionHint | undefined;
  /** Creates the error. */
  constructor(message: string, options?: HintedErrorOptions) {
    super(message, options);
    this.name = "VmOperationError";
    this.hint = options?.hint;
  }
}

/** No domain of that name exists: a VM operation error that callers may ignore (`--ignore-not-found`). */
export class VmNotFoundError extends VmOperationError {
  /** The name looked up. */
  readonly vmName: string;
  /** Creates the error. */
  constructor(vmName: string, options?: ErrorOptions) {
    super(`VM ${vmName} does not exist`, options);
    this.name = "VmNotFoundError";
    this.vmName = vmName;
  }
}

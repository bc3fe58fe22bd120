/**
 * Errors of foundry's document handling.
 *
 * @module
 */

/** One problem found in a document, with where it was found. */
export interface Problem {
  /** File name as given to the loader. */
  file: string;
  /** 1-based line of the offending node. */
  line: number;
  /** 1-based column of the offending node. */
  column: number;
  /** Field path, `spec.networkInterfaces[1].ip`; empty for problems of the document as a whole. */
  path: string;
  /** What was expected and what was found, sentence case, no final period. */
  message: string;
}

/**
 * Formats a problem as `file:line:column path: message`.
 *
 * @example
 * ```ts
 * formatProblem({ file: "vm.yaml", line: 12, column: 5, path: "spec.vcpus", message: "must be a positive integer, got 0" });
 * // "vm.yaml:12:5 spec.vcpus: must be a positive integer, got 0"
 * ```
 */
export function formatProblem(p: Problem): string {
  const where = `${p.file}:${p.line}:${p.column}`;
  return p.path === "" ? `${where} ${p.message}` : `${where} ${p.path}: ${p.message}`;
}

/**
 * A document that breaks the rules of the `VirtualMachine` format. It carries every problem found in the
 * file; `file`, `line`, `column` and `path` are those of the first one.
 */
export class ValidationError extends Error {
  /** File of the first problem. */
  readonly file: string;
  /** Line of the first problem. */
  readonly line: number;
  /** Column of the first problem. */
  readonly column: number;
  /** Field path of the first problem. */
  readonly path: string;
  /** Every problem found, in document order. */
  readonly problems: readonly Problem[];

  /**
   * Creates the error from the problems of one file.
   *
   * @param problems at least one problem
   * @param options standard error options (`cause`)
   */
  constructor(problems: readonly Problem[], options?: ErrorOptions) {
    const first = problems[0];
    if (first === undefined) throw new RangeError("A ValidationError needs at least one problem");
    super(problems.map(formatProblem).join("\n"), options);
    this.name = "ValidationError";
    this.file = first.file;
    this.line = first.line;
    this.column = first.column;
    this.path = first.path;
    this.problems = problems;
  }
}

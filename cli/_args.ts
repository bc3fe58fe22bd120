/**
 * Parsers of option values that both executables use. A bad value is a usage error (exit 2), which
 * commander reports with the option: `option '--limit <n>' argument 'x' is invalid. expected ...`.
 * @module
 */
import { InvalidArgumentError } from "npm:commander@^15.1.0";

/** A finite number (`--qps 0.5`). */
export function numberArg(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new InvalidArgumentError(`expected a number, got "${v}"`);
  }
  return n;
}

/** An integer (`--timeout 600`); ranges are the configuration's to check. */
export function intArg(v: string): number {
  const n = numberArg(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${v}"`);
  return n;
}

/** A whole number of 0 or more (`--limit 0` for all). */
export function countArg(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError(`expected a whole number, got "${v}"`);
  }
  return n;
}

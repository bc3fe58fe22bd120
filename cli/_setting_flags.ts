/**
 * Flags named in lib's configuration errors. lib/ knows a setting by its key: a bad value given on
 * the command line is reported with the key and the source `flag`. Each executable keeps one table
 * of the flags that set its keys, next to its option declarations (cli/foundry/_config_flags.ts,
 * cli/virtwork/_config_flags.ts), and names the flag where lib's error reaches it.
 *
 * @module
 */

/**
 * lib's source of a value given on the command line (`FLAG_SOURCE` of lib/config/layered.ts;
 * tests/cli/exit_codes_test.ts holds the two equal): spelt here so that the command trees, which
 * declare their options from the tables, load no lib/ module.
 */
export const FLAG_SOURCE = "flag";

/** Setting key → the flag that sets it (`domainType` → `--domain-type`). */
export type SettingFlags = Readonly<Record<string, string>>;

/**
 * `err` with its message naming the flag, when it is lib's error about a setting given as a flag
 * (`flag domainType: ...` becomes `--domain-type: must be one of auto, kvm, qemu, got "xen"`);
 * any other error as it is. The error keeps its class, key and source, so its exit code is the same.
 */
export function nameSettingFlag<E>(err: E, flags: SettingFlags): E {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { key?: unknown; source?: unknown; where?: unknown; reason?: unknown };
  const source = e.source ?? e.where;
  if (source !== FLAG_SOURCE || typeof e.key !== "string" || typeof e.reason !== "string") {
    return err;
  }
  const flag = Object.hasOwn(flags, e.key) ? flags[e.key] : undefined;
  if (flag !== undefined) e.message = `${flag}: ${e.reason}`;
  return err;
}

/**
 * The flag of each of foundry's configuration settings: the one place a root flag's spelling is
 * kept. The root options (cli/_foundry_program.ts) are declared with these names, and a bad value
 * that lib/foundry/config.ts reports by its key is shown with its flag.
 *
 * @module
 */
import type { ConfigFlags } from "../../lib/foundry/config.ts";
import { nameSettingFlag } from "../_setting_flags.ts";

/** Setting key → root flag, for every setting a flag sets. */
export const FOUNDRY_SETTING_FLAGS = {
  config: "--config",
  uri: "--connect",
  domainType: "--domain-type",
  destroyTimeoutSeconds: "--destroy-timeout",
  storagePath: "--storage-path",
  imagesPool: "--image-pool",
  vmsPool: "--vm-pool",
} as const satisfies Record<keyof ConfigFlags, `--${string}`>;

/** `err` naming the root flag of the setting it is about (see `nameSettingFlag`). */
export function withFoundryFlag<E>(err: E): E {
  return nameSettingFlag(err, FOUNDRY_SETTING_FLAGS);
}

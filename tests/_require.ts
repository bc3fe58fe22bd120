/**
 * What the tests need from the machine, and what becomes of a test when it is missing.
 *
 * On a developer's machine such a test is reported as ignored, with the reason in its name
 * (`NAME (skipped: REASON) ... ignored`, which `.ci/run` lists). In CI (`CI=true`) or with `FOUNDRY_TEST_STRICT=1` it runs
 * and fails with `required in CI: <reason>`, so a missing daemon, validator or schema can never turn
 * into a green run. The only skips CI allows are the ones README lists ({@linkcode allowedSkip}).
 *
 * @example
 * ```ts
 * import { requireTool, testNeeding } from "./_require.ts";
 * testNeeding(requireTool("cloud-init"), {
 *   name: "user-data passes cloud-init schema",
 *   fn: async () => {},
 * });
 * ```
 * @module
 */
import { hasTool } from "./_tools.ts";
import { KUBEVIRT_SCHEMA_PATH } from "./virtwork/openapi_validator.ts";

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** True in CI (`CI=true`) or with `FOUNDRY_TEST_STRICT=1`: a missing requirement fails its test. */
export const STRICT: boolean = env("CI") === "true" || env("FOUNDRY_TEST_STRICT") === "1";

/** Why a requirement is not met (a sentence naming what is missing), or null when it is met. */
export type Missing = string | null;

/** Debian packages of the tools the tests run. */
const PACKAGES: Record<string, string> = {
  "virt-xml-validate": "libvirt-clients",
  virsh: "libvirt-clients",
  xmllint: "libxml2-utils",
  "cloud-init": "cloud-init",
  "cloud-localds": "cloud-image-utils",
  isoinfo: "genisoimage",
  xorriso: "xorriso",
  "systemd-analyze": "systemd",
  fio: "fio",
  zsh: "zsh",
  fish: "fish",
  "qemu-img": "qemu-utils",
  openssl: "openssl",
  "ssh-keygen": "openssh-client",
  python3: "python3",
};

/** The first of `names` not on PATH, as a reason naming it and its Debian package. */
export function requireTool(...names: string[]): Missing {
  for (const name of names) {
    if (!hasTool(name)) {
      const pkg = PACKAGES[name];
      return `${name} is not installed${pkg ? ` (Debian package ${pkg})` : ""}`;
    }
  }
  return null;
}

/**
 * The libvirtd socket the checks probe: `FOUNDRY_TEST_LIBVIRT_SOCKET`, else the system socket.
 * Pointing the variable at a path with no daemon shows what a run without libvirtd does, without
 * stopping the shared daemon.
 */
export const LIBVIRT_SOCKET: string = env("FOUNDRY_TEST_LIBVIRT_SOCKET") ||
  "/var/run/libvirt/libvirt-sock";

async function probeLibvirt(): Promise<Missing> {
  try {
    const conn = await Deno.connect({ transport: "unix", path: LIBVIRT_SOCKET });
    conn.close();
    return null;
  } catch (e) {
    return `libvirtd is not running (cannot connect to ${LIBVIRT_SOCKET}: ${
      (e as Error).name
    }); .ci/run starts it`;
  }
}

let libvirtMissing: Promise<Missing> | undefined;

/** Whether libvirtd accepts a connection on its socket (probed once per test module). */
export function requireLibvirt(): Promise<Missing> {
  return libvirtMissing ??= probeLibvirt();
}

/**
 * Whether `../shared/schemas` (beside the repository) holds the KubeVirt OpenAPI schema the
 * virtwork tests validate manifests against.
 */
export function requireSchemas(): Missing {
  try {
    if (Deno.statSync(KUBEVIRT_SCHEMA_PATH).isFile) return null;
  } catch { /* missing */ }
  return `the KubeVirt schema ${KUBEVIRT_SCHEMA_PATH.pathname} is missing (../shared/schemas)`;
}

/** Whether the tests run as root (`why` says what needs it). */
export function requireRoot(why: string): Missing {
  return Deno.uid() === 0 ? null : `${why} needs root`;
}

/** The first missing requirement of several. */
export function firstMissing(...missing: Missing[]): Missing {
  return missing.find((m) => m !== null) ?? null;
}

/** The message a test fails with in CI when `missing` is not there. */
export function requiredInCi(missing: string): string {
  return `required in CI: ${missing}`;
}

/**
 * Registers a test that needs what `missing` describes (null: everything is there). Missing on a
 * developer's machine: ignored, with the reason in its name. Missing in CI:
 * the test runs and fails with {@linkcode requiredInCi}.
 */
export function testNeeding(missing: Missing | Missing[], def: Deno.TestDefinition): void {
  const reason = Array.isArray(missing) ? firstMissing(...missing) : missing;
  if (reason === null) {
    Deno.test(def);
  } else if (STRICT) {
    Deno.test({
      ...def,
      ignore: false,
      fn: () => {
        throw new Error(requiredInCi(reason));
      },
    });
  } else {
    skip(def, reason);
  }
}

/**
 * Registers a test that is skipped, with `reason`, in every mode, CI included. Only for the skips
 * README lists (a compiled binary without denort, virtwork's real-cluster end-to-end test).
 */
export function allowedSkip(reason: string | null, def: Deno.TestDefinition): void {
  if (reason === null) Deno.test(def);
  else skip(def, reason);
}

function skip(def: Deno.TestDefinition, reason: string): void {
  Deno.test({ ...def, name: `${def.name} (skipped: ${reason})`, ignore: true });
}

/**
 * Helpers of the placement and move tests (tests/fleet/placement_test.ts, move_test.ts): foundry
 * run in-process, a VM document, and a stand-in host prepared with pools, a network's bridge name
 * and tiny images.
 * @module
 */
import { main } from "../../cli/foundry.ts";
import { type TestHost, virsh } from "./_daemons.ts";

const SSH_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD test@example.org";

/** What an in-process foundry run printed and returned. */
export type Run = { code: number; out: string; err: string };

/**
 * Runs foundry in-process with `env` as its environment (the test files share one process, whose
 * environment no test may change); returns exit code, stdout and stderr.
 */
export async function foundryWith(
  env: Record<string, string> | undefined,
  args: string[],
): Promise<Run> {
  let out = "";
  let err = "";
  const code = await main(["--no-audit", ...args], {
    out: (s) => void (out += s),
    err: (s) => void (err += s),
  }, env ? { env } : {});
  return { code, out, err };
}

/** Runs foundry in-process; returns exit code, stdout and stderr. */
export function foundry(...args: string[]): Promise<Run> {
  return foundryWith(undefined, args);
}

/** A foundry VM document on bridge h7br0 with image `image` of pool h7-images. */
export function vmYaml(name: string, ip: string, extra = "", image = "h7-base.qcow2"): string {
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
    suite: h7
spec:
  vcpus: 1
  memoryGiB: 0.25
  bootDisk:
    sizeGB: 1
    image: ${image}
  networkInterfaces:
    - ip: ${ip}/24
      gateway: 192.0.2.1
      bridge: h7br0
  cloudInit:
    sshAuthorizedKeys:
      - ${SSH_KEY}
${extra}`;
}

export async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/**
 * Gives `h` the pools h7-images and h7-vms (in its private /var/lib/libvirt), the network h7-net
 * with bridge h7br0 (defined, not started) and, when `images` names them, tiny qcow2 images.
 */
export async function prepareHost(h: TestHost, images: string[]): Promise<void> {
  for (const p of ["h7-images", "h7-vms"]) {
    await Deno.mkdir(`${h.dir}/lib/${p}`, { recursive: true });
    await virsh(h.unixUri, "pool-create-as", p, "dir", "--target", `/var/lib/libvirt/${p}`);
  }
  for (const img of images) {
    await run("qemu-img", "create", "-q", "-f", "qcow2", `${h.dir}/lib/h7-images/${img}`, "64M");
  }
  await virsh(h.unixUri, "pool-refresh", "h7-images");
  const net = `${h.dir}/h7-net.xml`;
  await Deno.writeTextFile(
    net,
    "<network><name>h7-net</name><bridge name='h7br0'/><forward mode='bridge'/></network>",
  );
  await virsh(h.unixUri, "net-define", net);
}

/** Names of every domain of `h`. */
export async function domainsOf(h: TestHost): Promise<string[]> {
  return (await virsh(h.unixUri, "list", "--all", "--name")).split("\n").map((s) => s.trim())
    .filter(Boolean).sort();
}

/** Names of the volumes of pool `pool` on `h`. */
export async function volumesOf(h: TestHost, pool: string): Promise<string[]> {
  // virsh vol-list: a header, a rule, then "NAME PATH" rows.
  return (await virsh(h.unixUri, "vol-list", pool)).split("\n").slice(2)
    .map((s) => s.trim().split(/\s+/)[0] ?? "").filter(Boolean).sort();
}

/**
 * Writes `dir/config.yaml`: domain type qemu, the pools h7-images and h7-vms, and `hosts` (one
 * flow mapping per line, `{name: a, uri: "..."}`); returns its path.
 */
export async function writeFleetConfig(dir: string, hosts: string[]): Promise<string> {
  const config = `${dir}/config.yaml`;
  await Deno.writeTextFile(
    config,
    [
      "domainType: qemu",
      "storage: {imagesPool: h7-images, vmsPool: h7-vms}",
      "hosts:",
      ...hosts.map((h) => `  - ${h}`),
      "",
    ].join("\n"),
  );
  return config;
}

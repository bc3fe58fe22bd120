/** Shared fixtures of lib/foundry tests; not part of the public API. */

import type { VirtualMachine } from "./types.ts";

/** A syntactically valid OpenSSH public key of `type` with key bytes derived from `seed`. */
export function fakeSshKey(type = "ssh-ed25519", seed = 1, comment = "test@example.org"): string {
  const t = new TextEncoder().encode(type);
  const body = new Uint8Array(32).map((_, i) => (i * 7 + seed) & 0xff);
  const bytes = new Uint8Array(4 + t.length + 4 + body.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, t.length);
  bytes.set(t, 4);
  view.setUint32(4 + t.length, body.length);
  bytes.set(body, 8 + t.length);
  return `${type} ${btoa(String.fromCharCode(...bytes))} ${comment}`;
}

/** A SHA-512 crypt hash of a throwaway password, for tests only. */
export const FAKE_PASSWORD_HASH =
  "$6$rounds=4096$saltsalt$IxDD3jeSOb5eB1CX5LBsqZFVkJdido3OUILO5Ifz5iwMuTS4XMS130MTSuDDl3aCI6WouIL9AjRbLCelDCy.g.";

/** A complete, valid VirtualMachine using documentation addresses. */
export function sampleVm(): VirtualMachine {
  return {
    apiVersion: "foundry.cofront.xyz/v1alpha1",
    kind: "VirtualMachine",
    metadata: {
      name: "web-01",
      labels: { environment: "test", role: "web" },
      annotations: { description: "A web server" },
      generation: 1,
    },
    spec: {
      vcpus: 2,
      memoryGiB: 4,
      bootDisk: { sizeGB: 20, image: "debian-12.qcow2" },
      dataDisks: [{ device: "vdb", sizeGB: 10 }, { device: "vdc", sizeGB: 5 }],
      networkInterfaces: [
        {
          ip: "192.0.2.10/24",
          gateway: "192.0.2.1",
          dnsServers: ["192.0.2.53", "2001:db8::53"],
          bridge: "br0",
        },
        { ip: "198.51.100.10/24", gateway: "198.51.100.1", bridge: "br1", defaultRoute: false },
      ],
      cloudInit: {
        fqdn: "web-01.example.org",
        sshAuthorizedKeys: [fakeSshKey(), fakeSshKey("ssh-rsa", 2)],
        passwordHash: FAKE_PASSWORD_HASH,
        sshPwauth: false,
      },
      cpuMode: "host-model",
      autostart: true,
      storagePool: "foundry-vms",
    },
  };
}

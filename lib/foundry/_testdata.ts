/** Shared fixtures of lib/foundry tests; not part of the public API. */

import type { VirtualMachine } from "./types.ts";

/**
 * A structurally valid OpenSSH public key of `type` (every field its type needs, of the right size)
 * with key bytes derived from `seed`. Not a usable key: the numbers are not a real key pair.
 */
export function fakeSshKey(type = "ssh-ed25519", seed = 1, comment = "test@example.org"): string {
  const filler = (n: number, first?: number) =>
    new Uint8Array(n).map((_, i) => i === 0 && first !== undefined ? first : (i * 7 + seed) & 0xff);
  const text = (s: string) => new TextEncoder().encode(s);
  const fields: Uint8Array[] = [text(type)];
  const curve = type.startsWith("ecdsa-sha2-") ? type.slice("ecdsa-sha2-".length) : "nistp256";
  const point = { nistp256: 65, nistp384: 97, nistp521: 133 }[curve] ?? 65;
  if (type === "ssh-rsa") {
    // e = 65537, n = 2048 bits (a leading zero keeps the mpint positive).
    fields.push(new Uint8Array([1, 0, 1]), Uint8Array.of(0, ...filler(256, 0xc1)));
  } else if (type === "ssh-dss") {
    for (const n of [128, 20, 128, 128]) fields.push(filler(n, 0x41));
  } else if (type.includes("ecdsa")) {
    fields.push(text(curve), filler(point, 0x04));
  } else {
    fields.push(filler(32));
  }
  if (type.startsWith("sk-")) fields.push(text("ssh:"));
  const bytes = new Uint8Array(fields.reduce((n, f) => n + 4 + f.length, 0));
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const f of fields) {
    view.setUint32(at, f.length);
    bytes.set(f, at + 4);
    at += 4 + f.length;
  }
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

/** sampleVm() carrying a workload: a data disk with a serial and user-data extras. */
export function workloadVm(): VirtualMachine {
  const vm = sampleVm();
  vm.spec.dataDisks = [{ device: "vdb", sizeGB: 10, serial: "virtwork-disk" }, {
    device: "vdc",
    sizeGB: 5,
  }];
  vm.spec.cloudInit!.userData = {
    packages: ["fio", "stress-ng"],
    writeFiles: [
      {
        path: "/usr/local/bin/loop",
        content: "#!/bin/sh\nwhile :; do\n\tsleep 1\ndone\n",
        permissions: "0755",
      },
      { path: "/etc/virtwork/run.conf", content: "on: yes\n" },
    ],
    bootcmd: [["mkdir", "-p", "/var/lib/virtwork"]],
    runcmd: [["systemctl", "daemon-reload"], ["sh", "-c", "echo 'a; b' > /tmp/x"]],
  };
  return vm;
}

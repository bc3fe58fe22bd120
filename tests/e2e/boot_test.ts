/**
 * End to end: a real Debian 12 guest boots from what foundry made and cloud-init applies the spec.
 * Built image (tasks/build_test_image.ts) → image import → create (two NICs on an isolated bridge,
 * two data disks, SSH keys, password hash, FQDN) → wait for cloud-init → checks through the QEMU
 * guest agent only (no traffic to the guest's addresses) → destroy → nothing left.
 * Domain type qemu (TCG): OVMF under KVM stops with "emulation failure" on these machines.
 */
import assert from "node:assert/strict";
import { buildTestImage } from "../../tasks/build_test_image.ts";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "../../lib/foundry/config.ts";
import { ensureDirPool } from "../../lib/foundry/pools.ts";
import { deleteImage, importImage } from "../../lib/foundry/images.ts";
import { parseVirtualMachine } from "../../lib/foundry/loader.ts";
import { macFromIp } from "../../lib/foundry/naming.ts";
import { createVm, destroyVm } from "../../lib/foundry/vm.ts";
import { waitForVm } from "../../lib/foundry/wait.ts";
import { listVms } from "../../lib/foundry/inventory.ts";
import { guestExec, guestInterfaces, guestReadFile } from "../../lib/foundry/agent.ts";
import { libvirtSkipReason, uniqueName } from "../libvirt/_env.ts";
import { firstMissing, requireRoot, testNeeding } from "../_require.ts";
import { withGuestSlot } from "./_guest_slot.ts";

const missing = firstMissing(
  libvirtSkipReason,
  requireRoot("building the image and bridges"),
);
// A real SHA-512 crypt hash (of "foundry-e2e"), made with `openssl passwd -6 -salt e2esalt`.
const PASSWORD_HASH =
  "$6$e2esalt$ERrD.824OD/bdsm/e0TlKXL7WxYNwHvaQGiKTAF7wz383pldFtPGsMpzYeP./65VyfrCkdrzUUrbqQOYmNvmD/";
const KEYS = [
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICoxOD9GTVRbYmlwd36FjJOaoaivtr3Ey9LZ4Ofu9fwD e2e-one@example.org",
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tng e2e-two@example.org",
];

async function sh(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

testNeeding(missing, {
  name: "a Debian guest boots from foundry's VM and cloud-init applies the spec",
  fn: () =>
    withGuestSlot("boot test", async () => {
      const image = await buildTestImage({ log: (l) => console.log(`  image: ${l}`) });
      console.log(
        `  image ${image.path} (${image.bytes} bytes, ${
          image.cached ? "cached" : `built in ${image.seconds} s`
        })`,
      );
      const lv = await Libvirt.connect();
      const tag = uniqueName("e2e").slice(4);
      const dir = await Deno.makeTempDir({ prefix: "foundry-e2e-" });
      await Deno.chmod(dir, 0o755);
      const config: FoundryConfig = {
        ...DEFAULT_CONFIG,
        domainType: "qemu",
        destroyTimeoutSeconds: 20,
        imagesPool: `e2e-img-${tag}`,
        imagesPath: `${dir}/images`,
        vmsPool: `e2e-vms-${tag}`,
        vmsPath: `${dir}/vms`,
      };
      const bridge = `fte2e${tag.slice(0, 6)}`;
      const name = `e2e-${tag}`;
      const fqdn = `${name}.e2e.example.org`;
      try {
        await sh("ip", ["link", "add", bridge, "type", "bridge"]);
        await sh("ip", ["link", "set", bridge, "up"]); // no address, no uplink: isolated
        await ensureDirPool(lv, config.imagesPool, config.imagesPath);
        await importImage(lv, config.imagesPool, image.path, "debian-12-test.qcow2");

        const vm = parseVirtualMachine(
          `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels: { suite: e2e }
spec:
  vcpus: 1
  memoryGiB: 1
  bootDisk: { sizeGB: 4, image: debian-12-test.qcow2 }
  dataDisks:
    - { device: vdb, sizeGB: 1 }
    - { device: vdc, sizeGB: 2 }
  networkInterfaces:
    - ip: 192.0.2.77/24
      gateway: 192.0.2.1
      dnsServers: [192.0.2.53, 198.51.100.53]
      bridge: ${bridge}
    - ip: 198.51.100.77/25
      gateway: 198.51.100.1
      bridge: ${bridge}
      defaultRoute: false
  cloudInit:
    fqdn: ${fqdn}
    sshAuthorizedKeys:
${KEYS.map((k) => `      - ${k}`).join("\n")}
    passwordHash: "${PASSWORD_HASH}"
`,
          "e2e.yaml",
        );
        const created = await createVm(lv, vm, { config });
        const domain = created.domain;
        const stages: string[] = [];
        const waited = await waitForVm(lv, name, {
          timeoutMs: 900_000,
          onStage: (s, ms, detail) => {
            stages.push(s);
            console.log(`  ${s} after ${(ms / 1000).toFixed(1)} s: ${detail}`);
          },
        });
        assert.deepEqual(stages, ["running", "agent", "ip", "cloud-init"]);
        assert.deepEqual(waited.cloudInitErrors, [], "cloud-init reported errors");

        const run = async (cmd: string) => {
          const r = await guestExec(lv, domain, "/bin/sh", ["-c", cmd]);
          assert.equal(r.exitCode, 0, `${cmd}: ${r.stderr}`);
          return r.stdout.trim();
        };
        // Hostname and FQDN.
        assert.equal(await run("hostname"), name);
        assert.equal(await run("hostname -f"), fqdn);
        // SSH keys for root, and the root password hash.
        const keys = await guestReadFile(lv, domain, "/root/.ssh/authorized_keys");
        for (const k of KEYS) assert.ok(keys.includes(k), `authorized_keys lacks ${k.slice(-22)}`);
        const shadow = (await guestReadFile(lv, domain, "/etc/shadow")).split("\n")
          .find((l) => l.startsWith("root:"));
        assert.equal(shadow?.split(":")[1], PASSWORD_HASH);
        // Each NIC: MAC, address, prefix, and the name network-config gave it.
        const ifaces = await guestInterfaces(lv, domain);
        for (const [i, nic] of vm.spec.networkInterfaces.entries()) {
          const mac = macFromIp(nic.ip!);
          const found = ifaces.find((x) => x.hardwareAddress.toLowerCase() === mac);
          assert.ok(found, `no interface with MAC ${mac}: ${JSON.stringify(ifaces)}`);
          assert.equal(found.name, `eth${i}`);
          const [addr, prefix] = nic.ip!.split("/");
          assert.ok(
            found.addresses.some((a) =>
              a.type === "ipv4" && a.address === addr && a.prefix === Number(prefix)
            ),
            `${found.name} lacks ${nic.ip}: ${JSON.stringify(found.addresses)}`,
          );
        }
        // One default route, via the first NIC's gateway, on the first NIC.
        const routes = JSON.parse(await run("ip -j -4 route show default")) as {
          gateway?: string;
          dev?: string;
        }[];
        assert.deepEqual(routes.map((r) => [r.gateway, r.dev]), [["192.0.2.1", "eth0"]]);
        // DNS servers.
        const resolv = await guestReadFile(lv, domain, "/etc/resolv.conf");
        for (const ns of ["192.0.2.53", "198.51.100.53"]) {
          assert.match(resolv, new RegExp(`^nameserver ${ns.replaceAll(".", "\\.")}$`, "m"));
        }
        // Both data disks with their sizes (sectors of 512 bytes).
        for (const [dev, gb] of [["vdb", 1], ["vdc", 2]] as const) {
          const sectors = Number(
            (await guestReadFile(lv, domain, `/sys/block/${dev}/size`)).trim(),
          );
          assert.equal(sectors * 512, gb * 2 ** 30, `${dev} size`);
        }
        // foundry list shows the agent's address.
        const row = (await listVms(lv, { labels: { suite: "e2e" } })).vms.find((v) =>
          v.name === name
        );
        assert.equal(row?.ip, "192.0.2.77");
        assert.equal(row?.ipSource, "agent");

        const gone = await destroyVm(lv, name, { timeoutSeconds: 180 });
        assert.equal(gone.graceful, true, "the guest shut down on request, before the timeout");
        console.log(
          `  destroyed (${
            gone.graceful ? "graceful shutdown" : "forced off"
          }), ${gone.volumesDeleted.length} volumes deleted`,
        );
        assert.ok(!(await lv.listAllDomains()).some((d) => d.name === name), "domain left");
        await assert.rejects(
          Deno.stat(`/var/lib/libvirt/qemu/nvram/${name}_VARS.fd`),
          Deno.errors.NotFound,
        );
        const vmsPool = await lv.storagePoolLookupByName(config.vmsPool);
        await lv.storagePoolRefresh(vmsPool);
        assert.deepEqual((await lv.storagePoolListAllVolumes(vmsPool)).map((v) => v.name), []);
        await deleteImage(lv, config.imagesPool, "debian-12-test.qcow2");
      } finally {
        for (const d of await lv.listAllDomains()) {
          if (d.name !== name) continue;
          await lv.domainDestroy(d).catch(() => {});
          await lv.domainUndefine(d, 4).catch(() => {});
        }
        for (const p of [config.vmsPool, config.imagesPool]) {
          try {
            const pool = await lv.storagePoolLookupByName(p);
            for (const v of await lv.storagePoolListAllVolumes(pool)) await lv.storageVolDelete(v);
            await lv.storagePoolDestroy(pool).catch(() => {});
            await lv.storagePoolUndefine(pool);
          } catch { /* gone */ }
        }
        await sh("ip", ["link", "del", bridge]).catch(() => {});
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        await lv.close();
      }
    }),
});

import assert from "node:assert/strict";
import { DEFAULT_CONFIG, type FoundryConfig } from "./config.ts";
import { checkHost, domainUse, type HostSurvey, versionText } from "./host_check.ts";

const CONFIG: FoundryConfig = { ...DEFAULT_CONFIG };

function survey(over: Partial<HostSurvey> = {}): HostSurvey {
  return {
    hostname: "h",
    libvirtVersion: "9.0.0",
    hypervisorVersion: "7.2.22",
    cpus: 2,
    memoryBytes: 8 * 2 ** 30,
    freeMemoryBytes: 2 ** 30,
    kvm: true,
    securityModel: "none",
    uefiFirmware: ["/usr/share/OVMF/OVMF_CODE_4M.fd"],
    pools: [
      {
        name: CONFIG.imagesPool,
        state: "active",
        capacityBytes: 10 * 2 ** 30,
        availableBytes: 5 * 2 ** 30,
        path: "/var/lib/libvirt/images/foundry/images",
        label: "",
      },
      {
        name: CONFIG.vmsPool,
        state: "active",
        capacityBytes: 10 * 2 ** 30,
        availableBytes: 4 * 2 ** 30,
        path: "/srv/vms",
        label: "",
      },
    ],
    bridges: ["br0"],
    domains: 1,
    foundryVms: [{ name: "web", bridges: ["br0"], pools: [CONFIG.vmsPool] }],
    ...over,
  };
}

const byCheck = (s: HostSurvey) => new Map(checkHost(s, CONFIG).map((c) => [c.check, c]));

Deno.test("versionText() reads libvirt's packed versions", () => {
  assert.equal(versionText(9_000_000), "9.0.0");
  assert.equal(versionText(7_002_022), "7.2.22");
  assert.equal(versionText(10_010_001), "10.10.1");
});

Deno.test("domainUse() finds the bridges and pools a domain names, once each", () => {
  const xml = `<domain><devices>
    <disk type='volume'><source pool='vms' volume='a_boot'/></disk>
    <disk type="volume"><source pool="vms" volume="a_data"/></disk>
    <disk type='volume'><source pool='fast' volume='a_x'/></disk>
    <interface type='bridge'><source bridge='br1'/></interface>
    <interface type='bridge'><source bridge='br0'/></interface>
    <interface type='network'><source network='default'/></interface>
  </devices></domain>`;
  assert.deepEqual(domainUse(xml), { bridges: ["br0", "br1"], pools: ["fast", "vms"] });
});

Deno.test("checkHost(): a healthy host passes every check", () => {
  const checks = checkHost(survey(), CONFIG);
  assert.deepEqual(checks.filter((c) => c.status !== "ok"), []);
  assert.deepEqual(
    checks.map((c) => c.check),
    ["bridge br0", `pool ${CONFIG.imagesPool}`, `pool ${CONFIG.vmsPool}`, "uefi", "kvm", "labels"],
  );
});

Deno.test("checkHost(): missing bridge, missing or stopped pools, no UEFI, TCG only: each says what to fix", () => {
  const s = survey({
    bridges: [],
    kvm: false,
    uefiFirmware: [],
    pools: [{ ...survey().pools[1]!, state: "inactive" }],
    foundryVms: [{ name: "web", bridges: ["br9"], pools: [CONFIG.vmsPool, "gone"] }],
  });
  const c = byCheck(s);
  assert.equal(c.get("bridge br9")?.status, "fail");
  assert.match(c.get("bridge br9")!.message, /used by web/);
  assert.match(c.get("bridge br9")!.fix!, /ip link add br9 type bridge/);
  assert.equal(c.get(`pool ${CONFIG.imagesPool}`)?.status, "warn"); // only configured: create makes it
  assert.equal(
    c.get(`pool ${CONFIG.imagesPool}`)!.fix,
    `foundry pool add ${CONFIG.imagesPool} dir DIR, or let the first foundry create make it`,
  );
  assert.match(
    c.get("pool gone")!.fix!,
    /^define and start pool gone again \(virsh pool-define-as gone dir --target DIR;/,
  );
  assert.equal(c.get(`pool ${CONFIG.vmsPool}`)?.status, "fail");
  assert.match(c.get(`pool ${CONFIG.vmsPool}`)!.fix!, /virsh pool-start/);
  assert.equal(c.get("pool gone")?.status, "fail");
  assert.equal(c.get("uefi")?.status, "fail");
  assert.match(c.get("uefi")!.fix!, /ovmf/i);
  assert.equal(c.get("kvm")?.status, "warn");
});

Deno.test("checkHost(): SELinux labels and AppArmor paths of the pools", () => {
  const pools = survey().pools;
  const selinux = byCheck(survey({
    securityModel: "selinux",
    pools: [
      { ...pools[0]!, label: "system_u:object_r:virt_image_t:s0" },
      { ...pools[1]!, label: "system_u:object_r:var_t:s0" },
    ],
  }));
  assert.equal(selinux.get(`labels ${CONFIG.imagesPool}`)?.status, "ok");
  assert.equal(selinux.get(`labels ${CONFIG.vmsPool}`)?.status, "fail");
  assert.match(
    selinux.get(`labels ${CONFIG.vmsPool}`)!.fix!,
    /semanage fcontext -a -t virt_image_t '\/srv\/vms\(\/\.\*\)\?' && restorecon -R \/srv\/vms/,
  );
  const apparmor = byCheck(survey({ securityModel: "apparmor" }));
  assert.equal(apparmor.get(`labels ${CONFIG.imagesPool}`)?.status, "ok");
  assert.equal(apparmor.get(`labels ${CONFIG.vmsPool}`)?.status, "warn");
  assert.match(apparmor.get(`labels ${CONFIG.vmsPool}`)!.fix!, /\/srv\/vms\/\*\* rwk/);
  assert.equal(apparmor.get("labels"), undefined);
});

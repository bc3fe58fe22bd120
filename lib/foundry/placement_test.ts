import assert from "node:assert/strict";
import { addressConflicts, claimsOf, homesOf } from "./address_book.ts";
import { DEFAULT_CONFIG, type FoundryConfig } from "./config.ts";
import { ValidationError } from "./errors.ts";
import { parseVirtualMachines } from "./loader.ts";
import { PlacementError, type PlacementHost, placeVms } from "./placement.ts";
import type { VirtualMachine } from "./types.ts";

const GIB = 2 ** 30;

function vmYaml(name: string, ip: string, extra = "", bridge = "br0"): string {
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
spec:
  vcpus: 1
  memoryGiB: 2
  bootDisk:
    sizeGB: 10
    image: base.qcow2
  networkInterfaces:
    - ip: ${ip}/24
      gateway: 10.0.0.1
      bridge: ${bridge}
${extra}`;
}

function vm(name: string, ip: string, extra = "", bridge = "br0"): VirtualMachine {
  return parseVirtualMachines(vmYaml(name, ip, extra, bridge), `${name}.yaml`)[0]!;
}

function host(name: string, freeGiB: number, more: Partial<PlacementHost> = {}): PlacementHost {
  return {
    name,
    labels: {},
    freeMemoryBytes: freeGiB * GIB,
    bridges: ["br0"],
    poolsAvailable: { "foundry-vms": 100 * GIB },
    volumes: { "foundry-images": ["base.qcow2"] },
    foundryVms: 0,
    ...more,
  };
}

const config: FoundryConfig = {
  ...DEFAULT_CONFIG,
  hosts: ["a", "b", "c"].map((n) => ({ name: n, uri: "qemu:///system" })),
};
const noCopy = { copyImage: false };

Deno.test("loader: spec.placement host or selector, stored in the spec", () => {
  assert.deepEqual(vm("a", "10.0.0.5", "  placement:\n    host: b\n").spec.placement, {
    host: "b",
  });
  assert.deepEqual(
    vm("a", "10.0.0.5", "  placement:\n    selector: {zone: east}\n").spec.placement,
    { selector: { zone: "east" } },
  );
});

Deno.test("loader: bad spec.placement is refused with file:line and the field", () => {
  const bad: [string, RegExp][] = [
    [
      "  placement:\n    host: B_1\n",
      /a\.yaml:16:\d+ spec\.placement\.host: must be a configured host name/,
    ],
    [
      "  placement:\n    host: b\n    selector: {zone: x}\n",
      /a\.yaml:17:\d+ spec\.placement: give host or selector, not both/,
    ],
    ["  placement:\n    selector: {}\n", /spec\.placement\.selector: needs at least one label/],
    [
      "  placement:\n    selector: {'bad key!': x}\n",
      /spec\.placement\.selector\.bad key!: label keys/,
    ],
    ["  placement:\n    zone: x\n", /spec\.placement\.zone: unknown field/],
  ];
  for (const [extra, re] of bad) {
    assert.throws(() => vm("a", "10.0.0.5", extra), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("placeVms: the host with the most free memory; ties by name", () => {
  const hosts = [host("a", 4), host("b", 9), host("c", 6)];
  assert.equal(placeVms([vm("x", "10.0.0.5")], hosts, config, noCopy)[0]!.host, "b");
  const tie = [host("c", 8), host("b", 8), host("a", 3)];
  assert.equal(placeVms([vm("x", "10.0.0.5")], tie, config, noCopy)[0]!.host, "b");
});

Deno.test("placeVms: the VMs placed earlier count against the host's memory", () => {
  const hosts = [host("a", 7), host("b", 6)];
  const placed = placeVms(
    [vm("x", "10.0.0.5"), vm("y", "10.0.0.6"), vm("z", "10.0.0.7")],
    hosts,
    config,
    noCopy,
  );
  // a: 7 -> 5 free; b: 6 -> 4; then a again (5 > 4).
  assert.deepEqual(placed.map((p) => p.host), ["a", "b", "a"]);
});

Deno.test("placeVms: reserve, maxVms, bridges, pool space and image rule hosts out", () => {
  const hosts = [
    host("a", 30, { limits: { reserveMemoryGiB: 29 } }),
    host("b", 20, { foundryVms: 3, limits: { maxVms: 3 } }),
    host("c", 19, { bridges: ["br1"] }),
    host("d", 18, { poolsAvailable: { "foundry-vms": 5 * GIB } }),
    host("e", 17, { volumes: { "foundry-images": ["other.qcow2"] } }),
    host("f", 1, {}),
    host("g", 16, { unreachable: "no answer within 10 s" }),
  ];
  assert.throws(() => placeVms([vm("x", "10.0.0.5")], hosts, config, noCopy), (e: unknown) => {
    assert.ok(e instanceof PlacementError);
    assert.equal(e.path, "spec");
    const why = Object.fromEntries(e.verdicts.map((v) => [v.host, v.reason ?? ""]));
    assert.match(why.a!, /1 GiB free beyond its reserve, the VM needs 2 GiB/);
    assert.match(why.b!, /has 3 foundry VMs, its limit is 3/);
    assert.match(why.c!, /no bridge br0/);
    assert.match(why.d!, /pool foundry-vms has 5 GiB free, the disks need 10 GiB/);
    assert.match(
      why.e!,
      /image foundry-images\/base.qcow2 is not there \(another host has it\)/,
    );
    assert.match(why.f!, /^1 GiB free, the VM needs 2 GiB$/);
    assert.match(why.g!, /unreachable: no answer/);
    return true;
  });
  // With 2 GiB free f fits (exactly), the only one that does.
  hosts[5] = host("f", 2);
  const ok = placeVms([vm("x", "10.0.0.5")], hosts, config, noCopy);
  assert.equal(ok[0]!.host, "f");
});

Deno.test("placeVms: nothing fits gives one error naming every host's reason", () => {
  const hosts = [host("a", 1), host("b", 1, { bridges: [] })];
  assert.throws(
    () => placeVms([vm("x", "10.0.0.5")], hosts, config, noCopy),
    /VM x spec: no host fits \(a: 1 GiB free, the VM needs 2 GiB; b: no bridge br0\)/,
  );
});

Deno.test("placeVms: --copy-image places where the image is missing and says from where", () => {
  const hosts = [
    host("a", 4),
    host("b", 9, { volumes: { "foundry-images": [] } }),
  ];
  const placed = placeVms(
    [vm("x", "10.0.0.5"), vm("y", "10.0.0.6")],
    hosts,
    config,
    { copyImage: true },
  );
  assert.equal(placed[0]!.host, "b");
  assert.deepEqual(placed[0]!.copyImage, {
    from: "a",
    pool: "foundry-images",
    volume: "base.qcow2",
  });
  // The second VM on b uses the copy made for the first.
  assert.equal(placed[1]!.host, "b");
  assert.equal(placed[1]!.copyImage, undefined);
  // No host has the image: not even --copy-image helps.
  assert.throws(
    () =>
      placeVms([vm("x", "10.0.0.5")], [host("b", 9, { volumes: {} })], config, { copyImage: true }),
    /image foundry-images\/base.qcow2 is not there nor on any other reachable host/,
  );
});

Deno.test("placeVms: placement.host and placement.selector", () => {
  const hosts = [
    host("a", 9, { labels: { zone: "east" } }),
    host("b", 4, { labels: { zone: "west" } }),
    host("c", 6, { labels: { zone: "west" } }),
  ];
  const pinned = vm("x", "10.0.0.5", "  placement:\n    host: b\n");
  assert.equal(placeVms([pinned], hosts, config, noCopy)[0]!.host, "b");
  const west = vm("y", "10.0.0.6", "  placement:\n    selector: {zone: west}\n");
  assert.equal(placeVms([west], hosts, config, noCopy)[0]!.host, "c");
  const nowhere = vm("z", "10.0.0.7", "  placement:\n    selector: {zone: north}\n");
  assert.throws(
    () => placeVms([nowhere], hosts, config, noCopy),
    /VM z spec\.placement\.selector: no host has the labels zone=north/,
  );
  const unknown = vm("w", "10.0.0.8", "  placement:\n    host: q\n");
  assert.throws(
    () => placeVms([unknown], hosts, config, noCopy),
    /spec\.placement\.host: host q is not a configured host/,
  );
  // A named host that cannot take it is not replaced by another.
  const full = vm("v", "10.0.0.9", "  placement:\n    host: b\n");
  assert.throws(
    () => placeVms([full], [host("a", 9), host("b", 1)], config, noCopy),
    /VM v spec\.placement\.host: host b cannot take it \(b: 1 GiB free/,
  );
  // A VM that exists on a host stays there.
  assert.equal(
    placeVms([vm("x", "10.0.0.5")], hosts, config, noCopy, new Map([["x", "b"]]))[0]!.host,
    "b",
  );
});

Deno.test("address book: names, IPs and MACs against every host and the file itself", () => {
  const file = [
    vm("x", "10.0.0.5"),
    vm("y", "10.0.0.6", ""),
    vm("z", "10.0.0.6"),
  ];
  const books = [
    { host: "a", vms: [vm("old", "10.0.0.5")] },
    { host: "b", vms: [vm("y", "10.0.0.99"), vm("m", "10.0.0.7", "")] },
  ];
  const conflicts = addressConflicts(file, books);
  const lines = conflicts.map((c) => `${c.vm} ${c.message}`);
  assert.deepEqual(lines, [
    "x spec.networkInterfaces[0].ip: address 10.0.0.5 is used by VM old on host a",
    "x spec.networkInterfaces[0].ip: MAC address be:ef:0a:00:00:05 is used by VM old on host a",
    "z spec.networkInterfaces[0].ip: address 10.0.0.6 is used by VM y earlier in the file",
    "z spec.networkInterfaces[0].ip: MAC address be:ef:0a:00:00:06 is used by VM y earlier in the file",
  ]);
  // y exists on b under its own name: that VM is y itself, not a conflict.
  assert.deepEqual(homesOf(file, books), new Map([["y", "b"]]));
  // An explicit MAC is claimed at its own field.
  const withMac = vm("q", "10.0.0.8", "").spec.networkInterfaces[0]!;
  withMac.mac = "52:54:00:00:00:01";
  const macVm: VirtualMachine = {
    ...vm("q", "10.0.0.8"),
    spec: { ...vm("q", "10.0.0.8").spec, networkInterfaces: [withMac] },
  };
  assert.deepEqual(claimsOf(macVm).map((c) => `${c.kind} ${c.value} ${c.path}`), [
    "name q metadata.name",
    "ip 10.0.0.8 spec.networkInterfaces[0].ip",
    "mac 52:54:00:00:00:01 spec.networkInterfaces[0].mac",
  ]);
  const clash = addressConflicts([vm("r", "10.0.0.9")], [{ host: "c", vms: [macVm] }]);
  assert.equal(clash.length, 0);
  // The same name on two hosts already: which would it be?
  const twice = addressConflicts([vm("y", "10.0.0.99")], [...books, {
    host: "c",
    vms: [vm("y", "10.0.0.99")],
  }]);
  assert.ok(twice.some((c) => /VM y exists on hosts b, c already/.test(c.message)), lines.join());
});

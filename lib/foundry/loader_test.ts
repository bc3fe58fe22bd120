import assert from "node:assert/strict";
import { stringify } from "npm:yaml@^2.9.1";
import { ValidationError } from "./errors.ts";
import {
  cpusetIds,
  formatCpuset,
  loadFoundryDocuments,
  loadVirtualMachines,
  parseFoundryDocuments,
  parseVirtualMachine,
  parseVirtualMachines,
  resolveFrom,
  sshKeyProblem,
  suggest,
} from "./loader.ts";
import { FAKE_PASSWORD_HASH, fakeSshKey, sampleVm, workloadVm } from "./_testdata.ts";
import { resourceMaxima, type VirtualMachine } from "./types.ts";

// deno-lint-ignore no-explicit-any
type Loose = any;

/** sampleVm() as a plain object that a test may bend out of shape. */
function doc(mutate: (vm: Loose) => void = () => {}): string {
  const vm: Loose = structuredClone(sampleVm());
  mutate(vm);
  return stringify(vm);
}

/** Another VM of the same file: its own name and addresses. */
function other(name: string): string {
  return doc((v) => {
    v.metadata.name = name;
    v.spec.networkInterfaces[0].ip = "192.0.2.20/24";
    v.spec.networkInterfaces[1].ip = "198.51.100.20/24";
  });
}

function problems(text: string): ValidationError {
  try {
    parseVirtualMachines(text, "vm.yaml");
  } catch (e) {
    if (e instanceof ValidationError) return e;
    throw e;
  }
  assert.fail("expected a ValidationError");
}

/** Asserts that the text yields a problem at `path` whose message contains `fragment`. */
function rejects(text: string, path: string, fragment: string): void {
  const err = problems(text);
  const hit = err.problems.find((p) => p.path === path && p.message.includes(fragment));
  assert.ok(
    hit,
    `no problem at ${path} containing ${JSON.stringify(fragment)} in:\n${err.message}`,
  );
}

function accepts(text: string): VirtualMachine {
  const [vm] = parseVirtualMachines(text, "vm.yaml");
  assert.ok(vm);
  return vm;
}

Deno.test("parseVirtualMachines() returns a valid document unchanged", () => {
  assert.deepEqual(accepts(doc()), sampleVm());
});

Deno.test("parseVirtualMachines() lowercases metadata.name and cloudInit.fqdn", () => {
  const vm = accepts(doc((v) => {
    v.metadata.name = "Web-01";
    v.spec.cloudInit.fqdn = "Web-01.Example.ORG";
  }));
  assert.equal(vm.metadata.name, "web-01");
  assert.equal(vm.spec.cloudInit?.fqdn, "web-01.example.org");
});

Deno.test("parseVirtualMachines() defaults generation to 1 and drops status", () => {
  const vm = accepts(doc((v) => {
    delete v.metadata.generation;
    v.status = { phase: "Running", observedGeneration: 7 };
  }));
  assert.equal(vm.metadata.generation, 1);
  assert.equal(vm.status, undefined);
  assert.equal(accepts(doc((v) => (v.metadata.generation = 3))).metadata.generation, 3);
});

Deno.test("parseVirtualMachines() reads several documents and skips empty ones", () => {
  const text = `---\n${doc()}---\n# nothing here\n---\n${other("db-01")}`;
  const vms = parseVirtualMachines(text, "vms.yaml");
  assert.deepEqual(vms.map((v) => v.metadata.name), ["web-01", "db-01"]);
});

Deno.test("names and addresses must be unique across the documents of a file", () => {
  const second = doc((v) => {
    v.metadata.name = "WEB-01";
    v.spec.networkInterfaces[0].ip = "192.0.2.99/24";
  });
  const err = problems(doc() + "---\n" + second);
  assert.equal(err.problems.length, 2, err.message);
  const name = err.problems.find((p) => p.path === "metadata.name");
  assert.match(
    name?.message ?? "",
    /duplicate name "web-01", also used by the VirtualMachine at line 1$/,
  );
  assert.match(
    err.problems.find((p) => p.path === "spec.networkInterfaces[1].ip")?.message ?? "",
    /duplicate address 198\.51\.100\.10, also used by spec\.networkInterfaces\[1\]\.ip of the VirtualMachine at line 1/,
  );
});

Deno.test("parseVirtualMachines() keeps optional fields absent when the file omits them", () => {
  const vm = accepts(doc((v) => {
    delete v.metadata.labels;
    delete v.metadata.annotations;
    delete v.spec.dataDisks;
    delete v.spec.cloudInit;
    delete v.spec.cpuMode;
    delete v.spec.autostart;
    delete v.spec.storagePool;
    delete v.spec.networkInterfaces[0].dnsServers;
  }));
  assert.ok(!("labels" in vm.metadata));
  assert.ok(!("dataDisks" in vm.spec) && !("cloudInit" in vm.spec) && !("cpuMode" in vm.spec));
  assert.ok(!("dnsServers" in (vm.spec.networkInterfaces[0] ?? {})));
});

Deno.test("parseVirtualMachines() resolves YAML aliases", () => {
  const text = doc().replace("dnsServers:", "dnsServers: &dns").replace(
    "bridge: br1",
    "bridge: br1\n      dnsServers: *dns",
  );
  const vm = accepts(text);
  assert.deepEqual(vm.spec.networkInterfaces[1]?.dnsServers, ["192.0.2.53", "2001:db8::53"]);
});

Deno.test("a problem names file, line, column and field path", () => {
  const text = [
    "apiVersion: foundry.cofront.xyz/v1alpha1", //  1
    "kind: VirtualMachine", //                      2
    "metadata:", //                                  3
    "  name: vm", //                                 4
    "spec:", //                                      5
    "  memoryGiB: 1", //                             6
    "  bootDisk:", //                                7
    "    sizeGB: 1", //                              8
    "    empty: true", //                            9
    "  networkInterfaces:", //                       10
    "    - {ip: 192.0.2.9/24, gateway: 192.0.2.1, bridge: br0}", // 11
    "  vcpus:", //                                   12
    "    0", //                                      13
  ].join("\n");
  const err = problems(text);
  assert.equal(err.message, "vm.yaml:13:5 spec.vcpus: must be a positive integer, got 0");
  assert.equal(err.name, "ValidationError");
  assert.equal(err.file, "vm.yaml");
  assert.equal(err.line, 13);
  assert.equal(err.column, 5);
  assert.equal(err.path, "spec.vcpus");
  assert.equal(err.problems.length, 1);
});

Deno.test("every problem of a file is reported at once, across documents, in order", () => {
  const text = doc((v) => {
    v.spec.vcpus = 0;
    v.spec.memoryGiB = -1;
    v.spec.networkInterfaces[0].ip = "192.0.2.300/24";
  }) + "---\n" + other("-bad");
  const err = problems(text);
  assert.deepEqual(err.problems.map((p) => p.path), [
    "spec.vcpus",
    "spec.memoryGiB",
    "spec.networkInterfaces[0].ip",
    "metadata.name",
  ]);
  const lines = err.problems.map((p) => p.line);
  assert.deepEqual(lines, [...lines].sort((a, b) => a - b));
  assert.equal(err.message.split("\n").length, 4);
  assert.equal(err.line, err.problems[0]?.line);
});

Deno.test("YAML syntax errors and duplicate keys are problems with a position", () => {
  const err = problems("apiVersion: x\nkind: [VirtualMachine\n");
  assert.equal(err.problems[0]?.path, "");
  assert.match(err.message, /^vm\.yaml:\d+:\d+ invalid YAML: /);
  const dup = problems(doc().replace("vcpus: 2", "vcpus: 2\n  vcpus: 3"));
  assert.match(dup.message, /^vm\.yaml:\d+:3 spec\.vcpus: duplicate key "vcpus"$/);
});

Deno.test("a file without documents is rejected", () => {
  assert.match(problems("").message, /no VirtualMachine document found/);
  assert.match(problems("# just a comment\n").message, /no VirtualMachine document found/);
});

Deno.test("apiVersion and kind must be the foundry ones", () => {
  rejects(doc((v) => (v.apiVersion = "v1")), "apiVersion", "must be foundry.cofront.xyz/v1alpha1");
  rejects(doc((v) => (v.kind = "Pod")), "kind", 'must be VirtualMachine, got "Pod"');
  rejects(doc((v) => delete v.apiVersion), "apiVersion", "is required");
  rejects(doc((v) => delete v.kind), "kind", "is required");
  rejects(doc((v) => delete v.metadata), "metadata", "is required");
  rejects(doc((v) => delete v.spec), "spec", "is required");
  rejects("- a\n- b\n", "", "must be a mapping, got a list");
});

Deno.test("unknown fields are rejected with the nearest valid name", () => {
  rejects(
    doc((v) => (v.spec.vcpu = 2)),
    "spec.vcpu",
    'unknown field "vcpu", did you mean "vcpus"?',
  );
  rejects(
    doc((v) => (v.spec.memorygib = 2)),
    "spec.memorygib",
    'did you mean "memoryGiB"?',
  );
  rejects(
    doc((v) => (v.spec.networkInterfaces[0].gatway = "192.0.2.1")),
    "spec.networkInterfaces[0].gatway",
    'did you mean "gateway"?',
  );
  rejects(doc((v) => (v.metdata = {})), "metdata", 'did you mean "metadata"?');
  rejects(
    doc((v) => (v.spec.cloudInit.zzzzzz = 1)),
    "spec.cloudInit.zzzzzz",
    "valid fields: fqdn, sshAuthorizedKeys, passwordHash, sshPwauth",
  );
});

Deno.test("a misspelt required field is reported once, as unknown", () => {
  const err = problems(doc((v) => {
    v.spec.vcpu = v.spec.vcpus;
    delete v.spec.vcpus;
  }));
  assert.deepEqual(err.problems.map((p) => p.path), ["spec.vcpu"]);
});

Deno.test("suggest() finds close names and nothing for distant ones", () => {
  assert.equal(suggest("bootdisk", ["bootDisk", "dataDisks"]), "bootDisk");
  assert.equal(suggest("sizeGiB", ["sizeGB", "image"]), "sizeGB");
  assert.equal(suggest("colour", ["vcpus", "bootDisk"]), undefined);
});

Deno.test("metadata.name must be a valid lowercase name", () => {
  for (const bad of ["-web", "web-", "web_", "_web", "web.01", "web 01", "wéb", "a".repeat(64)]) {
    rejects(doc((v) => (v.metadata.name = bad)), "metadata.name", "must");
  }
  rejects(doc((v) => (v.metadata.name = 42)), "metadata.name", "must be a string, got 42");
  rejects(doc((v) => delete v.metadata.name), "metadata.name", "is required");
  for (const good of ["a", "7", "web_01", "web-01-a", "a".repeat(63)]) {
    assert.equal(accepts(doc((v) => (v.metadata.name = good))).metadata.name, good);
  }
});

Deno.test("labels and annotations are maps of strings; label syntax is checked", () => {
  rejects(doc((v) => (v.metadata.labels.tier = 1)), "metadata.labels.tier", "got 1 (quote it)");
  rejects(doc((v) => (v.metadata.labels["a b"] = "x")), "metadata.labels.a b", "label keys");
  rejects(doc((v) => (v.metadata.labels.k = "x y")), "metadata.labels.k", "label values");
  rejects(doc((v) => (v.metadata.labels = ["a"])), "metadata.labels", "must be a mapping");
  rejects(
    doc((v) => (v.metadata.annotations.n = true)),
    "metadata.annotations.n",
    "must be a string, got true",
  );
  const vm = accepts(doc((v) => {
    v.metadata.labels = { "example.org/tier": "front_1", empty: "" };
    v.metadata.annotations = { "free text": "any: thing, at all" };
  }));
  assert.deepEqual(vm.metadata.labels, { "example.org/tier": "front_1", empty: "" });
  assert.deepEqual(vm.metadata.annotations, { "free text": "any: thing, at all" });
});

Deno.test("metadata.generation must be a positive integer", () => {
  rejects(
    doc((v) => (v.metadata.generation = 0)),
    "metadata.generation",
    "positive integer, got 0",
  );
});

Deno.test("spec.vcpus must be a positive integer", () => {
  rejects(doc((v) => (v.spec.vcpus = 0)), "spec.vcpus", "must be a positive integer, got 0");
  rejects(doc((v) => (v.spec.vcpus = -2)), "spec.vcpus", "got -2");
  rejects(doc((v) => (v.spec.vcpus = 1.5)), "spec.vcpus", "got 1.5");
  rejects(doc((v) => (v.spec.vcpus = "4")), "spec.vcpus", 'got "4"');
  rejects(doc((v) => delete v.spec.vcpus), "spec.vcpus", "is required");
  rejects(doc().replace("vcpus: 2", "vcpus:"), "spec.vcpus", "is required");
});

Deno.test("spec.memoryGiB must be positive and a whole number of MiB", () => {
  rejects(doc((v) => (v.spec.memoryGiB = 0)), "spec.memoryGiB", "must be a positive number, got 0");
  rejects(doc((v) => (v.spec.memoryGiB = "8")), "spec.memoryGiB", 'got "8"');
  rejects(doc((v) => (v.spec.memoryGiB = 0.0001)), "spec.memoryGiB", "whole number of MiB");
  rejects(doc((v) => delete v.spec.memoryGiB), "spec.memoryGiB", "is required");
  assert.equal(accepts(doc((v) => (v.spec.memoryGiB = 0.5))).spec.memoryGiB, 0.5);
});

Deno.test("spec.bootDisk needs sizeGB and exactly one of image and empty: true", () => {
  rejects(doc((v) => delete v.spec.bootDisk), "spec.bootDisk", "is required");
  rejects(doc((v) => (v.spec.bootDisk.sizeGB = 0)), "spec.bootDisk.sizeGB", "positive integer");
  rejects(doc((v) => delete v.spec.bootDisk.sizeGB), "spec.bootDisk.sizeGB", "is required");
  rejects(
    doc((v) => delete v.spec.bootDisk.image),
    "spec.bootDisk.image",
    "is required unless empty: true",
  );
  rejects(
    doc((v) => (v.spec.bootDisk.empty = true)),
    "spec.bootDisk.image",
    "must not be set together with empty: true",
  );
  rejects(
    doc((v) => {
      delete v.spec.bootDisk.image;
      v.spec.bootDisk.empty = false;
    }),
    "spec.bootDisk.image",
    "is required unless empty: true",
  );
  rejects(doc((v) => (v.spec.bootDisk.empty = "yes")), "spec.bootDisk.empty", "true or false");
  const vm = accepts(doc((v) => {
    delete v.spec.bootDisk.image;
    v.spec.bootDisk.empty = true;
  }));
  assert.deepEqual(vm.spec.bootDisk, { sizeGB: 20, empty: true });
});

Deno.test("spec.bootDisk.image is volume, pool:volume or an absolute path", () => {
  for (const good of ["fedora-43.qcow2", "images:fedora-43.qcow2", "/srv/images/f.qcow2"]) {
    assert.equal(accepts(doc((v) => (v.spec.bootDisk.image = good))).spec.bootDisk.image, good);
  }
  for (const bad of ["", "a:b:c", ":vol", "pool:", "dir/vol", "/srv/images/", "with space"]) {
    rejects(doc((v) => (v.spec.bootDisk.image = bad)), "spec.bootDisk.image", "must be");
  }
  rejects(
    doc((v) => {
      v.spec.bootDisk.image = "a:x.qcow2";
      v.spec.bootDisk.imagePool = "b";
    }),
    "spec.bootDisk.image",
    'names pool "a" but spec.bootDisk.imagePool is "b"',
  );
  rejects(doc((v) => (v.spec.bootDisk.imagePool = "a/b")), "spec.bootDisk.imagePool", "pool name");
});

Deno.test("spec.dataDisks: virtio names other than vda, no duplicates, positive sizes", () => {
  rejects(
    doc((v) => (v.spec.dataDisks[1].device = "vdb")),
    "spec.dataDisks[1].device",
    'duplicate device "vdb", also used by spec.dataDisks[0].device',
  );
  rejects(
    doc((v) => (v.spec.dataDisks[0].device = "vda")),
    "spec.dataDisks[0].device",
    "boot disk",
  );
  rejects(
    doc((v) => (v.spec.dataDisks[0].device = "sdb")),
    "spec.dataDisks[0].device",
    "vdb to vdz",
  );
  rejects(doc((v) => (v.spec.dataDisks[0].sizeGB = 0)), "spec.dataDisks[0].sizeGB", "got 0");
  rejects(doc((v) => delete v.spec.dataDisks[0].device), "spec.dataDisks[0].device", "is required");
  rejects(doc((v) => (v.spec.dataDisks = { vdb: 1 })), "spec.dataDisks", "must be a list");
  rejects(doc((v) => (v.spec.dataDisks = ["vdb"])), "spec.dataDisks[0]", "must be a mapping");
  assert.deepEqual(accepts(doc((v) => (v.spec.dataDisks = []))).spec.dataDisks, []);
});

Deno.test("spec.networkInterfaces needs at least one interface with ip, gateway and bridge", () => {
  rejects(doc((v) => delete v.spec.networkInterfaces), "spec.networkInterfaces", "at least one");
  rejects(doc((v) => (v.spec.networkInterfaces = [])), "spec.networkInterfaces", "at least one");
  for (const field of ["ip", "gateway", "bridge"]) {
    rejects(
      doc((v) => delete v.spec.networkInterfaces[0][field]),
      `spec.networkInterfaces[0].${field}`,
      "is required",
    );
  }
});

Deno.test("interface addresses must be IPv4 with a prefix, unique, not network or broadcast", () => {
  const p = "spec.networkInterfaces[0].ip";
  for (
    const bad of ["192.0.2.10", "192.0.2.256/24", "192.0.2.10/33", "192.0.2.10/0", "192.0.02.1/24"]
  ) {
    rejects(doc((v) => (v.spec.networkInterfaces[0].ip = bad)), p, "IPv4 address with prefix");
  }
  rejects(doc((v) => (v.spec.networkInterfaces[0].ip = "2001:db8::1/64")), p, "IPv4");
  rejects(doc((v) => (v.spec.networkInterfaces[0].ip = "192.0.2.0/24")), p, "network address");
  rejects(doc((v) => (v.spec.networkInterfaces[0].ip = "192.0.2.255/24")), p, "broadcast address");
  rejects(
    doc((v) => (v.spec.networkInterfaces[1].ip = "192.0.2.10/25")),
    "spec.networkInterfaces[1].ip",
    "duplicate address 192.0.2.10, also used by spec.networkInterfaces[0].ip",
  );
  for (const good of ["192.0.2.0/31", "192.0.2.1/32", "10.0.0.0/8".replace("0/8", "1/8")]) {
    accepts(doc((v) => (v.spec.networkInterfaces[0].ip = good)));
  }
});

Deno.test("gateway, bridge and DNS servers are checked", () => {
  const p = "spec.networkInterfaces[0]";
  rejects(doc((v) => (v.spec.networkInterfaces[0].gateway = "gw")), `${p}.gateway`, "IPv4 address");
  rejects(
    doc((v) => (v.spec.networkInterfaces[0].bridge = "a-very-long-bridge")),
    `${p}.bridge`,
    "Linux interface name",
  );
  rejects(doc((v) => (v.spec.networkInterfaces[0].bridge = "br 0")), `${p}.bridge`, "Linux");
  rejects(
    doc((v) => (v.spec.networkInterfaces[0].dnsServers = ["8.8.8"])),
    `${p}.dnsServers[0]`,
    'must be an IPv4 or IPv6 address, got "8.8.8"',
  );
  rejects(
    doc((v) => (v.spec.networkInterfaces[0].dnsServers = "192.0.2.53")),
    `${p}.dnsServers`,
    "must be a list",
  );
  rejects(
    doc((v) => (v.spec.networkInterfaces[0].dnsServers = ["::g"])),
    `${p}.dnsServers[0]`,
    "IPv6",
  );
});

Deno.test("only one interface carries the default route; the first does by default", () => {
  rejects(
    doc((v) => (v.spec.networkInterfaces[1].defaultRoute = true)),
    "spec.networkInterfaces[1].defaultRoute",
    "only one interface",
  );
  rejects(
    doc((v) => (v.spec.networkInterfaces[1].defaultRoute = "no")),
    "spec.networkInterfaces[1].defaultRoute",
    "must be true or false",
  );
  const vm = accepts(doc((v) => {
    v.spec.networkInterfaces[0].defaultRoute = false;
    v.spec.networkInterfaces[1].defaultRoute = true;
  }));
  assert.deepEqual(vm.spec.networkInterfaces.map((n) => n.defaultRoute), [false, true]);
});

Deno.test("cloudInit.fqdn must be a fully qualified name", () => {
  for (
    const bad of ["web", "web..example.org", "-web.example.org", "web_01.example.org", "a.123"]
  ) {
    rejects(doc((v) => (v.spec.cloudInit.fqdn = bad)), "spec.cloudInit.fqdn", "fully qualified");
  }
  rejects(
    doc((v) => (v.spec.cloudInit.fqdn = "a".repeat(64) + ".org")),
    "spec.cloudInit.fqdn",
    "fully",
  );
});

Deno.test("SSH keys must be OpenSSH public keys, and are never quoted back", () => {
  const secretish = "AAAAC3NzaC1lZDI1NTE5AAAAIKEYMATERIALKEYMATERIAL";
  for (const bad of [`ssh-foo ${secretish}`, `ssh-ed25519 ${secretish}!`, "ssh-ed25519", ""]) {
    const err = problems(doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = [bad])));
    assert.equal(err.problems[0]?.path, "spec.cloudInit.sshAuthorizedKeys[0]");
    assert.ok(!err.message.includes(secretish), err.message);
  }
  const single = problems(doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = fakeSshKey())));
  assert.equal(single.message.split(": ").slice(1).join(": "), "must be a list, got a string");
  const mismatched = fakeSshKey("ssh-ed25519").replace(/^ssh-ed25519/, "ssh-rsa");
  rejects(
    doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = [mismatched])),
    "spec.cloudInit.sshAuthorizedKeys[0]",
    "is not a ssh-rsa key",
  );
  rejects(
    doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = [42])),
    "spec.cloudInit.sshAuthorizedKeys[0]",
    "must be a string, got number",
  );
  for (const type of ["ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com", "ssh-rsa"]) {
    assert.equal(sshKeyProblem(fakeSshKey(type)), undefined);
  }
});

Deno.test("passwordHash must be a crypt hash, and is never quoted back", () => {
  for (const bad of ["hunter2secret", "$6$abc$de:f", "$6$abc def"]) {
    const err = problems(doc((v) => (v.spec.cloudInit.passwordHash = bad)));
    assert.equal(err.path, "spec.cloudInit.passwordHash");
    assert.ok(!err.message.includes(bad), err.message);
  }
  const err = problems(doc((v) => (v.spec.cloudInit.passwordHash = 123456)));
  assert.ok(!err.message.includes("123456"), err.message);
  assert.equal(accepts(doc()).spec.cloudInit?.passwordHash, FAKE_PASSWORD_HASH);
});

Deno.test("cpuMode, autostart, storagePool, domainType and sshPwauth are checked", () => {
  rejects(
    doc((v) => (v.spec.cpuMode = "max")),
    "spec.cpuMode",
    'must be one of host-model, host-passthrough, got "max"',
  );
  rejects(doc((v) => (v.spec.autostart = "true")), "spec.autostart", "must be true or false");
  rejects(doc((v) => (v.spec.storagePool = "my pool")), "spec.storagePool", "pool name");
  rejects(doc((v) => (v.spec.domainType = "xen")), "spec.domainType", "must be one of kvm, qemu");
  rejects(
    doc((v) => (v.spec.cloudInit.sshPwauth = 1)),
    "spec.cloudInit.sshPwauth",
    "true or false",
  );
  const vm = accepts(doc((v) => {
    v.spec.cpuMode = "host-passthrough";
    v.spec.domainType = "qemu";
  }));
  assert.equal(vm.spec.cpuMode, "host-passthrough");
  assert.equal(vm.spec.domainType, "qemu");
});

Deno.test("parseVirtualMachine() wants exactly one document", () => {
  assert.equal(parseVirtualMachine(doc(), "vm.yaml").metadata.name, "web-01");
  assert.throws(
    () => parseVirtualMachine(doc() + "---\n" + other("b"), "two.yaml"),
    (e: unknown) =>
      e instanceof ValidationError && /exactly one VirtualMachine document, got 2/.test(e.message),
  );
});

Deno.test("loadVirtualMachines() reads a file and names it in problems", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good.yaml`;
    await Deno.writeTextFile(good, doc());
    assert.deepEqual(await loadVirtualMachines(good), [sampleVm()]);
    const bad = `${dir}/bad.yaml`;
    await Deno.writeTextFile(bad, doc((v) => (v.spec.vcpus = 0)));
    await assert.rejects(loadVirtualMachines(bad), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.file, bad);
      assert.ok(e.message.startsWith(`${bad}:`));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ValidationError refuses to be built without problems", () => {
  assert.throws(() => new ValidationError([]), RangeError);
});

// --- issue 10: injection, aliases, limits ---------------------------------------------------------

/** Every control character a terminal or a line-oriented file would act on, none left raw. */
// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

Deno.test("an SSH key with a newline is refused: one entry can never become two authorized_keys lines", () => {
  for (const bad of [`${fakeSshKey()}\n${fakeSshKey("ssh-rsa", 3)}`, `${fakeSshKey()}\n`]) {
    const err = problems(doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = [bad])));
    assert.equal(err.problems[0]?.path, "spec.cloudInit.sshAuthorizedKeys[0]", err.message);
    assert.match(err.message, /control character/);
  }
});

Deno.test("a truncated SSH key blob is refused", () => {
  const [type, blob] = fakeSshKey().split(" ") as [string, string];
  const bytes = Uint8Array.from(atob(blob), (c) => c.charCodeAt(0)).subarray(0, 30);
  const truncated = `${type} ${btoa(String.fromCharCode(...bytes))} x@y`;
  rejects(
    doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = [truncated])),
    "spec.cloudInit.sshAuthorizedKeys[0]",
    "truncated",
  );
  assert.equal(accepts(doc()).spec.cloudInit?.sshAuthorizedKeys?.length, 2);
});

Deno.test("an SSH key may carry authorized_keys options", () => {
  const key = `from="192.0.2.0/24",no-pty ${fakeSshKey()}`;
  const vm = accepts(doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = [key])));
  assert.deepEqual(vm.spec.cloudInit?.sshAuthorizedKeys, [key]);
});

Deno.test("control characters are refused in every string, and never echoed raw", () => {
  const esc = "\u001b]0;owned\u0007";
  const cases: [string, (v: Loose) => void][] = [
    ["metadata.annotations.description", (v) => (v.metadata.annotations.description = `a${esc}`)],
    ["metadata.annotations", (v) => (v.metadata.annotations[`k${esc}`] = "x")],
    ["metadata.labels.role", (v) => (v.metadata.labels.role = `web\r`)],
    ["metadata.name", (v) => (v.metadata.name = `web\u0000`)],
    ["spec.bootDisk.image", (v) => (v.spec.bootDisk.image = `/var/lib/x${esc}.qcow2`)],
    ["spec.cloudInit.fqdn", (v) => (v.spec.cloudInit.fqdn = "web.example.org\n")],
    ["spec.networkInterfaces[0].bridge", (v) => (v.spec.networkInterfaces[0].bridge = "br0\t")],
    ["spec", (v) => (v.spec[`x${esc}`] = 1)],
    ["metadata.annotations.bidi", (v) => (v.metadata.annotations.bidi = "abc\u202edcba")],
    ["metadata.annotations.c1", (v) => (v.metadata.annotations.c1 = "a\u009b2Jb")],
  ];
  for (const [path, mutate] of cases) {
    const err = problems(doc(mutate));
    assert.ok(err.problems.some((p) => p.path.startsWith(path)), `${path}: ${err.message}`);
    assert.ok(!RAW_CONTROL.test(err.message), `${path}: raw control character in ${err.message}`);
  }
});

Deno.test("a file path image must be a plain absolute path: no . or .. segments", () => {
  for (const bad of ["/var/lib/../../etc/shadow", "/var/./x.qcow2", "/var//x.qcow2"]) {
    rejects(doc((v) => (v.spec.bootDisk.image = bad)), "spec.bootDisk.image", "path");
  }
  rejects(
    doc((v) => (v.spec.bootDisk.image = `/${"a".repeat(5000)}`)),
    "spec.bootDisk.image",
    "at most",
  );
});

Deno.test("more aliases than the limit are refused; a few aliases work", () => {
  const many = "apiVersion: foundry.cofront.xyz/v1alpha1\nkind: VirtualMachine\nmetadata:\n" +
    "  name: &n web\n  annotations:\n" +
    Array.from({ length: 1500 }, (_, i) => `    k${i}: *n\n`).join("") + "spec: {}\n";
  const err = problems(many);
  assert.ok(err.problems.some((p) => /more than 1000 aliases/.test(p.message)), err.message);
  const shared = "apiVersion: foundry.cofront.xyz/v1alpha1\nkind: VirtualMachine\n" +
    "metadata: {name: a}\nspec:\n  vcpus: 1\n  memoryGiB: 1\n  bootDisk: {sizeGB: 1, empty: true}\n" +
    "  networkInterfaces:\n  - &nic {ip: 192.0.2.10/24, gateway: 192.0.2.1, bridge: br0}\n" +
    "  - *nic\n";
  const e2 = problems(shared); // same address twice: the alias was followed
  assert.match(e2.message, /duplicate address 192\.0\.2\.10/);
  const across = problems("a: &x 1\n---\nb: *x\n");
  assert.match(across.message, /alias "\*x" refers to no anchor before it/);
});

Deno.test("lists and maps have upper bounds", () => {
  const nic = (i: number) => ({
    ip: `10.${i}.0.10/24`,
    gateway: `10.${i}.0.1`,
    bridge: "br0",
    defaultRoute: i === 0,
  });
  rejects(
    doc((v) => (v.spec.networkInterfaces = Array.from({ length: 17 }, (_, i) => nic(i)))),
    "spec.networkInterfaces",
    "at most 16",
  );
  rejects(
    doc((v) => (v.spec.dataDisks = Array.from({ length: 33 }, (_, i) => ({
      device: `vda${String.fromCharCode(97 + (i % 26))}${i >= 26 ? "x" : ""}`,
      sizeGB: 1,
    })))),
    "spec.dataDisks",
    "at most 32",
  );
  rejects(
    doc((v) => (v.spec.networkInterfaces[0].dnsServers = Array(9).fill("192.0.2.53"))),
    "spec.networkInterfaces[0].dnsServers",
    "at most 8",
  );
  rejects(
    doc((v) => (v.spec.cloudInit.sshAuthorizedKeys = Array(65).fill(fakeSshKey()))),
    "spec.cloudInit.sshAuthorizedKeys",
    "at most 64",
  );
  rejects(
    doc((v) => (v.metadata.labels = Object.fromEntries(
      Array.from({ length: 65 }, (_, i) => [`l${i}`, "x"]),
    ))),
    "metadata.labels",
    "at most 64",
  );
  rejects(
    doc((v) => (v.metadata.annotations = Object.fromEntries(
      Array.from({ length: 65 }, (_, i) => [`a${i}`, "x"]),
    ))),
    "metadata.annotations",
    "at most 64",
  );
  rejects(
    doc((v) => (v.metadata.annotations = { big: "x".repeat(70_000) })),
    "metadata.annotations",
    "65536",
  );
  const vms = Array.from({ length: 101 }, (_, i) => other(`vm-${i}`)).join("---\n");
  const err = problems(vms);
  assert.ok(err.problems.some((p) => /at most 100 VirtualMachine documents/.test(p.message)));
});

Deno.test("numbers have upper bounds that libvirt and QEMU accept", () => {
  rejects(doc((v) => (v.spec.memoryGiB = 1e30)), "spec.memoryGiB", "at most 16384");
  rejects(doc((v) => (v.spec.memoryGiB = 16385)), "spec.memoryGiB", "at most 16384");
  rejects(doc((v) => (v.spec.vcpus = 9007199254740991)), "spec.vcpus", "at most 4096");
  rejects(doc((v) => (v.spec.vcpus = 4097)), "spec.vcpus", "at most 4096");
  rejects(
    doc((v) => (v.spec.dataDisks[0].sizeGB = 9 * 1024 * 1024)),
    "spec.dataDisks[0].sizeGB",
    "at most 1048576",
  );
  rejects(doc((v) => (v.spec.bootDisk.sizeGB = 2 ** 40)), "spec.bootDisk.sizeGB", "at most");
  const vm = accepts(doc((v) => {
    v.spec.vcpus = 4096;
    v.spec.memoryGiB = 16384;
    v.spec.dataDisks[0].sizeGB = 1048576;
  }));
  assert.equal(vm.spec.vcpus, 4096);
});

Deno.test("loadVirtualMachines() refuses a file larger than the limit without reading it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = `${dir}/big.yaml`;
    const f = await Deno.open(big, { create: true, write: true });
    await f.truncate(8 * 2 ** 30); // sparse: 8 GiB that were never written
    f.close();
    await assert.rejects(loadVirtualMachines(big), (e: unknown) => {
      assert.ok(e instanceof ValidationError, String(e));
      assert.match(e.message, /1048576 bytes/);
      return true;
    });
    await assert.rejects(loadVirtualMachines(dir), (e: unknown) => {
      assert.ok(e instanceof ValidationError, String(e));
      assert.match(e.message, /not a regular file/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a file that is not UTF-8 text is refused with its line", () => {
  const err = problems("apiVersion: x\nkind: \uFFFD\u0000\n");
  assert.ok(err.problems.some((p) => p.line === 2 && p.path === "kind"), err.message);
});

/** workloadVm() as YAML, bent by `mutate`. */
function workloadDoc(mutate: (vm: Loose) => void = () => {}): string {
  const vm: Loose = structuredClone(workloadVm());
  mutate(vm);
  return stringify(vm);
}

Deno.test("parseVirtualMachines() keeps data disk serials and user-data extras as given", () => {
  assert.deepEqual(accepts(workloadDoc()), workloadVm());
});

Deno.test("a data disk serial is at most 20 of [A-Za-z0-9_-] and unique in the VM", () => {
  accepts(workloadDoc((v) => (v.spec.dataDisks[0].serial = "A".repeat(20))));
  rejects(
    workloadDoc((v) => (v.spec.dataDisks[0].serial = "A".repeat(21))),
    "spec.dataDisks[0].serial",
    "must be 1 to 20 letters",
  );
  rejects(
    workloadDoc((v) => (v.spec.dataDisks[0].serial = "a b")),
    "spec.dataDisks[0].serial",
    "must be 1 to 20 letters",
  );
  rejects(
    workloadDoc((v) => (v.spec.dataDisks[0].serial = "")),
    "spec.dataDisks[0].serial",
    "must be 1 to 20 letters",
  );
  rejects(
    workloadDoc((v) => (v.spec.dataDisks[1].serial = "virtwork-disk")),
    "spec.dataDisks[1].serial",
    "duplicate serial",
  );
  rejects(
    workloadDoc((v) => (v.spec.dataDisks[0].serial = 12)),
    "spec.dataDisks[0].serial",
    "must be a string",
  );
});

Deno.test("problems in user-data extras name the file, line and field", () => {
  const text = workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[1].path = "relative"));
  const err = problems(text);
  const p = err.problems.find((x) => x.path === "spec.cloudInit.userData.writeFiles[1].path");
  assert.ok(p, err.message);
  const line = text.split("\n").findIndex((l) => l.includes("path: relative")) + 1;
  assert.equal(p.line, line);
  assert.match(
    err.message,
    /^vm\.yaml:\d+:\d+ spec\.cloudInit\.userData\.writeFiles\[1\]\.path: /m,
  );
});

Deno.test("writeFiles paths are absolute, normal, unique and none of foundry's own", () => {
  const at = "spec.cloudInit.userData.writeFiles[0].path";
  for (const bad of ["etc/x", "/etc/x/", "/etc//x", "/etc/../x", "/etc/./x"]) {
    rejects(
      workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].path = bad)),
      at,
      "must be an absolute file path",
    );
  }
  for (const own of ["/etc/hostname", "/root/.ssh/authorized_keys", "/etc/netplan/50.yaml"]) {
    rejects(
      workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].path = own)),
      at,
      "is written by foundry's own cloud-init configuration",
    );
  }
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].path = "/" + "a".repeat(4095))),
    at,
    "at most 4095 characters",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[1].path = "/usr/local/bin/loop")),
    "spec.cloudInit.userData.writeFiles[1].path",
    "duplicate path",
  );
  // A path that merely starts like a reserved one is fine.
  accepts(workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].path = "/etc/hostname.d")));
});

Deno.test("writeFiles content may span lines; no other string may, nor hold other controls", () => {
  const vm = accepts(workloadDoc());
  assert.match(vm.spec.cloudInit!.userData!.writeFiles![0]!.content, /\n\tsleep/);
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].content = "a\u001b[2Jb")),
    "spec.cloudInit.userData.writeFiles[0].content",
    "must not contain control characters",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.runcmd[0][1] = "a\nb")),
    "spec.cloudInit.userData.runcmd[0][1]",
    "must not contain control characters",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].path = "/tmp/a\nb")),
    "spec.cloudInit.userData.writeFiles[0].path",
    "must not contain control characters",
  );
});

Deno.test("writeFiles permissions are an octal mode given as a string", () => {
  const at = "spec.cloudInit.userData.writeFiles[0].permissions";
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].permissions = "0x1ff")),
    at,
    "octal",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].permissions = "0888")),
    at,
    "octal",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].permissions = 644)),
    at,
    "must be a string",
  );
  accepts(workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].permissions = "644")));
});

Deno.test("runcmd and bootcmd are lists of argv lists of strings", () => {
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.runcmd = ["echo hi"])),
    "spec.cloudInit.userData.runcmd[0]",
    "must be a list",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.runcmd = [[]])),
    "spec.cloudInit.userData.runcmd[0]",
    "got an empty list",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.bootcmd = [["sleep", 10]])),
    "spec.cloudInit.userData.bootcmd[0][1]",
    "(quote it)",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.users = [])),
    "spec.cloudInit.userData.users",
    "unknown field",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.packages = ["fio; rm -rf /"])),
    "spec.cloudInit.userData.packages[0]",
    "must be a package name",
  );
});

Deno.test("user-data extras are bounded in entries, arguments and characters", () => {
  const ud = "spec.cloudInit.userData";
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.runcmd = Array(65).fill(["true"]))),
    `${ud}.runcmd`,
    "at most 64 entries",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.runcmd = [Array(65).fill("x")])),
    `${ud}.runcmd[0]`,
    "at most 64 entries",
  );
  rejects(
    workloadDoc((
      v,
    ) => (v.spec.cloudInit.userData.writeFiles = Array.from({ length: 65 }, (_, i) => ({
      path: `/f${i}`,
      content: "",
    })))),
    `${ud}.writeFiles`,
    "at most 64 entries",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.packages = Array(65).fill("fio"))),
    `${ud}.packages`,
    "at most 64 entries",
  );
  rejects(
    workloadDoc((v) => (v.spec.cloudInit.userData.writeFiles[0].content = "x".repeat(262_145))),
    ud,
    "at most 262144 characters",
  );
});

Deno.test("spec.resources: resize headroom at or above what is in use, within the limits", () => {
  // sampleVm has 2 vCPUs and 4 GiB.
  const vm = accepts(doc((v) => (v.spec.resources = { maxVcpus: 8, maxMemoryGiB: 6.5 })));
  assert.deepEqual(vm.spec.resources, { maxVcpus: 8, maxMemoryGiB: 6.5 });
  assert.deepEqual(accepts(doc((v) => (v.spec.resources = {}))).spec.resources, {});
  rejects(
    doc((v) => (v.spec.resources = { maxVcpus: 1 })),
    "spec.resources.maxVcpus",
    "must be at least spec.vcpus (2), got 1",
  );
  rejects(
    doc((v) => (v.spec.resources = { maxVcpus: 4097 })),
    "spec.resources.maxVcpus",
    "at most 4096",
  );
  rejects(
    doc((v) => (v.spec.resources = { maxMemoryGiB: 3 })),
    "spec.resources.maxMemoryGiB",
    "must be at least spec.memoryGiB (4), got 3",
  );
  rejects(
    doc((v) => (v.spec.resources = { maxMemoryGiB: 4.0001 })),
    "spec.resources.maxMemoryGiB",
    "whole number of MiB",
  );
  rejects(
    doc((v) => (v.spec.resources = { maxCpus: 4 })),
    "spec.resources.maxCpus",
    "",
  );
  rejects(doc((v) => (v.spec.resources = 4)), "spec.resources", "must be a mapping");
  // The error names the file, line and field like every other.
  const text = doc((v) => (v.spec.resources = { maxVcpus: 1 }));
  const line = text.split("\n").findIndex((l) => l.includes("maxVcpus")) + 1;
  assert.match(
    problems(text).message,
    new RegExp(`^vm\\.yaml:${line}:\\d+ spec\\.resources\\.maxVcpus: `),
  );
});

/** A VM of the new fields' tests: sampleVm without cpuMode (it would clash with cpu.mode). */
function plain(mutate: (vm: Loose) => void = () => {}): string {
  return doc((v) => {
    delete v.spec.cpuMode;
    mutate(v);
  });
}

Deno.test("cpu: the topology's product is the vCPU maximum", () => {
  const vm = accepts(plain((v) => (v.spec.cpu = { sockets: 2, cores: 2, threads: 1 })));
  assert.deepEqual(vm.spec.cpu, { sockets: 2, cores: 2, threads: 1 });
  assert.equal(resourceMaxima(vm.spec, { cpus: 1 }).maxVcpus, 4);
  // Cores default to the fewest that hold vcpus (2 sockets x 1 core for 2 vCPUs).
  const two = accepts(plain((v) => (v.spec.cpu = { sockets: 2 })));
  assert.equal(resourceMaxima(two.spec).maxVcpus, 2);
  // With an explicit maximum, cores are the quotient.
  accepts(plain((v) => {
    v.spec.cpu = { sockets: 2, threads: 2 };
    v.spec.resources = { maxVcpus: 8 };
  }));
  rejects(
    plain((v) => {
      v.spec.cpu = { sockets: 2, cores: 2 };
      v.spec.resources = { maxVcpus: 8 };
    }),
    "spec.cpu",
    "(2 x 2 x 1) = 4 must equal the vCPU maximum spec.resources.maxVcpus (8)",
  );
  rejects(
    plain((v) => {
      v.spec.cpu = { sockets: 3 };
      v.spec.resources = { maxVcpus: 8 };
    }),
    "spec.cpu",
    "sockets x threads (3) must divide spec.resources.maxVcpus (8)",
  );
  rejects(
    plain((v) => (v.spec.cpu = { sockets: 1, cores: 1 })),
    "spec.cpu",
    "= 1 vCPUs, fewer than spec.vcpus (2)",
  );
  rejects(plain((v) => (v.spec.cpu = { sockets: 0 })), "spec.cpu.sockets", "positive integer");
  rejects(plain((v) => (v.spec.cpu = { socket: 2 })), "spec.cpu.socket", 'did you mean "sockets"');
  rejects(plain((v) => (v.spec.cpu = { mode: "host" })), "spec.cpu.mode", "must be one of");
  accepts(plain((v) => (v.spec.cpu = { mode: "host-passthrough" })));
  rejects(
    doc((v) => (v.spec.cpu = { mode: "host-passthrough" })),
    "spec.cpuMode",
    "must not be set together with spec.cpu.mode",
  );
});

Deno.test("numa: cells cover the vCPU maximum once and their memory is the memory maximum", () => {
  const cells = [{ cpus: "0-1", memoryGiB: 2 }, { cpus: "2-3", memoryGiB: 2 }];
  const vm = accepts(plain((v) => {
    v.spec.cpu = { sockets: 2, cores: 2 };
    v.spec.numa = cells;
  }));
  assert.deepEqual(vm.spec.numa, cells);
  assert.deepEqual(resourceMaxima(vm.spec, { cpus: 1, memoryMiB: 1024 }), {
    maxVcpus: 4,
    maxMemoryMiB: 4096,
  });
  // Without a topology or maxVcpus the cells fix the vCPU maximum; a bare id is a number in YAML.
  const one = accepts(plain((v) => {
    v.spec.vcpus = 1;
    v.spec.numa = [{ cpus: 0, memoryGiB: 4 }];
  }));
  assert.deepEqual(one.spec.numa, [{ cpus: "0", memoryGiB: 4 }]);
  assert.equal(resourceMaxima(one.spec).maxVcpus, 1);
  rejects(
    plain((v) => (v.spec.numa = [{ cpus: "0-1", memoryGiB: 2 }, { cpus: "1-3", memoryGiB: 2 }])),
    "spec.numa[1].cpus",
    "vCPU 1 is also in spec.numa[0].cpus",
  );
  rejects(
    plain((v) => {
      v.spec.resources = { maxVcpus: 2 };
      v.spec.numa = [{ cpus: "0-2", memoryGiB: 4 }];
    }),
    "spec.numa",
    "names vCPU 2, beyond the vCPU maximum of 2",
  );
  rejects(
    plain((v) => {
      v.spec.resources = { maxVcpus: 4 };
      v.spec.numa = [{ cpus: "0", memoryGiB: 2 }, { cpus: "2", memoryGiB: 2 }];
    }),
    "spec.numa",
    "leaves vCPU 1,3 in no cell",
  );
  rejects(
    plain((v) => (v.spec.numa = [{ cpus: "0", memoryGiB: 4 }])),
    "spec.numa",
    "holds 1 vCPUs, fewer than spec.vcpus (2)",
  );
  rejects(
    plain((v) => {
      v.spec.resources = { maxMemoryGiB: 8 };
      v.spec.numa = [{ cpus: "0-1", memoryGiB: 4 }];
    }),
    "spec.numa",
    "adds up to 4 GiB; it must equal spec.resources.maxMemoryGiB (8)",
  );
  rejects(
    plain((v) => (v.spec.numa = [{ cpus: "0-1", memoryGiB: 2 }])),
    "spec.numa",
    "less than spec.memoryGiB (4)",
  );
  for (const bad of ["1-0", "0,,1", "^1", "a", "0-4096", " 0"]) {
    rejects(
      plain((v) => (v.spec.numa = [{ cpus: bad, memoryGiB: 4 }])),
      "spec.numa[0].cpus",
      "must be vCPU ids",
    );
  }
  rejects(plain((v) => (v.spec.numa = [])), "spec.numa", "at least one cell");
  rejects(
    plain((v) => (v.spec.numa = [{ cpus: "0-1" }])),
    "spec.numa[0].memoryGiB",
    "is required",
  );
});

Deno.test("cpusetIds() and formatCpuset() read and write libvirt's cpuset syntax", () => {
  assert.deepEqual(cpusetIds("0-2,5"), [0, 1, 2, 5]);
  assert.deepEqual(cpusetIds("7"), [7]);
  assert.equal(cpusetIds("3-1"), undefined);
  assert.equal(cpusetIds("0,"), undefined);
  assert.equal(cpusetIds("4096"), undefined);
  assert.equal(cpusetIds("0-4095")?.length, 4096);
  assert.equal(formatCpuset([5, 0, 1, 2, 7, 8]), "0-2,5,7-8");
  assert.equal(formatCpuset([]), "");
});

Deno.test("graphics: type, listen address and a password file resolved from the YAML's directory", () => {
  const vm = parseVirtualMachines(
    plain((v) => (v.spec.graphics = { type: "spice", listen: "::1", passwordSecret: "s/vnc" })),
    "/etc/foundry/vms/web.yaml",
  )[0]!;
  assert.deepEqual(vm.spec.graphics, {
    type: "spice",
    listen: "::1",
    passwordSecret: "/etc/foundry/vms/s/vnc",
  });
  assert.equal(resolveFrom("/a/b/vm.yaml", "../c/./d"), "/a/c/d");
  assert.equal(resolveFrom("/a/b/vm.yaml", "/x/y"), "/x/y");
  assert.equal(resolveFrom("vm.yaml", "p"), `${Deno.cwd()}/p`);
  assert.equal(resolveFrom("sub/vm.yaml", "p"), `${Deno.cwd()}/sub/p`);
  accepts(plain((v) => (v.spec.graphics = { type: "vnc" })));
  rejects(plain((v) => (v.spec.graphics = { type: "rdp" })), "spec.graphics.type", "vnc, spice");
  rejects(plain((v) => (v.spec.graphics = {})), "spec.graphics.type", "is required");
  rejects(
    plain((v) => (v.spec.graphics = { type: "vnc", listen: "localhost" })),
    "spec.graphics.listen",
    "must be an IPv4 or IPv6 address",
  );
  rejects(
    plain((v) => (v.spec.graphics = { type: "vnc", passwordSecert: "x" })),
    "spec.graphics.passwordSecert",
    'did you mean "passwordSecret"',
  );
  rejects(
    plain((v) => (v.spec.graphics = { type: "vnc", passwordSecret: "dir/" })),
    "spec.graphics.passwordSecret",
    "must be the path of a file",
  );
});

Deno.test("installMedia: an ISO named like a boot image, onto an empty boot disk", () => {
  const vm = accepts(plain((v) => {
    v.spec.bootDisk = { sizeGB: 20, empty: true };
    v.spec.installMedia = { image: "isos:debian.iso" };
  }));
  assert.deepEqual(vm.spec.installMedia, { image: "isos:debian.iso" });
  accepts(plain((v) => {
    v.spec.bootDisk = { sizeGB: 20, empty: true };
    v.spec.installMedia = { image: "/srv/iso/debian.iso" };
  }));
  rejects(
    plain((v) => (v.spec.installMedia = { image: "debian.iso" })),
    "spec.installMedia",
    "needs spec.bootDisk.empty: true: the ISO installs the system onto an empty boot disk, and a disk made from an image has one already",
  );
  rejects(
    plain((v) => {
      v.spec.bootDisk = { sizeGB: 20, empty: true };
      v.spec.installMedia = { image: "a b.iso" };
    }),
    "spec.installMedia.image",
    "must be volume, pool:volume or /path",
  );
  rejects(
    plain((v) => {
      v.spec.bootDisk = { sizeGB: 20, empty: true };
      v.spec.installMedia = { image: "x:d.iso", imagePool: "y" };
    }),
    "spec.installMedia.image",
    'names pool "x" but spec.installMedia.imagePool is "y"',
  );
  rejects(
    plain((v) => {
      v.spec.bootDisk = { sizeGB: 20, empty: true };
      v.spec.installMedia = {};
    }),
    "spec.installMedia.image",
    "is required",
  );
});

Deno.test("bootDisk.volume and dataDisks[].volume: existing disks, each attached once", () => {
  const vm = accepts(plain((v) => {
    v.spec.bootDisk = { sizeGB: 20, volume: "default:old.qcow2" };
    v.spec.dataDisks = [{ device: "vdb", sizeGB: 5, volume: "/var/lib/libvirt/images/d.img" }];
  }));
  assert.equal(vm.spec.bootDisk.volume, "default:old.qcow2");
  assert.equal(vm.spec.dataDisks?.[0]?.volume, "/var/lib/libvirt/images/d.img");
  rejects(
    plain((v) => (v.spec.bootDisk.volume = "default:old.qcow2")),
    "spec.bootDisk.volume",
    "must not be set together with image",
  );
  rejects(
    plain((v) => (v.spec.bootDisk = { sizeGB: 1, empty: false, volume: "p:v" })),
    "spec.bootDisk.volume",
    "must not be set together with empty",
  );
  rejects(
    plain((v) => (v.spec.bootDisk = { sizeGB: 1, volume: "old.qcow2" })),
    "spec.bootDisk.volume",
    "must be pool:volume or an absolute file path",
  );
  rejects(
    plain((v) => (v.spec.bootDisk = { sizeGB: 1, volume: "/a/../b" })),
    "spec.bootDisk.volume",
    "without empty",
  );
  rejects(
    plain((v) => (v.spec.bootDisk = { sizeGB: 1 })),
    "spec.bootDisk.image",
    "is required unless empty: true or volume is given",
  );
  rejects(
    plain((v) => {
      v.spec.bootDisk = { sizeGB: 1, volume: "p:v" };
      v.spec.dataDisks = [{ device: "vdb", sizeGB: 1, volume: "p:v" }];
    }),
    "spec.dataDisks[0].volume",
    "is also spec.bootDisk.volume",
  );
  rejects(
    plain((v) => {
      v.spec.dataDisks = [
        { device: "vdb", sizeGB: 1, volume: "p:v" },
        { device: "vdc", sizeGB: 1, volume: "p:v" },
      ];
    }),
    "spec.dataDisks[1].volume",
    "is also spec.dataDisks[0].volume",
  );
});

Deno.test("networkInterfaces: a MAC instead of an address; gateway only with ip; MACs unique", () => {
  const vm = accepts(plain((v) => {
    v.spec.networkInterfaces[1] = { mac: "52:54:00:AB:cd:01", bridge: "br1" };
  }));
  assert.deepEqual(vm.spec.networkInterfaces[1], { mac: "52:54:00:ab:cd:01", bridge: "br1" });
  // ip and mac together: the MAC overrides the derived one.
  accepts(plain((v) => (v.spec.networkInterfaces[0].mac = "52:54:00:00:00:01")));
  rejects(
    plain((v) => (v.spec.networkInterfaces[1] = { bridge: "br1" })),
    "spec.networkInterfaces[1].ip",
    "is required unless mac is given",
  );
  rejects(
    plain((v) => (delete v.spec.networkInterfaces[1].gateway)),
    "spec.networkInterfaces[1].gateway",
    "is required",
  );
  rejects(
    plain((
      v,
    ) => (v.spec.networkInterfaces[1] = {
      mac: "52:54:00:00:00:02",
      gateway: "198.51.100.1",
      bridge: "br1",
    })),
    "spec.networkInterfaces[1].gateway",
    "needs ip",
  );
  rejects(
    plain((
      v,
    ) => (v.spec.networkInterfaces[1] = {
      mac: "52:54:00:00:00:02",
      dnsServers: ["192.0.2.53"],
      bridge: "br1",
    })),
    "spec.networkInterfaces[1].dnsServers",
    "needs ip",
  );
  rejects(
    plain((
      v,
    ) => (v.spec.networkInterfaces[1] = {
      mac: "52:54:00:00:00:02",
      defaultRoute: true,
      bridge: "br1",
    })),
    "spec.networkInterfaces[1].defaultRoute",
    "needs ip and gateway",
  );
  for (const bad of ["52:54:00:00:00", "52-54-00-00-00-01", "zz:54:00:00:00:01"]) {
    rejects(
      plain((v) => (v.spec.networkInterfaces[0].mac = bad)),
      "spec.networkInterfaces[0].mac",
      "must be a MAC address",
    );
  }
  rejects(
    plain((v) => (v.spec.networkInterfaces[0].mac = "01:00:5e:00:00:01")),
    "spec.networkInterfaces[0].mac",
    "must be a unicast MAC address",
  );
  rejects(
    plain((v) => {
      v.spec.networkInterfaces[0].mac = "52:54:00:00:00:01";
      v.spec.networkInterfaces[1].mac = "52:54:00:00:00:01";
    }),
    "spec.networkInterfaces[1].mac",
    "duplicate MAC 52:54:00:00:00:01, also used by spec.networkInterfaces[0].mac",
  );
  // A given MAC that another interface's address derives, in another VM of the file.
  rejects(
    plain((v) => (v.spec.networkInterfaces[1].mac = "be:ef:c0:00:02:14")) + "---\n" +
      other("web-02"),
    "spec.networkInterfaces[0].ip",
    "its MAC be:ef:c0:00:02:14 (derived from the address) is also used by spec.networkInterfaces[1].mac",
  );
});

/** A template document of `spec` (and template labels). */
function template(name: string, spec: Loose, labels?: Record<string, string>): string {
  return stringify({
    apiVersion: "foundry.cofront.xyz/v1alpha1",
    kind: "VirtualMachineTemplate",
    metadata: { name },
    spec: { template: { ...(labels ? { metadata: { labels } } : {}), spec } },
  });
}

/** A VM of sampleVm's name and addresses that takes the rest from template `ref`. */
function fromTemplate(ref: string, mutate: (vm: Loose) => void = () => {}): string {
  const vm: Loose = {
    apiVersion: "foundry.cofront.xyz/v1alpha1",
    kind: "VirtualMachine",
    metadata: { name: "web-01", labels: { role: "db" } },
    spec: {
      templateRef: { name: ref },
      networkInterfaces: [{ ip: "192.0.2.10/24", gateway: "192.0.2.1", bridge: "br0" }],
    },
  };
  mutate(vm);
  return stringify(vm);
}

const BASE = {
  vcpus: 2,
  memoryGiB: 4,
  bootDisk: { sizeGB: 20, image: "debian-12.qcow2" },
  dataDisks: [{ device: "vdb", sizeGB: 10 }],
  graphics: { type: "vnc", listen: "127.0.0.1" },
};

Deno.test("templates: maps merge key by key, lists and scalars replace, labels merge, the VM wins", () => {
  const text = template("base", BASE, { role: "web", tier: "1" }) + "---\n" +
    fromTemplate("BASE", (v) => {
      v.spec.bootDisk = { sizeGB: 40 };
      v.spec.dataDisks = [{ device: "vdc", sizeGB: 1 }];
      v.spec.graphics = { type: "spice" };
    });
  const [vm] = parseVirtualMachines(text, "vm.yaml");
  assert.deepEqual(vm?.metadata.labels, { role: "db", tier: "1" });
  assert.deepEqual(vm?.spec.bootDisk, { sizeGB: 40, image: "debian-12.qcow2" });
  assert.deepEqual(vm?.spec.dataDisks, [{ device: "vdc", sizeGB: 1 }]);
  assert.deepEqual(vm?.spec.graphics, { type: "spice", listen: "127.0.0.1" });
  assert.equal(vm?.spec.vcpus, 2);
  assert.deepEqual(vm?.spec.templateRef, { name: "base" });
  // A key given without a value removes the template's.
  const [bare] = parseVirtualMachines(
    template("base", BASE) + "---\n" + fromTemplate("base") + "  graphics: null\n",
    "vm.yaml",
  );
  assert.equal(bare?.spec.graphics, undefined);
  // The template is returned as written and creates no VM.
  const docs = parseFoundryDocuments([{ text, file: "vm.yaml" }]);
  assert.equal(docs.vms.length, 1);
  assert.equal(docs.templates[0]?.metadata.name, "base");
  assert.deepEqual(docs.templates[0]?.spec.template.spec, BASE);
  assert.equal(
    docs.sources.get("web-01"),
    `vm.yaml:${text.split("\n").indexOf("kind: VirtualMachine")}`,
  );
});

Deno.test("templates: a problem in a merged field points at the template's file and line", () => {
  const tpl = template("base", { ...BASE, vcpus: 0 });
  let err: ValidationError | undefined;
  try {
    parseFoundryDocuments([
      { text: tpl, file: "templates.yaml" },
      { text: fromTemplate("base"), file: "vm.yaml" },
    ]);
  } catch (e) {
    err = e as ValidationError;
  }
  const line = tpl.split("\n").findIndex((l) => l.includes("vcpus: 0")) + 1;
  assert.equal(
    err?.message,
    `templates.yaml:${line}:14 spec.vcpus: must be a positive integer, got 0`,
  );
  // The VM's own value overrides the bad one, and then nothing is wrong.
  parseFoundryDocuments([
    { text: tpl, file: "templates.yaml" },
    { text: fromTemplate("base", (v) => (v.spec.vcpus = 1)), file: "vm.yaml" },
  ]);
});

Deno.test("templates: unknown names, chains and bad template documents are refused", () => {
  rejects(
    template("base", BASE) + "---\n" + fromTemplate("bsae"),
    "spec.templateRef.name",
    'no VirtualMachineTemplate named "bsae" in the files loaded, did you mean "base"?',
  );
  rejects(fromTemplate("base"), "spec.templateRef.name", 'no VirtualMachineTemplate named "base"');
  rejects(
    template("base", { ...BASE, templateRef: { name: "other" } }),
    "spec.template.spec.templateRef",
    "may not reference another template",
  );
  rejects(
    template("base", { ...BASE, vcpu: 2 }) + "---\n" + doc(),
    "spec.template.spec.vcpu",
    'did you mean "vcpus"',
  );
  // Said once, by the template, not again by each VM that uses it.
  const once = problems(template("base", { ...BASE, vcpu: 2 }) + "---\n" + fromTemplate("base"));
  assert.deepEqual(once.problems.map((p) => p.path), ["spec.template.spec.vcpu"]);
  rejects(
    template("base", BASE) + "---\n" + template("base", BASE) + "---\n" + doc(),
    "metadata.name",
    "duplicate template name",
  );
  rejects(
    template("base", BASE).replace("  template:\n", "  templates:\n") + "---\n" + doc(),
    "spec.templates",
    'did you mean "template"',
  );
  // Only templates: no VM.
  rejects(template("base", BASE), "", "no VirtualMachine document found");
});

Deno.test("loadFoundryDocuments() reads files and directories: YAML files, sorted, names unique", async () => {
  const dir = await Deno.makeTempDir({ prefix: "h1-loader-" });
  try {
    await Deno.mkdir(`${dir}/d`);
    await Deno.mkdir(`${dir}/d/nested.yaml`);
    await Deno.writeTextFile(`${dir}/d/b.yml`, fromTemplate("base"));
    await Deno.writeTextFile(`${dir}/d/a.yaml`, template("base", BASE));
    await Deno.writeTextFile(`${dir}/d/notes.txt`, "not yaml");
    await Deno.writeTextFile(`${dir}/other.yaml`, other("web-02"));
    const docs = await loadFoundryDocuments([`${dir}/d`, `${dir}/other.yaml`]);
    assert.deepEqual(docs.vms.map((v) => v.metadata.name), ["web-01", "web-02"]);
    assert.equal(docs.sources.get("web-01"), `${dir}/d/b.yml:1`);
    assert.equal(docs.sources.get("web-02"), `${dir}/other.yaml:1`);
    assert.deepEqual(docs.templates.map((t) => t.metadata.name), ["base"]);
    await Deno.writeTextFile(`${dir}/dup.yaml`, other("web-01"));
    await assert.rejects(
      loadFoundryDocuments([`${dir}/d`, `${dir}/dup.yaml`]),
      (e: ValidationError) =>
        e.message ===
          `${dir}/dup.yaml:1:1 metadata.name: duplicate name "web-01", also used by the VirtualMachine at ${dir}/d/b.yml:1`,
    );
    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(
      loadFoundryDocuments([`${dir}/empty`]),
      (e: ValidationError) =>
        e.message === `${dir}/empty:1:1 no VirtualMachine document found: no *.yaml or *.yml files`,
    );
    // At most MAX_FILES files, counted before any is read.
    await Deno.mkdir(`${dir}/many`);
    for (let i = 0; i <= 1000; i++) await Deno.writeTextFile(`${dir}/many/${i}.yaml`, "");
    await assert.rejects(
      loadFoundryDocuments([`${dir}/many`]),
      (e: ValidationError) => /more than 1000 files to load/.test(e.message),
    );
    // loadVirtualMachines() takes a file with templates too.
    await Deno.writeTextFile(
      `${dir}/both.yaml`,
      template("base", BASE) + "---\n" + fromTemplate("base"),
    );
    assert.equal((await loadVirtualMachines(`${dir}/both.yaml`))[0]?.spec.vcpus, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

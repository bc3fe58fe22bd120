import assert from "node:assert/strict";
import {
  CONFIG_ENV,
  ConfigError,
  DEFAULT_CONFIG,
  imageLocationFor,
  loadConfig,
  SYSTEM_CONFIG_FILE,
  userConfigFile,
  vmPoolFor,
} from "./config.ts";
import { parseConfigFile } from "./config_file.ts";
import { sampleVm } from "./_testdata.ts";

function sources(
  files: Record<string, string>,
  env: Record<string, string> = { HOME: "/home/u" },
) {
  return {
    env: (name: string) => env[name],
    readFile: (path: string) => Promise.resolve(files[path]),
  };
}

const USER_FILE = "/home/u/.config/foundry/config.yaml";

Deno.test("loadConfig() falls back to the defaults", async () => {
  assert.deepEqual(await loadConfig(sources({})), DEFAULT_CONFIG);
  assert.equal(DEFAULT_CONFIG.destroyTimeoutSeconds, 5);
  assert.equal(DEFAULT_CONFIG.vmsPool, "foundry-vms");
  assert.equal(DEFAULT_CONFIG.imagesPath, "/var/lib/libvirt/images/foundry/images");
});

Deno.test("layers: flags over environment over user file over system file over defaults", async () => {
  const files = {
    [SYSTEM_CONFIG_FILE]:
      "uri: qemu+ssh://sys/system\ndomainType: kvm\ndestroyTimeoutSeconds: 30\n" +
      "storage:\n  vmsPool: sys-vms\n  imagesPool: sys-images\n",
    [USER_FILE]: "uri: qemu+ssh://user/system\nstorage:\n  vmsPool: user-vms\n",
  };
  const fileOnly = await loadConfig(sources(files));
  assert.equal(fileOnly.uri, "qemu+ssh://user/system");
  assert.equal(fileOnly.vmsPool, "user-vms");
  assert.equal(fileOnly.imagesPool, "sys-images");
  assert.equal(fileOnly.domainType, "kvm");
  assert.equal(fileOnly.destroyTimeoutSeconds, 30);

  const env = {
    HOME: "/home/u",
    [CONFIG_ENV.uri]: "qemu:///session",
    [CONFIG_ENV.vmsPool]: "env-vms",
    [CONFIG_ENV.destroyTimeoutSeconds]: "12",
  };
  const withEnv = await loadConfig(sources(files, env));
  assert.equal(withEnv.uri, "qemu:///session");
  assert.equal(withEnv.vmsPool, "env-vms");
  assert.equal(withEnv.destroyTimeoutSeconds, 12);
  assert.equal(withEnv.imagesPool, "sys-images");

  const withFlags = await loadConfig({
    ...sources(files, env),
    flags: { uri: "test:///default", vmsPool: "flag-vms", domainType: "qemu" },
  });
  assert.equal(withFlags.uri, "test:///default");
  assert.equal(withFlags.vmsPool, "flag-vms");
  assert.equal(withFlags.domainType, "qemu");
  assert.equal(withFlags.destroyTimeoutSeconds, 12);
});

Deno.test("pool paths follow the storage path unless set themselves", async () => {
  const moved = await loadConfig(sources({}, { [CONFIG_ENV.storagePath]: "/srv/foundry" }));
  assert.equal(moved.imagesPath, "/srv/foundry/images");
  assert.equal(moved.vmsPath, "/srv/foundry/vms");
  const pinned = await loadConfig(
    sources({ [USER_FILE]: "storage:\n  basePath: /srv/f\n  vmsPath: /fast/vms\n" }),
  );
  assert.equal(pinned.storagePath, "/srv/f");
  assert.equal(pinned.imagesPath, "/srv/f/images");
  assert.equal(pinned.vmsPath, "/fast/vms");
});

Deno.test("an explicit config file replaces the default ones and must exist", async () => {
  const files = { "/tmp/f.yaml": "uri: qemu:///explicit\n", [USER_FILE]: "uri: qemu:///user\n" };
  assert.equal(
    (await loadConfig({ ...sources(files), flags: { config: "/tmp/f.yaml" } })).uri,
    "qemu:///explicit",
  );
  assert.equal(
    (await loadConfig(sources(files, { HOME: "/home/u", [CONFIG_ENV.config]: "/tmp/f.yaml" }))).uri,
    "qemu:///explicit",
  );
  await assert.rejects(
    loadConfig({ ...sources(files), flags: { config: "/tmp/missing.yaml" } }),
    (e: unknown) =>
      e instanceof ConfigError && /\/tmp\/missing\.yaml does not exist/.test(e.message),
  );
});

Deno.test("userConfigFile() honours XDG_CONFIG_HOME", () => {
  assert.equal(userConfigFile((n) => ({ HOME: "/h" })[n]), "/h/.config/foundry/config.yaml");
  assert.equal(
    userConfigFile((n) => ({ HOME: "/h", XDG_CONFIG_HOME: "/x" })[n]),
    "/x/foundry/config.yaml",
  );
  assert.equal(userConfigFile(() => undefined), undefined);
});

Deno.test("bad values in flags and environment are ConfigErrors", async () => {
  await assert.rejects(
    loadConfig({ ...sources({}), flags: { domainType: "xen" } }),
    // lib names the setting and that a flag gave it; the CLI names the flag (cli/foundry/).
    (e: unknown) =>
      e instanceof ConfigError && e.key === "domainType" && e.source === "flag" &&
      e.reason === `must be one of auto, kvm, qemu, got "xen"` &&
      e.message === `flag domainType: must be one of auto, kvm, qemu, got "xen"`,
  );
  await assert.rejects(
    loadConfig(sources({}, { [CONFIG_ENV.destroyTimeoutSeconds]: "soon" })),
    (e: unknown) => e instanceof ConfigError && /FOUNDRY_DESTROY_TIMEOUT/.test(e.message),
  );
  await assert.rejects(
    loadConfig({ ...sources({}), flags: { destroyTimeoutSeconds: -1 } }),
    ConfigError,
  );
});

Deno.test("parseConfigFile() reports every problem with its position", () => {
  const text = [
    "uri: 42", // 1
    "domainType: xen", // 2
    "destroyTimeout: 5", // 3
    "storage:", // 4
    "  vmPool: x", // 5
    "  basePath: ''", // 6
  ].join("\n");
  try {
    parseConfigFile(text, "config.yaml");
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.name, "ConfigError");
    assert.deepEqual(e.problems.map((p) => [p.line, p.column, p.path]), [
      [1, 6, "uri"],
      [2, 13, "domainType"],
      [3, 1, "destroyTimeout"],
      [5, 3, "storage.vmPool"],
      [6, 13, "storage.basePath"],
    ]);
    assert.match(e.message, /^config\.yaml:1:6 uri: must be a non-empty string, got 42$/m);
  }
  assert.throws(() => parseConfigFile("a: [", "c.yaml"), /c\.yaml:1:\d+ invalid YAML/);
  assert.throws(() => parseConfigFile("- 1\n", "c.yaml"), /must be a mapping/);
  assert.deepEqual(parseConfigFile("", "c.yaml"), {});
  assert.deepEqual(parseConfigFile("# nothing\n", "c.yaml"), {});
});

Deno.test("vmPoolFor(): the --pool flag, then the spec, then the configuration", () => {
  const vm = sampleVm();
  const config = { ...DEFAULT_CONFIG, vmsPool: "configured" };
  assert.equal(vmPoolFor(vm, config, "flag"), "flag");
  assert.equal(vmPoolFor(vm, config), "foundry-vms");
  delete vm.spec.storagePool;
  assert.equal(vmPoolFor(vm, config), "configured");
});

Deno.test("imageLocationFor() defaults bare volume names to the configured images pool", () => {
  const vm = sampleVm();
  const config = { ...DEFAULT_CONFIG, imagesPool: "golden" };
  assert.deepEqual(imageLocationFor(vm, config), {
    kind: "volume",
    pool: "golden",
    volume: "debian-12.qcow2",
  });
  vm.spec.bootDisk.imagePool = "mine";
  assert.equal((imageLocationFor(vm, config) as { pool: string }).pool, "mine");
  delete vm.spec.bootDisk.image;
  vm.spec.bootDisk.empty = true;
  assert.equal(imageLocationFor(vm, config), undefined);
});

Deno.test("loadConfig() reads real files and ignores missing ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/foundry`);
    await Deno.writeTextFile(`${dir}/foundry/config.yaml`, "destroyTimeoutSeconds: 9\n");
    const env = (n: string) => ({ XDG_CONFIG_HOME: dir })[n];
    assert.equal((await loadConfig({ env })).destroyTimeoutSeconds, 9);
    assert.deepEqual(
      await loadConfig({ env: (n) => ({ XDG_CONFIG_HOME: `${dir}/none` })[n] }),
      await loadConfig({ env: () => undefined }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import {
  ConfigError,
  type ConfigSchema,
  FLAG_SOURCE,
  MAX_CONFIG_BYTES,
  parseYamlConfig,
  readConfigText,
  readYamlConfig,
  resolveConfig,
} from "./mod.ts";

const schema = {
  namespace: { kind: "string", default: "virtwork" },
  vmCount: { kind: "integer", default: 1, min: 0 },
  dryRun: { kind: "boolean", default: false },
  keys: { kind: "list", default: [], env: "APP_SSH_KEYS" },
  output: { kind: "string", default: "table", choices: ["table", "json"] },
} as const satisfies ConfigSchema;

Deno.test("resolveConfig(): defaults when no layer sets a field", () => {
  const { values, sources } = resolveConfig(schema, {});
  assert.deepEqual(values, {
    namespace: "virtwork",
    vmCount: 1,
    dryRun: false,
    keys: [],
    output: "table",
  });
  assert.equal(sources.namespace, "default");
});

Deno.test("resolveConfig(): flags > env > file > defaults, field by field", () => {
  const layers = {
    flags: { vmCount: 5 },
    env: { APP_VM_COUNT: "4", APP_NAMESPACE: "from-env" },
    file: { namespace: "from-file", vm_count: 3, dry_run: true },
  };
  const { values, sources } = resolveConfig(schema, layers, { envPrefix: "APP_" });
  assert.equal(values.vmCount, 5);
  assert.equal(sources.vmCount, "flag");
  assert.equal(values.namespace, "from-env");
  assert.equal(sources.namespace, "env");
  assert.equal(values.dryRun, true);
  assert.equal(sources.dryRun, "file");
  const noFlag = resolveConfig(schema, { ...layers, flags: {} }, { envPrefix: "APP_" });
  assert.equal(noFlag.values.vmCount, 4);
  const fileOnly = resolveConfig(schema, { file: layers.file }, { envPrefix: "APP_" });
  assert.equal(fileOnly.values.vmCount, 3);
  assert.equal(fileOnly.values.namespace, "from-file");
});

Deno.test("resolveConfig(): lists from YAML lists, comma-separated env and flags", () => {
  const file = resolveConfig(schema, { file: { keys: ["ssh-ed25519 A x", "ssh-rsa B y"] } });
  assert.deepEqual(file.values.keys, ["ssh-ed25519 A x", "ssh-rsa B y"]);
  const env = resolveConfig(schema, { env: { APP_SSH_KEYS: "ssh-ed25519 A x, ssh-rsa B y,," } });
  assert.deepEqual(env.values.keys, ["ssh-ed25519 A x", "ssh-rsa B y"]);
  const flag = resolveConfig(schema, {
    flags: { keys: ["k1", "k2"] },
    env: { APP_SSH_KEYS: "e" },
  });
  assert.deepEqual(flag.values.keys, ["k1", "k2"]);
});

Deno.test("resolveConfig(): bad values name their source and what was expected", () => {
  assert.throws(
    () => resolveConfig(schema, { env: { APP_VM_COUNT: "three" } }, { envPrefix: "APP_" }),
    /env APP_VM_COUNT vmCount: must be an integer, got "three"/,
  );
  assert.throws(
    () => resolveConfig(schema, { file: { vm_count: -1 }, fileName: "v.yaml" }),
    /v.yaml vmCount: must be at least 0, got -1/,
  );
  assert.throws(
    () => resolveConfig(schema, { file: { dry_run: "maybe" } }),
    /must be true or false, got "maybe"/,
  );
  assert.throws(
    () => resolveConfig(schema, { flags: { output: "xml" } }),
    /must be one of table, json/,
  );
  assert.throws(
    () => resolveConfig(schema, { file: { namespce: "x" }, fileName: "v.yaml" }),
    (e: unknown) =>
      e instanceof ConfigError && /unknown key/.test(e.message) && e.key === "namespce",
  );
  assert.doesNotThrow(() =>
    resolveConfig(schema, { file: { workloads: {} } }, { allowFileKeys: ["workloads"] })
  );
});

Deno.test("parseYamlConfig(): invalid YAML reports line and column; non-mappings are rejected", () => {
  assert.throws(
    () => parseYamlConfig("a: 1\nb: [1, 2\n", "c.yaml"),
    /c\.yaml:\d+:\d+: invalid YAML/,
  );
  assert.throws(() => parseYamlConfig("- a\n- b\n", "c.yaml"), /must be a mapping/);
  assert.deepEqual(parseYamlConfig("", "c.yaml"), {});
  assert.deepEqual(parseYamlConfig("namespace: x\n", "c.yaml"), { namespace: "x" });
});

Deno.test("readYamlConfig(): a missing file is a ConfigError naming the path", async () => {
  await assert.rejects(
    () => readYamlConfig("/nonexistent/virtwork.yaml"),
    (e: unknown) =>
      e instanceof ConfigError && /\/nonexistent\/virtwork.yaml: file not found/.test(e.message),
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/c.yaml`, "vm_count: 2\n");
    assert.deepEqual(await readYamlConfig(`${dir}/c.yaml`), { vm_count: 2 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveConfig(): the environment may be a lookup; a flag's value names its key", () => {
  const spelled = {
    mode: { kind: "string", default: "auto", choices: ["auto", "kvm"] },
    timeout: { kind: "number", default: 5, min: 0, env: "APP_TIMEOUT" },
  } as const satisfies ConfigSchema;
  const env = (name: string) => ({ APP_TIMEOUT: "12" } as Record<string, string>)[name];
  assert.equal(resolveConfig(spelled, { env }).values.timeout, 12);
  assert.throws(
    () => resolveConfig(spelled, { flags: { mode: "xen" } }),
    (e: unknown) =>
      e instanceof ConfigError && e.key === "mode" && e.source === FLAG_SOURCE &&
      e.reason === `must be one of auto, kvm, got "xen"` &&
      e.message === `flag mode: must be one of auto, kvm, got "xen"`,
  );
  assert.throws(
    () => resolveConfig(spelled, { flags: { timeout: NaN } }),
    /: flag timeout: must be a number, got number NaN$/,
  );
});

Deno.test("ConfigError carries the positioned problems of a file", () => {
  const problems = [{ file: "c.yaml", line: 1, column: 6, path: "uri", message: "bad" }];
  const e = new ConfigError("c.yaml:1:6 uri: bad", undefined, undefined, { problems });
  assert.equal(e.message, "c.yaml:1:6 uri: bad");
  assert.deepEqual(e.problems, problems);
  assert.deepEqual(new ConfigError("x").problems, []);
});

Deno.test("readConfigText(): undefined for a missing file, the text otherwise", async () => {
  assert.equal(await readConfigText("/nonexistent/foundry.yaml"), undefined);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/c.yaml`, "uri: x\n");
    assert.equal(await readConfigText(`${dir}/c.yaml`), "uri: x\n");
    await assert.rejects(() => readConfigText(dir), ConfigError);
    // Multi-byte characters split across read chunks decode whole.
    const text = "name: " + "é".repeat(70_000) + "\n";
    await Deno.writeTextFile(`${dir}/long.yaml`, text);
    assert.equal(await readConfigText(`${dir}/long.yaml`), text);
    // Above the bound: refused with the path, never read whole.
    await Deno.writeFile(`${dir}/huge.yaml`, new Uint8Array(MAX_CONFIG_BYTES + 1).fill(0x61));
    await assert.rejects(() => readConfigText(`${dir}/huge.yaml`), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /huge\.yaml is larger than 1 MiB/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

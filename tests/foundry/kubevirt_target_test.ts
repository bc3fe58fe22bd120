/**
 * `foundry create|get|list|destroy --target kubevirt` through main(), against the Kubernetes API
 * test server (real HTTP, the real `@kubernetes/client-node`, VirtualMachines validated against
 * KubeVirt's schema on create).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/foundry.ts";
import { FAKE_PASSWORD_HASH, fakeSshKey } from "../../lib/foundry/_testdata.ts";
import {
  INSTALL_MEDIA_URL,
  KUBEVIRT_LOSSY_EXAMPLES,
  valuePosition,
  vmExamples,
} from "./_kubevirt_examples.ts";
import { K8sTestServer, type RequestInfo } from "../virtwork/k8s_server.ts";
import { kubevirtValidator } from "../virtwork/_helpers.ts";
import { formatProblems } from "../virtwork/openapi_validator.ts";

const NS = "h5-ns";
const IMAGE = "https://images.example.org/debian-12.qcow2";
// deno-lint-ignore no-explicit-any
type Any = any;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) },
    text: () => out.join(""),
    errText: () => err.join(""),
  };
}

/** Everything any run printed, to check no secret was among it. */
const printed: string[] = [];

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = capture();
  const code = await main(args, c.io, { env: { HOME: "/nonexistent-h5" } });
  printed.push(c.text(), c.errText());
  return { code, out: c.text(), err: c.errText() };
}

function vmYaml(name: string, bridges: string[], extra = ""): string {
  const nics = bridges.map((b, i) =>
    `    - ip: 192.0.2.${20 + i}/24\n      gateway: 192.0.2.1\n      bridge: ${b}\n` +
    (i > 0 ? "      defaultRoute: false\n" : "")
  ).join("");
  return `apiVersion: foundry.cofront.xyz/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
  labels:
    role: web
    owner: h5
spec:
  vcpus: 2
  memoryGiB: 1
  bootDisk:
    sizeGB: 10
    image: debian-12.qcow2
  dataDisks:
    - device: vdb
      sizeGB: 2
  networkInterfaces:
${nics}  cloudInit:
    fqdn: ${name}.example.org
    sshAuthorizedKeys:
      - ${fakeSshKey()}
    passwordHash: "${FAKE_PASSWORD_HASH}"
${extra}`;
}

interface Env {
  server: K8sTestServer;
  kubeconfig: string;
  dir: string;
  file: (name: string, text: string) => Promise<string>;
  cluster: string[];
  /** `create FILE --target kubevirt ... --image-url IMAGE` and `more`. */
  create: (file: string, ...more: string[]) => ReturnType<typeof run>;
  close: () => Promise<void>;
}

async function env(
  inject?: (r: RequestInfo) => ReturnType<NonNullable<K8sTestServer["options"]["inject"]>>,
): Promise<Env> {
  const server = K8sTestServer.start({
    validator: await kubevirtValidator(),
    readyAfterMs: () => 0,
    ...(inject ? { inject } : {}),
  });
  server.seed("namespaces", { metadata: { name: NS } });
  const kubeconfig = await server.writeKubeconfig();
  const dir = await Deno.makeTempDir({ prefix: "h5-kubevirt-" });
  const cluster = ["--target", "kubevirt", "--kubeconfig", kubeconfig, "-n", NS];
  cluster.push("--audit-db", `${dir}/audit.db`);
  return {
    server,
    kubeconfig,
    dir,
    file: async (name, text) => {
      const p = `${dir}/${name}`;
      await Deno.writeTextFile(p, text);
      return p;
    },
    cluster,
    create: (file, ...more) => run(["create", file, ...cluster, "--image-url", IMAGE, ...more]),
    close: async () => {
      await server.close();
      await Deno.remove(kubeconfig).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Every object the server holds, as JSON, to look for secrets in. */
function everything(server: K8sTestServer): string {
  return JSON.stringify(
    ["virtualmachines", "virtualmachineinstances", "network-attachment-definitions", "secrets"]
      .map((r) => server.objects(r)),
  );
}

const writes = (server: K8sTestServer) =>
  server.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path}`);

/** `create FILE --target kubevirt --dry-run -o json` with an image and the networks. */
const dryRun = (path: string) =>
  run([
    "create",
    path,
    "--target",
    "kubevirt",
    "--dry-run",
    "-o",
    "json",
    "--image-url",
    IMAGE,
    "--install-media-url",
    INSTALL_MEDIA_URL,
    "--create-networks",
  ]);

// Every VirtualMachine example's dry run, as printed, validates strictly (vmExamples() leaves out
// examples/config.yaml, the configuration file); the fields KubeVirt carries over only in part are
// warned of on stderr, and a real create of such an example needs --allow-lossy.
for (const { name, path } of await vmExamples()) {
  const lossy = KUBEVIRT_LOSSY_EXAMPLES[name] ?? [];
  Deno.test(
    `create --target kubevirt --dry-run of examples/${name} validates strictly${
      lossy.length ? `, warning of ${lossy.join(", ")}` : ""
    }`,
    async () => {
      const first = await dryRun(path);
      assert.equal(first.code, 0, first.err);
      const list = JSON.parse(first.out);
      assert.equal(list.kind, "List");
      const validator = await kubevirtValidator();
      const vms = list.items.filter((o: Any) => o.kind === "VirtualMachine");
      assert.ok(vms.length >= 1);
      for (const vm of vms) {
        const problems = validator.validate("v1.VirtualMachine", vm);
        assert.deepEqual(problems, [], formatProblems(problems));
      }
      for (const o of list.items) {
        assert.ok(["VirtualMachine", "Secret", "NetworkAttachmentDefinition"].includes(o.kind));
        assert.equal(o.metadata.labels["foundry.cofront.xyz/managed"], "true");
      }
      const warned = [...first.err.matchAll(/^warning: VM \S+: (\S+): /gm)].map((m) => m[1]);
      assert.deepEqual(warned, lossy);
      // Nothing was created: a dry run needs no cluster and has none here.
      assert.ok(!first.out.includes("$6$"));
    },
  );
  if (lossy.length === 0) continue;
  Deno.test(
    `create --target kubevirt of examples/${name} needs --allow-lossy: exit 2 at ${
      lossy[0]
    } with file and line, nothing created; with it, created`,
    async () => {
      const { line, column } = valuePosition(await Deno.readTextFile(path), lossy[0]!);
      const e = await env();
      try {
        const refused = await e.create(path, "--create-networks");
        assert.equal(refused.code, 2, refused.err);
        const errors = refused.err.split("\n").filter((l) => l.startsWith("Error: "));
        assert.equal(errors.length, 1, refused.err);
        assert.ok(
          errors[0]!.startsWith(`Error: ${path}:${line}:${column} ${lossy[0]}: `),
          errors[0]!,
        );
        assert.match(errors[0]!, /pass --allow-lossy/);
        assert.deepEqual(writes(e.server), []);
        const made = await e.create(path, "--create-networks", "--allow-lossy");
        assert.equal(made.code, 0, made.err);
        assert.match(
          made.err,
          new RegExp(`^warning: VM \\S+: ${lossy[0]!.replaceAll(".", "\\.")}: `, "m"),
        );
        const [vm] = e.server.objects("virtualmachines", NS) as Any[];
        assert.deepEqual(validatorProblems(await kubevirtValidator(), vm), []);
        // graphics-vm's password file: its content is never read, sent or printed.
        const all = refused.out + refused.err + made.out + made.err + everything(e.server);
        assert.ok(!all.includes("Example-only"));
      } finally {
        await e.close();
      }
    },
  );
}

function validatorProblems(
  validator: Awaited<ReturnType<typeof kubevirtValidator>>,
  vm: Any,
): unknown[] {
  const { status: _s, ...rest } = vm;
  const { metadata: { name, namespace, labels, annotations } } = rest;
  return validator.validate("v1.VirtualMachine", {
    ...rest,
    metadata: { name, namespace, labels, annotations },
  });
}

Deno.test("create --target kubevirt of installation media without a source names --install-media-url at the field", async () => {
  const path = new URL("../../examples/install-from-iso.yaml", import.meta.url).pathname;
  const r = await run(["create", path, "--target", "kubevirt", "--dry-run"]);
  assert.equal(r.code, 2, r.err);
  const { line, column } = valuePosition(await Deno.readTextFile(path), "spec.installMedia.image");
  assert.equal(r.err.trim().split("\n").length, 1, r.err);
  assert.ok(r.err.startsWith(`Error: ${path}:${line}:${column} spec.installMedia.image: `), r.err);
  assert.match(
    r.err,
    /pass --install-media-url URL\|pvc:NAMESPACE\/NAME, or --image debian-12\.7\.0-amd64-netinst\.iso=URL/,
  );
  assert.equal(r.out, "");
});

Deno.test("create, get, list, destroy --target kubevirt on the API test server", async () => {
  const e = await env();
  try {
    const file = await e.file(
      "h5-web.yaml",
      vmYaml("h5-web", ["br0", "br1"], "  domainType: qemu\n"),
    );
    const made = await e.create(file, "--create-networks");
    assert.equal(made.code, 0, made.err);
    assert.match(made.out, /Successfully created VM 'h5-web'/);
    assert.match(made.err, /spec\.domainType: ignored on KubeVirt/);
    const vms = e.server.objects("virtualmachines", NS);
    assert.equal(vms.length, 1);
    const vm = vms[0]!;
    assert.deepEqual(
      (await kubevirtValidator()).validate("v1.VirtualMachine", vm).filter((p) =>
        p.path !== ".status"
      ),
      [],
    );
    assert.equal(
      vm.spec.template.spec.volumes.at(-1).cloudInitNoCloud.secretRef.name,
      "h5-web-userdata",
    );
    assert.deepEqual(
      e.server.objects("network-attachment-definitions", NS).map((n) => n.metadata.name).sort(),
      ["br0", "br1"],
    );
    assert.equal(e.server.objects("secrets", NS).length, 1);

    const got = await run(["get", "h5-web", ...e.cluster, "-o", "json"]);
    assert.equal(got.code, 0, got.err);
    const doc = JSON.parse(got.out);
    assert.equal(doc.apiVersion, "foundry.cofront.xyz/v1alpha1");
    assert.equal(doc.metadata.name, "h5-web");
    assert.equal(doc.spec.vcpus, 2);
    assert.equal(doc.spec.cloudInit.passwordHash, undefined);
    assert.equal(doc.status.phase, "Running");
    assert.equal(doc.status.conditions[0].type, "Ready");
    const yaml = await run(["get", "h5-web", ...e.cluster]);
    assert.equal(yaml.code, 0, yaml.err);
    assert.match(yaml.out, /phase: Running/);

    const listed = await run(["list", ...e.cluster]);
    assert.equal(listed.code, 0, listed.err);
    const lines = listed.out.trim().split("\n");
    assert.match(lines[0]!, /^NAME\s+PHASE\s+VCPUS\s+MEMORY\s+IP\s+AGE$/);
    assert.match(lines[1]!, /^h5-web\s+Running\s+2\s+1 GiB\s+192\.0\.2\.20 \(spec\)\s+\d+s$/);
    const none = await run(["list", ...e.cluster, "-l", "role=db"]);
    assert.equal(none.code, 0);
    assert.equal(none.out, "");
    assert.match(none.err, /No VMs found/);
    const json = await run(["list", ...e.cluster, "-l", "role in (web),owner=h5", "-o", "json"]);
    assert.deepEqual(JSON.parse(json.out).map((v: Any) => v.metadata.name), ["h5-web"]);

    // The same file again: unchanged, nothing written.
    const before = writes(e.server).length;
    const again = await e.create(file);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /unchanged/);
    assert.equal(writes(e.server).length, before);

    const gone = await run(["destroy", "h5-web", ...e.cluster]);
    assert.equal(gone.code, 0, gone.err);
    assert.match(gone.out, /deleted VirtualMachine\/h5-web/);
    assert.match(gone.out, /deleted Secret\/h5-web-userdata/);
    assert.equal(e.server.objects("virtualmachines", NS).length, 0);
    assert.equal(e.server.objects("virtualmachineinstances", NS).length, 0);
    assert.equal(e.server.objects("secrets", NS).length, 0);
    // NetworkAttachmentDefinitions are shared: destroy never removes one.
    assert.equal(e.server.objects("network-attachment-definitions", NS).length, 2);
    const missing = await run(["get", "h5-web", ...e.cluster]);
    assert.equal(missing.code, 4);
    assert.equal(missing.err.trim().split("\n").length, 1);
    const ignored = await run(["destroy", "h5-web", ...e.cluster, "--ignore-not-found"]);
    assert.equal(ignored.code, 0, ignored.err);
    assert.ok(!everything(e.server).includes(FAKE_PASSWORD_HASH.slice(0, 20)));
    // create and destroy are in the audit trail, which holds no secret either.
    const history = await run(["--audit-db", `${e.dir}/audit.db`, "history", "-o", "json"]);
    assert.equal(history.code, 0, history.err);
    const ops = JSON.parse(history.out).map((o: Any) =>
      `${o.operation} ${o.name ?? o.resourceName}`
    );
    assert.ok(ops.some((o: string) => o === "create h5-web"), history.out);
    assert.ok(ops.some((o: string) => o === "destroy h5-web"), history.out);
    for await (const f of Deno.readDir(e.dir)) {
      if (!f.name.startsWith("audit.db")) continue;
      const bytes = new TextDecoder("latin1").decode(await Deno.readFile(`${e.dir}/${f.name}`));
      assert.ok(!bytes.includes(FAKE_PASSWORD_HASH), f.name);
    }
  } finally {
    await e.close();
  }
});

Deno.test("--create-networks creates a bridge's NetworkAttachmentDefinition once for every VM", async () => {
  const e = await env();
  try {
    const file = await e.file(
      "two.yaml",
      `${vmYaml("h5-a", ["br0"])}---\n${
        vmYaml("h5-b", ["br0"]).replace("192.0.2.20", "192.0.2.30")
      }`,
    );
    const r = await e.create(file, "--create-networks");
    assert.equal(r.code, 0, r.err);
    assert.equal(e.server.objects("virtualmachines", NS).length, 2);
    assert.equal(e.server.objects("network-attachment-definitions", NS).length, 1);
    const nadPosts = e.server.requestsMatching("POST", /network-attachment-definitions$/);
    assert.equal(nadPosts.length, 1);
    const nad = e.server.objects("network-attachment-definitions", NS)[0]!;
    assert.deepEqual(JSON.parse(nad.spec.config), {
      cniVersion: "0.3.1",
      name: "br0",
      type: "bridge",
      bridge: "br0",
    });
    const d = await run(["destroy", ...e.cluster, "-l", "owner=h5"]);
    assert.equal(d.code, 0, d.err);
    assert.equal(e.server.objects("virtualmachines", NS).length, 0);
    assert.equal(e.server.objects("network-attachment-definitions", NS).length, 1);
  } finally {
    await e.close();
  }
});

Deno.test("a missing NetworkAttachmentDefinition without --create-networks is refused before anything is created", async () => {
  const e = await env();
  try {
    e.server.seed("network-attachment-definitions", networkSeed("br0"));
    const file = await e.file("h5-m.yaml", vmYaml("h5-m", ["br0", "br9"]));
    const r = await e.create(file);
    assert.equal(r.code, 2);
    assert.equal(r.err.trim().split("\n").length, 1);
    assert.match(r.err, /NetworkAttachmentDefinition h5-ns\/br9 not found.*--create-networks/);
    assert.deepEqual(writes(e.server), []);
  } finally {
    await e.close();
  }
});

function networkSeed(name: string) {
  return {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: { name, namespace: NS },
    spec: { config: JSON.stringify({ cniVersion: "0.3.1", name, type: "bridge", bridge: name }) },
  };
}

Deno.test("a create that fails half-way removes what it made and nothing else", async () => {
  let failVm = true;
  const e = await env((r) =>
    failVm && r.method === "POST" && r.resource === "virtualmachines"
      ? { status: 403, message: "h5: admission refused the VM" }
      : undefined
  );
  try {
    e.server.seed("network-attachment-definitions", networkSeed("br0")); // not this create's
    const file = await e.file("h5-f.yaml", vmYaml("h5-f", ["br0", "br1"]));
    const r = await e.create(file, "--create-networks");
    assert.equal(r.code, 4);
    assert.match(r.err, /h5: admission refused the VM/);
    assert.equal(r.err.trim().split("\n").length, 1);
    // It made the br1 network and the Secret, then the VM failed: both are gone; br0 stays.
    assert.ok(writes(e.server).some((w) => /POST .*secrets$/.test(w)));
    assert.ok(
      writes(e.server).some((w) => /DELETE .*network-attachment-definitions\/br1$/.test(w)),
    );
    assert.deepEqual(e.server.objects("secrets", NS), []);
    assert.deepEqual(e.server.objects("virtualmachines", NS), []);
    assert.deepEqual(
      e.server.objects("network-attachment-definitions", NS).map((n) => n.metadata.name),
      ["br0"],
    );
    failVm = false;
    const retry = await e.create(file, "--create-networks");
    assert.equal(retry.code, 0, retry.err);
  } finally {
    await e.close();
  }
});

Deno.test("--target kubevirt: bad input is exit 2 with file, line and field; no cluster is exit 3", async () => {
  const e = await env();
  try {
    const file = await e.file("h5-bad.yaml", vmYaml("h5-bad", ["Br_0"]));
    const bad = await e.create(file);
    assert.equal(bad.code, 2);
    const text = vmYaml("h5-bad", ["Br_0"]);
    const line = text.slice(0, text.indexOf("Br_0")).split("\n").length;
    const column = text.split("\n")[line - 1]!.indexOf("Br_0") + 1;
    assert.match(
      bad.err,
      new RegExp(
        `^Error: .*h5-bad\\.yaml:${line}:${column} spec\\.networkInterfaces\\[0\\]\\.bridge: `,
      ),
    );
    assert.equal(bad.err.trim().split("\n").length, 1);
    const noImage = await run([
      "create",
      await e.file("ok.yaml", vmYaml("h5-ok", ["br0"])),
      ...e.cluster,
    ]);
    assert.equal(noImage.code, 2);
    assert.match(noImage.err, /spec\.bootDisk\.image: no KubeVirt source/);
    // KubeVirt's options without that target never fall through to libvirt (a dry run that creates).
    for (const target of [[], ["--target", "libvirt"]]) {
      const r = await run(["create", file, ...target, "--dry-run", "--image-url", IMAGE]);
      assert.equal(r.code, 2);
      assert.match(r.err, /need --target kubevirt/);
    }
    const wrong = await run(["destroy", "h5-x", "-n", NS]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.err, /need --target kubevirt/);
    assert.deepEqual(writes(e.server), []);
    const port = (() => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const p = (l.addr as Deno.NetAddr).port;
      l.close();
      return p;
    })();
    const dead = await e.file(
      "dead.kubeconfig",
      (await Deno.readTextFile(e.kubeconfig)).replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`),
    );
    const gone = await run(["list", "--target", "kubevirt", "--kubeconfig", dead]);
    assert.equal(gone.code, 3, gone.err);
    assert.equal(gone.err.trim().split("\n").length, 1);
    const none = await run(["list", "--target", "kubevirt"]);
    assert.equal(none.code, 3);
    assert.match(none.err, /no cluster configuration found.*--kubeconfig/);
  } finally {
    await e.close();
  }
});

Deno.test("get and destroy --target kubevirt leave a VirtualMachine foundry did not make alone", async () => {
  const e = await env();
  try {
    e.server.seed("virtualmachines", {
      metadata: { name: "h5-foreign", namespace: NS, labels: { app: "other" } },
      spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
    });
    const got = await run(["get", "h5-foreign", ...e.cluster]);
    assert.equal(got.code, 4);
    assert.match(got.err, /was not created by foundry/);
    const d = await run(["destroy", "h5-foreign", ...e.cluster]);
    assert.equal(d.code, 4);
    assert.match(d.err, /was not created by foundry; it is left alone/);
    assert.equal(e.server.objects("virtualmachines", NS).length, 1);
    assert.deepEqual(writes(e.server), []);
    const listed = await run(["list", ...e.cluster, "-o", "json"]);
    assert.deepEqual(JSON.parse(listed.out), []);
  } finally {
    await e.close();
  }
});

Deno.test("no password hash in any output of these tests", () => {
  const all = printed.join("\n");
  assert.ok(all.length > 0);
  assert.ok(!all.includes(FAKE_PASSWORD_HASH));
  assert.ok(!all.includes(btoa(FAKE_PASSWORD_HASH).slice(0, 24)));
});

/**
 * `deno run` from a URL: the repository served over HTTP on 127.0.0.1 (TypeScript as
 * application/typescript), run from a directory without our deno.json, as a user would.
 */
import assert from "node:assert/strict";
import denoConfig from "../../deno.json" with { type: "json" };
import { bundleAll } from "../../tasks/bundle.ts";

const root = new URL("../../", import.meta.url).pathname;
const TYPES: Record<string, string> = {
  ts: "application/typescript; charset=utf-8",
  js: "application/javascript; charset=utf-8",
  json: "application/json",
  yaml: "text/yaml",
};

function serveRepo(dir = root) {
  const ac = new AbortController();
  const served: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      if (path.includes("..")) return new Response("bad path", { status: 400 });
      try {
        const body = await Deno.readFile(`${dir}${path.slice(1)}`);
        served.push(path);
        const ext = path.split(".").pop() ?? "";
        return new Response(body, {
          headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    served,
    async close() {
      ac.abort();
      await server.finished;
    },
  };
}

async function runFromUrl(base: string, script: string, args: string[]) {
  const cwd = await Deno.makeTempDir({ prefix: "foundry-url-" });
  try {
    const host = new URL(base).host;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-import=${host}`,
        "--allow-read",
        "--allow-write=.",
        "--allow-env",
        "--allow-net",
        "--allow-sys",
        `${base}/${script}`,
        ...args,
      ],
      cwd,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    return {
      code: out.code,
      out: new TextDecoder().decode(out.stdout),
      err: new TextDecoder().decode(out.stderr),
    };
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

Deno.test("foundry --version runs from a URL", async () => {
  const srv = serveRepo();
  try {
    const r = await runFromUrl(srv.base, "cli/foundry.ts", ["--version"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), denoConfig.version);
    assert.ok(srv.served.includes("/cli/foundry.ts"));
    assert.ok(srv.served.includes("/deno.json"), "the version is read from deno.json over HTTP");
  } finally {
    await srv.close();
  }
});

Deno.test("virtwork run --dry-run runs from a URL and prints the objects", async () => {
  const srv = serveRepo();
  try {
    const r = await runFromUrl(srv.base, "cli/virtwork.ts", ["run", "--dry-run"]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /kind: Namespace/);
    assert.match(r.out, /kind: VirtualMachine/);
    assert.ok(srv.served.some((p) => p.startsWith("/lib/kubevirt/")));
  } finally {
    await srv.close();
  }
});

Deno.test("the bundles run from a URL: --version, list --help and run --dry-run", async () => {
  // Built afresh into a directory of its own, as a release would publish dist/bundle.
  const dir = await Deno.makeTempDir({ prefix: "foundry-bundle-url-" });
  const built = await bundleAll(`${dir}/`);
  assert.ok(built.ok, built.message);
  const srv = serveRepo(`${dir}/`);
  try {
    const v = await runFromUrl(srv.base, "foundry.js", ["--version"]);
    assert.equal(v.code, 0, v.err);
    assert.equal(v.out.trim(), denoConfig.version);
    // Chunks load on demand (tasks/bundle.ts loadChunksOnDemand): --version fetched nothing but
    // the front door, where Deno's graph used to pull in all of them, the Kubernetes client too.
    assert.deepEqual(srv.served, ["/foundry.js"]);
    // ...and the front door itself holds no command's code: a dynamic import added to
    // cli/foundry.ts other than the command tree's is inlined into it (yaml came in that way).
    for (const door of ["foundry.js", "virtwork.js"]) {
      const code = await Deno.readTextFile(`${dir}/${door}`);
      assert.ok(!code.includes("registry.npmjs.org"), `${door} bundles an npm package`);
      assert.ok(code.length < 32 * 1024, `${door} is ${code.length} bytes`);
    }
    const help = await runFromUrl(srv.base, "foundry.js", ["list", "--help"]);
    assert.equal(help.code, 0, help.err);
    assert.match(help.out, /Usage: foundry list/);
    const dry = await runFromUrl(srv.base, "virtwork.js", ["run", "--dry-run"]);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /kind: VirtualMachine/);
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(`${dir}.lock`).catch(() => {});
  }
});

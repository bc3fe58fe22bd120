#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env --allow-run=/usr/bin/python3,go
/**
 * `deno task bench:rpc`: RPC figures of our libvirt client against the local daemon, next to the
 * reference clients measured in the same run on the same domains: libvirt-python (the C library)
 * and digitalocean/go-libvirt, each when installed (Debian: python3-libvirt; golang-go and
 * golang-github-digitalocean-go-libvirt-dev). Prints one JSON line per client.
 *
 * It makes sure 300 inactive throwaway domains exist and removes the ones it added.
 * @module
 */
import { DomainStatsType, Libvirt, ListDomainsFlags } from "../lib/libvirt/mod.ts";
import { listVms } from "../lib/foundry/inventory.ts";

const TARGET_DOMAINS = 300;
const RTT_CALLS = 2000;
const uri = Deno.args[0] ?? "qemu:///system";
const STATS = DomainStatsType.STATE | DomainStatsType.VCPU | DomainStatsType.BALLOON;

const domainXml = (name: string) =>
  `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
  `<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><memballoon model='virtio'/></devices></domain>`;

async function ensureDomains(lv: Libvirt): Promise<string[]> {
  const inactive = await lv.listAllDomains(ListDomainsFlags.INACTIVE);
  const added: string[] = [];
  const existing = new Set((await lv.listAllDomains()).map((d) => d.name));
  let i = 0;
  const todo: string[] = [];
  while (inactive.length + todo.length < TARGET_DOMAINS) {
    const name = `bench-rpc-${String(i++).padStart(3, "0")}`;
    if (!existing.has(name)) todo.push(name);
  }
  for (let k = 0; k < todo.length; k += 16) {
    await Promise.all(
      todo.slice(k, k + 16).map(async (n) => {
        await lv.domainDefineXml(domainXml(n));
        added.push(n);
      }),
    );
  }
  return added;
}

async function mean(n: number, fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - t0) / n) * 1000;
}

async function benchOurs(): Promise<Record<string, unknown>> {
  // Warm up the JIT and the daemon's caches before timing anything.
  for (let i = 0; i < 3; i++) await (await Libvirt.connect(uri)).close();
  let connectUs = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const c = await Libvirt.connect(uri);
    connectUs += (performance.now() - t0) * 1000;
    await c.close();
  }
  const lv = await Libvirt.connect(uri);
  try {
    for (let i = 0; i < 500; i++) await lv.getLibVersion();
    const rtt = await mean(RTT_CALLS, () => lv.getLibVersion());
    const doms = await lv.listAllDomains();
    const list = await mean(50, () => lv.listAllDomains());
    const seq = await mean(5, async () => {
      for (const d of doms) await lv.domainGetInfo(d);
    });
    const par = await mean(5, async () => {
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < doms.length) await lv.domainGetInfo(doms[next++]!);
      }));
    });
    let records = 0;
    const bulk = await mean(50, async () => {
      records = (await lv.getAllDomainStats(STATS)).length;
    });
    return {
      client: "foundry-deno",
      connect_us: round(connectUs / 20),
      rtt_us: round(rtt),
      domains: doms.length,
      list_all_us: round(list),
      per_domain_info_us: round(seq),
      per_domain_info_16way_us: round(par),
      bulk_stats_us: round(bulk),
      bulk_stats_records: records,
    };
  } finally {
    await lv.close();
  }
}

const round = (n: number) => Math.round(n * 10) / 10;
const ROUNDS = 3;

/** Per field, the median of the rounds' numbers; other fields from the first round. */
function median(rows: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...rows[0], rounds: rows.length };
  for (const k of Object.keys(rows[0] ?? {})) {
    const nums = rows.map((r) => r[k]).filter((v): v is number => typeof v === "number")
      .sort((a, b) => a - b);
    if (nums.length === rows.length) out[k] = round(nums[Math.floor(nums.length / 2)]!);
  }
  return out;
}

async function runReference(cmd: string, args: string[], env: Record<string, string> = {}) {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      return {
        skipped: `${cmd} failed: ${new TextDecoder().decode(out.stderr).trim().slice(-300)}`,
      };
    }
    return JSON.parse(text.split("\n").at(-1)!);
  } catch (e) {
    return { skipped: `${cmd}: ${(e as Error).message}` };
  }
}

async function goBench(): Promise<Record<string, unknown>> {
  const src = "/usr/share/gocode/src/github.com/digitalocean/go-libvirt";
  try {
    Deno.statSync(src);
  } catch {
    return {
      client: "go-libvirt",
      skipped: "golang-github-digitalocean-go-libvirt-dev is not installed",
    };
  }
  const dir = await Deno.makeTempDir({ prefix: "bench-go-" });
  try {
    // `go run` builds and runs in one step, from go's own temporary directory: --allow-run=go
    // covers it, where a binary built here would need --allow-run for its random path.
    return {
      client: "go-libvirt",
      ...(await runReference(
        "go",
        ["run", new URL("./bench_ref/go_libvirt_bench.go", import.meta.url).pathname],
        { GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOCACHE: `${dir}/cache`, GOFLAGS: "" },
      )),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const admin = await Libvirt.connect(uri);
  const added = await ensureDomains(admin);
  try {
    console.error(
      `# ${TARGET_DOMAINS}+ inactive domains present (${added.length} added for this run)`,
    );
    // Three interleaved rounds per client, median of each figure: one busy moment on a shared
    // 2-core machine must not decide a comparison.
    const rounds: Record<string, Record<string, unknown>[]> = { ours: [], py: [], go: [] };
    for (let i = 0; i < ROUNDS; i++) {
      rounds.ours!.push(await benchOurs());
      rounds.py!.push({
        client: "libvirt-python",
        ...(await runReference("/usr/bin/python3", [
          new URL("./bench_ref/libvirt_python_bench.py", import.meta.url).pathname,
          uri,
        ])),
      });
      rounds.go!.push(await goBench());
    }
    for (const r of Object.values(rounds)) console.log(JSON.stringify(median(r)));
    // foundry list over every domain: what it costs in round trips and calls.
    const lv = await Libvirt.connect(uri);
    try {
      await listVms(lv, { all: true });
      const t0 = performance.now();
      const r = await listVms(lv, { all: true });
      console.log(JSON.stringify({
        client: "foundry list --all",
        domains: r.vms.length,
        round_trips: r.roundTrips,
        rpc_calls: r.rpcCalls,
        list_us: round((performance.now() - t0) * 1000),
      }));
    } finally {
      await lv.close();
    }
  } finally {
    for (let k = 0; k < added.length; k += 16) {
      await Promise.all(
        added.slice(k, k + 16).map(async (n) => {
          await admin.domainUndefine(await admin.domainLookupByName(n));
        }),
      );
    }
    console.error(`# removed the ${added.length} domains this run added`);
    await admin.close();
  }
}

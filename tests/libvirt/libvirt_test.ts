/** The libvirt client against the real libvirtd that .ci/run starts. */
import assert from "node:assert/strict";
import {
  ConnectionError,
  DomainEventType,
  DomainState,
  DomainStatsType,
  InterfaceAddressSource,
  Libvirt,
  LibvirtError,
  MetadataType,
  StoragePoolState,
  UndefineFlags,
  uuidToString,
} from "../../lib/libvirt/mod.ts";
import { Procedure } from "../../lib/libvirt/constants.ts";
import { libvirtTest, tempPool, tinyDomainXml, uniqueName } from "./_env.ts";
import { startHoldingProxy, startProxy } from "./proxy.ts";

async function withLibvirt(fn: (lv: Libvirt) => Promise<void>, uri?: string) {
  const lv = await Libvirt.connect(uri);
  try {
    await fn(lv);
  } finally {
    await lv.close();
  }
}

async function daemonVersion(): Promise<number> {
  const out = await new Deno.Command("libvirtd", { args: ["--version"] }).output();
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(new TextDecoder().decode(out.stdout));
  assert.ok(m, "libvirtd --version printed no version");
  return Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3]);
}

async function sha256(chunks: AsyncIterable<Uint8Array> | Uint8Array[]): Promise<string> {
  // Stream through node:crypto so 64 MiB never sits in memory twice.
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  for await (const c of chunks) h.update(c);
  return h.digest("hex");
}

libvirtTest("connects and reports the daemon's library version and hostname", async () => {
  await withLibvirt(async (lv) => {
    assert.equal(await lv.getLibVersion(), await daemonVersion());
    assert.equal(await lv.getHostname(), Deno.hostname());
    assert.ok((await lv.getVersion()) > 1_000_000, "QEMU version looks wrong");
    assert.match(await lv.getCapabilities(), /<capabilities>[\s\S]*<host>/);
    assert.match(await lv.getDomainCapabilities({ virtType: "qemu" }), /<domainCapabilities>/);
  });
});

libvirtTest("defines, looks up (name and UUID) and undefines a domain", async () => {
  await withLibvirt(async (lv) => {
    const name = uniqueName("ft-define");
    const d = await lv.domainDefineXml(tinyDomainXml(name));
    try {
      assert.equal(d.name, name);
      assert.equal(d.id, -1);
      const byName = await lv.domainLookupByName(name);
      assert.equal(uuidToString(byName.uuid), uuidToString(d.uuid));
      const byUuid = await lv.domainLookupByUuid(uuidToString(d.uuid));
      assert.equal(byUuid.name, name);
      assert.match(await lv.domainGetXmlDesc(d), new RegExp(`<name>${name}</name>`));
      const info = await lv.domainGetInfo(d);
      assert.equal(info.state, DomainState.SHUTOFF);
      assert.equal(info.maxMemKiB, 32 * 1024);
      assert.equal(info.vcpus, 1);
      assert.deepEqual(await lv.domainGetState(d), { state: DomainState.SHUTOFF, reason: 0 });
      await lv.domainSetAutostart(d, true);
      assert.equal(await lv.domainGetAutostart(d), true);
      await lv.domainSetAutostart(d, false);
      assert.equal(await lv.domainGetAutostart(d), false);
      assert.ok((await lv.listAllDomains()).some((x) => x.name === name));
    } finally {
      await lv.domainUndefine(d, UndefineFlags.NVRAM);
    }
    await assert.rejects(lv.domainLookupByName(name), (e: unknown) => {
      assert.ok(e instanceof LibvirtError);
      assert.equal(e.isNoDomain(), true);
      return true;
    });
  });
});

libvirtTest("metadata round-trips under our namespace and can be removed", async () => {
  await withLibvirt(async (lv) => {
    const d = await lv.domainDefineXml(tinyDomainXml(uniqueName("ft-meta")));
    const ns = "https://foundry.cofront.xyz/v1alpha1";
    try {
      await assert.rejects(
        lv.domainGetMetadata(d, MetadataType.ELEMENT, ns),
        (e: unknown) => e instanceof LibvirtError && e.isNoMetadata(),
      );
      const spec = `<vm><vcpus>2</vcpus><label key="a&amp;b">x &lt; y</label></vm>`;
      await lv.domainSetMetadata(d, MetadataType.ELEMENT, spec, "foundry", ns);
      const back = await lv.domainGetMetadata(d, MetadataType.ELEMENT, ns);
      assert.match(back, /<vcpus>2<\/vcpus>/);
      assert.match(back, /key="a&amp;b">x &lt; y</);
      assert.match(await lv.domainGetXmlDesc(d), /<foundry:vm xmlns:foundry="https:\/\/foundry/);
      await lv.domainSetMetadata(d, MetadataType.TITLE, "a title", null, null);
      assert.equal(await lv.domainGetMetadata(d, MetadataType.TITLE), "a title");
      await lv.domainSetMetadata(d, MetadataType.ELEMENT, null, null, ns);
      await assert.rejects(lv.domainGetMetadata(d, MetadataType.ELEMENT, ns), LibvirtError);
    } finally {
      await lv.domainUndefine(d);
    }
  });
});

libvirtTest("lifecycle events arrive for define, start, stop and undefine", async () => {
  await withLibvirt(async (lv) => {
    const name = uniqueName("ft-events");
    const events: number[] = [];
    let wake: (() => void) | null = null;
    const sub = await lv.onDomainLifecycle(null, (e) => {
      if (e.domain.name !== name) return;
      events.push(e.event);
      wake?.();
    });
    const waitFor = async (ev: number) => {
      const deadline = Date.now() + 30_000;
      while (!events.includes(ev) && Date.now() < deadline) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 500);
        });
      }
      assert.ok(events.includes(ev), `event ${ev} never came; got ${events}`);
    };
    const d = await lv.domainDefineXml(tinyDomainXml(name));
    try {
      await waitFor(DomainEventType.DEFINED);
      const running = await lv.domainCreate(d);
      assert.ok(running.id > 0, "a started domain has an ID");
      await waitFor(DomainEventType.STARTED);
      assert.equal((await lv.domainGetState(d)).state, DomainState.RUNNING);
      assert.deepEqual(await lv.domainInterfaceAddresses(d, InterfaceAddressSource.LEASE), []);
      await assert.rejects(lv.qemuAgentCommand(d, `{"execute":"guest-ping"}`, 1), LibvirtError);
      await lv.domainShutdown(d); // accepted; a guest without an OS ignores the ACPI request
      await lv.domainReboot(d);
      await lv.domainDestroy(d);
      await waitFor(DomainEventType.STOPPED);
    } finally {
      await lv.domainUndefine(d).catch(() => {});
    }
    await waitFor(DomainEventType.UNDEFINED);
    await sub.close();
  });
});

libvirtTest("a filtered lifecycle subscription only hears its own domain", async () => {
  await withLibvirt(async (lv) => {
    const a = await lv.domainDefineXml(tinyDomainXml(uniqueName("ft-evA")));
    const seen: string[] = [];
    const sub = await lv.onDomainLifecycle(a, (e) => seen.push(e.domain.name));
    const b = await lv.domainDefineXml(tinyDomainXml(uniqueName("ft-evB")));
    await lv.domainUndefine(b);
    await lv.domainUndefine(a);
    await lv.getLibVersion(); // events precede this reply on the socket
    await sub.close();
    assert.ok(seen.length >= 1 && seen.every((n) => n === a.name), `saw ${seen}`);
  });
});

libvirtTest(
  "bulk domain stats return state, vcpu and balloon for every domain in one call",
  async () => {
    await withLibvirt(async (lv) => {
      const names = [uniqueName("ft-stats"), uniqueName("ft-stats")];
      const doms = [];
      for (const n of names) doms.push(await lv.domainDefineXml(tinyDomainXml(n)));
      try {
        const recs = await lv.getAllDomainStats(
          DomainStatsType.STATE | DomainStatsType.VCPU | DomainStatsType.BALLOON,
        );
        for (const n of names) {
          const rec = recs.find((r) => r.domain.name === n);
          assert.ok(rec, `no stats record for ${n}`);
          const p = Object.fromEntries(rec.params.map((x) => [x.field, x.value]));
          assert.equal(p["state.state"], DomainState.SHUTOFF);
          assert.equal(p["vcpu.current"], 1);
          assert.equal(p["balloon.maximum"], 32768n);
        }
        const only = await lv.getAllDomainStats(DomainStatsType.STATE, 0, [doms[0]!]);
        assert.deepEqual(only.map((r) => r.domain.name), [names[0]]);
      } finally {
        for (const d of doms) await lv.domainUndefine(d);
      }
    });
  },
);

libvirtTest("pool and volume lifecycle: upload 64 MiB, download it, same SHA-256", async () => {
  await withLibvirt(async (lv) => {
    const tp = await tempPool(lv, uniqueName("ft-pool"));
    try {
      const info = await lv.storagePoolGetInfo(tp.pool);
      assert.equal(info.state, StoragePoolState.RUNNING);
      assert.ok(info.capacity > 0);
      assert.match(await lv.storagePoolGetXmlDesc(tp.pool), new RegExp(tp.dir));
      await lv.storagePoolSetAutostart(tp.pool, true);
      assert.equal(await lv.storagePoolGetAutostart(tp.pool), true);
      assert.equal((await lv.storagePoolLookupByName(tp.pool.name)).name, tp.pool.name);

      const size = 64 * 1024 * 1024;
      const v = await lv.storageVolCreateXml(
        tp.pool,
        `<volume><name>data.raw</name><capacity unit='bytes'>${size}</capacity>` +
          `<target><format type='raw'/></target></volume>`,
      );
      assert.equal(await lv.storageVolGetPath(v), `${tp.dir}/data.raw`);
      assert.equal((await lv.storageVolGetInfo(v)).capacity, size);

      // Pseudo-random content made chunk by chunk: never 64 MiB in memory.
      const block = new Uint8Array(1024 * 1024);
      const source = async function* () {
        for (let i = 0; i < 64; i++) {
          crypto.getRandomValues(block.subarray(0, 65536));
          for (let o = 65536; o < block.length; o += 65536) block.copyWithin(o, 0, 65536);
          block[0] = i;
          yield block;
        }
      };
      const { createHash } = await import("node:crypto");
      const sent = createHash("sha256");
      let progress = 0;
      await lv.storageVolUpload(
        v,
        (async function* () {
          for await (const b of source()) {
            sent.update(b);
            yield b;
          }
        })(),
        { onProgress: (n) => (progress = n) },
      );
      assert.equal(progress, size);
      const down = await sha256(lv.storageVolDownload(v));
      assert.equal(down, sent.digest("hex"));
      // The daemon's own view of the file agrees.
      assert.equal(await sha256([await Deno.readFile(`${tp.dir}/data.raw`)]), down);

      const part = [];
      for await (const c of lv.storageVolDownload(v, { offset: 1024 * 1024, length: 10 })) {
        part.push(...c);
      }
      assert.equal(part.length, 10);
      assert.equal(part[0], 1, "the second MiB starts with its block index");

      const clone = await lv.storageVolCreateXmlFrom(
        tp.pool,
        `<volume><name>clone.raw</name><capacity unit='bytes'>${size}</capacity>` +
          `<target><format type='raw'/></target></volume>`,
        v,
      );
      assert.equal(await sha256(lv.storageVolDownload(clone)), down);
      await lv.storageVolResize(clone, size * 2);
      assert.equal((await lv.storageVolGetInfo(clone)).capacity, size * 2);
      await lv.storageVolWipe(clone);
      await lv.storagePoolRefresh(tp.pool);
      const vols = (await lv.storagePoolListAllVolumes(tp.pool)).map((x) => x.name).sort();
      assert.deepEqual(vols, ["clone.raw", "data.raw"]);
      assert.equal((await lv.storageVolLookupByPath(`${tp.dir}/clone.raw`)).name, "clone.raw");
      await lv.storageVolDelete(clone);
      await assert.rejects(
        lv.storageVolLookupByName(tp.pool, "clone.raw"),
        (e: unknown) => e instanceof LibvirtError && e.isNoStorageVol(),
      );
    } finally {
      await tp.cleanup();
    }
    await assert.rejects(
      lv.storagePoolLookupByName(tp.pool.name),
      (e: unknown) => e instanceof LibvirtError && e.isNoStoragePool(),
    );
  });
});

libvirtTest(
  "an upload whose source fails aborts the stream and the connection stays usable",
  async () => {
    await withLibvirt(async (lv) => {
      const tp = await tempPool(lv, uniqueName("ft-abort"));
      try {
        const v = await lv.storageVolCreateXml(
          tp.pool,
          `<volume><name>a.raw</name><capacity unit='MiB'>8</capacity></volume>`,
        );
        const failing = async function* () {
          yield new Uint8Array(1024 * 1024);
          throw new Error("disk read failed");
        };
        await assert.rejects(lv.storageVolUpload(v, failing()), /disk read failed/);
        // Too much data for the volume: the daemon's error comes back through the stream.
        const tooMuch = async function* () {
          for (let i = 0; i < 12; i++) yield new Uint8Array(1024 * 1024);
        };
        await assert.rejects(
          lv.storageVolUpload(v, tooMuch(), { length: 4 * 1024 * 1024 }),
          (e: unknown) => {
            // The daemon's own complaint comes back through the stream, not a generic abort.
            assert.ok(e instanceof LibvirtError, `expected LibvirtError, got ${e}`);
            return true;
          },
        );
        assert.ok((await lv.getLibVersion()) > 0);
        let first = 0;
        for await (const c of lv.storageVolDownload(v)) {
          first = c.length;
          break; // aborting a download half-way
        }
        assert.ok(first > 0);
        assert.ok((await lv.getLibVersion()) > 0, "the connection survives an aborted download");
      } finally {
        await tp.cleanup();
      }
    });
  },
);

libvirtTest("200 concurrent calls on one connection all get their own replies", async () => {
  await withLibvirt(async (lv) => {
    const names = Array.from({ length: 20 }, () => uniqueName("ft-conc"));
    const doms = await Promise.all(names.map((n) => lv.domainDefineXml(tinyDomainXml(n))));
    try {
      const calls = Array.from({ length: 200 }, (_, i) => {
        const d = doms[i % doms.length]!;
        return i % 2 === 0
          ? lv.domainLookupByName(d.name).then((r) => r.name)
          : lv.domainGetXmlDesc(d).then((x) => /<name>([^<]+)<\/name>/.exec(x)![1]);
      });
      const got = await Promise.all(calls);
      got.forEach((n, i) => assert.equal(n, doms[i % doms.length]!.name));
      assert.equal(lv.rpc.pendingCalls, 0);
    } finally {
      await Promise.all(doms.map((d) => lv.domainUndefine(d)));
    }
  });
});

libvirtTest("the daemon's socket closed mid-call rejects every pending call at once", async () => {
  const proxy = await startProxy("unix");
  try {
    const lv = await Libvirt.connect(`qemu:///system?socket=${proxy.path}`, {
      callTimeoutMs: 60_000,
    });
    assert.ok((await lv.getLibVersion()) > 0);
    proxy.blackHole(); // replies stop coming: the calls below stay pending
    const calls = Array.from({ length: 10 }, () => lv.getHostname());
    // Settled from the start: if an assertion below fails, the cut in `finally` must not leave
    // ten rejections unhandled (they would hide the assertion behind an "uncaught error").
    const settled = Promise.allSettled(calls);
    // At least 10: connect's keepalive question is not awaited, and the daemon may answer it
    // after getLibVersion, so its reply can be the one the black hole swallows (an 11th call).
    for (const deadline = Date.now() + 60_000; lv.rpc.pendingCalls < 10;) {
      assert.ok(Date.now() < deadline, `only ${lv.rpc.pendingCalls} of 10 calls pending`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const started = performance.now();
    proxy.cutAll();
    const results = await settled;
    const waited = performance.now() - started;
    assert.equal(lv.rpc.pendingCalls, 0);
    // A call left to its 60 s timeout would reject with a CallTimeoutError instead.
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.ok((r as PromiseRejectedResult).reason instanceof ConnectionError);
    }
    console.log(`pending calls rejected ${waited.toFixed(1)} ms after the cut (timeout 60000 ms)`);
    await lv.close();
  } finally {
    await proxy.close();
  }
});

libvirtTest("a hung daemon is detected by keepalive and pending calls reject", async () => {
  const proxy = await startProxy("unix");
  try {
    const lv = await Libvirt.connect(`qemu:///system?socket=${proxy.path}`, {
      callTimeoutMs: 120_000,
      keepaliveIntervalMs: 200,
      keepaliveCount: 3,
    });
    await lv.getLibVersion();
    proxy.blackHole();
    await assert.rejects(lv.getHostname(), (e: unknown) => {
      assert.ok(e instanceof ConnectionError);
      assert.match(e.message, /keepalive/);
      return true;
    });
    await lv.close();
  } finally {
    await proxy.close();
  }
});

libvirtTest(
  "a daemon silent before it says whether it speaks keepalive is caught too",
  async () => {
    // The keepalive question is not awaited at connect (a round trip saved on every command): a
    // daemon that answers nothing from then on, not even that question, must still be detected.
    const proxy = await startHoldingProxy((proc) =>
      proc === Procedure.CONNECT_SUPPORTS_FEATURE || proc === Procedure.CONNECT_GET_HOSTNAME
    );
    try {
      const lv = await Libvirt.connect(proxy.uri, {
        callTimeoutMs: 120_000,
        keepaliveIntervalMs: 200,
        keepaliveCount: 3,
      });
      // Left to the 120 s call timeout, this would be a CallTimeoutError instead.
      await assert.rejects(lv.getHostname(), (e: unknown) => {
        assert.ok(e instanceof ConnectionError, String(e));
        assert.match(e.message, /answered nothing .* keepalive/);
        return true;
      });
      await lv.close();
    } finally {
      await proxy.close();
    }
  },
);

libvirtTest("qemu+tcp:// reaches the daemon over TCP (through a loopback proxy)", async () => {
  const proxy = await startProxy("tcp");
  try {
    await withLibvirt(async (lv) => {
      assert.equal(lv.uri.transport, "tcp");
      assert.equal(await lv.getLibVersion(), await daemonVersion());
      assert.ok(proxy.bytesFromDaemon > 0);
    }, `qemu+tcp://127.0.0.1:${proxy.port}/system`);
  } finally {
    await proxy.close();
  }
});

libvirtTest("a missing socket fails fast with a ConnectionError that says what to do", async () => {
  await assert.rejects(
    Libvirt.connect("qemu:///system?socket=/nonexistent/libvirt-sock"),
    (e: unknown) => {
      assert.ok(e instanceof ConnectionError);
      assert.match(e.message, /\/nonexistent\/libvirt-sock.*libvirtd/);
      return true;
    },
  );
});

libvirtTest("networks and interfaces are listed and looked up", async () => {
  // A network of our own (defined, never started: no bridge, no traffic), so the list is known
  // not to be empty and to hold a name we chose.
  const own = uniqueName("ft-net");
  const dir = await Deno.makeTempDir({ prefix: "foundry-net-" });
  const virsh = (...args: string[]) =>
    new Deno.Command("virsh", { args: ["-q", "-c", "qemu:///system", ...args], stderr: "piped" })
      .output();
  await Deno.writeTextFile(`${dir}/net.xml`, `<network><name>${own}</name></network>`);
  const defined = await virsh("net-define", `${dir}/net.xml`);
  assert.ok(defined.success, new TextDecoder().decode(defined.stderr));
  try {
    await withLibvirt(async (lv) => {
      const nets = await lv.listAllNetworks();
      assert.ok(nets.some((n) => n.name === own), `${own} not in ${nets.map((n) => n.name)}`);
      for (const n of nets) {
        const again = await lv.networkLookupByName(n.name);
        assert.equal(uuidToString(again.uuid), uuidToString(n.uuid));
        assert.match(await lv.networkGetXmlDesc(n), new RegExp(`<name>${n.name}</name>`));
      }
      await assert.rejects(
        lv.networkLookupByName(uniqueName("nonet")),
        (e: unknown) => e instanceof LibvirtError && e.isNoNetwork(),
      );
      // Every host has a loopback interface (Debian's libvirtd lists host interfaces through
      // udev); each listed one looks up to itself.
      const ifaces = await lv.listAllInterfaces();
      assert.ok(ifaces.some((i) => i.name === "lo"), `no lo in ${ifaces.map((i) => i.name)}`);
      for (const i of ifaces) {
        assert.deepEqual(await lv.interfaceLookupByName(i.name), i);
        assert.match(await lv.interfaceGetXmlDesc(i), new RegExp(`name=['"]${i.name}['"]`));
      }
    });
  } finally {
    await virsh("net-undefine", own);
    await Deno.remove(dir, { recursive: true });
  }
});

libvirtTest(
  "close without waiting skips CONNECT_CLOSE and still ends the daemon's connection",
  async () => {
    // Through a proxy: its daemon side closes as soon as the client's socket ends, so no open socket
    // left means the daemon saw the end (virt-admin cannot tell this test's client from those of
    // test files running in parallel in the same process).
    for (const wait of [true, false]) {
      const proxy = await startProxy("unix");
      try {
        const lv = await Libvirt.connect(`qemu:///system?socket=${proxy.path}`);
        const procs: number[] = [];
        lv.rpc.onCall = (_prog, proc) => procs.push(proc);
        await lv.getLibVersion();
        assert.equal(proxy.openSockets, 2);
        await lv.close({ wait });
        assert.equal(procs.includes(Procedure.CONNECT_CLOSE), wait, `procedures sent: ${procs}`);
        for (const deadline = Date.now() + 10_000; proxy.openSockets > 0;) {
          assert.ok(
            Date.now() < deadline,
            `${proxy.openSockets} sockets still open (wait ${wait})`,
          );
          await new Promise((r) => setTimeout(r, 10));
        }
      } finally {
        await proxy.close();
      }
    }
  },
);

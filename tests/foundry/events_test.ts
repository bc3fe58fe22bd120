/**
 * The event stream without a daemon: our decoders of libvirt's event messages (golden bytes laid
 * out as remote_protocol.x says), the per-connection dispatch of callback IDs, the bounded queue
 * and what `watchEvents` does with a fake connection, and the CLI's event line.
 */
import assert from "node:assert/strict";
import { XdrReader, XdrWriter } from "../../lib/xdr/mod.ts";
import {
  decodeBlockJobEvent,
  decodeDeviceRemovedEvent,
  decodeDiskChangeEvent,
  decodeRebootEvent,
  ExtraEventProcedure,
  subscribeDomainEvent,
} from "../../lib/libvirt/events.ts";
import {
  agentVmEvent,
  blockJobVmEvent,
  EventQueue,
  lifecycleVmEvent,
  type VmEvent,
  watchEvents,
} from "../../lib/foundry/events.ts";
import {
  type DomainRef,
  ErrorCode,
  type Libvirt,
  LibvirtError,
  Procedure,
  Program,
} from "../../lib/libvirt/mod.ts";
import { VmNotFoundError } from "../../lib/foundry/vm_errors.ts";
import { eventLine, EVENTS_HEADER } from "../../cli/foundry/events.ts";

const DOM: DomainRef = { name: "web-01", uuid: new Uint8Array(16).fill(7), id: 3 };

function domainBytes(w: XdrWriter, d: DomainRef = DOM) {
  w.writeString(d.name);
  w.writeFixedOpaque(d.uuid, 16);
  w.writeInt(d.id);
}

Deno.test("decodeBlockJobEvent() reads dom, dst, type and status in that order", () => {
  const w = new XdrWriter();
  domainBytes(w);
  w.writeString("vdb").writeInt(3).writeInt(0);
  const r = new XdrReader(w.bytes());
  const e = decodeBlockJobEvent(r);
  r.assertDone();
  assert.equal(e.domain.name, "web-01");
  assert.equal(e.domain.id, 3);
  assert.deepEqual(e.domain.uuid, DOM.uuid);
  assert.equal(e.disk, "vdb");
  assert.equal(e.type, 3);
  assert.equal(e.status, 0);
  assert.equal(blockJobVmEvent(e, "T").event, "BlockJobCompleted");
  assert.equal(blockJobVmEvent(e, "T").detail, "vdb commit");
});

Deno.test("decodeDiskChangeEvent() reads optional paths, null or present", () => {
  const w = new XdrWriter();
  domainBytes(w);
  w.writeOptional(null, (w2, s: string) => w2.writeString(s));
  w.writeOptional("/new.iso", (w2, s: string) => w2.writeString(s));
  w.writeString("ua-cd0").writeInt(1);
  const r = new XdrReader(w.bytes());
  const e = decodeDiskChangeEvent(r);
  r.assertDone();
  assert.deepEqual(
    { old: e.oldSrcPath, new: e.newSrcPath, alias: e.devAlias, reason: e.reason },
    { old: null, new: "/new.iso", alias: "ua-cd0", reason: 1 },
  );
});

Deno.test("decodeRebootEvent() and decodeDeviceRemovedEvent() read exactly their fields", () => {
  const w = new XdrWriter();
  domainBytes(w);
  const r = new XdrReader(w.bytes());
  assert.equal(decodeRebootEvent(r).domain.name, "web-01");
  r.assertDone();
  const w2 = new XdrWriter();
  domainBytes(w2);
  w2.writeString("virtio-disk1");
  const r2 = new XdrReader(w2.bytes());
  assert.equal(decodeDeviceRemovedEvent(r2).devAlias, "virtio-disk1");
  r2.assertDone();
  // A truncated message is refused, not read past its end.
  assert.throws(() => decodeDeviceRemovedEvent(new XdrReader(w.bytes())));
});

Deno.test("lifecycle and agent records name the event and its detail", () => {
  assert.deepEqual(
    [lifecycleVmEvent({ domain: DOM, event: 5, detail: 0 }, "T")].map((e) => [e.event, e.detail]),
    [["Stopped", "Shutdown"]],
  );
  assert.equal(lifecycleVmEvent({ domain: DOM, event: 2, detail: 0 }).detail, "Booted");
  assert.equal(lifecycleVmEvent({ domain: DOM, event: 5, detail: 1 }).detail, "Destroyed");
  // Codes from a newer daemon are shown as numbers, not dropped.
  assert.equal(lifecycleVmEvent({ domain: DOM, event: 42, detail: 9 }).event, "Event42");
  assert.equal(agentVmEvent({ domain: DOM, state: 1, reason: 2 }).event, "AgentConnected");
  assert.equal(agentVmEvent({ domain: DOM, state: 2, reason: 2 }).detail, "channel event");
});

const ev = (n: number): VmEvent => ({
  time: `T${n}`,
  vm: "v",
  type: "reboot",
  event: "Rebooted",
  detail: String(n),
  data: {},
});

Deno.test("EventQueue drops the oldest when full and says how many first", async () => {
  const q = new EventQueue(2);
  for (let i = 1; i <= 5; i++) q.push(ev(i));
  assert.equal(q.dropped, 3);
  const first = await q.next();
  assert.equal(first?.event, "EventsDropped");
  assert.equal(first?.data.count, 3);
  assert.equal((await q.next())?.detail, "4");
  assert.equal((await q.next())?.detail, "5");
  q.close();
  assert.equal(await q.next(), undefined);
  assert.throws(() => new EventQueue(0), RangeError);
});

Deno.test("EventQueue wakes a waiting reader, and an error close reaches it after the queue", async () => {
  const q = new EventQueue(4);
  const waiting = q.next();
  q.push(ev(1));
  assert.equal((await waiting)?.detail, "1");
  q.push(ev(2));
  q.close(new Error("gone"));
  q.push(ev(3)); // after close: ignored
  assert.equal((await q.next())?.detail, "2");
  await assert.rejects(() => q.next(), /gone/);
});

/** A connection stand-in with what the event code uses, recording calls. */
function fakeLibvirt() {
  const handlers = new Map<number, (p: Uint8Array) => void>();
  const calls: { proc: number; args: Uint8Array }[] = [];
  const closed = new Set<number>();
  let nextId = 10;
  const lifecycle: ((e: { domain: DomainRef; event: number; detail: number }) => void)[] = [];
  const closeListeners: ((e: Error) => void)[] = [];
  const sub = () => ({ close: () => Promise.resolve(void closed.add(-1)) });
  const lv = {
    rpc: {
      closed: false,
      onMessage(prog: number, proc: number, h: (p: Uint8Array) => void) {
        assert.equal(prog, Program.REMOTE);
        handlers.set(proc, h);
        return () => handlers.delete(proc);
      },
      onClose(fn: (e: Error) => void) {
        closeListeners.push(fn);
        return () => {};
      },
    },
    callRemote<T>(
      proc: number,
      enc: ((w: XdrWriter) => void) | undefined,
      dec: (r: XdrReader) => T,
    ): Promise<T> {
      const w = new XdrWriter();
      enc?.(w);
      calls.push({ proc, args: w.bytes() });
      if (proc === Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY) {
        closed.add(new XdrReader(w.bytes()).readInt());
        return Promise.resolve(undefined as T);
      }
      const reply = new XdrWriter().writeInt(nextId++);
      return Promise.resolve(dec(new XdrReader(reply.bytes())));
    },
    domainLookupByName(name: string) {
      if (name !== DOM.name) {
        return Promise.reject(
          new LibvirtError({
            code: ErrorCode.NO_DOMAIN,
            domain: 10,
            message: "no domain",
            level: 2,
          }),
        );
      }
      return Promise.resolve(DOM);
    },
    onDomainLifecycle(_d: DomainRef | null, l: (typeof lifecycle)[number]) {
      lifecycle.push(l);
      return Promise.resolve(sub());
    },
    onAgentLifecycle() {
      return Promise.resolve(sub());
    },
  };
  /** Sends an event message as the daemon would: callback ID, then the body. */
  const send = (proc: number, id: number, body: (w: XdrWriter) => void) => {
    const w = new XdrWriter().writeInt(id);
    body(w);
    handlers.get(proc)?.(w.bytes());
  };
  return {
    lv: lv as unknown as Libvirt,
    calls,
    closed,
    send,
    lifecycle,
    closeListeners,
  };
}

Deno.test("subscribeDomainEvent() registers by event ID and domain, and routes by callback ID", async () => {
  const f = fakeLibvirt();
  const a: string[] = [];
  const b: string[] = [];
  const s1 = await subscribeDomainEvent(f.lv, "reboot", DOM, (e) => a.push(e.domain.name));
  const s2 = await subscribeDomainEvent(f.lv, "reboot", null, (e) => b.push(e.domain.name));
  // REGISTER_ANY args: eventID 1 (reboot), then the optional domain (present, then absent).
  const reg = f.calls.filter((c) =>
    c.proc === Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY
  );
  const r1 = new XdrReader(reg[0]!.args);
  assert.equal(r1.readInt(), 1);
  assert.equal(r1.readOptional((r) => r.readString())!, "web-01");
  const r2 = new XdrReader(reg[1]!.args);
  assert.equal(r2.readInt(), 1);
  assert.equal(r2.readUint(), 0);
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT, 10, (w) => domainBytes(w));
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT, 11, (w) => domainBytes(w));
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT, 99, (w) => domainBytes(w)); // unknown
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT, 10, (w) => w.writeInt(1)); // garbled
  assert.deepEqual([a, b], [["web-01"], ["web-01"]]);
  await s1.close();
  await s1.close(); // once only
  assert.deepEqual([...f.closed], [10]);
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT, 10, (w) => domainBytes(w));
  assert.equal(a.length, 1);
  await s2.close();
});

Deno.test("watchEvents() streams every kind, bounds its queue and deregisters on abort", async () => {
  const f = fakeLibvirt();
  const stop = new AbortController();
  let ready!: () => void;
  const subscribed = new Promise<void>((r) => ready = r);
  const it = watchEvents(f.lv, {
    domain: "web-01",
    signal: stop.signal,
    maxQueue: 3,
    onReady: () => ready(),
  });
  const first = it.next();
  await subscribed;
  // Four of ours (reboot, block job, disk change, device removed) are registered on the daemon.
  const ids = f.calls.filter((c) => c.proc === Procedure.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY)
    .map((c) => new XdrReader(c.args).readInt());
  assert.deepEqual(ids, [1, 16, 9, 15]);
  f.lifecycle[0]!({ domain: DOM, event: 5, detail: 0 });
  assert.equal((await first).value?.event, "Stopped");
  // Five events while nobody reads: the queue of 3 keeps the newest three.
  f.send(ExtraEventProcedure.DOMAIN_EVENT_BLOCK_JOB_2, 11, (w) => {
    domainBytes(w);
    w.writeString("vda").writeInt(4).writeInt(3);
  });
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED, 13, (w) => {
    domainBytes(w);
    w.writeString("net1");
  });
  f.lifecycle[0]!({ domain: DOM, event: 2, detail: 0 });
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_REBOOT, 10, (w) => domainBytes(w));
  f.send(ExtraEventProcedure.DOMAIN_EVENT_CALLBACK_DISK_CHANGE, 12, (w) => {
    domainBytes(w);
    w.writeOptional("/a", (w2, s: string) => w2.writeString(s));
    w.writeOptional(null, (w2, s: string) => w2.writeString(s));
    w.writeString("virtio-disk1").writeInt(0);
  });
  const got: string[] = [];
  for (let i = 0; i < 4; i++) {
    const e = (await it.next()).value as VmEvent;
    got.push(`${e.type}:${e.event}:${e.detail}`);
  }
  assert.deepEqual(got, [
    "dropped:EventsDropped:2 events dropped: the reader fell behind",
    "lifecycle:Started:Booted",
    "reboot:Rebooted:",
    "disk-change:DiskChanged:virtio-disk1 /a -> (none) (missing on start)",
  ]);
  const pending = it.next();
  stop.abort();
  assert.equal((await pending).done, true);
  // Our four deregistered on the daemon, client.ts's two closed.
  assert.deepEqual([...f.closed].sort((x, y) => x - y), [-1, 10, 11, 12, 13]);
});

Deno.test("watchEvents() fails with VmNotFoundError for an unknown VM and ends with the connection", async () => {
  const f = fakeLibvirt();
  await assert.rejects(async () => {
    for await (const _ of watchEvents(f.lv, { domain: "nope" })) { /* none */ }
  }, VmNotFoundError);
  const g = fakeLibvirt();
  const it = watchEvents(g.lv);
  const next = it.next();
  await new Promise((r) => setTimeout(r, 10));
  for (const l of g.closeListeners) l(new Error("connection lost"));
  await assert.rejects(() => next, /connection lost/);
});

Deno.test("eventLine() prints TIME VM EVENT DETAIL without control characters", () => {
  const line = eventLine({ ...ev(1), time: "2026-01-02T03:04:05.678Z", vm: "web\x1b[31m-01" });
  assert.match(line, /^2026-01-02T03:04:05\.678Z\s+web.*-01\s+Rebooted\s+1\n$/);
  assert.ok(!line.includes("\x1b"));
  assert.match(EVENTS_HEADER, /^TIME\s+VM\s+EVENT\s+DETAIL\n$/);
});

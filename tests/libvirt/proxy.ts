/**
 * A test-owned proxy in front of libvirtd's socket: it can listen on a unix socket or TCP on
 * 127.0.0.1, black-hole traffic (a hung daemon) or cut every connection (a crashed one).
 */
import { SYSTEM_SOCKET } from "./_env.ts";

/** A running proxy. */
export interface Proxy {
  /** Unix socket path or TCP port clients connect to. */
  path: string;
  port: number;
  /** Bytes seen from the daemon so far. */
  bytesFromDaemon: number;
  /**
   * Sockets open now, both sides counted (a client and its daemon connection: 2). A side that ends
   * closes the other, so 0 means the daemon's end of every connection is closed too.
   */
  openSockets: number;
  /** Stop forwarding in both directions without closing (a hung daemon). */
  blackHole(): void;
  /** Close every proxied connection at once (a crashed daemon). */
  cutAll(): void;
  close(): Promise<void>;
}

/** Starts a proxy to the system socket, on a unix socket (default) or TCP port. */
export async function startProxy(kind: "unix" | "tcp" = "unix"): Promise<Proxy> {
  let listener: Deno.Listener;
  let path = "";
  if (kind === "unix") {
    const dir = await Deno.makeTempDir({ prefix: "foundry-proxy-" });
    path = `${dir}/libvirt-sock`;
    listener = Deno.listen({ transport: "unix", path });
  } else {
    listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  }
  const conns = new Set<Deno.Conn>();
  let holes = false;
  const state = { bytesFromDaemon: 0 };
  const pump = async (from: Deno.Conn, to: Deno.Conn, fromDaemon: boolean) => {
    const buf = new Uint8Array(256 * 1024);
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) break;
        if (fromDaemon) state.bytesFromDaemon += n;
        if (holes) continue;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* one side closed */ }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* already closed */ }
      conns.delete(c);
    }
  };
  const pumps: Promise<void>[] = [];
  const accepting = (async () => {
    try {
      for await (const client of listener) {
        const daemon = await Deno.connect({ transport: "unix", path: SYSTEM_SOCKET });
        conns.add(client);
        conns.add(daemon);
        pumps.push(pump(client, daemon, false), pump(daemon, client, true));
      }
    } catch { /* listener closed */ }
  })();
  const cutAll = () => {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    conns.clear();
  };
  return {
    path,
    port: kind === "tcp" ? (listener.addr as Deno.NetAddr).port : 0,
    get bytesFromDaemon() {
      return state.bytesFromDaemon;
    },
    get openSockets() {
      return conns.size;
    },
    blackHole() {
      holes = true;
    },
    cutAll,
    async close() {
      listener.close();
      cutAll();
      await accepting;
      await Promise.allSettled(pumps);
      if (path) {
        await Deno.remove(path.replace(/\/libvirt-sock$/, ""), { recursive: true }).catch(() => {});
      }
    },
  };
}

/** One frame a {@linkcode HoldingProxy} saw, with its header decoded. */
export interface SeenFrame {
  proc: number;
  type: number;
  serial: number;
  status: number;
}

/** A proxy that forwards every call to libvirtd but holds back the replies to chosen calls. */
export interface HoldingProxy {
  /** `qemu+unix` URI of the proxy's socket. */
  uri: string;
  /** Resolves once `count` replies are held: the daemon has done those calls. */
  untilHeld(count: number): Promise<void>;
  /** Resolves once the client has sent a call of `proc`. */
  untilCall(proc: number): Promise<void>;
  /** Sends the held replies on and stops holding. */
  release(): Promise<void>;
  close(): Promise<void>;
}

function header(bytes: Uint8Array): SeenFrame {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    proc: v.getInt32(12),
    type: v.getInt32(16),
    serial: v.getUint32(20),
    status: v.getInt32(24),
  };
}

/** Splits a byte stream into whole frames (4-byte big-endian length first). */
function framer(): (chunk: Uint8Array) => Uint8Array[] {
  let pending = new Uint8Array(0);
  return (chunk) => {
    const next = new Uint8Array(pending.length + chunk.length);
    next.set(pending);
    next.set(chunk, pending.length);
    pending = next;
    const out: Uint8Array[] = [];
    while (pending.length >= 4) {
      const len = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
      if (pending.length < len) break;
      out.push(pending.slice(0, len));
      pending = pending.slice(len);
    }
    return out;
  };
}

/**
 * Starts a proxy to the system socket that forwards every call (the daemon does it) but holds the
 * daemon's reply to each call for which `hold(proc)` is true until {@linkcode HoldingProxy.release}:
 * the client sees a call in flight whose work is already done. Other replies pass at once.
 */
export async function startHoldingProxy(hold: (proc: number) => boolean): Promise<HoldingProxy> {
  const dir = await Deno.makeTempDir({ prefix: "foundry-hproxy-" });
  const path = `${dir}/libvirt-sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const held: { to: Deno.Conn; bytes: Uint8Array }[] = [];
  const calls: number[] = [];
  let holding = true;
  let heldCount = 0;
  let waiters: (() => void)[] = [];
  const changed = () => {
    for (const w of waiters.splice(0)) w();
  };
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => waiters.push(r));
  };
  const writeAll = async (to: Deno.Conn, bytes: Uint8Array) => {
    let off = 0;
    while (off < bytes.length) off += await to.write(bytes.subarray(off));
  };
  const closeBoth = (a: Deno.Conn, b: Deno.Conn) => {
    for (const c of [a, b]) {
      try {
        c.close();
      } catch { /* already closed */ }
      conns.delete(c);
    }
  };
  const accepting = (async () => {
    try {
      for await (const client of listener) {
        const daemon = await Deno.connect({ transport: "unix", path: SYSTEM_SOCKET });
        conns.add(client);
        conns.add(daemon);
        const heldSerials = new Set<number>();
        const pipe = async (from: Deno.Conn, to: Deno.Conn, fromDaemon: boolean) => {
          const split = framer();
          const buf = new Uint8Array(256 * 1024);
          try {
            while (true) {
              const n = await from.read(buf);
              if (n === null) break;
              for (const bytes of split(buf.subarray(0, n))) {
                const f = header(bytes);
                if (!fromDaemon) {
                  // type 0: CALL
                  if (f.type === 0 && f.proc !== 0) {
                    calls.push(f.proc);
                    if (hold(f.proc)) heldSerials.add(f.serial);
                  }
                  await writeAll(to, bytes);
                  changed();
                  continue;
                }
                // type 1: REPLY
                if (holding && f.type === 1 && heldSerials.delete(f.serial)) {
                  held.push({ to, bytes });
                  heldCount++;
                  changed();
                  continue;
                }
                await writeAll(to, bytes);
              }
            }
          } catch { /* one side closed */ }
          closeBoth(from, to);
        };
        tasks.push(pipe(client, daemon, false), pipe(daemon, client, true));
      }
    } catch { /* listener closed */ }
  })();
  return {
    uri: `qemu+unix:///system?socket=${path}`,
    untilHeld: (count) => until(() => heldCount >= count),
    untilCall: (proc) => until(() => calls.includes(proc)),
    async release() {
      holding = false;
      for (const h of held.splice(0)) await writeAll(h.to, h.bytes).catch(() => {});
    },
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      conns.clear();
      waiters = [];
      await accepting;
      await Promise.allSettled(tasks);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

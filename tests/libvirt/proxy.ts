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

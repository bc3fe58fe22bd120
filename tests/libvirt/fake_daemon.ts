/**
 * A scriptable stand-in for libvirtd on 127.0.0.1, for faults the real daemon never produces
 * (malformed frames, unknown serials, silence). Everything the real daemon can do is tested
 * against the real daemon instead.
 */
import { decodeHeader } from "../../lib/libvirt/rpc.ts";

/** One frame the client sent. */
export interface ReceivedFrame {
  prog: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
  payload: Uint8Array;
}

/** Handler invoked for each frame; it may write raw bytes back. */
export type FrameHandler = (f: ReceivedFrame, conn: Deno.Conn) => void | Promise<void>;

/**
 * Starts a fake daemon on 127.0.0.1 (or on the unix socket `opts.path`); `handler` sees every
 * frame of every connection.
 */
export function startFakeDaemon(handler: FrameHandler, opts: { path?: string } = {}): {
  port: number;
  received: ReceivedFrame[];
  close(): Promise<void>;
} {
  const listener = opts.path
    ? Deno.listen({ transport: "unix", path: opts.path })
    : Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: ReceivedFrame[] = [];
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    const tasks: Promise<void>[] = [];
    try {
      for await (const conn of listener) {
        conns.add(conn);
        tasks.push(serve(conn).finally(() => conns.delete(conn)));
      }
    } catch { /* listener closed */ }
    await Promise.allSettled(tasks);
  })();
  async function serve(conn: Deno.Conn) {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(65536);
    try {
      while (true) {
        const n = await conn.read(chunk);
        if (n === null) return;
        const next = new Uint8Array(buf.length + n);
        next.set(buf);
        next.set(chunk.subarray(0, n), buf.length);
        buf = next;
        while (buf.length >= 4) {
          const len = new DataView(buf.buffer, buf.byteOffset).getUint32(0);
          if (buf.length < len) break;
          const h = decodeHeader(buf);
          const f = { ...h, payload: buf.slice(28, len) };
          received.push(f);
          buf = buf.slice(len);
          await handler(f, conn);
        }
      }
    } catch {
      /* connection closed by a test */
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }
  return {
    port: opts.path ? 0 : (listener.addr as Deno.NetAddr).port,
    received,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await serving;
    },
  };
}

/** Encodes a frame with an explicit header, for writing malformed and well-formed replies. */
export function rawFrame(
  h: { prog: number; proc: number; type: number; serial: number; status: number; vers?: number },
  payload: Uint8Array = new Uint8Array(),
  lengthOverride?: number,
): Uint8Array {
  const out = new Uint8Array(28 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, lengthOverride ?? out.length);
  v.setUint32(4, h.prog);
  v.setUint32(8, h.vers ?? 1);
  v.setUint32(12, h.proc);
  v.setUint32(16, h.type);
  v.setUint32(20, h.serial);
  v.setUint32(24, h.status);
  out.set(payload, 28);
  return out;
}

/** Writes all of `bytes`, ignoring a closed connection. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
  } catch { /* the client went away */ }
}

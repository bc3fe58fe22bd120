/// <reference lib="deno.worker" />
// Hashes image data off the main thread, so checksumming overlaps sending to libvirtd. Messages:
// {type:"init", algorithms} answered by {type:"ready"}, {type:"data", buf, len} (buf transferred, sent back with the ack),
// {type:"end"} answered by {type:"digest", digests}.
import { createHash, type Hash } from "node:crypto";

const hashes = new Map<string, Hash>();

self.onmessage = (e: MessageEvent) => {
  const m = e.data as
    | { type: "init"; algorithms: string[] }
    | { type: "data"; buf: ArrayBuffer; len: number }
    | { type: "end" };
  if (m.type === "init") {
    for (const a of m.algorithms) hashes.set(a, createHash(a));
    self.postMessage({ type: "ready" });
  } else if (m.type === "data") {
    const view = new Uint8Array(m.buf, 0, m.len);
    for (const h of hashes.values()) h.update(view);
    self.postMessage({ type: "ack", buf: m.buf }, [m.buf]);
  } else {
    const digests: Record<string, string> = {};
    for (const [a, h] of hashes) digests[a] = h.digest("hex");
    self.postMessage({ type: "digest", digests });
  }
};

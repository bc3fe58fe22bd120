import assert from "node:assert/strict";
import { XdrReader, XdrWriter } from "../xdr/mod.ts";
import type { Libvirt } from "./client.ts";
import {
  BlockResizeFlags,
  domainBlockResize,
  domainGetVcpusFlags,
  domainSetMemoryFlags,
  domainSetVcpusFlags,
  MemoryFlags,
  ResizeProcedure,
  VcpuFlags,
} from "./resize.ts";
import type { DomainRef } from "./wire.ts";

/** A Libvirt whose callRemote records the procedure, the encoded arguments and the options. */
function recorder(reply: Uint8Array = new Uint8Array()) {
  const calls: { proc: number; args: Uint8Array; mutates: boolean }[] = [];
  const lv = {
    callRemote<T>(
      proc: number,
      encode: ((w: XdrWriter) => void) | undefined,
      decode: (r: XdrReader) => T,
      opts?: { mutates?: boolean },
    ): Promise<T> {
      const w = new XdrWriter();
      encode?.(w);
      calls.push({ proc, args: w.bytes().slice(), mutates: opts?.mutates === true });
      return Promise.resolve(decode(new XdrReader(reply)));
    },
  } as unknown as Libvirt;
  return { lv, calls };
}

const dom: DomainRef = { name: "vm", uuid: new Uint8Array(16).fill(7), id: 3 };
/** remote_nonnull_domain of `dom`: "vm" padded to 4, 16 UUID bytes, id. */
const domBytes = [0, 0, 0, 2, 118, 109, 0, 0, ...new Array(16).fill(7), 0, 0, 0, 3];
const u32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const u64 = (n: bigint) => [...u32(Number(n >> 32n)), ...u32(Number(n & 0xffffffffn))];

Deno.test("resize procedures encode remote_protocol.x's argument layouts", async () => {
  const { lv, calls } = recorder();
  await domainSetVcpusFlags(lv, dom, 2, VcpuFlags.LIVE | VcpuFlags.CONFIG);
  await domainSetMemoryFlags(lv, dom, 1572864, MemoryFlags.CONFIG | MemoryFlags.MAXIMUM);
  await domainBlockResize(lv, dom, "vdb", 5n * 1024n ** 3n);
  assert.deepEqual(calls.map((c) => [c.proc, c.mutates]), [
    [ResizeProcedure.DOMAIN_SET_VCPUS_FLAGS, true],
    [ResizeProcedure.DOMAIN_SET_MEMORY_FLAGS, true],
    [ResizeProcedure.DOMAIN_BLOCK_RESIZE, true],
  ]);
  assert.deepEqual([...calls[0]!.args], [...domBytes, ...u32(2), ...u32(3)]);
  assert.deepEqual([...calls[1]!.args], [...domBytes, ...u64(1572864n), ...u32(6)]);
  assert.deepEqual(
    [...calls[2]!.args],
    [
      ...domBytes,
      0,
      0,
      0,
      3,
      118,
      100,
      98,
      0,
      ...u64(5n * 1024n ** 3n),
      ...u32(BlockResizeFlags.BYTES),
    ],
  );
  assert.deepEqual(
    [199, 200, 204, 251],
    [
      ResizeProcedure.DOMAIN_SET_VCPUS_FLAGS,
      ResizeProcedure.DOMAIN_GET_VCPUS_FLAGS,
      ResizeProcedure.DOMAIN_SET_MEMORY_FLAGS,
      ResizeProcedure.DOMAIN_BLOCK_RESIZE,
    ],
  );
});

Deno.test("domainGetVcpusFlags() reads remote_domain_get_vcpus_flags_ret's int", async () => {
  const { lv, calls } = recorder(new Uint8Array(u32(4)));
  assert.equal(await domainGetVcpusFlags(lv, dom, VcpuFlags.CONFIG | VcpuFlags.MAXIMUM), 4);
  assert.deepEqual([...calls[0]!.args], [...domBytes, ...u32(6)]);
  assert.equal(calls[0]!.mutates, false);
});

import { XdrError, type XdrReader, XdrReader as Reader, type XdrWriter } from "../xdr/mod.ts";
import { Limits, TypedParamType } from "./constants.ts";
import { LibvirtError } from "./errors.ts";

const STR = Limits.STRING_MAX;

/** A domain as the daemon names it on the wire (`remote_nonnull_domain`). */
export interface DomainRef {
  /** Domain name. */
  name: string;
  /** 16-byte UUID. */
  uuid: Uint8Array;
  /** Numeric ID while running, -1 otherwise. */
  id: number;
}

/** A storage pool reference (`remote_nonnull_storage_pool`). */
export interface StoragePoolRef {
  /** Pool name. */
  name: string;
  /** 16-byte UUID. */
  uuid: Uint8Array;
}

/** A storage volume reference (`remote_nonnull_storage_vol`). */
export interface StorageVolRef {
  /** Name of the pool holding the volume. */
  pool: string;
  /** Volume name. */
  name: string;
  /** Volume key (the path for dir pools). */
  key: string;
}

/** A virtual network reference (`remote_nonnull_network`). */
export interface NetworkRef {
  /** Network name. */
  name: string;
  /** 16-byte UUID. */
  uuid: Uint8Array;
}

/** A host interface reference (`remote_nonnull_interface`). */
export interface InterfaceRef {
  /** Interface name. */
  name: string;
  /** MAC address. */
  mac: string;
}

/** One typed parameter (`remote_typed_param`); 64-bit integers come as bigint. */
export interface TypedParam {
  /** Parameter name, e.g. `state.state` or `vcpu.current`. */
  field: string;
  /** Its value. */
  value: number | bigint | boolean | string;
}

/** Reads `remote_nonnull_string`. */
export const readStr = (r: XdrReader): string => r.readString(STR);
/** Writes `remote_nonnull_string`. */
export const writeStr = (w: XdrWriter, s: string): void => {
  w.writeString(s, STR);
};
/** Reads `remote_string` (optional). */
export const readOptStr = (r: XdrReader): string | null => r.readOptional(readStr);
/** Writes `remote_string` (optional). */
export const writeOptStr = (w: XdrWriter, s: string | null | undefined): void => {
  w.writeOptional(s, writeStr);
};

/** Reads `remote_nonnull_domain`. */
export function readDomain(r: XdrReader): DomainRef {
  return { name: readStr(r), uuid: r.readFixedOpaque(16).slice(), id: r.readInt() };
}
/** Writes `remote_nonnull_domain`. */
export function writeDomain(w: XdrWriter, d: DomainRef): void {
  writeStr(w, d.name);
  w.writeFixedOpaque(d.uuid, 16);
  w.writeInt(d.id);
}
/** Reads `remote_nonnull_storage_pool`. */
export function readPool(r: XdrReader): StoragePoolRef {
  return { name: readStr(r), uuid: r.readFixedOpaque(16).slice() };
}
/** Writes `remote_nonnull_storage_pool`. */
export function writePool(w: XdrWriter, p: StoragePoolRef): void {
  writeStr(w, p.name);
  w.writeFixedOpaque(p.uuid, 16);
}
/** Reads `remote_nonnull_storage_vol`. */
export function readVol(r: XdrReader): StorageVolRef {
  return { pool: readStr(r), name: readStr(r), key: readStr(r) };
}
/** Writes `remote_nonnull_storage_vol`. */
export function writeVol(w: XdrWriter, v: StorageVolRef): void {
  writeStr(w, v.pool);
  writeStr(w, v.name);
  writeStr(w, v.key);
}
/** Reads `remote_nonnull_network`. */
export function readNetwork(r: XdrReader): NetworkRef {
  return { name: readStr(r), uuid: r.readFixedOpaque(16).slice() };
}
/** Writes `remote_nonnull_network`. */
export function writeNetwork(w: XdrWriter, n: NetworkRef): void {
  writeStr(w, n.name);
  w.writeFixedOpaque(n.uuid, 16);
}
/** Reads `remote_nonnull_interface`. */
export function readInterface(r: XdrReader): InterfaceRef {
  return { name: readStr(r), mac: readStr(r) };
}

/** Reads `remote_typed_param`. A switch, not a table of closures: bulk stats decode thousands. */
export function readTypedParam(r: XdrReader): TypedParam {
  const field = r.readString(Limits.STRING_MAX);
  const at = r.offset;
  const type = r.readInt();
  switch (type) {
    case TypedParamType.INT:
      return { field, value: r.readInt() };
    case TypedParamType.UINT:
      return { field, value: r.readUint() };
    case TypedParamType.LLONG:
      return { field, value: r.readHyper() };
    case TypedParamType.ULLONG:
      return { field, value: r.readUhyper() };
    case TypedParamType.DOUBLE:
      return { field, value: r.readDouble() };
    case TypedParamType.BOOLEAN:
      return { field, value: r.readInt() !== 0 };
    case TypedParamType.STRING:
      return { field, value: readStr(r) };
    default:
      throw new XdrError("bad-union", at, `Expected a typed parameter type 1-7, found ${type}`);
  }
}

const HEX = "0123456789abcdef";

/**
 * Formats a 16-byte UUID as the usual 8-4-4-4-12 text. By hand, not with `toString(16)` per
 * byte: `list --all` formats one per domain, and that was 2 ms of a 300-domain listing.
 */
export function uuidToString(uuid: Uint8Array): string {
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    const b = uuid[i] ?? 0;
    s += HEX[b >> 4]! + HEX[b & 15]!;
  }
  return s;
}

/** Parses UUID text (with or without dashes) into 16 bytes. */
export function uuidFromString(text: string): Uint8Array {
  const hex = text.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`Invalid UUID '${text}'`);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Decodes a `remote_error` payload into a {@linkcode LibvirtError}. */
export function decodeRemoteError(payload: Uint8Array): LibvirtError {
  const r = new Reader(payload);
  const code = r.readInt();
  const domain = r.readInt();
  const message = readOptStr(r) ?? "";
  const level = r.readInt();
  // The remaining fields (dom, str1-3, int1-2, net) add nothing the message does not say.
  return new LibvirtError({ code, domain, message, level });
}

// ---- resize (issue 14): argument writers of the resize procedures (lib/libvirt/resize.ts) ----

/** Writes `remote_domain_set_vcpus_flags_args`: domain, `nvcpus`, flags. */
export function writeSetVcpusFlagsArgs(
  w: XdrWriter,
  d: DomainRef,
  nvcpus: number,
  flags: number,
): void {
  writeDomain(w, d);
  w.writeUint(nvcpus);
  w.writeUint(flags);
}

/** Writes `remote_domain_set_memory_flags_args`: domain, memory in KiB (unsigned hyper), flags. */
export function writeSetMemoryFlagsArgs(
  w: XdrWriter,
  d: DomainRef,
  kib: bigint,
  flags: number,
): void {
  writeDomain(w, d);
  w.writeUhyper(kib);
  w.writeUint(flags);
}

/** Writes `remote_domain_block_resize_args`: domain, disk (target or path), size, flags. */
export function writeBlockResizeArgs(
  w: XdrWriter,
  d: DomainRef,
  disk: string,
  size: bigint,
  flags: number,
): void {
  writeDomain(w, d);
  writeStr(w, disk);
  w.writeUhyper(size);
  w.writeUint(flags);
}

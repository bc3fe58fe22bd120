/**
 * A libvirt client that speaks the daemon's own RPC protocol (no native library, no virsh):
 * unix, tcp and ssh transports, many calls in flight, lifecycle events, keepalive, streams.
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * console.log(await lv.getHostname());
 * await lv.close();
 * ```
 *
 * @module
 */
export { Libvirt } from "./client.ts";
export type {
  AgentLifecycleEvent,
  ConnectOptions,
  DomainInfo,
  DomainInterface,
  DomainLifecycleEvent,
  DomainStatsRecord,
  EventSubscription,
  StoragePoolInfo,
  StorageVolInfo,
} from "./client.ts";
export type { ConsoleOptions, DomainConsole } from "./console.ts";
export * from "./constants.ts";
export {
  CallTimeoutError,
  ConnectionError,
  InterruptedError,
  LibvirtError,
  ProtocolError,
} from "./errors.ts";
export type { LibvirtErrorFields } from "./errors.ts";
export { encodeFrame, RpcConnection, STREAM_CHUNK } from "./rpc.ts";
export type { ArgsEncoder, CallOptions, DuplexStream, RpcOptions } from "./rpc.ts";
export { dial, remoteProxyCommand } from "./transport.ts";
export type { DialOptions, Transport } from "./transport.ts";
export { DEFAULT_URI, parseUri, resolveUri } from "./uri.ts";
export type { LibvirtUri } from "./uri.ts";
export { uuidFromString, uuidToString } from "./wire.ts";
export type {
  DomainRef,
  InterfaceRef,
  NetworkRef,
  StoragePoolRef,
  StorageVolRef,
  TypedParam,
} from "./wire.ts";

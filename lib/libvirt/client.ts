import { XdrReader, type XdrWriter } from "../xdr/mod.ts";
import {
  AuthType,
  DomainEventId,
  DriverFeature,
  Limits,
  MetadataType,
  ModificationImpact,
  Procedure as P,
  Program,
  QemuProcedure,
} from "./constants.ts";
import { type ConsoleOptions, type DomainConsole, openDomainConsole } from "./console.ts";
import { ConnectionError, InterruptedError } from "./errors.ts";
import { type ArgsEncoder, type CallOptions, RpcConnection, type RpcOptions } from "./rpc.ts";
import { dial, type DialOptions, type Transport } from "./transport.ts";
import { type LibvirtUri, parseUri, resolveUri } from "./uri.ts";
import {
  type DomainRef,
  type InterfaceRef,
  type NetworkRef,
  readDomain,
  readInterface,
  readNetwork,
  readOptStr,
  readPool,
  readStr,
  readTypedParam,
  readVol,
  type StoragePoolRef,
  type StorageVolRef,
  type TypedParam,
  uuidFromString,
  writeDomain,
  writeNetwork,
  writeOptStr,
  writePool,
  writeStr,
  writeVol,
} from "./wire.ts";

/** Options for {@linkcode Libvirt.connect}. */
export interface ConnectOptions extends DialOptions, Omit<RpcOptions, "uri"> {
  /** Open read-only (the daemon's read-only socket semantics). */
  readOnly?: boolean;
  /** Use this transport instead of dialing the URI (tests, proxies). */
  transport?: Transport;
  /**
   * Ctrl-C: aborts connecting, and later every call and stream in flight when it fires (they
   * reject with {@linkcode InterruptedError}); calls made after it still go out, for a rollback.
   * Calls that change the daemon's state (define, create, delete, ...) are not dropped: they
   * settle with the daemon's answer, or after `settleMs` with `outcomeUnknown` set, so a rollback
   * knows what they made.
   */
  signal?: AbortSignal;
}

/** `virDomainInfo`. */
export interface DomainInfo {
  /** `DomainState` value. */
  state: number;
  /** Maximum memory in KiB. */
  maxMemKiB: number;
  /** Current memory in KiB. */
  memoryKiB: number;
  /** Number of virtual CPUs. */
  vcpus: number;
  /** CPU time used in nanoseconds. */
  cpuTimeNs: bigint;
}

/** `virStoragePoolInfo`. */
export interface StoragePoolInfo {
  /** `StoragePoolState` value. */
  state: number;
  /** Bytes. */
  capacity: number;
  /** Bytes. */
  allocation: number;
  /** Bytes. */
  available: number;
}

/** `virStorageVolInfo`. */
export interface StorageVolInfo {
  /** `StorageVolType` value. */
  type: number;
  /** Bytes. */
  capacity: number;
  /** Bytes. */
  allocation: number;
}

/** One record of {@linkcode Libvirt.getAllDomainStats}. */
export interface DomainStatsRecord {
  /** The domain. */
  domain: DomainRef;
  /** Its statistics, e.g. `state.state`, `vcpu.current`, `balloon.current`. */
  params: TypedParam[];
}

/** One guest interface with its addresses (`virDomainInterface`). */
export interface DomainInterface {
  /** Interface name (as the guest or the host sees it, depending on the source). */
  name: string;
  /** MAC address, when known. */
  hwaddr: string | null;
  /** Addresses: type 0 is IPv4, 1 is IPv6. */
  addrs: { type: number; addr: string; prefix: number }[];
}

/** A domain lifecycle event (`virDomainEventType` with its detail). */
export interface DomainLifecycleEvent {
  /** The domain it concerns. */
  domain: DomainRef;
  /** `DomainEventType` value. */
  event: number;
  /** Event-specific detail code. */
  detail: number;
}

/** The guest agent connected (state 1) or disconnected (state 2). */
export interface AgentLifecycleEvent {
  /** The domain it concerns. */
  domain: DomainRef;
  /** 1 connected, 2 disconnected. */
  state: number;
  /** 0 unknown, 1 domain started, 2 channel event. */
  reason: number;
}

/** A subscription to daemon events; `close()` deregisters it. */
export interface EventSubscription {
  /** Deregisters the callback on the daemon. */
  close(): Promise<void>;
}

/**
 * Procedures that change the daemon's state. An interrupt lets them settle (see
 * `CallOptions.mutates`): the daemon finishes them anyway, and a rollback must know what they made.
 */
/** `remote_procedure` numbers of DOMAIN_ATTACH_DEVICE_FLAGS and DOMAIN_DETACH_DEVICE_FLAGS. */
const DEVICE_PROC = { ATTACH: 160, DETACH: 161 } as const;
const MUTATING: ReadonlySet<number> = new Set([
  P.DOMAIN_DEFINE_XML_FLAGS,
  P.DOMAIN_UNDEFINE_FLAGS,
  P.DOMAIN_CREATE_WITH_FLAGS,
  P.DOMAIN_SHUTDOWN_FLAGS,
  P.DOMAIN_REBOOT,
  P.DOMAIN_DESTROY_FLAGS,
  P.DOMAIN_SET_METADATA,
  P.DOMAIN_SET_AUTOSTART,
  P.STORAGE_POOL_DEFINE_XML,
  P.STORAGE_POOL_BUILD,
  P.STORAGE_POOL_CREATE,
  P.STORAGE_POOL_DESTROY,
  P.STORAGE_POOL_DELETE,
  P.STORAGE_POOL_UNDEFINE,
  P.STORAGE_POOL_SET_AUTOSTART,
  P.STORAGE_VOL_CREATE_XML,
  P.STORAGE_VOL_CREATE_XML_FROM,
  P.STORAGE_VOL_DELETE,
  P.STORAGE_VOL_RESIZE,
  P.STORAGE_VOL_WIPE,
  DEVICE_PROC.ATTACH,
  DEVICE_PROC.DETACH,
]);
const MUTATES: CallOptions = { mutates: true };

const encodeNone: ArgsEncoder | undefined = undefined;
const dom = (d: DomainRef): ArgsEncoder => (w) => writeDomain(w, d);
const domFlags = (d: DomainRef, flags: number): ArgsEncoder => (w) => {
  writeDomain(w, d);
  w.writeUint(flags);
};
const pool = (p: StoragePoolRef): ArgsEncoder => (w) => writePool(w, p);
const poolFlags = (p: StoragePoolRef, flags: number): ArgsEncoder => (w) => {
  writePool(w, p);
  w.writeUint(flags);
};
const vol = (v: StorageVolRef): ArgsEncoder => (w) => writeVol(w, v);
const volFlags = (v: StorageVolRef, flags: number): ArgsEncoder => (w) => {
  writeVol(w, v);
  w.writeUint(flags);
};
const str = (s: string): ArgsEncoder => (w) => writeStr(w, s);
const strFlags = (s: string, flags: number): ArgsEncoder => (w) => {
  writeStr(w, s);
  w.writeUint(flags);
};

/**
 * A connection to a libvirt daemon over its own RPC protocol, with a typed method per procedure.
 *
 * @example
 * ```ts
 * import { Libvirt } from "./mod.ts";
 * const lv = await Libvirt.connect("qemu:///system");
 * try {
 *   console.log(await lv.getLibVersion());
 *   for (const d of await lv.listAllDomains()) console.log(d.name);
 * } finally {
 *   await lv.close();
 * }
 * ```
 */
export class Libvirt {
  /** The underlying RPC connection (for raw calls and close notifications). */
  readonly rpc: RpcConnection;
  /** The parsed URI this client connected to. */
  readonly uri: LibvirtUri;
  /** Per event procedure: callback ID -> decoder+listener. */
  #eventListeners = new Map<number, Map<number, (r: XdrReader) => void>>();
  readonly #signal: AbortSignal | undefined;
  #connectArgs: [string, ConnectOptions] | undefined;

  private constructor(rpc: RpcConnection, uri: LibvirtUri, signal?: AbortSignal) {
    this.rpc = rpc;
    this.uri = uri;
    this.#signal = signal;
  }

  /**
   * The interrupt signal given to {@linkcode Libvirt.connect}, if any: code that waits for events
   * rather than replies (a state change, an agent) stops waiting when it aborts.
   */
  get signal(): AbortSignal | undefined {
    return this.#signal;
  }

  /**
   * Connects and opens `uri` (default: `FOUNDRY_URI`, `LIBVIRT_DEFAULT_URI`, `qemu:///system`):
   * dials, negotiates authentication (none or polkit), sends CONNECT_OPEN and enables keepalive.
   * Throws {@linkcode ConnectionError} when the daemon cannot be reached or refuses.
   */
  static async connect(uri?: string, opts: ConnectOptions = {}): Promise<Libvirt> {
    const text = resolveUri(uri);
    const parsed = parseUri(text);
    const signal = opts.signal;
    if (signal?.aborted) throw InterruptedError.from(signal.reason);
    const transport = opts.transport ?? await dial(parsed, opts);
    const rpcOpts: RpcOptions = { uri: text };
    if (signal) rpcOpts.signal = signal;
    if (opts.callTimeoutMs !== undefined) rpcOpts.callTimeoutMs = opts.callTimeoutMs;
    if (opts.keepaliveIntervalMs !== undefined) {
      rpcOpts.keepaliveIntervalMs = opts.keepaliveIntervalMs;
    }
    if (opts.keepaliveCount !== undefined) rpcOpts.keepaliveCount = opts.keepaliveCount;
    if (opts.settleMs !== undefined) rpcOpts.settleMs = opts.settleMs;
    const rpc = new RpcConnection(transport, rpcOpts);
    const lv = new Libvirt(rpc, parsed, signal);
    lv.#connectArgs = [text, opts];
    try {
      if (signal?.aborted) throw InterruptedError.from(signal.reason);
      await lv.#handshake(opts.readOnly ?? false);
    } catch (err) {
      await rpc.close();
      if (err instanceof InterruptedError) throw err;
      if (signal?.aborted) throw InterruptedError.from(signal.reason);
      if (err instanceof ConnectionError) throw err;
      throw new ConnectionError(
        `Cannot open ${text}: ${(err as Error).message}`,
        text,
        { cause: err },
      );
    }
    return lv;
  }

  /**
   * AUTH_LIST, AUTH_POLKIT when the daemon asks for it, then CONNECT_OPEN, one after the other:
   * AUTH_LIST itself authenticates a root client of a polkit socket, so an open sent beside it
   * may be refused. The keepalive check is not awaited: its reply travels with the caller's first
   * call's.
   */
  async #handshake(readOnly: boolean): Promise<void> {
    const types = await this.#remote(
      P.AUTH_LIST,
      encodeNone,
      (r) => r.readArray(Limits.AUTH_TYPE_LIST_MAX, (x) => x.readInt()),
    );
    if (types.length > 0 && !types.includes(AuthType.NONE)) {
      if (types.includes(AuthType.POLKIT)) {
        await this.#remote(P.AUTH_POLKIT, encodeNone, (r) => r.readInt());
      } else {
        throw new ConnectionError(
          `The daemon asks for authentication types [${
            types.join(", ")
          }]; only none and polkit are supported`,
          this.uri.display,
        );
      }
    }
    await this.#remote(P.CONNECT_OPEN, (w) => {
      writeOptStr(w, this.uri.name);
      w.writeUint(readOnly ? 1 : 0);
    });
    // Not awaited (a round trip saved on every command), but watched: a daemon that stops
    // answering before it has said whether it speaks keepalive is caught all the same.
    this.rpc.watchKeepalive();
    this.supportsFeature(DriverFeature.PROGRAM_KEEPALIVE).then(
      (yes) => yes ? this.rpc.startKeepalive() : this.rpc.stopKeepalive(),
      () => {/* the connection ended first; nothing to keep alive */},
    );
  }

  /**
   * Opens another connection to the same daemon, with the options this one was opened with. The
   * daemon works on at most `max_client_requests` (5 by default) calls of one connection at a
   * time, so hundreds of small calls finish sooner spread over a few connections.
   */
  connectAgain(): Promise<Libvirt> {
    if (!this.#connectArgs) {
      return Promise.reject(
        new ConnectionError("This client was not opened by connect", this.uri.display),
      );
    }
    const [uri, opts] = this.#connectArgs;
    if (opts.transport) {
      return Promise.reject(
        new ConnectionError("A client on a given transport cannot open another", this.uri.display),
      );
    }
    return Libvirt.connect(uri, opts);
  }

  /**
   * Sends CONNECT_CLOSE (best effort) and closes the socket; pending calls reject. With `wait`
   * false the socket closes at once, without the CONNECT_CLOSE round trip: the daemon treats the
   * end of the socket as the client's goodbye (what a command about to exit wants).
   */
  async close(opts: { wait?: boolean } = {}): Promise<void> {
    // After an interrupt the daemon may be the reason: do not wait on it to say goodbye.
    if (opts.wait !== false && !this.rpc.closed && !this.#signal?.aborted) {
      try {
        await this.#remote(P.CONNECT_CLOSE, encodeNone, undefined, { timeoutMs: 2_000 });
      } catch { /* closing anyway */ }
    }
    await this.rpc.close();
  }

  /** Makes a REMOTE program call and decodes its reply with `decode`. */
  async #remote<T = void>(
    proc: number,
    args?: ArgsEncoder,
    decode?: (r: XdrReader) => T,
    opts?: CallOptions,
  ): Promise<T> {
    const mutates = MUTATING.has(proc);
    const callOpts = mutates ? (opts ? { mutates, ...opts } : MUTATES) : opts;
    const payload = await this.rpc.call(Program.REMOTE, proc, args, callOpts);
    if (!decode) return undefined as T;
    const r = new XdrReader(payload);
    const v = decode(r);
    r.assertDone();
    return v;
  }

  /**
   * A raw call to the REMOTE program, for procedures without a typed wrapper.
   * @param encode writes the `*_args` struct; @param decode reads the `*_ret` struct
   */
  callRemote<T>(
    proc: number,
    encode: ((w: XdrWriter) => void) | undefined,
    decode: (r: XdrReader) => T,
    opts?: CallOptions,
  ): Promise<T> {
    return this.#remote(proc, encode, decode, opts);
  }

  // ---- connect ----

  /** libvirt library version of the daemon, e.g. 9000000 for 9.0.0. */
  getLibVersion(): Promise<number> {
    return this.#remote(P.CONNECT_GET_LIB_VERSION, encodeNone, (r) => r.readUhyperNumber());
  }
  /** Hypervisor version, e.g. 7002022 for QEMU 7.2.22. */
  getVersion(): Promise<number> {
    return this.#remote(P.CONNECT_GET_VERSION, encodeNone, (r) => r.readUhyperNumber());
  }
  /** The daemon host's name. */
  getHostname(): Promise<string> {
    return this.#remote(P.CONNECT_GET_HOSTNAME, encodeNone, readStr);
  }
  /** The capabilities XML of the host. */
  getCapabilities(): Promise<string> {
    return this.#remote(P.CONNECT_GET_CAPABILITIES, encodeNone, readStr);
  }
  /** The domain capabilities XML (firmware, CPU modes, devices) for an emulator/arch/machine/type. */
  getDomainCapabilities(
    q: { emulator?: string; arch?: string; machine?: string; virtType?: string } = {},
  ): Promise<string> {
    return this.#remote(P.CONNECT_GET_DOMAIN_CAPABILITIES, (w) => {
      writeOptStr(w, q.emulator);
      writeOptStr(w, q.arch);
      writeOptStr(w, q.machine);
      writeOptStr(w, q.virtType);
      w.writeUint(0);
    }, readStr);
  }
  /** Whether the driver supports a `DriverFeature`. */
  async supportsFeature(feature: number): Promise<boolean> {
    return (await this.#remote(
      P.CONNECT_SUPPORTS_FEATURE,
      (w) => w.writeInt(feature),
      (r) => r.readInt(),
    )) !== 0;
  }
  /** Every domain matching `ListDomainsFlags` (0: all), in one call. */
  listAllDomains(flags = 0): Promise<DomainRef[]> {
    return this.#remote(P.CONNECT_LIST_ALL_DOMAINS, (w) => {
      w.writeInt(1);
      w.writeUint(flags);
    }, (r) => {
      const list = r.readArray(Limits.DOMAIN_LIST_MAX, readDomain);
      r.readUint();
      return list;
    });
  }
  /** Every storage pool (flags: `virConnectListAllStoragePoolsFlags`, 0 for all). */
  listAllStoragePools(flags = 0): Promise<StoragePoolRef[]> {
    return this.#remote(P.CONNECT_LIST_ALL_STORAGE_POOLS, (w) => {
      w.writeInt(1);
      w.writeUint(flags);
    }, (r) => {
      const list = r.readArray(Limits.STORAGE_POOL_LIST_MAX, readPool);
      r.readUint();
      return list;
    });
  }
  /** Every virtual network (flags: `virConnectListAllNetworksFlags`, 0 for all). */
  listAllNetworks(flags = 0): Promise<NetworkRef[]> {
    return this.#remote(P.CONNECT_LIST_ALL_NETWORKS, (w) => {
      w.writeInt(1);
      w.writeUint(flags);
    }, (r) => {
      const list = r.readArray(Limits.NETWORK_LIST_MAX, readNetwork);
      r.readUint();
      return list;
    });
  }
  /** Every host interface the interface driver knows (flags: 1 inactive, 2 active, 0 all). */
  listAllInterfaces(flags = 0): Promise<InterfaceRef[]> {
    return this.#remote(P.CONNECT_LIST_ALL_INTERFACES, (w) => {
      w.writeInt(1);
      w.writeUint(flags);
    }, (r) => {
      const list = r.readArray(Limits.INTERFACE_LIST_MAX, readInterface);
      r.readUint();
      return list;
    });
  }
  /**
   * Statistics of many domains in one call (`virConnectGetAllDomainStats`).
   * @param stats `DomainStatsType` bits; @param flags `virConnectGetAllDomainStatsFlags`
   * @param domains limit to these domains (empty: all that match `flags`)
   */
  getAllDomainStats(
    stats: number,
    flags = 0,
    domains: readonly DomainRef[] = [],
  ): Promise<DomainStatsRecord[]> {
    return this.#remote(P.CONNECT_GET_ALL_DOMAIN_STATS, (w) => {
      w.writeArray(domains, Limits.DOMAIN_LIST_MAX, writeDomain);
      w.writeUint(stats);
      w.writeUint(flags >>> 0);
    }, (r) =>
      r.readArray(Limits.GET_ALL_DOMAIN_STATS_MAX, (x) => ({
        domain: readDomain(x),
        params: x.readArray(Limits.GET_ALL_DOMAIN_STATS_MAX, readTypedParam),
      })));
  }

  // ---- domain ----

  /** Defines (or redefines) a persistent domain from XML (`DefineFlags`). */
  domainDefineXml(xml: string, flags = 0): Promise<DomainRef> {
    return this.#remote(P.DOMAIN_DEFINE_XML_FLAGS, strFlags(xml, flags), readDomain);
  }
  /** Removes a domain's definition (`UndefineFlags`, e.g. NVRAM to delete its UEFI variables). */
  domainUndefine(d: DomainRef, flags = 0): Promise<void> {
    return this.#remote(P.DOMAIN_UNDEFINE_FLAGS, domFlags(d, flags));
  }
  /** Starts a defined domain; returns it with its new ID. */
  domainCreate(d: DomainRef, flags = 0): Promise<DomainRef> {
    return this.#remote(P.DOMAIN_CREATE_WITH_FLAGS, domFlags(d, flags), readDomain);
  }
  /** Asks the guest to shut down (`virDomainShutdownFlagValues`, 0 lets the driver choose). */
  domainShutdown(d: DomainRef, flags = 0): Promise<void> {
    return this.#remote(P.DOMAIN_SHUTDOWN_FLAGS, domFlags(d, flags));
  }
  /** Asks the guest to reboot (`virDomainRebootFlagValues`). */
  domainReboot(d: DomainRef, flags = 0): Promise<void> {
    return this.#remote(P.DOMAIN_REBOOT, domFlags(d, flags));
  }
  /** Powers the domain off at once (flags: 1 graceful). */
  domainDestroy(d: DomainRef, flags = 0): Promise<void> {
    return this.#remote(P.DOMAIN_DESTROY_FLAGS, domFlags(d, flags));
  }
  /** State, memory, vCPUs and CPU time. */
  domainGetInfo(d: DomainRef): Promise<DomainInfo> {
    return this.#remote(P.DOMAIN_GET_INFO, dom(d), (r) => ({
      state: r.readUint(),
      maxMemKiB: r.readUhyperNumber(),
      memoryKiB: r.readUhyperNumber(),
      vcpus: r.readUint(),
      cpuTimeNs: r.readUhyper(),
    }));
  }
  /** `DomainState` and its reason. */
  domainGetState(d: DomainRef): Promise<{ state: number; reason: number }> {
    return this.#remote(
      P.DOMAIN_GET_STATE,
      domFlags(d, 0),
      (r) => ({ state: r.readInt(), reason: r.readInt() }),
    );
  }
  /** The domain XML (`DomainXmlFlags`, e.g. INACTIVE for the persistent definition). */
  domainGetXmlDesc(d: DomainRef, flags = 0): Promise<string> {
    return this.#remote(P.DOMAIN_GET_XML_DESC, domFlags(d, flags), readStr);
  }
  /**
   * Sets (or with `metadata` null, removes) metadata: an element under namespace `uri` with
   * prefix `key`, or the title/description (`MetadataType`).
   */
  domainSetMetadata(
    d: DomainRef,
    type: number,
    metadata: string | null,
    key: string | null,
    uri: string | null,
    flags: number = ModificationImpact.CONFIG,
  ): Promise<void> {
    return this.#remote(P.DOMAIN_SET_METADATA, (w) => {
      writeDomain(w, d);
      w.writeInt(type);
      writeOptStr(w, metadata);
      writeOptStr(w, key);
      writeOptStr(w, uri);
      w.writeUint(flags);
    });
  }
  /** Reads metadata set by {@linkcode Libvirt.domainSetMetadata}; the element type needs `uri`. */
  domainGetMetadata(
    d: DomainRef,
    type: number = MetadataType.ELEMENT,
    uri: string | null = null,
    flags: number = ModificationImpact.CURRENT,
  ): Promise<string> {
    return this.#remote(P.DOMAIN_GET_METADATA, (w) => {
      writeDomain(w, d);
      w.writeInt(type);
      writeOptStr(w, uri);
      w.writeUint(flags);
    }, readStr);
  }
  /**
   * `virDomainAttachDeviceFlags`: adds a device (`<disk>`, `<interface>` XML) to the running domain
   * and/or its persistent definition (`ModificationImpact` LIVE, CONFIG).
   */
  domainAttachDevice(d: DomainRef, xml: string, flags: number): Promise<void> {
    return this.#remote(DEVICE_PROC.ATTACH, (w) => {
      writeDomain(w, d);
      writeStr(w, xml);
      w.writeUint(flags);
    });
  }
  /**
   * `virDomainDetachDeviceFlags`: removes the device `xml` names (an interface by its MAC, a disk
   * by its target). Live, the guest is asked to release it and it may go later.
   */
  domainDetachDevice(d: DomainRef, xml: string, flags: number): Promise<void> {
    return this.#remote(DEVICE_PROC.DETACH, (w) => {
      writeDomain(w, d);
      writeStr(w, xml);
      w.writeUint(flags);
    });
  }
  /** Whether the domain starts with the host. */
  async domainGetAutostart(d: DomainRef): Promise<boolean> {
    return (await this.#remote(P.DOMAIN_GET_AUTOSTART, dom(d), (r) => r.readInt())) !== 0;
  }
  /** Makes the domain start (or not) with the host. */
  domainSetAutostart(d: DomainRef, on: boolean): Promise<void> {
    return this.#remote(P.DOMAIN_SET_AUTOSTART, (w) => {
      writeDomain(w, d);
      w.writeInt(on ? 1 : 0);
    });
  }
  /** Looks a domain up by name; throws a `LibvirtError` with `isNoDomain()` when absent. */
  domainLookupByName(name: string): Promise<DomainRef> {
    return this.#remote(P.DOMAIN_LOOKUP_BY_NAME, str(name), readDomain);
  }
  /** Looks a domain up by UUID (16 bytes or text). */
  domainLookupByUuid(uuid: Uint8Array | string): Promise<DomainRef> {
    const bytes = typeof uuid === "string" ? uuidFromString(uuid) : uuid;
    return this.#remote(P.DOMAIN_LOOKUP_BY_UUID, (w) => w.writeFixedOpaque(bytes, 16), readDomain);
  }
  /** Guest interfaces with addresses, from DHCP leases, the guest agent or ARP (`InterfaceAddressSource`). */
  domainInterfaceAddresses(d: DomainRef, source: number): Promise<DomainInterface[]> {
    return this.#remote(P.DOMAIN_INTERFACE_ADDRESSES, (w) => {
      writeDomain(w, d);
      w.writeUint(source);
      w.writeUint(0);
    }, (r) =>
      r.readArray(Limits.DOMAIN_INTERFACE_MAX, (x) => ({
        name: readStr(x),
        hwaddr: readOptStr(x),
        addrs: x.readArray(Limits.DOMAIN_IP_ADDR_MAX, (y) => ({
          type: y.readInt(),
          addr: readStr(y),
          prefix: y.readUint(),
        })),
      })));
  }
  /**
   * Runs a QEMU guest agent command (JSON text) and returns the agent's JSON reply.
   * @param timeoutSec agent timeout: -2 blocks, -1 default, 0 no wait, >0 seconds
   * @param opts.signal aborts the call (it rejects with {@linkcode InterruptedError})
   */
  async qemuAgentCommand(
    d: DomainRef,
    command: string,
    timeoutSec = 5,
    flags = 0,
    opts: { signal?: AbortSignal } = {},
  ): Promise<string> {
    const callTimeout = timeoutSec > 0 ? timeoutSec * 1000 + 10_000 : undefined;
    const payload = await this.rpc.call(
      Program.QEMU,
      QemuProcedure.DOMAIN_AGENT_COMMAND,
      (w) => {
        writeDomain(w, d);
        writeStr(w, command);
        w.writeInt(timeoutSec);
        w.writeUint(flags);
      },
      {
        ...(callTimeout ? { timeoutMs: callTimeout } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
    );
    const r = new XdrReader(payload);
    const out = readOptStr(r) ?? "";
    r.assertDone();
    return out;
  }

  // ---- events ----

  /**
   * Calls `listener` for every lifecycle event of `domain` (or of all domains when null).
   * Uses server-side callback registration, so each subscription only gets its own events.
   */
  onDomainLifecycle(
    domain: DomainRef | null,
    listener: (e: DomainLifecycleEvent) => void,
  ): Promise<EventSubscription> {
    return this.#subscribe(
      DomainEventId.LIFECYCLE,
      P.DOMAIN_EVENT_CALLBACK_LIFECYCLE,
      domain,
      (r) => ({ domain: readDomain(r), event: r.readInt(), detail: r.readInt() }),
      listener,
    );
  }

  /**
   * Calls `listener` when the guest agent of `domain` (or any domain) connects (state 1) or
   * disconnects (state 2): the moment to try `guest-ping`, with no polling before it.
   */
  onAgentLifecycle(
    domain: DomainRef | null,
    listener: (e: AgentLifecycleEvent) => void,
  ): Promise<EventSubscription> {
    return this.#subscribe(
      DomainEventId.AGENT_LIFECYCLE,
      P.DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE,
      domain,
      (r) => ({ domain: readDomain(r), state: r.readInt(), reason: r.readInt() }),
      listener,
    );
  }

  async #subscribe<E>(
    eventId: number,
    proc: number,
    domain: DomainRef | null,
    decode: (r: XdrReader) => E,
    listener: (e: E) => void,
  ): Promise<EventSubscription> {
    let listeners = this.#eventListeners.get(proc);
    if (!listeners) {
      const map = new Map<number, (r: XdrReader) => void>();
      listeners = map;
      this.#eventListeners.set(proc, map);
      this.rpc.onMessage(Program.REMOTE, proc, (payload) => {
        const r = new XdrReader(payload);
        const id = r.readInt();
        map.get(id)?.(r);
      });
    }
    const id = await this.#remote(P.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, (w) => {
      w.writeInt(eventId);
      w.writeOptional(domain, writeDomain);
    }, (r) => r.readInt());
    listeners.set(id, (r) => listener(decode(r)));
    const registered = listeners;
    return {
      close: async () => {
        if (!registered.delete(id) || this.rpc.closed) return;
        await this.#remote(P.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, (w) => w.writeInt(id));
      },
    };
  }

  // ---- storage pools ----

  /** Defines a persistent pool from XML. */
  storagePoolDefineXml(xml: string, flags = 0): Promise<StoragePoolRef> {
    return this.#remote(P.STORAGE_POOL_DEFINE_XML, strFlags(xml, flags), readPool);
  }
  /** Builds the pool's underlying storage (`PoolBuildFlags`), e.g. creates its directory. */
  storagePoolBuild(p: StoragePoolRef, flags = 0): Promise<void> {
    return this.#remote(P.STORAGE_POOL_BUILD, poolFlags(p, flags));
  }
  /** Starts (activates) a defined pool. */
  storagePoolCreate(p: StoragePoolRef, flags = 0): Promise<void> {
    return this.#remote(P.STORAGE_POOL_CREATE, poolFlags(p, flags));
  }
  /** Stops (deactivates) a pool; its data stays. */
  storagePoolDestroy(p: StoragePoolRef): Promise<void> {
    return this.#remote(P.STORAGE_POOL_DESTROY, pool(p));
  }
  /** Deletes the pool's underlying storage (e.g. its empty directory). */
  storagePoolDelete(p: StoragePoolRef, flags = 0): Promise<void> {
    return this.#remote(P.STORAGE_POOL_DELETE, poolFlags(p, flags));
  }
  /** Removes an inactive pool's definition. */
  storagePoolUndefine(p: StoragePoolRef): Promise<void> {
    return this.#remote(P.STORAGE_POOL_UNDEFINE, pool(p));
  }
  /** Looks a pool up by name; throws a `LibvirtError` with `isNoStoragePool()` when absent. */
  storagePoolLookupByName(name: string): Promise<StoragePoolRef> {
    return this.#remote(P.STORAGE_POOL_LOOKUP_BY_NAME, str(name), readPool);
  }
  /** State, capacity, allocation and available bytes. */
  storagePoolGetInfo(p: StoragePoolRef): Promise<StoragePoolInfo> {
    return this.#remote(P.STORAGE_POOL_GET_INFO, pool(p), (r) => ({
      state: r.readUint(),
      capacity: r.readUhyperNumber(),
      allocation: r.readUhyperNumber(),
      available: r.readUhyperNumber(),
    }));
  }
  /** Rescans the pool's volumes. */
  storagePoolRefresh(p: StoragePoolRef): Promise<void> {
    return this.#remote(P.STORAGE_POOL_REFRESH, poolFlags(p, 0));
  }
  /** Every volume of the pool. */
  storagePoolListAllVolumes(p: StoragePoolRef): Promise<StorageVolRef[]> {
    return this.#remote(P.STORAGE_POOL_LIST_ALL_VOLUMES, (w) => {
      writePool(w, p);
      w.writeInt(1);
      w.writeUint(0);
    }, (r) => {
      const list = r.readArray(Limits.STORAGE_VOL_LIST_MAX, readVol);
      r.readUint();
      return list;
    });
  }
  /** The pool's XML. */
  storagePoolGetXmlDesc(p: StoragePoolRef, flags = 0): Promise<string> {
    return this.#remote(P.STORAGE_POOL_GET_XML_DESC, poolFlags(p, flags), readStr);
  }
  /** Whether the pool starts with the host. */
  async storagePoolGetAutostart(p: StoragePoolRef): Promise<boolean> {
    return (await this.#remote(P.STORAGE_POOL_GET_AUTOSTART, pool(p), (r) => r.readInt())) !== 0;
  }
  /** Makes the pool start (or not) with the host. */
  storagePoolSetAutostart(p: StoragePoolRef, on: boolean): Promise<void> {
    return this.#remote(P.STORAGE_POOL_SET_AUTOSTART, (w) => {
      writePool(w, p);
      w.writeInt(on ? 1 : 0);
    });
  }

  // ---- storage volumes ----

  /** Creates a volume in `p` from XML (`VolCreateFlags`). */
  storageVolCreateXml(p: StoragePoolRef, xml: string, flags = 0): Promise<StorageVolRef> {
    return this.#remote(P.STORAGE_VOL_CREATE_XML, (w) => {
      writePool(w, p);
      writeStr(w, xml);
      w.writeUint(flags);
    }, readVol);
  }
  /** Creates a volume in `p` from XML, copying the data of `from`. */
  storageVolCreateXmlFrom(
    p: StoragePoolRef,
    xml: string,
    from: StorageVolRef,
    flags = 0,
  ): Promise<StorageVolRef> {
    return this.#remote(P.STORAGE_VOL_CREATE_XML_FROM, (w) => {
      writePool(w, p);
      writeStr(w, xml);
      writeVol(w, from);
      w.writeUint(flags);
    }, readVol);
  }
  /** Deletes a volume and its data. */
  storageVolDelete(v: StorageVolRef, flags = 0): Promise<void> {
    return this.#remote(P.STORAGE_VOL_DELETE, volFlags(v, flags));
  }
  /** Looks a volume up by name in `p`; throws a `LibvirtError` with `isNoStorageVol()` when absent. */
  storageVolLookupByName(p: StoragePoolRef, name: string): Promise<StorageVolRef> {
    return this.#remote(P.STORAGE_VOL_LOOKUP_BY_NAME, (w) => {
      writePool(w, p);
      writeStr(w, name);
    }, readVol);
  }
  /** Looks a volume up by its path on the host. */
  storageVolLookupByPath(path: string): Promise<StorageVolRef> {
    return this.#remote(P.STORAGE_VOL_LOOKUP_BY_PATH, str(path), readVol);
  }
  /** Type, capacity and allocation. */
  storageVolGetInfo(v: StorageVolRef): Promise<StorageVolInfo> {
    return this.#remote(P.STORAGE_VOL_GET_INFO, vol(v), (r) => ({
      type: r.readInt(),
      capacity: r.readUhyperNumber(),
      allocation: r.readUhyperNumber(),
    }));
  }
  /** The volume's XML (format, backing store, target path). */
  storageVolGetXmlDesc(v: StorageVolRef): Promise<string> {
    return this.#remote(P.STORAGE_VOL_GET_XML_DESC, volFlags(v, 0), readStr);
  }
  /** The volume's path on the host. */
  storageVolGetPath(v: StorageVolRef): Promise<string> {
    return this.#remote(P.STORAGE_VOL_GET_PATH, vol(v), readStr);
  }
  /** Changes a volume's capacity (`virStorageVolResizeFlags`). */
  storageVolResize(v: StorageVolRef, capacity: number | bigint, flags = 0): Promise<void> {
    return this.#remote(P.STORAGE_VOL_RESIZE, (w) => {
      writeVol(w, v);
      w.writeUhyper(capacity);
      w.writeUint(flags);
    });
  }
  /** Overwrites the volume's data with zeros. */
  storageVolWipe(v: StorageVolRef): Promise<void> {
    return this.#remote(P.STORAGE_VOL_WIPE, volFlags(v, 0));
  }
  /**
   * Streams `source` into the volume from `offset` (length 0: all of it). Memory stays flat:
   * each chunk is sent only after the previous one left. `onProgress` gets the bytes sent so far.
   */
  storageVolUpload(
    v: StorageVolRef,
    source: AsyncIterable<Uint8Array>,
    opts: { offset?: number; length?: number; onProgress?: (sent: number) => void } = {},
  ): Promise<void> {
    let sent = 0;
    const { onProgress } = opts;
    return this.rpc.upload(
      Program.REMOTE,
      P.STORAGE_VOL_UPLOAD,
      (w) => {
        writeVol(w, v);
        w.writeUhyper(opts.offset ?? 0);
        w.writeUhyper(opts.length ?? 0);
        w.writeUint(0);
      },
      source,
      onProgress ? (n) => onProgress(sent += n) : undefined,
    );
  }
  /** Streams the volume's data from `offset` (length 0: to the end), chunk by chunk. */
  storageVolDownload(
    v: StorageVolRef,
    opts: { offset?: number; length?: number } = {},
  ): AsyncGenerator<Uint8Array> {
    return this.rpc.download(Program.REMOTE, P.STORAGE_VOL_DOWNLOAD, (w) => {
      writeVol(w, v);
      w.writeUhyper(opts.offset ?? 0);
      w.writeUhyper(opts.length ?? 0);
      w.writeUint(0);
    });
  }

  // ---- consoles ----

  /**
   * Opens the domain's console (its first one, or `opts.device`): the guest's serial output as a
   * `ReadableStream`, and `write` for its input. Close it (or cancel the stream) to release it.
   *
   * @example
   * ```ts
   * import { Libvirt } from "./mod.ts";
   * const lv = await Libvirt.connect("qemu:///system");
   * const con = await lv.openConsole(await lv.domainLookupByName("web-01"), { force: true });
   * for await (const chunk of con.readable) console.log(new TextDecoder().decode(chunk));
   * ```
   * @throws {LibvirtError} no such domain or device, the domain is not running, or another
   *   client holds the console and `force` is not set (`isConsoleBusy()`)
   */
  openConsole(domain: DomainRef, opts: ConsoleOptions = {}): Promise<DomainConsole> {
    return openDomainConsole(this.rpc, domain, opts);
  }

  // ---- host interfaces ----

  /** Looks a host interface up by name (the interface driver's view of the host). */
  interfaceLookupByName(name: string): Promise<InterfaceRef> {
    return this.#remote(P.INTERFACE_LOOKUP_BY_NAME, str(name), readInterface);
  }
  /** The host interface's XML; `<interface type='bridge'>` for bridges. */
  interfaceGetXmlDesc(iface: InterfaceRef, flags = 0): Promise<string> {
    return this.#remote(P.INTERFACE_GET_XML_DESC, (w) => {
      writeStr(w, iface.name);
      writeStr(w, iface.mac);
      w.writeUint(flags);
    }, readStr);
  }

  // ---- networks ----

  /** Looks a virtual network up by name. */
  networkLookupByName(name: string): Promise<NetworkRef> {
    return this.#remote(P.NETWORK_LOOKUP_BY_NAME, str(name), readNetwork);
  }
  /** The network's XML. */
  networkGetXmlDesc(n: NetworkRef, flags = 0): Promise<string> {
    return this.#remote(P.NETWORK_GET_XML_DESC, (w) => {
      writeNetwork(w, n);
      w.writeUint(flags);
    }, readStr);
  }
}

/**
 * Numeric constants of libvirt's RPC protocol and public API, as they travel on the wire.
 * Source of truth: libvirt's `virnetprotocol.x`, `remote_protocol.x`, `qemu_protocol.x`,
 * `libvirt-domain.h`, `libvirt-storage.h` and `virterror.h`.
 * @module
 */

/** RPC programs multiplexed on one connection. */
export const Program = {
  REMOTE: 0x20008086,
  QEMU: 0x20008087,
  KEEPALIVE: 0x6b656570,
} as const;

/** Protocol version of every program we speak. */
export const PROTOCOL_VERSION = 1;

/** `virNetMessageType`. */
export const MessageType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
  STREAM_HOLE: 6,
} as const;

/** `virNetMessageStatus`. */
export const MessageStatus = {
  OK: 0,
  ERROR: 1,
  CONTINUE: 2,
} as const;

/** Sizes from `virnetprotocol.x`. The length word counts itself but not towards the maximum. */
export const Limits = {
  /** Largest message after the 4-byte length word (header + payload). */
  MESSAGE_MAX: 33554432,
  HEADER_SIZE: 24,
  LENGTH_SIZE: 4,
  /** Payload limit old daemons accept; stream chunks stay within it. */
  LEGACY_PAYLOAD_MAX: 262120,
  STRING_MAX: 4194304,
  DOMAIN_LIST_MAX: 16384,
  STORAGE_POOL_LIST_MAX: 16384,
  STORAGE_VOL_LIST_MAX: 16384,
  NETWORK_LIST_MAX: 16384,
  INTERFACE_LIST_MAX: 16384,
  AUTH_TYPE_LIST_MAX: 20,
  GET_ALL_DOMAIN_STATS_MAX: 262144,
  DOMAIN_INTERFACE_MAX: 2048,
  DOMAIN_IP_ADDR_MAX: 2048,
} as const;

/** `keepalive_procedure`. */
export const KeepaliveProcedure = {
  PING: 1,
  PONG: 2,
} as const;

/** `qemu_procedure`. */
export const QemuProcedure = {
  DOMAIN_AGENT_COMMAND: 3,
} as const;

/** `remote_procedure`: the procedures this client uses. */
export const Procedure = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  CONNECT_GET_VERSION: 4,
  CONNECT_GET_CAPABILITIES: 7,
  DOMAIN_CREATE: 9,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_GET_AUTOSTART: 15,
  DOMAIN_GET_INFO: 16,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  DOMAIN_REBOOT: 27,
  DOMAIN_SET_AUTOSTART: 29,
  DOMAIN_SHUTDOWN: 33,
  NETWORK_GET_XML_DESC: 43,
  NETWORK_LOOKUP_BY_NAME: 46,
  CONNECT_GET_HOSTNAME: 59,
  CONNECT_SUPPORTS_FEATURE: 60,
  AUTH_LIST: 66,
  AUTH_POLKIT: 70,
  STORAGE_POOL_DEFINE_XML: 77,
  STORAGE_POOL_CREATE: 78,
  STORAGE_POOL_BUILD: 79,
  STORAGE_POOL_DESTROY: 80,
  STORAGE_POOL_DELETE: 81,
  STORAGE_POOL_UNDEFINE: 82,
  STORAGE_POOL_REFRESH: 83,
  STORAGE_POOL_LOOKUP_BY_NAME: 84,
  STORAGE_POOL_GET_INFO: 87,
  STORAGE_POOL_GET_XML_DESC: 88,
  STORAGE_POOL_GET_AUTOSTART: 89,
  STORAGE_POOL_SET_AUTOSTART: 90,
  STORAGE_VOL_CREATE_XML: 93,
  STORAGE_VOL_DELETE: 94,
  STORAGE_VOL_LOOKUP_BY_NAME: 95,
  STORAGE_VOL_LOOKUP_BY_KEY: 96,
  STORAGE_VOL_LOOKUP_BY_PATH: 97,
  STORAGE_VOL_GET_INFO: 98,
  STORAGE_VOL_GET_XML_DESC: 99,
  STORAGE_VOL_GET_PATH: 100,
  STORAGE_VOL_CREATE_XML_FROM: 125,
  INTERFACE_LOOKUP_BY_NAME: 128,
  INTERFACE_GET_XML_DESC: 130,
  CONNECT_GET_LIB_VERSION: 157,
  STORAGE_VOL_WIPE: 165,
  DOMAIN_CREATE_WITH_FLAGS: 196,
  DOMAIN_OPEN_CONSOLE: 201,
  STORAGE_VOL_UPLOAD: 208,
  STORAGE_VOL_DOWNLOAD: 209,
  DOMAIN_GET_STATE: 212,
  DOMAIN_UNDEFINE_FLAGS: 231,
  DOMAIN_DESTROY_FLAGS: 234,
  DOMAIN_SHUTDOWN_FLAGS: 258,
  STORAGE_VOL_RESIZE: 260,
  DOMAIN_SET_METADATA: 264,
  DOMAIN_GET_METADATA: 265,
  CONNECT_LIST_ALL_DOMAINS: 273,
  CONNECT_LIST_ALL_STORAGE_POOLS: 281,
  STORAGE_POOL_LIST_ALL_VOLUMES: 282,
  CONNECT_LIST_ALL_NETWORKS: 283,
  CONNECT_LIST_ALL_INTERFACES: 284,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  CONNECT_GET_DOMAIN_CAPABILITIES: 342,
  CONNECT_GET_ALL_DOMAIN_STATS: 344,
  DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE: 348,
  DOMAIN_DEFINE_XML_FLAGS: 350,
  DOMAIN_INTERFACE_ADDRESSES: 353,
} as const;

/** `remote_auth_type`. */
export const AuthType = {
  NONE: 0,
  SASL: 1,
  POLKIT: 2,
} as const;

/** Driver features asked with CONNECT_SUPPORTS_FEATURE. */
export const DriverFeature = {
  TYPED_PARAM_STRING: 9,
  PROGRAM_KEEPALIVE: 10,
  REMOTE_EVENT_CALLBACK: 14,
} as const;

/** `virDomainConsoleFlags`. */
export const DomainConsoleFlags = {
  /** Take the console over from a client that holds it. */
  FORCE: 1,
  /** Open only where the driver keeps consoles mutually exclusive. */
  SAFE: 2,
} as const;

/** `virErrorNumber`: the codes callers branch on. */
export const ErrorCode = {
  OK: 0,
  INTERNAL_ERROR: 1,
  NO_MEMORY: 2,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_DOMAIN: 7,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  XML_DETAIL: 35,
  NETWORK_EXIST: 37,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  NO_NETWORK: 43,
  AUTH_FAILED: 45,
  INVALID_STORAGE_POOL: 46,
  INVALID_STORAGE_VOL: 47,
  NO_STORAGE_POOL: 49,
  NO_STORAGE_VOL: 50,
  OPERATION_INVALID: 55,
  NO_INTERFACE: 57,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  ARGUMENT_UNSUPPORTED: 74,
  STORAGE_POOL_BUILT: 76,
  OPERATION_ABORTED: 78,
  NO_DOMAIN_METADATA: 80,
  AGENT_UNRESPONSIVE: 86,
  RESOURCE_BUSY: 87,
  ACCESS_DENIED: 88,
  STORAGE_VOL_EXIST: 90,
  AUTH_UNAVAILABLE: 94,
} as const;

/** `virDomainState`. */
export const DomainState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;

/** `virDomainEventType` (lifecycle events). */
export const DomainEventType = {
  DEFINED: 0,
  UNDEFINED: 1,
  STARTED: 2,
  SUSPENDED: 3,
  RESUMED: 4,
  STOPPED: 5,
  SHUTDOWN: 6,
  PMSUSPENDED: 7,
  CRASHED: 8,
} as const;

/** `virDomainEventID`. */
export const DomainEventId = {
  LIFECYCLE: 0,
  AGENT_LIFECYCLE: 18,
} as const;

/** `virConnectListAllDomainsFlags` (subset). */
export const ListDomainsFlags = {
  ACTIVE: 1,
  INACTIVE: 2,
  PERSISTENT: 4,
  TRANSIENT: 8,
  RUNNING: 16,
  PAUSED: 32,
  SHUTOFF: 64,
  OTHER: 128,
} as const;

/** `virDomainStatsTypes`. */
export const DomainStatsType = {
  STATE: 1,
  CPU_TOTAL: 2,
  BALLOON: 4,
  VCPU: 8,
  INTERFACE: 16,
  BLOCK: 32,
  PERF: 64,
  IOTHREAD: 128,
  MEMORY: 256,
} as const;

/**
 * `virConnectGetAllDomainStatsFlags`: which domains {@linkcode DomainStatsType} records cover. The
 * domain filters are libvirt's list filters ({@linkcode ListDomainsFlags}) with the same values.
 */
export const DomainStatsFlags = {
  ...ListDomainsFlags,
  /** Skip domains whose statistics would need a job that is busy, instead of waiting. */
  NOWAIT: 1 << 29,
  BACKING: 1 << 30,
} as const;

/** `virDomainUndefineFlagsValues`. */
export const UndefineFlags = {
  MANAGED_SAVE: 1,
  SNAPSHOTS_METADATA: 2,
  NVRAM: 4,
  KEEP_NVRAM: 8,
  CHECKPOINTS_METADATA: 16,
} as const;

/** `virDomainXMLFlags`. */
export const DomainXmlFlags = {
  SECURE: 1,
  INACTIVE: 2,
  UPDATE_CPU: 4,
  MIGRATABLE: 8,
} as const;

/** `virDomainDefineFlags`. */
export const DefineFlags = {
  VALIDATE: 1,
} as const;

/** `virDomainMetadataType`. */
export const MetadataType = {
  DESCRIPTION: 0,
  TITLE: 1,
  ELEMENT: 2,
} as const;

/** `virDomainModificationImpact`. */
export const ModificationImpact = {
  CURRENT: 0,
  LIVE: 1,
  CONFIG: 2,
} as const;

/** `virDomainInterfaceAddressesSource`. */
export const InterfaceAddressSource = {
  LEASE: 0,
  AGENT: 1,
  ARP: 2,
} as const;

/** `virTypedParameterType`. */
export const TypedParamType = {
  INT: 1,
  UINT: 2,
  LLONG: 3,
  ULLONG: 4,
  DOUBLE: 5,
  BOOLEAN: 6,
  STRING: 7,
} as const;

/** `virStoragePoolState`. */
export const StoragePoolState = {
  INACTIVE: 0,
  BUILDING: 1,
  RUNNING: 2,
  DEGRADED: 3,
  INACCESSIBLE: 4,
} as const;

/** `virStoragePoolBuildFlags`. */
export const PoolBuildFlags = {
  NEW: 0,
  REPAIR: 1,
  RESIZE: 2,
  NO_OVERWRITE: 4,
  OVERWRITE: 8,
} as const;

/** `virStorageVolCreateFlags`. */
export const VolCreateFlags = {
  PREALLOC_METADATA: 1,
  REFLINK: 2,
} as const;

/** `virStorageVolType`. */
export const StorageVolType = {
  FILE: 0,
  BLOCK: 1,
  DIR: 2,
  NETWORK: 3,
  NETDIR: 4,
  PLOOP: 5,
} as const;

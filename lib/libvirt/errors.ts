import { ErrorCode } from "./constants.ts";

/** Fields of libvirt's `remote_error` that callers use. */
export interface LibvirtErrorFields {
  /** `virErrorNumber`, e.g. 42 for VIR_ERR_NO_DOMAIN. */
  code: number;
  /** `virErrorDomain`: the libvirt subsystem that raised it. */
  domain: number;
  /** The daemon's message. */
  message: string;
  /** `virErrorLevel`: 1 warning, 2 error. */
  level: number;
}

/**
 * An error the daemon reported for a call (`remote_error`), keyed on libvirt's numeric code.
 *
 * @example
 * ```ts
 * import { LibvirtError } from "./mod.ts";
 * const e = new LibvirtError({ code: 42, domain: 10, message: "Domain not found", level: 2 });
 * console.log(e.isNoDomain()); // true
 * ```
 */
export class LibvirtError extends Error {
  /** `virErrorNumber`. */
  readonly code: number;
  /** `virErrorDomain`. */
  readonly domain: number;
  /** `virErrorLevel`. */
  readonly level: number;

  /** Creates the error from the decoded `remote_error` fields. */
  constructor(fields: LibvirtErrorFields, options?: ErrorOptions) {
    super(fields.message || `libvirt error code ${fields.code}`, options);
    this.name = "LibvirtError";
    this.code = fields.code;
    this.domain = fields.domain;
    this.level = fields.level;
  }

  /** The domain does not exist (VIR_ERR_NO_DOMAIN). */
  isNoDomain(): boolean {
    return this.code === ErrorCode.NO_DOMAIN;
  }
  /** A domain with that name or UUID exists already (VIR_ERR_DOM_EXIST, or OPERATION_FAILED on define). */
  isDomainExists(): boolean {
    return this.code === ErrorCode.DOM_EXIST;
  }
  /** The storage pool does not exist (VIR_ERR_NO_STORAGE_POOL). */
  isNoStoragePool(): boolean {
    return this.code === ErrorCode.NO_STORAGE_POOL;
  }
  /** The storage volume does not exist (VIR_ERR_NO_STORAGE_VOL). */
  isNoStorageVol(): boolean {
    return this.code === ErrorCode.NO_STORAGE_VOL;
  }
  /** A volume with that name exists already (VIR_ERR_STORAGE_VOL_EXIST). */
  isStorageVolExists(): boolean {
    return this.code === ErrorCode.STORAGE_VOL_EXIST;
  }
  /** The network does not exist (VIR_ERR_NO_NETWORK). */
  isNoNetwork(): boolean {
    return this.code === ErrorCode.NO_NETWORK;
  }
  /** The domain has no metadata under that namespace (VIR_ERR_NO_DOMAIN_METADATA). */
  isNoMetadata(): boolean {
    return this.code === ErrorCode.NO_DOMAIN_METADATA;
  }
  /** The operation is not valid in the object's current state (VIR_ERR_OPERATION_INVALID). */
  isOperationInvalid(): boolean {
    return this.code === ErrorCode.OPERATION_INVALID;
  }
  /** The guest agent is not connected or did not answer (VIR_ERR_AGENT_UNRESPONSIVE). */
  isAgentUnresponsive(): boolean {
    return this.code === ErrorCode.AGENT_UNRESPONSIVE;
  }
  /** The daemon or driver does not support the call (VIR_ERR_NO_SUPPORT). */
  isNoSupport(): boolean {
    return this.code === ErrorCode.NO_SUPPORT;
  }
  /**
   * Another client holds the domain's console, and it was opened without `force`
   * (VIR_ERR_OPERATION_FAILED "Active console session exists for this domain").
   */
  isConsoleBusy(): boolean {
    return this.code === ErrorCode.OPERATION_FAILED && /console session exists/i.test(this.message);
  }
  /** The caller is not allowed to do this (VIR_ERR_ACCESS_DENIED, AUTH_FAILED, OPERATION_DENIED). */
  isAccessDenied(): boolean {
    return this.code === ErrorCode.ACCESS_DENIED || this.code === ErrorCode.AUTH_FAILED ||
      this.code === ErrorCode.OPERATION_DENIED;
  }
}

/**
 * The connection to the daemon could not be made, was lost, or broke the protocol.
 * Every call pending on a connection rejects with this error when the connection ends.
 */
export class ConnectionError extends Error {
  /** The URI of the connection, without credentials. */
  readonly uri: string;
  /** Creates the error for `uri`. */
  constructor(message: string, uri: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
    this.uri = uri;
  }
}

/** The daemon sent something that breaks libvirt's RPC protocol. */
export class ProtocolError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** A call got no reply within its timeout. The connection stays usable. */
export class CallTimeoutError extends Error {
  /** The procedure number that timed out. */
  readonly procedure: number;
  /** The timeout in milliseconds. */
  readonly timeoutMs: number;
  /** Creates the error. */
  constructor(procedure: number, timeoutMs: number) {
    super(`libvirt call ${procedure} got no reply within ${timeoutMs} ms`);
    this.name = "CallTimeoutError";
    this.procedure = procedure;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The caller aborted (Ctrl-C, SIGTERM, a deadline of its own): calls and streams in flight when
 * its `AbortSignal` fired reject with this error, the signal's reason as `cause`.
 */
export class InterruptedError extends Error {
  /** The process signal that caused it (`SIGINT`, `SIGTERM`, `SIGHUP`), when one did. */
  readonly signalName: string | undefined;
  /**
   * True when a call that changes the daemon's state was in flight and the daemon did not answer
   * it in time after the interrupt: whatever it makes may or may not exist.
   */
  readonly outcomeUnknown: boolean;
  /** Creates the error. */
  constructor(
    message = "Interrupted",
    options?: ErrorOptions & { signalName?: string; outcomeUnknown?: boolean },
  ) {
    super(message, options);
    this.name = "InterruptedError";
    this.signalName = options?.signalName;
    this.outcomeUnknown = options?.outcomeUnknown ?? false;
  }

  /** The error for an abort whose signal's reason is `reason` (kept as the cause). */
  static from(reason: unknown): InterruptedError {
    const message = reason instanceof Error && reason.message ? reason.message : "Interrupted";
    const signalName = reason instanceof InterruptedError ? reason.signalName : undefined;
    return new InterruptedError(message, {
      cause: reason,
      ...(signalName !== undefined ? { signalName } : {}),
    });
  }
}

/**
 * Errors of cluster operations. `name` tells the CLI which exit code applies (ConnectionError → 3,
 * KubeApiError → 4); messages never contain request bodies, so secrets cannot leak into them.
 * @module
 */

/** The cluster could not be reached or no configuration for it was found. */
export class ConnectionError extends Error {
  /** What was tried, in order (e.g. `in-cluster service account`, `KUBECONFIG=/x`). */
  readonly tried: readonly string[];
  /** Builds the error; `tried` is listed in the message. */
  constructor(message: string, tried: readonly string[] = [], options?: ErrorOptions) {
    super(tried.length > 0 ? `${message} (tried: ${tried.join("; ")})` : message, options);
    this.name = "ConnectionError";
    this.tried = tried;
  }
}

/** The API server answered an operation with an error status. */
export class KubeApiError extends Error {
  /** HTTP status, e.g. 422. */
  readonly status: number;
  /** `Status.reason`, e.g. `Invalid`, `AlreadyExists`; empty when the body was not a Status. */
  readonly reason: string;
  /** What was being done, e.g. `create VirtualMachine virtwork/virtwork-cpu-1`. */
  readonly operation: string;
  /** Seconds from a Retry-After header, when present. */
  readonly retryAfterSeconds: number | undefined;
  /** Builds the error from the parts of a failed response. */
  constructor(
    operation: string,
    status: number,
    reason: string,
    detail: string,
    retryAfterSeconds?: number,
    options?: ErrorOptions,
  ) {
    super(`${operation}: ${status} ${reason || "Error"}: ${detail}`, options);
    this.name = "KubeApiError";
    this.status = status;
    this.reason = reason;
    this.operation = operation;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** True for errors worth retrying: 429 and 5xx. */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/** True when `err` is a KubeApiError with HTTP `status`. */
export function isStatus(err: unknown, status: number): boolean {
  return err instanceof KubeApiError && err.status === status;
}

/**
 * An object of the plan already exists in the cluster and is not this run's: it belongs to another
 * virtwork run, or virtwork did not create it. A run never adopts such an object, because cleanup of
 * one run would then delete (or miss) another's.
 */
export class ObjectCollisionError extends Error {
  /** Kind of the object, e.g. `VirtualMachine`. */
  readonly kind: string;
  /** Namespace of the object. */
  readonly namespace: string;
  /** Name of the object. */
  readonly objectName: string;
  /** Run id on the existing object, when virtwork created it. */
  readonly ownerRunId: string | undefined;
  /** Whether the existing object is being deleted. */
  readonly terminating: boolean;
  /** Builds the error from what the existing object's labels say. */
  constructor(
    kind: string,
    namespace: string,
    name: string,
    ownerRunId: string | undefined,
    terminating: boolean,
  ) {
    const owner = ownerRunId === undefined
      ? "was not created by virtwork"
      : `belongs to virtwork run ${ownerRunId}`;
    const going = terminating ? " and is being deleted; wait until it is gone" : "";
    super(
      `${kind} ${namespace}/${name} already exists and ${owner}${going}; a run never adopts ` +
        `another's objects: remove ${ownerRunId === undefined ? "it" : "that run"} first or use ` +
        `another namespace`,
    );
    this.name = "ObjectCollisionError";
    this.kind = kind;
    this.namespace = namespace;
    this.objectName = name;
    this.ownerRunId = ownerRunId;
    this.terminating = terminating;
  }
}

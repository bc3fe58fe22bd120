/**
 * A VirtualMachineInstance's serial console through KubeVirt's console subresource
 * (`GET /apis/subresources.kubevirt.io/v1/namespaces/NS/virtualmachineinstances/NAME/console`):
 * a websocket with the `plain.kubevirt.io` subprotocol whose binary frames carry the raw serial
 * bytes both ways. Authentication and TLS come from the kubeconfig, as for every other request.
 * The websocket library loads on first use, never at start-up.
 *
 * @example
 * ```ts
 * import { readConsoleResults } from "./console.ts";
 * import { loadKubeConfig } from "./client.ts";
 * const { kubeConfig } = loadKubeConfig();
 * const samples = await readConsoleResults(kubeConfig, "virtwork", "virtwork-cpu-1", 30_000);
 * ```
 * @module
 */
import type { KubeConfig } from "npm:@kubernetes/client-node@^2.0.1";
import { collectConsoleResults, type CollectOptions } from "../virtwork/console_results.ts";
import type { ResultSample } from "../virtwork/results.ts";
import type { ClusterApi } from "./client.ts";
import { ConnectionError, KubeApiError } from "./errors.ts";

export type { ResultSample };

/** The subprotocol of KubeVirt's console and VNC subresources: one raw byte channel. */
export const CONSOLE_SUBPROTOCOL = "plain.kubevirt.io";

/** Largest websocket message accepted from the server. */
const MAX_FRAME = 1024 * 1024;
/** Most bytes of an error response's body read for its Status message. */
const MAX_ERROR_BODY = 64 * 1024;

/**
 * Where the cluster's configuration comes from: a client-node `KubeConfig`, or anything carrying
 * one as `kubeConfig`: a `KubeClient`, `loadKubeConfig()`'s result.
 */
export type KubeConfigSource = KubeConfig | { readonly kubeConfig: KubeConfig };

/** Options of {@linkcode openVmiConsole}. */
export interface VmiConsoleOptions {
  /** Aborts connecting, and later the console (its stream errors with the signal's reason). */
  signal?: AbortSignal;
  /**
   * Most unread bytes held (default 1 MiB); past it the socket is paused until the consumer
   * reads, so nothing is dropped and memory stays bounded.
   */
  maxBufferedBytes?: number;
}

/** An open VMI console. */
export interface VmiConsole {
  /** The guest's serial output; closes when the server ends the console. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Sends bytes to the guest's serial input. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the websocket (a normal close); idempotent. */
  close(): Promise<void>;
}

/** The part of `ws`'s WebSocket this module uses. */
interface Ws {
  binaryType: string;
  readonly protocol: string;
  readyState: number;
  on(event: string, fn: (...args: unknown[]) => void): void;
  send(data: Uint8Array, opts: { binary: boolean }, cb: (err?: Error) => void): void;
  pause(): void;
  resume(): void;
  close(code?: number): void;
  terminate(): void;
}
type WsConstructor = new (url: string, protocols: string[], opts: Record<string, unknown>) => Ws;

function configOf(src: KubeConfigSource | ClusterApi): KubeConfig {
  if ("kubeConfig" in src && src.kubeConfig) return src.kubeConfig as KubeConfig;
  if (typeof (src as KubeConfig).getCurrentCluster === "function") return src as KubeConfig;
  throw new TypeError(
    "the VMI console needs the cluster configuration: pass a KubeClient or a KubeConfig",
  );
}

/**
 * Opens the serial console of VMI `namespace/name`.
 *
 * @throws {KubeApiError} the server refused (404 no such VMI, 400 not running, 401/403)
 * @throws {ConnectionError} the server cannot be reached or does not speak `plain.kubevirt.io`
 */
export async function openVmiConsole(
  source: KubeConfigSource | ClusterApi,
  namespace: string,
  name: string,
  opts: VmiConsoleOptions = {},
): Promise<VmiConsole> {
  const { signal } = opts;
  if (signal?.aborted) throw signal.reason;
  const kc = configOf(source);
  const server = kc.getCurrentCluster()?.server ?? "(unknown server)";
  const operation = `console of VirtualMachineInstance ${namespace}/${name}`;
  const path = `/apis/subresources.kubevirt.io/v1/namespaces/${
    encodeURIComponent(namespace)
  }/virtualmachineinstances/${encodeURIComponent(name)}/console`;
  const [{ WebSocketHandler }, wsModule] = await Promise.all([
    // Not re-exported by the package index in 2.x; the module is part of the published package.
    import("npm:@kubernetes/client-node@^2.0.1/dist/web-socket-handler.js"),
    import("npm:ws@^8.18.2"),
  ]);
  const WebSocket = (wsModule.default ?? wsModule) as unknown as WsConstructor;
  const highWater = Math.max(1, opts.maxBufferedBytes ?? 1024 * 1024);

  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let ws: Ws | undefined;
  let refuse!: (err: unknown) => void;
  const refused = new Promise<never>((_, reject) => (refuse = reject));
  refused.catch(() => {});

  // client-node's handler builds the URL and applies the kubeconfig's credentials and TLS; the
  // factory picks the subprotocol and takes the frames (as ArrayBuffers, which the handler's own
  // channel demultiplexing leaves alone).
  const handler = new WebSocketHandler(
    kc,
    (uri: string, _protocols: string[], wsOpts: unknown) => {
      const sock = new WebSocket(uri, [CONSOLE_SUBPROTOCOL], {
        ...(wsOpts as Record<string, unknown>),
        maxPayload: MAX_FRAME,
      });
      ws = sock;
      sock.binaryType = "arraybuffer";
      sock.on("message", (data: unknown, isBinary: unknown) => {
        if (ended) return;
        const bytes = data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new TextEncoder().encode(String(data));
        if (!isBinary && bytes.length === 0) return;
        queue.push(bytes);
        queued += bytes.length;
        if (queued >= highWater) sock.pause();
        notify();
      });
      sock.on("close", () => {
        ended = true;
        notify();
      });
      sock.on("error", (err: unknown) => {
        failure ??= connectionError(operation, server, err);
        ended = true;
        refuse(failure);
        notify();
      });
      sock.on("unexpected-response", (req: unknown, res: unknown) => {
        void readStatus(res as NodeResponse).then((st) => {
          (req as { destroy(): void }).destroy();
          refuse(new KubeApiError(operation, st.code, st.reason, st.message));
        });
      });
      return sock as never;
    },
    // Never used: frames arrive as ArrayBuffers, which the handler does not route to streams.
    { stdin: null, stdout: null, stderr: null } as never,
  );
  const onAbort = () => {
    failure ??= signal!.reason;
    ended = true;
    ws?.terminate();
    refuse(signal!.reason);
    notify();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const opened = handler.connect(path, null, null);
    opened.catch(() => {});
    await Promise.race([opened, refused]);
  } catch (err) {
    signal?.removeEventListener("abort", onAbort);
    ended = true;
    try {
      ws?.terminate();
    } catch { /* never opened */ }
    if (err instanceof KubeApiError || err instanceof ConnectionError) throw err;
    if (signal?.aborted) throw signal.reason;
    throw connectionError(operation, server, err);
  }
  const sock = ws!;
  if (sock.protocol !== CONSOLE_SUBPROTOCOL) {
    signal?.removeEventListener("abort", onAbort);
    sock.terminate();
    throw new ConnectionError(
      `${operation}: the server answered subprotocol "${sock.protocol}", not ${CONSOLE_SUBPROTOCOL}`,
    );
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    closing ??= new Promise<void>((resolve) => {
      signal?.removeEventListener("abort", onAbort);
      queue.length = 0;
      queued = 0;
      if (sock.readyState >= 2) {
        ended = true;
        notify();
        return resolve();
      }
      // A normal close; a server that never answers it is cut off.
      const timer = setTimeout(() => sock.terminate(), 5_000);
      sock.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
      sock.close(1000);
    });
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        const chunk = queue.shift();
        if (chunk) {
          queued -= chunk.length;
          if (queued < highWater) sock.resume();
          controller.enqueue(chunk);
          return;
        }
        if (failure !== undefined) throw failure;
        if (ended) {
          controller.close();
          await close();
          return;
        }
        await new Promise<void>((r) => (wake = r));
      }
    },
    cancel: () => close(),
  }, { highWaterMark: 0 });
  return {
    readable,
    write: (bytes) =>
      new Promise<void>((resolve, reject) => {
        if (ended || sock.readyState !== 1) {
          reject(new ConnectionError(`${operation}: the console is closed`));
          return;
        }
        sock.send(bytes, { binary: true }, (err) => err ? reject(err) : resolve());
      }),
    close,
  };
}

/** Options of {@linkcode readConsoleResults}. */
export interface ConsoleResultsOptions extends CollectOptions {
  /** Most unread bytes held while reading (default 256 KiB). */
  maxBufferedBytes?: number;
}

/**
 * Reads the result lines of VMI `namespace/vmiName`'s serial console for `durationMs` and
 * returns them, oldest first. `source` is a `KubeClient` (a `ClusterApi` that carries its
 * `kubeConfig`) or a `KubeConfig`; this function fits `ConsoleResultReader` of `backend.ts`. Bounded in bytes and samples (see `CollectOptions`); a console
 * the server ends early returns what was read.
 *
 * @throws {KubeApiError} the server refused the console (404 no such VMI, 400 not running)
 * @throws {ConnectionError} the server cannot be reached or does not speak `plain.kubevirt.io`
 */
export async function readConsoleResults(
  source: KubeConfigSource | ClusterApi,
  namespace: string,
  vmiName: string,
  durationMs: number,
  opts: ConsoleResultsOptions = {},
): Promise<ResultSample[]> {
  const con = await openVmiConsole(source, namespace, vmiName, {
    maxBufferedBytes: opts.maxBufferedBytes ?? 256 * 1024,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return (await collectConsoleResults(con, durationMs, opts)).samples;
}

interface NodeResponse {
  statusCode?: number;
  statusMessage?: string;
  on(event: string, fn: (...args: unknown[]) => void): void;
  destroy(): void;
}

/** The Status of a refused upgrade: code, reason and message, from at most 64 KiB of body. */
function readStatus(res: NodeResponse): Promise<{ code: number; reason: string; message: string }> {
  const code = res.statusCode ?? 0;
  return new Promise((resolve) => {
    const parts: Uint8Array[] = [];
    let size = 0;
    const done = () => {
      const body = new TextDecoder().decode(concat(parts));
      let reason = res.statusMessage ?? "";
      let message = `the server answered ${code}`;
      try {
        const st = JSON.parse(body) as { reason?: unknown; message?: unknown };
        if (typeof st.reason === "string") reason = st.reason;
        if (typeof st.message === "string") message = st.message.slice(0, 1000);
      } catch {
        // virt-api answers some refusals in plain text ("VMI is not running")
        const text = body.trim().slice(0, 500);
        // deno-lint-ignore no-control-regex
        if (text) message = text.replace(/[\u0000-\u001f\u007f]/g, " ");
      }
      resolve({ code, reason, message });
    };
    res.on("data", (chunk: unknown) => {
      const c = chunk as Uint8Array;
      if (size < MAX_ERROR_BODY) parts.push(c.subarray(0, MAX_ERROR_BODY - size));
      size += c.length;
      if (size >= MAX_ERROR_BODY) {
        res.destroy();
        done();
      }
    });
    res.on("end", done);
    res.on("error", done);
  });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function connectionError(operation: string, server: string, err: unknown): ConnectionError {
  const e = err as { message?: string; error?: { message?: string }; code?: string };
  const detail = e?.error?.message ?? e?.message ?? e?.code ?? String(err);
  const what = /subprotocol/i.test(detail)
    ? `the server does not speak ${CONSOLE_SUBPROTOCOL} (${detail})`
    : `cannot reach ${server}: ${detail}`;
  return new ConnectionError(`${operation}: ${what}`, [], { cause: err });
}

import { XdrReader, XdrWriter } from "../xdr/mod.ts";
import {
  KeepaliveProcedure,
  Limits,
  MessageStatus,
  MessageType,
  Program,
  PROTOCOL_VERSION,
} from "./constants.ts";
import {
  CallTimeoutError,
  ConnectionError,
  InterruptedError,
  LibvirtError,
  ProtocolError,
} from "./errors.ts";
import type { Transport } from "./transport.ts";
import { decodeRemoteError } from "./wire.ts";
import { after, type CancelTimer } from "./_timer.ts";

const HEADER_END = Limits.LENGTH_SIZE + Limits.HEADER_SIZE;
const KNOWN_PROGRAMS = new Set<number>([Program.REMOTE, Program.QEMU, Program.KEEPALIVE]);
/**
 * Payload of one stream message: 256 KiB - 24 B, what every daemon version accepts. Larger messages
 * are allowed since the limit grew to 32 MiB but measured slower here (1 GiB upload: 0.6-1.2 s at
 * 256 KiB, 1.6-3.3 s at 1 and 4 MiB), as the daemon grows its buffer for each.
 */
export const STREAM_CHUNK: number = Limits.LEGACY_PAYLOAD_MAX;
/** A download pauses reading the socket while this much data waits for its consumer. */
const STREAM_HIGH_WATER = 8 * 1024 * 1024;
/**
 * Longest wait for the daemon to confirm that a two-way stream (a console) ended. libvirt 9.0's
 * daemon never confirms one it tore down itself in a forced takeover (see
 * {@linkcode DuplexStream.finish}), so the wait must end on its own.
 */
const DUPLEX_SETTLE_MS = 5_000;
const STREAM_LOW_WATER = 2 * 1024 * 1024;
/** How many timed-out serials to remember, so their late replies are dropped, not fatal. */
const TIMED_OUT_MEMORY = 4096;

/** Tuning of an RPC connection. */
export interface RpcOptions {
  /** URI for error messages. */
  uri: string;
  /** Default timeout of every call, in milliseconds (default 120000). */
  callTimeoutMs?: number;
  /** Ping the daemon after this much silence, in milliseconds (default 5000). */
  keepaliveIntervalMs?: number;
  /** Declare the daemon dead after this many silent intervals (default 5). */
  keepaliveCount?: number;
  /**
   * Interrupts the connection's work (Ctrl-C): when it aborts, every read-only call and stream in
   * flight rejects at once with {@linkcode InterruptedError}; a call sent with `mutates` settles
   * with the daemon's real answer (see `settleMs`). Calls made afterwards go out as usual, so a
   * caller can still roll back; callers check `signal.aborted` before starting new work.
   */
  signal?: AbortSignal;
  /**
   * After an interrupt, how long a `mutates` call in flight may still take to answer, in
   * milliseconds (default 10000; never longer than its own timeout). Past it, the call rejects
   * with an {@linkcode InterruptedError} whose `outcomeUnknown` is true.
   */
  settleMs?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Overrides the connection's call timeout; 0 waits forever. */
  timeoutMs?: number;
  /**
   * Aborts this call: it rejects at once with {@linkcode InterruptedError} (the signal's reason as
   * its cause) and a late reply is dropped; a `mutates` call waits for its reply first (see
   * `RpcOptions.settleMs`). An already aborted signal sends nothing.
   */
  signal?: AbortSignal;
  /**
   * The call changes the daemon's state (defines, creates, deletes). An interrupt does not drop
   * it: the daemon does the work whether or not we listen, so the caller gets the real answer
   * (and can undo what it made), or after `settleMs` an error that says the outcome is unknown.
   */
  mutates?: boolean;
}

/** A stream opened with {@linkcode RpcConnection.openDuplex}: data both ways. */
export interface DuplexStream {
  /**
   * The next chunk the daemon sent, or null once it ended the stream (or after `finish`/`abort`).
   * Rejects with the daemon's error when it aborted the stream, with {@linkcode InterruptedError}
   * after an interrupt, with {@linkcode ConnectionError} when the connection ended.
   */
  read(): Promise<Uint8Array | null>;
  /** Sends bytes to the daemon; resolves once they left. */
  write(data: Uint8Array): Promise<void>;
  /**
   * Ends the stream cleanly (virStreamFinish) and waits for the daemon to confirm, at most 5 s;
   * idempotent. Past that it lets go unconfirmed: libvirt 9.0's daemon never answers on a
   * console another client took over with force while a chunk for this client was in flight (its
   * abort then skips the stream's error callback), and such a stream must still close. The
   * daemon frees it with the connection.
   */
  finish(): Promise<void>;
  /** Aborts the stream (virStreamAbort); idempotent. */
  abort(): Promise<void>;
  /** True once the stream has ended either way. */
  readonly finished: boolean;
}

/** Encodes a call's arguments into the frame writer. */
export type ArgsEncoder = (w: XdrWriter) => void;

interface Pending {
  proc: number;
  resolve: (payload: Uint8Array) => void;
  reject: (err: Error) => void;
  /** performance.now() after which the call times out; 0 for never. */
  deadline: number;
  timeoutMs: number;
  mutates: boolean;
  /** Set when an interrupt came while this mutating call was in flight: the abort's reason. */
  interrupted?: { reason: unknown };
}

/** How often call deadlines are checked: one shared timer instead of one per call (3.5 us each). */
const SWEEP_MS = 50;

interface WriteBatch {
  frames: Uint8Array[];
  /** Whether a frame other than a keepalive ping or pong is in it (only those count as trips). */
  counts: boolean;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** State of one open data stream (volume upload or download), keyed by the call's serial. */
class StreamState {
  readonly chunks: Uint8Array[] = [];
  queued = 0;
  eof = false;
  finished = false;
  error: Error | null = null;
  /** Set when the caller's signal aborted the stream. */
  interrupted = false;
  #wake: (() => void)[] = [];
  #onInterrupt: ((err: Error) => void)[] = [];

  /** Data dropped on arrival: the caller is closing the stream and reads no more. */
  discarding = false;

  constructor(
    readonly serial: number,
    readonly prog: number,
    readonly proc: number,
    /** Reading the socket pauses while this much received data waits for the consumer. */
    readonly highWater: number = STREAM_HIGH_WATER,
  ) {}

  /** Marks the stream interrupted with `err` and wakes everything waiting on it. */
  interrupt(err: Error): void {
    this.interrupted = true;
    this.error ??= err;
    for (const fn of this.#onInterrupt.splice(0)) fn(err);
    this.notify();
  }

  /** `p`, or a rejection as soon as the stream is interrupted (a write may never finish). */
  orInterrupted<T>(p: Promise<T>): Promise<T> {
    if (this.interrupted) return Promise.reject(this.error);
    return new Promise<T>((resolve, reject) => {
      const onInterrupt = (err: Error) => reject(err);
      this.#onInterrupt.push(onInterrupt);
      const drop = () => {
        const i = this.#onInterrupt.indexOf(onInterrupt);
        if (i >= 0) this.#onInterrupt.splice(i, 1);
      };
      p.then((v) => {
        drop();
        resolve(v);
      }, (e) => {
        drop();
        reject(e);
      });
    });
  }

  /**
   * Resolves when something happens on the stream. Every waiter is woken: a reader and a closer
   * may wait at the same time.
   */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#wake.push(resolve));
  }

  notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }
}

/**
 * One libvirt RPC connection: framing, serials, many calls in flight, events, keepalive and
 * streams. It knows nothing of procedures' meaning; {@linkcode Libvirt} builds on it.
 */
export class RpcConnection {
  readonly #t: Transport;
  readonly #opts: Required<Omit<RpcOptions, "signal">>;
  #serial = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #streams = new Map<number, StreamState>();
  readonly #timedOut = new Set<number>();
  readonly #events = new Map<number, (payload: Uint8Array) => void>();
  readonly #closeListeners = new Set<(err: Error) => void>();
  #closed: Error | null = null;
  #detachSignal: (() => void) | null = null;
  #batch: WriteBatch | null = null;
  #writing = false;
  #batches = 0;
  #calls = 0;
  /**
   * Observation hook: told the program and procedure of every call and stream open as it is sent
   * (keepalive pings are not calls). Tests use it to assert which procedures an operation made
   * (`foundry apply` of an unchanged file makes none that writes); nothing else depends on it.
   */
  onCall: ((prog: number, proc: number) => void) | undefined = undefined;
  #lastReceived = performance.now();
  #keepaliveTimer: CancelTimer | undefined;
  #keepalivePings = false;
  #sweepTimer: CancelTimer | undefined;
  #readPaused: Promise<void> | null = null;
  #resumeRead: (() => void) | null = null;
  readonly #readLoopDone: Promise<void>;

  /** Starts reading from `transport` at once. */
  constructor(transport: Transport, opts: RpcOptions) {
    this.#t = transport;
    const { signal, ...rest } = opts;
    this.#opts = {
      callTimeoutMs: 120_000,
      keepaliveIntervalMs: 5_000,
      keepaliveCount: 5,
      settleMs: 10_000,
      ...rest,
    };
    if (signal) {
      const onAbort = () => this.interruptInFlight(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#detachSignal = () => signal.removeEventListener("abort", onAbort);
    }
    this.#readLoopDone = this.#readLoop();
  }

  /**
   * Rejects every read-only call and stream in flight with {@linkcode InterruptedError} (cause:
   * `reason`) and tells the daemon to abort the streams; their late replies are dropped. A
   * `mutates` call keeps waiting for its reply, at most `settleMs` more. The connection stays
   * open: later calls work (a rollback needs them).
   */
  interruptInFlight(reason?: unknown): void {
    if (this.#closed) return;
    for (const serial of [...this.#pending.keys()]) this.#interruptCall(serial, reason);
    for (const st of this.#streams.values()) {
      if (st.finished || st.error) continue;
      st.chunks.length = 0;
      st.queued = 0;
      st.interrupt(InterruptedError.from(reason));
    }
    this.#resume();
  }

  /** True once the connection has ended, for whatever reason. */
  get closed(): boolean {
    return this.#closed !== null;
  }

  /**
   * Number of writes so far. Frames queued in the same tick leave in one write, so calls issued
   * together count once: the difference over an operation is the round trips it needed. Writes of
   * keepalive pings and pongs alone are not counted: they are no operation's trips.
   */
  get writeBatches(): number {
    return this.#batches;
  }

  /**
   * Number of calls sent so far, stream opens included (keepalive pings are not calls): the
   * difference over an operation is the RPCs it made.
   */
  get callsSent(): number {
    return this.#calls;
  }

  /**
   * Interrupts one pending call: a read-only one rejects now and its reply will be dropped; a
   * mutating one gets a deadline of `settleMs` from now to answer.
   */
  #interruptCall(serial: number, reason: unknown): void {
    const p = this.#pending.get(serial);
    if (!p || p.interrupted) return;
    if (!p.mutates) {
      this.#pending.delete(serial);
      this.#rememberTimedOut(serial);
      p.reject(InterruptedError.from(reason));
      return;
    }
    p.interrupted = { reason };
    const settleBy = performance.now() + this.#opts.settleMs;
    if (!p.deadline || settleBy < p.deadline) p.deadline = settleBy;
    this.#startSweep();
  }

  /**
   * Checks deadlines every SWEEP_MS while some call has one. Each tick is a cheap one-shot timer
   * (see _timer.ts) armed only while calls are pending, so an idle connection holds no timer.
   */
  #startSweep(): void {
    if (this.#sweepTimer !== undefined || this.#closed) return;
    this.#sweepTimer = after(SWEEP_MS, () => {
      this.#sweepTimer = undefined;
      this.#sweep();
      if (!this.#closed && [...this.#pending.values()].some((p) => p.deadline)) {
        this.#startSweep();
      }
    });
  }

  /** Number of calls waiting for a reply. */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  /** Calls `fn` once when the connection ends, with the reason. Returns an unsubscribe function. */
  onClose(fn: (err: Error) => void): () => void {
    if (this.#closed) {
      queueMicrotask(() => fn(this.#closed!));
      return () => {};
    }
    this.#closeListeners.add(fn);
    return () => this.#closeListeners.delete(fn);
  }

  /** Routes MESSAGE frames of `prog`/`proc` (events) to `handler`. */
  onMessage(prog: number, proc: number, handler: (payload: Uint8Array) => void): () => void {
    const key = eventKey(prog, proc);
    this.#events.set(key, handler);
    return () => this.#events.delete(key);
  }

  /**
   * Watches the daemon for silence from now on, before it is known whether it speaks the keepalive
   * program: a daemon that answers nothing at all (not even that question) for the keepalive
   * interval times the count fails every pending call. {@linkcode startKeepalive} adds the pings
   * once the daemon says it supports them; {@linkcode stopKeepalive} ends the watch when it does
   * not (then only call timeouts catch a dead daemon).
   */
  watchKeepalive(): void {
    if (this.#keepaliveTimer !== undefined || this.#closed) return;
    const interval = this.#opts.keepaliveIntervalMs;
    const period = Math.max(50, Math.floor(interval / 2));
    const check = () => {
      if (this.#closed) return;
      const idle = performance.now() - this.#lastReceived;
      if (idle >= interval * this.#opts.keepaliveCount) {
        this.#fail(
          new ConnectionError(
            this.#keepalivePings
              ? `libvirtd did not answer keepalive pings for ${Math.round(idle / 1000)} s`
              : `libvirtd answered nothing for ${
                Math.round(idle / 1000)
              } s, not even whether it supports keepalive`,
            this.#opts.uri,
          ),
        );
        return;
      } else if (idle >= interval && this.#keepalivePings) {
        this.#send(
          frame(Program.KEEPALIVE, KeepaliveProcedure.PING, MessageType.MESSAGE, 0, 0),
          true,
        )
          .catch(() => {});
      }
      this.#keepaliveTimer = after(period, check, { unref: true });
    };
    this.#keepaliveTimer = after(period, check, { unref: true });
  }

  /**
   * Starts answering and sending keepalive pings. Call it only when the daemon said it supports
   * the keepalive program; without it, dead daemons are still caught by call timeouts.
   */
  startKeepalive(): void {
    if (this.#closed) return;
    this.#keepalivePings = true;
    this.watchKeepalive();
  }

  /** Ends the watch {@linkcode watchKeepalive} started (the daemon has no keepalive program). */
  stopKeepalive(): void {
    this.#keepaliveTimer?.();
    this.#keepaliveTimer = undefined;
    this.#keepalivePings = false;
  }

  /**
   * Sends a call and resolves to the reply's payload; rejects with {@linkcode LibvirtError} when
   * the daemon reports an error, {@linkcode CallTimeoutError} on timeout and
   * {@linkcode ConnectionError} when the connection ends first.
   */
  call(
    prog: number,
    proc: number,
    args?: ArgsEncoder,
    opts: CallOptions = {},
  ): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (opts.signal?.aborted) return Promise.reject(InterruptedError.from(opts.signal.reason));
    this.onCall?.(prog, proc);
    const serial = this.#nextSerial();
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(prog, proc, MessageType.CALL, serial, MessageStatus.OK, args);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#await(
      serial,
      proc,
      bytes,
      opts.timeoutMs ?? this.#opts.callTimeoutMs,
      opts.signal,
      opts.mutates ?? false,
    );
  }

  #await(
    serial: number,
    proc: number,
    bytes: Uint8Array,
    timeoutMs: number,
    signal?: AbortSignal,
    mutates = false,
  ): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      const deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
      if (deadline) this.#startSweep();
      let detach = () => {};
      if (signal) {
        const onAbort = () => this.#interruptCall(serial, signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.#pending.set(serial, {
        proc,
        resolve: (v) => {
          detach();
          resolve(v);
        },
        reject: (e) => {
          detach();
          reject(e);
        },
        deadline,
        timeoutMs,
        mutates,
      });
      this.#send(bytes).catch(() => {/* #fail rejects every pending call */});
    });
  }

  /** Rejects calls past their deadline; their late replies are then dropped, not fatal. */
  #sweep(): void {
    if (this.#pending.size === 0) return;
    const now = performance.now();
    for (const [serial, p] of this.#pending) {
      if (p.deadline && now >= p.deadline) {
        this.#pending.delete(serial);
        this.#rememberTimedOut(serial);
        p.reject(
          p.interrupted
            ? unsettled(p.interrupted.reason, p.proc)
            : new CallTimeoutError(p.proc, p.timeoutMs),
        );
      }
    }
  }

  /**
   * Uploads `source` through a stream procedure (e.g. STORAGE_VOL_UPLOAD). Each chunk is sent only
   * after the previous one left, so memory stays flat whatever the size. On an error either way the
   * stream is aborted and the daemon's error (if any) is thrown.
   */
  async upload(
    prog: number,
    proc: number,
    args: ArgsEncoder,
    source: AsyncIterable<Uint8Array>,
    onChunk?: (bytes: number) => void,
  ): Promise<void> {
    const st = await this.#openStream(prog, proc, args);
    // One frame buffer for the whole upload: each frame has left (its write awaited) before the
    // next is built, so reusing it saves an allocation and its zeroing per chunk.
    let frameBuf: Uint8Array | null = null;
    try {
      for await (const chunk of source) {
        for (let off = 0; off < chunk.length; off += STREAM_CHUNK) {
          if (st.error) throw st.error;
          const part = chunk.subarray(off, Math.min(chunk.length, off + STREAM_CHUNK));
          frameBuf ??= new Uint8Array(HEADER_END + STREAM_CHUNK);
          await st.orInterrupted(
            this.#send(streamFrame(st, MessageStatus.CONTINUE, part, frameBuf)),
          );
          onChunk?.(part.length);
        }
      }
      if (st.error) throw st.error;
      await st.orInterrupted(this.#send(streamFrame(st, MessageStatus.OK)));
      await this.#streamSettled(st);
      if (st.error) throw st.error;
    } catch (err) {
      throw await this.#abortStream(st, err);
    } finally {
      this.#streams.delete(st.serial);
    }
  }

  /**
   * Downloads through a stream procedure (e.g. STORAGE_VOL_DOWNLOAD), yielding chunks as they
   * arrive. Reading the socket pauses while the consumer lags, so memory stays bounded. Breaking
   * out of the loop aborts the stream.
   */
  async *download(prog: number, proc: number, args: ArgsEncoder): AsyncGenerator<Uint8Array> {
    const st = await this.#openStream(prog, proc, args);
    let settled = false;
    try {
      while (true) {
        const chunk = st.chunks.shift();
        if (chunk) {
          st.queued -= chunk.length;
          if (st.queued <= STREAM_LOW_WATER) this.#resume();
          yield chunk;
          continue;
        }
        if (st.error) throw st.error;
        if (st.eof) break;
        await st.changed();
      }
      if (!st.finished) {
        await this.#send(streamFrame(st, MessageStatus.OK));
        await this.#streamSettled(st);
      }
      if (st.error) throw st.error;
      settled = true;
    } catch (err) {
      settled = true;
      throw await this.#abortStream(st, err);
    } finally {
      // The consumer stopped early (break or return): abort so the daemon stops sending.
      if (!settled) await this.#abortStream(st, null);
      this.#streams.delete(st.serial);
      this.#resume();
    }
  }

  /**
   * Opens a stream that carries data both ways (e.g. DOMAIN_OPEN_CONSOLE): the daemon's data is
   * read with `read()`, ours sent with `write()`. At most `maxBufferedBytes` (default 1 MiB) of
   * unread data is held; past it the connection stops reading its socket until the consumer
   * catches up, so a stalled consumer stalls the connection's other calls too (as a download's
   * does). `signal` aborts the open and later the stream: pending reads and writes reject with
   * {@linkcode InterruptedError} and the daemon is told to abort.
   */
  async openDuplex(
    prog: number,
    proc: number,
    args: ArgsEncoder,
    opts: { maxBufferedBytes?: number; signal?: AbortSignal } = {},
  ): Promise<DuplexStream> {
    const { signal } = opts;
    if (signal?.aborted) throw InterruptedError.from(signal.reason);
    const highWater = Math.max(1, opts.maxBufferedBytes ?? 1024 * 1024);
    const st = await this.#openStream(prog, proc, args, highWater, signal);
    let done = false;
    let detach = () => {};
    const end = () => {
      done = true;
      detach();
      st.chunks.length = 0;
      st.queued = 0;
      this.#streams.delete(st.serial);
      this.#resume();
      st.notify();
    };
    if (signal) {
      const onAbort = () => {
        if (done || st.finished) return;
        st.chunks.length = 0;
        st.queued = 0;
        st.interrupt(InterruptedError.from(signal.reason));
        this.#resume();
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        detach = () => signal.removeEventListener("abort", onAbort);
      }
    }
    const read = async (): Promise<Uint8Array | null> => {
      while (true) {
        if (st.interrupted) throw st.error;
        const chunk = st.chunks.shift();
        if (chunk) {
          st.queued -= chunk.length;
          if (st.queued < st.highWater) this.#resume();
          return chunk;
        }
        if (st.error) throw st.error;
        if (st.eof || st.finished || done) return null;
        await st.changed();
      }
    };
    const write = async (data: Uint8Array): Promise<void> => {
      for (let off = 0; off < data.length; off += STREAM_CHUNK) {
        if (st.error) throw st.error;
        if (done || st.finished) throw new ProtocolError("The stream is closed");
        const part = data.subarray(off, Math.min(data.length, off + STREAM_CHUNK));
        await st.orInterrupted(this.#send(streamFrame(st, MessageStatus.CONTINUE, part)));
      }
    };
    const finish = async (): Promise<void> => {
      if (done) return;
      st.discarding = true;
      st.chunks.length = 0;
      st.queued = 0;
      this.#resume();
      try {
        if (st.interrupted) {
          await this.#abortAndSettle(st);
          return;
        }
        if (!st.finished && !this.#closed) {
          await this.#send(streamFrame(st, MessageStatus.OK));
          // Unanswered after the wait, the daemon dropped this stream without telling us (see
          // finish's doc): let go without an abort, which the daemon would not read either and
          // which libvirt 9.0 can deadlock on when it meets a forced open.
          await this.#settledWithin(st, DUPLEX_SETTLE_MS);
        }
        // A daemon-side error that ended the stream is the caller's news, not a failed close.
      } catch (err) {
        if (!this.#closed) await this.#abortStream(st, err);
      } finally {
        end();
      }
    };
    const abort = async (): Promise<void> => {
      if (done) return;
      st.discarding = true;
      st.chunks.length = 0;
      st.queued = 0;
      this.#resume();
      try {
        await this.#abortAndSettle(st);
      } finally {
        end();
      }
    };
    return {
      read,
      write,
      finish,
      abort,
      get finished() {
        return done || st.finished;
      },
    };
  }

  async #openStream(
    prog: number,
    proc: number,
    args: ArgsEncoder,
    highWater = STREAM_HIGH_WATER,
    signal?: AbortSignal,
  ): Promise<StreamState> {
    if (this.#closed) throw this.#closed;
    this.onCall?.(prog, proc);
    const serial = this.#nextSerial();
    const st = new StreamState(serial, prog, proc, highWater);
    // Registered before the call goes out: data may follow the reply in the same read.
    this.#streams.set(serial, st);
    try {
      const bytes = encodeFrame(prog, proc, MessageType.CALL, serial, MessageStatus.OK, args);
      await this.#await(serial, proc, bytes, this.#opts.callTimeoutMs, signal);
    } catch (err) {
      this.#streams.delete(serial);
      throw err;
    }
    return st;
  }

  async #streamSettled(st: StreamState): Promise<void> {
    const deadline = this.#opts.callTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        st.error ??= new CallTimeoutError(st.proc, deadline);
        resolve();
      }, deadline);
    });
    try {
      while (!st.finished && !st.error) await Promise.race([st.changed(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Aborts a stream the daemon has not ended and waits (at most 5 s) for the daemon to confirm,
   * interrupted or not: for a console, the next open must not race the daemon's teardown of this
   * one (libvirt 9.0's daemon deadlocks when a forced open meets an abort in progress).
   */
  async #abortAndSettle(st: StreamState): Promise<void> {
    if (this.#closed || st.finished) return;
    try {
      await this.#send(streamFrame(st, MessageStatus.ERROR));
      await this.#settledWithin(st, DUPLEX_SETTLE_MS);
    } catch {
      /* the connection is going away; #fail reports it */
    }
  }

  /**
   * Waits until the daemon ended `st` (or the connection did), at most `ms`. The stream's own
   * error does not end the wait: only the daemon's final message does.
   */
  async #settledWithin(st: StreamState, ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    try {
      while (!st.finished && !this.#closed) {
        if (await Promise.race([st.changed().then(() => false), expired.then(() => true)])) break;
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Aborts a stream (status ERROR, as virStreamAbort) and returns the error worth reporting. */
  async #abortStream(st: StreamState, cause: unknown): Promise<unknown> {
    if (st.interrupted && !this.#closed && !st.finished) {
      // Interrupted: tell the daemon, but do not wait for its answer (it may never come).
      this.#send(streamFrame(st, MessageStatus.ERROR)).catch(() => {});
      return st.error;
    }
    if (!this.#closed && !st.finished && !st.error) {
      try {
        await this.#send(streamFrame(st, MessageStatus.ERROR));
        // The daemon confirms an abort; wait briefly so the next call sees a clean state.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          (async () => {
            while (!st.finished && !st.error) await st.changed();
          })(),
          new Promise<void>((r) => (timer = setTimeout(r, 5_000))),
        ]);
        clearTimeout(timer);
      } catch { /* the connection is going away; #fail reports it */ }
    }
    // A daemon-side error explains more than "aborted by the client".
    if (st.error && !(cause instanceof LibvirtError) && st.error instanceof LibvirtError) {
      return st.error;
    }
    return cause;
  }

  /** Closes the connection; pending calls reject with a {@linkcode ConnectionError}. */
  async close(): Promise<void> {
    this.#fail(new ConnectionError("Connection closed by the client", this.#opts.uri));
    await this.#readLoopDone;
  }

  #nextSerial(): number {
    this.#calls++;
    this.#serial = this.#serial >= 0x7fffffff ? 1 : this.#serial + 1;
    return this.#serial;
  }

  #rememberTimedOut(serial: number): void {
    this.#timedOut.add(serial);
    if (this.#timedOut.size > TIMED_OUT_MEMORY) {
      const first = this.#timedOut.values().next().value;
      if (first !== undefined) this.#timedOut.delete(first);
    }
  }

  /**
   * Queues a frame; frames queued in the same tick go out in one write. Keepalive frames
   * (`keepalive` true) do not make a write count in {@linkcode writeBatches}.
   */
  #send(bytes: Uint8Array, keepalive = false): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    let b = this.#batch;
    if (!b) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      done.catch(() => {});
      b = this.#batch = { frames: [], counts: false, done, resolve, reject };
      if (!this.#writing) queueMicrotask(() => this.#flush());
    }
    b.frames.push(bytes);
    if (!keepalive) b.counts = true;
    return b.done;
  }

  async #flush(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    let current: WriteBatch | null = null;
    try {
      while (this.#batch && !this.#closed) {
        current = this.#batch;
        this.#batch = null;
        if (current.counts) this.#batches++;
        await this.#writeAll(concat(current.frames));
        current.resolve();
        current = null;
      }
    } catch (err) {
      const e = new ConnectionError(
        `Writing to libvirtd failed: ${(err as Error).message}`,
        this.#opts.uri,
        { cause: err },
      );
      current?.reject(e);
      this.#fail(e);
    } finally {
      this.#writing = false;
      if (this.#closed) {
        this.#batch?.reject(this.#closed);
        this.#batch = null;
      }
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#t.write(bytes.subarray(off));
  }

  #pauseRead(): void {
    if (this.#readPaused) return;
    this.#readPaused = new Promise((r) => (this.#resumeRead = r));
  }

  #resume(): void {
    const r = this.#resumeRead;
    this.#readPaused = null;
    this.#resumeRead = null;
    r?.();
  }

  async #readLoop(): Promise<void> {
    let buf = new Uint8Array(256 * 1024);
    let view = new DataView(buf.buffer);
    let start = 0;
    let end = 0;
    try {
      while (!this.#closed) {
        if (this.#readPaused) await this.#readPaused;
        if (end === buf.length) {
          // Make room: slide the unread part to the front, or grow for a frame larger than the buffer.
          const need = end - start >= 4 ? view.getUint32(start) : 0;
          if (start > 0 && need <= buf.length) {
            buf.copyWithin(0, start, end);
          } else {
            const next = new Uint8Array(Math.max(buf.length * 2, need));
            next.set(buf.subarray(start, end));
            buf = next;
            view = new DataView(buf.buffer);
          }
          end -= start;
          start = 0;
        }
        let n: number | null;
        try {
          n = await this.#t.read(buf.subarray(end));
        } catch (err) {
          if (this.#closed) break;
          if (err instanceof ConnectionError) throw err;
          throw new ConnectionError(
            `Reading from libvirtd failed: ${(err as Error).message}`,
            this.#opts.uri,
            { cause: err },
          );
        }
        if (n === null) {
          if (this.#closed) break;
          const partial = end - start;
          throw new ConnectionError(
            partial
              ? `libvirtd closed the connection in the middle of a message (${partial} bytes of a frame received)`
              : "libvirtd closed the connection",
            this.#opts.uri,
          );
        }
        end += n;
        this.#lastReceived = performance.now();
        while (end - start >= 4) {
          const len = view.getUint32(start);
          if (len < HEADER_END) {
            throw new ProtocolError(
              `Received a frame of ${len} bytes, below the ${HEADER_END}-byte minimum`,
            );
          }
          if (len - Limits.LENGTH_SIZE > Limits.MESSAGE_MAX) {
            throw new ProtocolError(
              `Received a frame of ${len} bytes, above libvirt's maximum of ${
                Limits.MESSAGE_MAX + Limits.LENGTH_SIZE
              }`,
            );
          }
          if (end - start < len) {
            if (len > buf.length - start) {
              const next = new Uint8Array(Math.max(len, buf.length));
              next.set(buf.subarray(start, end));
              buf = next;
              view = new DataView(buf.buffer);
              end -= start;
              start = 0;
            }
            break;
          }
          this.#dispatch(view, start, buf.slice(start + HEADER_END, start + len));
          start += len;
        }
        if (start === end) start = end = 0;
      }
    } catch (err) {
      const e = err instanceof ConnectionError ? err : new ConnectionError(
        `Protocol error from libvirtd: ${(err as Error).message}`,
        this.#opts.uri,
        { cause: err },
      );
      this.#fail(e);
    }
  }

  #dispatch(view: DataView, at: number, payload: Uint8Array): void {
    const prog = view.getUint32(at + 4);
    const vers = view.getUint32(at + 8);
    const proc = view.getInt32(at + 12);
    const type = view.getInt32(at + 16);
    const serial = view.getUint32(at + 20);
    const status = view.getInt32(at + 24);
    if (!KNOWN_PROGRAMS.has(prog)) {
      throw new ProtocolError(`Received a message for unknown program 0x${prog.toString(16)}`);
    }
    if (vers !== PROTOCOL_VERSION) {
      throw new ProtocolError(`Received protocol version ${vers}, expected ${PROTOCOL_VERSION}`);
    }
    if (prog === Program.KEEPALIVE) {
      if (proc === KeepaliveProcedure.PING) {
        this.#send(
          frame(Program.KEEPALIVE, KeepaliveProcedure.PONG, MessageType.MESSAGE, 0, 0),
          true,
        )
          .catch(() => {});
      }
      return;
    }
    switch (type) {
      case MessageType.REPLY:
      case MessageType.REPLY_WITH_FDS: {
        const p = this.#pending.get(serial);
        if (!p) {
          if (this.#timedOut.delete(serial)) return;
          throw new ProtocolError(
            `Received a reply for unknown serial ${serial} (procedure ${proc})`,
          );
        }
        if (p.proc !== proc) {
          throw new ProtocolError(
            `Received a reply for procedure ${proc} on serial ${serial}, which called ${p.proc}`,
          );
        }
        // Decode before the call leaves #pending: if the reply is bad, #fail rejects the call
        // with the rest instead of leaving it waiting forever.
        if (status === MessageStatus.OK) {
          this.#pending.delete(serial);
          p.resolve(payload);
        } else if (status === MessageStatus.ERROR) {
          const err = decodeRemoteError(payload);
          this.#pending.delete(serial);
          p.reject(err);
        } else {
          throw new ProtocolError(`Received a reply with invalid status ${status}`);
        }
        return;
      }
      case MessageType.MESSAGE: {
        this.#events.get(eventKey(prog, proc))?.(payload);
        return;
      }
      case MessageType.STREAM:
      case MessageType.STREAM_HOLE: {
        const st = this.#streams.get(serial);
        if (!st) {
          // Data may still be in flight after an abort or a timeout.
          if (this.#timedOut.has(serial) || serial <= this.#serial) return;
          throw new ProtocolError(`Received stream data for unknown serial ${serial}`);
        }
        if (st.interrupted) {
          // The caller gave up on it; its abort is on the way. The daemon's final message still
          // says when the daemon let go of the stream (a console is free again only then).
          if (type === MessageType.STREAM && status !== MessageStatus.CONTINUE) {
            st.finished = true;
            st.notify();
          }
          return;
        }
        if (type === MessageType.STREAM_HOLE) {
          st.error = new ProtocolError("Received a sparse-stream hole that was not asked for");
        } else if (status === MessageStatus.CONTINUE) {
          if (payload.length === 0) st.eof = true;
          else if (!st.discarding) {
            st.chunks.push(payload);
            st.queued += payload.length;
            if (st.queued >= st.highWater) this.#pauseRead();
          }
        } else if (status === MessageStatus.OK) {
          st.eof = true;
          st.finished = true;
        } else if (status === MessageStatus.ERROR) {
          st.error = payload.length
            ? decodeRemoteError(payload)
            : new ProtocolError("Stream aborted");
          st.finished = true;
        } else {
          throw new ProtocolError(`Received stream data with invalid status ${status}`);
        }
        st.notify();
        return;
      }
      default:
        throw new ProtocolError(`Received a message of unknown type ${type}`);
    }
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = err;
    this.#detachSignal?.();
    this.#keepaliveTimer?.();
    this.#sweepTimer?.();
    this.#keepaliveTimer = this.#sweepTimer = undefined;
    this.#resume();
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    for (const st of this.#streams.values()) {
      st.error ??= err;
      st.notify();
    }
    this.#batch?.reject(err);
    this.#batch = null;
    try {
      this.#t.close();
    } catch { /* already closed */ }
    for (const fn of this.#closeListeners) {
      try {
        fn(err);
      } catch { /* a listener's bug must not stop the others */ }
    }
    this.#closeListeners.clear();
  }
}

/** The error of a mutating call the daemon did not answer in time after an interrupt. */
function unsettled(reason: unknown, proc: number): InterruptedError {
  const base = InterruptedError.from(reason);
  return new InterruptedError(
    `${base.message}; the daemon did not answer procedure ${proc} in time, so what it makes may exist`,
    {
      cause: reason,
      outcomeUnknown: true,
      ...(base.signalName !== undefined ? { signalName: base.signalName } : {}),
    },
  );
}

function eventKey(prog: number, proc: number): number {
  return (prog === Program.QEMU ? 0x100000 : 0) + proc;
}

/** Builds a frame whose body is produced by `args`, with the header filled in afterwards. */
export function encodeFrame(
  prog: number,
  proc: number,
  type: number,
  serial: number,
  status: number,
  args?: ArgsEncoder,
): Uint8Array {
  const w = new XdrWriter(256, HEADER_END);
  args?.(w);
  const len = w.length;
  if (len - Limits.LENGTH_SIZE > Limits.MESSAGE_MAX) {
    throw new RangeError(
      `The call's arguments take ${len} bytes, above libvirt's maximum of ${Limits.MESSAGE_MAX}`,
    );
  }
  w.patchUint(0, len).patchUint(4, prog).patchUint(8, PROTOCOL_VERSION).patchUint(12, proc)
    .patchUint(16, type).patchUint(20, serial).patchUint(24, status);
  return w.bytes();
}

function frame(prog: number, proc: number, type: number, serial: number, status: number) {
  return encodeFrame(prog, proc, type, serial, status);
}

function streamFrame(
  st: StreamState,
  status: number,
  data?: Uint8Array,
  into?: Uint8Array,
): Uint8Array {
  const len = HEADER_END + (data?.length ?? 0);
  const out = into ? into.subarray(0, len) : new Uint8Array(len);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(0, len);
  v.setUint32(4, st.prog);
  v.setUint32(8, PROTOCOL_VERSION);
  v.setUint32(12, st.proc);
  v.setUint32(16, MessageType.STREAM);
  v.setUint32(20, st.serial);
  v.setUint32(24, status);
  if (data) out.set(data, HEADER_END);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Parses the 28-byte frame header at the start of `bytes` (for tests and tools). */
export function decodeHeader(bytes: Uint8Array): {
  length: number;
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
} {
  const r = new XdrReader(bytes.subarray(0, HEADER_END));
  return {
    length: r.readUint(),
    prog: r.readUint(),
    vers: r.readUint(),
    proc: r.readInt(),
    type: r.readInt(),
    serial: r.readUint(),
    status: r.readInt(),
  };
}

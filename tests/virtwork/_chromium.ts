/**
 * Loads a local HTML file in a real headless Chromium and reports what a person would care about:
 * the page's console errors, uncaught exceptions and blocked or failed loads (through the
 * DevTools protocol on a loopback port), and the value of an expression evaluated in the page
 * after its load event. Chromium resolves no host name (every name maps to NOTFOUND) and starts
 * with a throw-away profile, so a page cannot reach the network and nothing is left behind.
 * @module
 */

/** What {@linkcode loadInChromium} saw. */
export interface PageCheck<T> {
  /** Console errors and assertions, uncaught exceptions, log entries of level error. */
  errors: string[];
  /** What `expression` evaluated to (JSON round trip). */
  value: T;
}

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

const LISTENING = /DevTools listening on (ws:\/\/127\.0\.0\.1:(\d+)\/\S+)/;

/** How long one page may take to start and load, ms (the machine is shared and slow). */
const PAGE_TIMEOUT_MS = 90_000;

/**
 * Opens `file` (an absolute path) in headless Chromium, waits for its load event, evaluates
 * `expression` (which may return a promise) and closes the browser.
 */
export async function loadInChromium<T>(file: string, expression: string): Promise<PageCheck<T>> {
  const profile = await Deno.makeTempDir({ prefix: "virtwork-report-chromium-" });
  const args = [
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    `--user-data-dir=${profile}`,
    ...(Deno.uid() === 0 ? ["--no-sandbox"] : []),
    "about:blank",
  ];
  const child = new Deno.Command("chromium", {
    args,
    // Chromium's singleton socket directory goes under TMPDIR: inside the profile, removed with it.
    env: { TMPDIR: profile },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new Error("chromium did not answer in time")),
    PAGE_TIMEOUT_MS,
  );
  let ws: WebSocket | undefined;
  let stderrTail = "";
  try {
    // Chromium says where its DevTools endpoint is on stderr; read until then (bounded).
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let port: string | undefined;
    while (port === undefined) {
      const { value, done } = await Promise.race([
        reader.read(),
        new Promise<never>((_, rej) =>
          ac.signal.addEventListener("abort", () => rej(ac.signal.reason))
        ),
      ]);
      if (done) throw new Error(`chromium exited before listening: ${stderrTail}`);
      stderrTail = (stderrTail + value).slice(-4000);
      port = LISTENING.exec(stderrTail)?.[2];
    }
    // Keep draining stderr so Chromium never blocks on a full pipe.
    (async () => {
      try {
        for (;;) if ((await reader.read()).done) break;
      } catch { /* closed */ }
    })();
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`, { signal: ac.signal }))
      .json() as { type: string; webSocketDebuggerUrl: string }[];
    const page = targets.find((t) => t.type === "page");
    if (!page) throw new Error("chromium has no page target");

    ws = new WebSocket(page.webSocketDebuggerUrl);
    const socket = ws;
    await new Promise<void>((res, rej) => {
      socket.onopen = () => res();
      socket.onerror = () => rej(new Error("cannot open the DevTools websocket"));
    });
    const errors: string[] = [];
    const waiting = new Map<number, (m: CdpMessage) => void>();
    const events = new Map<string, () => void>();
    let next = 1;
    socket.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as CdpMessage;
      if (m.id !== undefined) {
        waiting.get(m.id)?.(m);
        waiting.delete(m.id);
        return;
      }
      const p = m.params ?? {};
      if (m.method === "Runtime.consoleAPICalled" && (p.type === "error" || p.type === "assert")) {
        const args = (p.args as { value?: unknown; description?: string }[] | undefined) ?? [];
        errors.push(`console.${p.type}: ${args.map((a) => a.value ?? a.description).join(" ")}`);
      } else if (m.method === "Runtime.exceptionThrown") {
        const d = p.exceptionDetails as { text?: string; exception?: { description?: string } };
        errors.push(`exception: ${d.exception?.description ?? d.text}`);
      } else if (m.method === "Log.entryAdded") {
        const e = p.entry as { level: string; text: string; url?: string };
        if (e.level === "error") errors.push(`log: ${e.text}${e.url ? ` (${e.url})` : ""}`);
      }
      if (m.method) events.get(m.method)?.();
    };
    const send = (method: string, params: Record<string, unknown> = {}) =>
      new Promise<CdpMessage>((res, rej) => {
        const id = next++;
        waiting.set(id, (m) => m.error ? rej(new Error(`${method}: ${m.error.message}`)) : res(m));
        socket.send(JSON.stringify({ id, method, params }));
        ac.signal.addEventListener("abort", () => rej(ac.signal.reason));
      });
    const once = (method: string) => new Promise<void>((res) => events.set(method, res));

    await send("Runtime.enable");
    await send("Log.enable");
    await send("Page.enable");
    const loaded = once("Page.loadEventFired");
    await send("Page.navigate", { url: new URL(`file://${file}`).href });
    await loaded;
    const r = await send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    const result = r.result as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (result.exceptionDetails) {
      throw new Error(
        `the check's expression threw: ${
          result.exceptionDetails.exception?.description ?? result.exceptionDetails.text
        }`,
      );
    }
    await send("Browser.close").catch(() => {});
    return { errors, value: result.result.value as T };
  } finally {
    clearTimeout(timer);
    try {
      ws?.close();
    } catch { /* closed */ }
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await removeProfile(profile);
  }
}

/** Removes the profile, again while Chromium's helper processes are still letting go of it. */
async function removeProfile(profile: string): Promise<void> {
  for (let i = 0;; i++) {
    try {
      await Deno.remove(profile, { recursive: true });
      return;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * `foundry list -w`: the listing, then one line per VM whose row changed, as the daemon's events
 * arrive (kubectl get -w). Loaded only with `-w` (by `_inventory.ts`, with a dynamic import), so a
 * plain `list` never loads the event code.
 * @module
 */
import { type LabelSelector, listVms, type VmListEntry } from "../../lib/foundry/inventory.ts";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import { watchEvents } from "../../lib/foundry/events.ts";
import type { Io } from "../_program.ts";
import { interruptSignal } from "../_signals.ts";
import { withLibvirt } from "./_context.ts";
import { type ListFlags, printVms } from "./_inventory.ts";

/** Re-reads after an event: at once (state), and again later (the agent's addresses come late). */
const REFRESH_AFTER_MS = [300, 5_000] as const;

/** A row's content, to tell whether it changed. */
const rowKey = (v: VmListEntry) => JSON.stringify(v);

/**
 * Prints the listing of `flags`, then, until Ctrl-C, each VM whose row changed (or that appeared
 * or went away: its row with state `deleted`) after the daemon reported an event. With `-o json`
 * each change is one JSON line; `-o yaml` one document; table and wide a row without header.
 */
export async function watchList(
  io: Io,
  flags: ListFlags,
  config: FoundryConfig,
  selector: LabelSelector | undefined,
): Promise<void> {
  const signal = interruptSignal() ?? new AbortController().signal;
  await withLibvirt(config, async (lv) => {
    const read = async () =>
      (await listVms(lv, {
        all: flags.all === true,
        autostart: flags.output === "wide",
        ...(selector ? { selector } : {}),
      })).vms;
    // Subscribed before the first listing, so no change between the two is lost.
    let ready!: () => void;
    const subscribed = new Promise<void>((r) => ready = r);
    const events = watchEvents(lv, { signal, onReady: () => ready() });
    let pending = events.next();
    await Promise.race([subscribed, pending]);
    const first = await read();
    await printVms(io, flags, first, "No VMs found");
    const seen = new Map(first.map((v) => [v.name, v]));

    let chain = Promise.resolve();
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const changed = (v: VmListEntry) => {
      if (flags.output === "json") io.out(`${JSON.stringify(v)}\n`);
      else if (flags.output === "yaml") {
        return printVms(io, { ...flags }, [v]).then(() => io.out("---\n"));
      } else return printVms(io, { ...flags, headers: false }, [v]);
    };
    const refresh = () => {
      chain = chain.then(async () => {
        if (signal.aborted) return;
        const now = await read();
        const names = new Set(now.map((v) => v.name));
        for (const v of now) {
          const old = seen.get(v.name);
          if (old && rowKey(old) === rowKey(v)) continue;
          seen.set(v.name, v);
          await changed(v);
        }
        for (const [name, old] of seen) {
          if (names.has(name)) continue;
          seen.delete(name);
          await changed({ ...old, state: "deleted", ip: "", ipSource: "", addresses: [] });
        }
      }).catch((e) => {
        if (!signal.aborted) io.err(`Warning: listing again failed: ${(e as Error).message}\n`);
      });
    };
    try {
      while (true) {
        const r = await pending;
        if (r.done) break;
        // Any event (a dropped-events notice too) may have changed rows: read them again.
        for (const ms of REFRESH_AFTER_MS) {
          const t = setTimeout(() => {
            timers.delete(t);
            refresh();
          }, ms);
          timers.add(t);
        }
        pending = events.next();
      }
    } finally {
      for (const t of timers) clearTimeout(t);
      await events.return();
      await chain;
    }
  });
}

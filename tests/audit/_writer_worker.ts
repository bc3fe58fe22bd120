/** A worker that writes audit runs: message `{ path, runs, prefix }`, answer `{ ok, error? }`. */
import { writeRuns } from "./_writer.ts";

const scope = self as unknown as {
  onmessage: (e: MessageEvent<{ path: string; runs: number; prefix: string }>) => void;
  postMessage: (m: unknown) => void;
};
scope.onmessage = async (e) => {
  try {
    await writeRuns(e.data.path, e.data.runs, e.data.prefix);
    scope.postMessage({ ok: true });
  } catch (err) {
    scope.postMessage({ ok: false, error: String((err as Error).stack ?? err) });
  }
};

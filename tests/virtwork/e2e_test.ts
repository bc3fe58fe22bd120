/**
 * End-to-end against a real KubeVirt cluster: deploy → ready → cleanup. Runs only when
 * VIRTWORK_E2E_KUBECONFIG names a kubeconfig; otherwise it says it is skipped and why.
 * Optional: VIRTWORK_E2E_WORKLOADS (default cpu), VIRTWORK_E2E_TIMEOUT seconds (default 900).
 */
import assert from "node:assert/strict";
import { main } from "../../cli/virtwork.ts";
import { allowedSkip } from "../_require.ts";

const kubeconfig = Deno.env.get("VIRTWORK_E2E_KUBECONFIG");
const noCluster = kubeconfig
  ? null
  : "needs a KubeVirt cluster; set VIRTWORK_E2E_KUBECONFIG to run it";

async function virtwork(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

allowedSkip(noCluster, {
  name: "e2e: run deploys VMs that become Ready, cleanup removes them and the namespace",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ns = `virtwork-e2e-${crypto.randomUUID().slice(0, 8)}`;
    const workloads = Deno.env.get("VIRTWORK_E2E_WORKLOADS") ?? "cpu";
    const timeout = Deno.env.get("VIRTWORK_E2E_TIMEOUT") ?? "900";
    const common = ["--kubeconfig", kubeconfig!, "--namespace", ns];
    try {
      const run = await virtwork([
        "run",
        ...common,
        "--workloads",
        workloads,
        "--timeout",
        timeout,
        "--poll-interval",
        "10",
        "-o",
        "json",
      ]);
      assert.equal(run.code, 0, run.err);
      const result = JSON.parse(run.out);
      assert.ok(result.vms.length > 0);
      assert.ok(result.vms.every((v: { ready: boolean }) => v.ready), run.out);
    } finally {
      const clean = await virtwork(["cleanup", ...common, "--delete-namespace", "--wait"]);
      assert.equal(clean.code, 0, clean.err + clean.out);
    }
  },
});

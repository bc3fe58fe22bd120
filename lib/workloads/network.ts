/**
 * The network workload: an iperf3 server VM and a client VM. The client reaches its server at the
 * address the backend passes as `peers.server` (KubeVirt: the ClusterIP Service's DNS name, which
 * must exist before the VMs; libvirt: the server's static address) and runs bidirectional tests one
 * result interval long, reporting `sent_mbit_per_s` and `received_mbit_per_s` from iperf3's JSON.
 * The server reports nothing but a missing package; its client reports for the pair.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import {
  BaseWorkload,
  type GuestContext,
  type RolePeerNeed,
  type ServiceSpec,
} from "./workload.ts";
import {
  binFile,
  commonFiles,
  enableUnit,
  ensureArgs,
  GUEST_RESULTS_FILE,
  SCRIPT_HEAD,
  serviceUnit,
  unitFile,
} from "./_guest.ts";

/** Label key that tells VM roles apart; the Service selects on it. */
export const LABEL_ROLE = "virtwork/role";
/** Role of the iperf3 server VMs. */
export const ROLE_SERVER = "server";
/** Role of the iperf3 client VMs. */
export const ROLE_CLIENT = "client";
/** Name of the Service in front of the servers. */
export const IPERF3_SERVICE = "virtwork-iperf3-server";
/** iperf3's port. */
export const IPERF3_PORT = 5201;
/** Parallel streams of a client test. */
export const IPERF3_STREAMS = 4;
/** Unit names by role. */
export const NETWORK_UNITS = {
  server: "virtwork-iperf3-server.service",
  client: "virtwork-iperf3-client.service",
} as const;

/**
 * The client's sample script: one `iperf3 --bidir -J` test of the result interval against
 * `$VIRTWORK_IPERF3_SERVER` on `$VIRTWORK_IPERF3_PORT`, reported.
 */
export function networkSampleScript(): string {
  return `${SCRIPT_HEAD}
server="\${VIRTWORK_IPERF3_SERVER:?VIRTWORK_IPERF3_SERVER is not set}"
port="\${VIRTWORK_IPERF3_PORT:-${IPERF3_PORT}}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
iperf3 -c "$server" -p "$port" -t "$VIRTWORK_INTERVAL" -P ${IPERF3_STREAMS} --bidir -J \\
  >"$tmp/out.json" 2>"$tmp/err"
# iperf3 -J reports its own failures (connection refused, server busy) inside the JSON.
virtwork_report network iperf3 "$tmp/out.json"
`;
}

/** iperf3 server and client pairs. */
export class NetworkWorkload extends BaseWorkload {
  /** Registry name. */
  readonly name = "network";

  /** Server first, so it exists before its clients. */
  override roles(): readonly string[] {
    return [ROLE_SERVER, ROLE_CLIENT];
  }

  /** The client connects to the server on the iperf3 port. */
  override peerNeeds(): readonly RolePeerNeed[] {
    return [{ from: ROLE_CLIENT, to: ROLE_SERVER, ports: [IPERF3_PORT] }];
  }

  /** The cluster DNS name of the Service (what a KubeVirt backend passes as `peers.server`). */
  serverHost(): string {
    return `${IPERF3_SERVICE}.${this.namespace}.svc.cluster.local`;
  }

  /** ClusterIP Service on 5201 selecting the server role. */
  override service(): ServiceSpec {
    return {
      name: IPERF3_SERVICE,
      selector: { [LABEL_ROLE]: ROLE_SERVER },
      ports: [
        { name: "iperf3", port: IPERF3_PORT, targetPort: IPERF3_PORT, protocol: "TCP" },
      ],
    };
  }

  /** Server: `iperf3 -s`. Client: bidirectional slices with 4 streams against `peers.server`. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    const server = role === ROLE_SERVER;
    const unit = server ? NETWORK_UNITS.server : NETWORK_UNITS.client;
    const run = `virtwork-iperf3-${role}-run`;
    const files = [...commonFiles(GUEST_RESULTS_FILE)];
    const environment: Record<string, string> = {
      VIRTWORK_INTERVAL: String(this.resultIntervalSeconds),
    };
    if (server) {
      files.push(binFile(
        run,
        `${SCRIPT_HEAD}
"$VIRTWORK_BIN_DIR/virtwork-ensure-packages" network ${ensureArgs(ctx.os, ["iperf3"])} || exit 1
exec iperf3 -s -p ${IPERF3_PORT}
`,
      ));
    } else {
      environment.VIRTWORK_IPERF3_SERVER = peerAddress(ctx, ROLE_SERVER);
      environment.VIRTWORK_IPERF3_PORT = String(IPERF3_PORT);
      files.push(
        binFile("virtwork-network-sample", networkSampleScript()),
        binFile(
          run,
          `${SCRIPT_HEAD}
"$VIRTWORK_BIN_DIR/virtwork-ensure-packages" network ${
            ensureArgs(ctx.os, ["iperf3", "python3"])
          } || exit 1
while true; do
  "$VIRTWORK_BIN_DIR/virtwork-network-sample" || sleep "$VIRTWORK_INTERVAL"
done
`,
        ),
      );
    }
    files.push(unitFile(
      unit,
      serviceUnit({
        description: `virtwork network load (iperf3 ${role})`,
        execStart: `/usr/local/bin/${run}`,
        environment,
        restartSec: server ? 5 : 10,
      }),
    ));
    return this.withSsh({ writeFiles: files, runcmd: enableUnit(unit) });
  }
}

/** `ctx.peers[role]`, checked to be a host name or IP address. */
function peerAddress(ctx: GuestContext, role: string): string {
  const a = ctx.peers[role];
  if (a === undefined || a === "") {
    throw new RangeError(`network client ${ctx.vmName} needs peers.${role}, got none`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/.test(a)) {
    throw new RangeError(
      `network client ${ctx.vmName} peers.${role} must be a host name or IP address, got ${
        JSON.stringify(a)
      }`,
    );
  }
  return a;
}

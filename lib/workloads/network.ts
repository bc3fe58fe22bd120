/**
 * The network workload: an iperf3 server VM and a client VM that reaches it through a ClusterIP
 * Service. The Service must exist before the VMs so the client's DNS name resolves; the client unit
 * restarts until it does.
 * @module
 */
import type { CloudConfigOptions } from "../cloudinit/cloud_config.ts";
import {
  BaseWorkload,
  type GuestContext,
  type RolePeerNeed,
  type ServiceSpec,
} from "./workload.ts";
import { enableUnit, serviceUnit, unitFile } from "./_guest.ts";

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
/** Unit names by role. */
export const NETWORK_UNITS = {
  server: "virtwork-iperf3-server.service",
  client: "virtwork-iperf3-client.service",
} as const;

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

  /** Server: `iperf3 -s`. Client: 60 s bidirectional runs with 4 streams against the Service. */
  userData(role: string, ctx: GuestContext): CloudConfigOptions {
    this.checkRole(role);
    this.checkContext(ctx);
    const server = role === ROLE_SERVER;
    const host = server ? "" : peerAddress(ctx, ROLE_SERVER);
    const unit = server ? NETWORK_UNITS.server : NETWORK_UNITS.client;
    const execStart = server
      ? `/usr/bin/iperf3 -s -p ${IPERF3_PORT}`
      : `/usr/bin/iperf3 -c ${host} -p ${IPERF3_PORT} -t 60 -P 4 --bidir`;
    return this.withSsh({
      packages: ["iperf3"],
      writeFiles: [
        unitFile(
          unit,
          serviceUnit({
            description: `virtwork network load (iperf3 ${role})`,
            execStart,
            restartSec: server ? 5 : 10,
          }),
        ),
      ],
      runcmd: enableUnit(unit),
    });
  }
}

/** `ctx.peers[role]`, checked to be a host name or IP address. */
function peerAddress(ctx: GuestContext, role: string): string {
  const a = ctx.peers[role];
  if (a === undefined || a === "") {
    throw new RangeError(`network client ${ctx.vmName} needs peers.${role}, got none`);
  }
  if (!/^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$/.test(a)) {
    throw new RangeError(
      `network client ${ctx.vmName} peers.${role} must be a host name or IP address, got ${
        JSON.stringify(a)
      }`,
    );
  }
  return a;
}

/**
 * A test-owned sshd on 127.0.0.1 (its own host key, one client key authorised for root, a free
 * port), for the qemu+ssh:// tests: the transport test, the fleet harness's ssh host and the
 * day-2 console over ssh.
 * @module
 */

/** Where Debian's openssh-server puts sshd. */
export const SSHD = "/usr/sbin/sshd";

/** A running test sshd. */
export interface TestSshd {
  /** Its private directory (keys, config); removed by `stop`. */
  dir: string;
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** The client's private key, authorised for root. */
  key: string;
  /** `qemu+ssh://root@127.0.0.1:PORT/system?keyfile=KEY&no_verify=1`, plus `query` if given. */
  uri(query?: string): string;
  /** Stops sshd and removes its directory. */
  stop(): Promise<void>;
}

async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

/**
 * Starts sshd in a new directory named with `prefix` and waits (up to a minute, for a loaded
 * machine) until it accepts connections.
 */
export async function startTestSshd(prefix: string): Promise<TestSshd> {
  const dir = await Deno.makeTempDir({ prefix: `${prefix}-sshd-` });
  await Deno.mkdir("/run/sshd", { recursive: true });
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/host_key`]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/client_key`]);
  await Deno.copyFile(`${dir}/client_key.pub`, `${dir}/authorized_keys`);
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      `PidFile ${dir}/sshd.pid`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "StrictModes no",
      "UsePAM no",
    ].join("\n") + "\n",
  );
  const sshd = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const key = `${dir}/client_key`;
  const stop = async () => {
    try {
      sshd.kill("SIGTERM");
    } catch { /* gone */ }
    await sshd.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  for (const deadline = Date.now() + 60_000;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`sshd never listened on ${port}: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    dir,
    port,
    key,
    uri: (query = "") =>
      `qemu+ssh://root@127.0.0.1:${port}/system?keyfile=${key}&no_verify=1${
        query ? `&${query}` : ""
      }`,
    stop,
  };
}

/**
 * qemu+ssh:// against a real sshd on 127.0.0.1 started by the test, running virt-ssh-helper on
 * the "remote" side (this machine) in front of the real libvirtd.
 */
import assert from "node:assert/strict";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtSkipReason } from "./_env.ts";
import { firstMissing, requireRoot, testNeeding } from "../_require.ts";

const SSHD = "/usr/sbin/sshd";
const haveSshd = (() => {
  try {
    return Deno.statSync(SSHD).isFile;
  } catch {
    return false;
  }
})();
const missing = firstMissing(
  libvirtSkipReason,
  requireRoot("starting sshd"),
  haveSshd ? null : `${SSHD} is not installed (Debian package openssh-server)`,
);

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

testNeeding(missing, {
  name: "qemu+ssh:// speaks the protocol through ssh and virt-ssh-helper",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "foundry-sshd-" });
    await Deno.mkdir("/run/sshd", { recursive: true });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/host_key`]);
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/client_key`]);
    await Deno.copyFile(`${dir}/client_key.pub`, `${dir}/authorized_keys`);
    const port = freePort();
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
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      // Wait for sshd to listen (a generous minute on a loaded machine).
      for (const deadline = Date.now() + 60_000;;) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`sshd never listened on ${port}: ${e}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const uri = `qemu+ssh://root@127.0.0.1:${port}/system?keyfile=${dir}/client_key&no_verify=1`;
      const lv = await Libvirt.connect(uri);
      try {
        assert.equal(lv.uri.transport, "ssh");
        assert.ok((await lv.getLibVersion()) >= 1_000_000);
        assert.equal(await lv.getHostname(), Deno.hostname());
        const many = await Promise.all(Array.from({ length: 50 }, () => lv.getLibVersion()));
        assert.equal(new Set(many).size, 1);
      } finally {
        await lv.close();
      }
      // A key the server does not know: a ConnectionError carrying ssh's own words.
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/stranger`]);
      await assert.rejects(
        Libvirt.connect(
          `qemu+ssh://root@127.0.0.1:${port}/system?keyfile=${dir}/stranger&no_verify=1`,
        ),
        /Permission denied|ssh to 127\.0\.0\.1 ended/,
      );
    } finally {
      sshd.kill("SIGTERM");
      await sshd.stderr.cancel();
      await sshd.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

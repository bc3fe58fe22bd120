/**
 * qemu+ssh:// against a real sshd on 127.0.0.1 started by the test, running virt-ssh-helper on
 * the "remote" side (this machine) in front of the real libvirtd.
 */
import assert from "node:assert/strict";
import { Libvirt } from "../../lib/libvirt/mod.ts";
import { libvirtSkipReason } from "./_env.ts";
import { firstMissing, requireRoot, testNeeding } from "../_require.ts";
import { SSHD, startTestSshd } from "./_sshd.ts";

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

testNeeding(missing, {
  name: "qemu+ssh:// speaks the protocol through ssh and virt-ssh-helper",
  async fn() {
    const sshd = await startTestSshd("foundry");
    const { dir, port } = sshd;
    try {
      const uri = sshd.uri();
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
      await sshd.stop();
    }
  },
});

import assert from "node:assert/strict";
import { parse } from "npm:yaml@^2.9.1";
import { metaData, networkConfig, type NoCloudConfig, noCloudFiles, userData } from "./nocloud.ts";
import { runTool } from "../../tests/virtwork/guest_checks.ts";
import { requireTool, testNeeding } from "../../tests/_require.ts";

const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBESTEXAMPLEKEYBESTEXAMPLEKEYBESTEXAMPLE1 me@example.org";
const HASH =
  "$6$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ./0123456789abcdef";

// deno-lint-ignore no-explicit-any
type Loose = any;

function full(): NoCloudConfig {
  return {
    instanceId: "web-01-abc",
    hostname: "web-01",
    fqdn: "web-01.example.org",
    rootSshAuthorizedKeys: [KEY],
    rootPasswordHash: HASH,
    sshPwauth: true,
    interfaces: [
      {
        macAddress: "be:ef:c0:00:02:0a",
        addresses: ["192.0.2.10/24"],
        gateway: "192.0.2.1",
        nameservers: ["192.0.2.53", "2001:db8::53"],
      },
      { macAddress: "BE:EF:C6:33:64:0A", addresses: ["198.51.100.10/24"] },
    ],
  };
}

function minimal(): NoCloudConfig {
  return {
    instanceId: "m-1",
    hostname: "m",
    interfaces: [{ macAddress: "be:ef:c0:00:02:0b", addresses: ["192.0.2.11/24"] }],
  };
}

/** PyYAML reads these files: parse as YAML 1.1 to see what cloud-init sees. */
function read(text: string): unknown {
  return parse(text, { version: "1.1" });
}

const CLOUD_INIT = requireTool("cloud-init");
const PYYAML = requireTool("python3") ??
  ((await new Deno.Command("python3", { args: ["-c", "import yaml"], stderr: "null" }).output())
      .success
    ? null
    : "python3 cannot import yaml (Debian package python3-yaml)");

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await runTool(cmd, args);
  return { code: r.code, out: r.stdout + r.stderr };
}

/** Renders a network-config file for Debian as `kind` (eni, netplan) into `dir`. */
function netConvert(file: string, kind: string, dir: string) {
  const args = ["--network-data", file, "--kind", "yaml", "--output-kind", kind];
  return run("cloud-init", ["devel", "net-convert", ...args, "--distro", "debian", "-d", dir]);
}

Deno.test("userData() writes hostname, FQDN with /etc/hosts, root's keys, the password hash and ssh_pwauth", () => {
  const text = userData(full());
  assert.ok(text.startsWith("#cloud-config\n"));
  assert.deepEqual(read(text), {
    hostname: "web-01",
    fqdn: "web-01.example.org",
    manage_etc_hosts: true,
    disable_root: false,
    users: [{ name: "root", ssh_authorized_keys: [KEY] }],
    chpasswd: { users: [{ name: "root", password: HASH, type: "hash" }], expire: false },
    ssh_pwauth: true,
  });
});

Deno.test("userData() leaves out what the config does not ask for", () => {
  assert.deepEqual(read(userData(minimal())), {
    hostname: "m",
    disable_root: false,
    users: [{ name: "root" }],
    ssh_pwauth: false,
  });
});

Deno.test("userData() quotes strings that YAML 1.1 would read as something else", () => {
  const text = userData({ ...minimal(), hostname: "on", fqdn: "yes.no" });
  const doc = read(text) as Record<string, unknown>;
  assert.equal(doc.hostname, "on");
  assert.equal(doc.fqdn, "yes.no");
});

Deno.test("metaData() writes instance-id and local-hostname", () => {
  assert.deepEqual(read(metaData(full())), {
    "instance-id": "web-01-abc",
    "local-hostname": "web-01",
  });
});

Deno.test("networkConfig() matches by MAC, names ethN and routes the default as 0.0.0.0/0", () => {
  const text = networkConfig(full());
  assert.deepEqual(read(text), {
    version: 2,
    ethernets: {
      eth0: {
        match: { macaddress: "be:ef:c0:00:02:0a" },
        "set-name": "eth0",
        addresses: ["192.0.2.10/24"],
        routes: [{ to: "0.0.0.0/0", via: "192.0.2.1" }],
        nameservers: { addresses: ["192.0.2.53", "2001:db8::53"] },
      },
      eth1: {
        match: { macaddress: "be:ef:c6:33:64:0a" },
        "set-name": "eth1",
        addresses: ["198.51.100.10/24"],
      },
    },
  });
  assert.match(text, /macaddress: "be:ef:c0:00:02:0a"/);
  assert.doesNotMatch(text, /default/);
});

Deno.test("noCloudFiles() is deterministic and names the three files", () => {
  const a = noCloudFiles(full());
  assert.deepEqual(Object.keys(a).sort(), ["meta-data", "network-config", "user-data"]);
  assert.deepEqual(noCloudFiles(full()), a);
  assert.equal(a["user-data"], userData(full()));
});

testNeeding(CLOUD_INIT, {
  name: "every generated user-data passes cloud-init schema --config-file",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const configs = [full(), minimal(), {
        ...minimal(),
        sshPwauth: false,
        rootPasswordHash: HASH,
      }];
      for (const [i, c] of configs.entries()) {
        const file = `${dir}/user-data-${i}`;
        await Deno.writeTextFile(file, userData(c));
        const { code, out } = await run("cloud-init", ["schema", "--config-file", file]);
        assert.equal(code, 0, out);
        assert.match(out, /Valid cloud-config/);
        assert.doesNotMatch(out, /DEPRECATED/, out);
      }
      // The check can fail: a broken document is refused.
      const bad = `${dir}/bad`;
      await Deno.writeTextFile(bad, userData(minimal()).replace("ssh_pwauth: false", "users: 5"));
      assert.notEqual((await run("cloud-init", ["schema", "--config-file", bad])).code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testNeeding(CLOUD_INIT, {
  name: "cloud-init renders the network-config for Debian (ENI) and netplan",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const file = `${dir}/network-config`;
      await Deno.writeTextFile(file, networkConfig(full()));
      for (const kind of ["eni", "netplan"]) {
        const out = `${dir}/${kind}`;
        const r = await netConvert(file, kind, out);
        assert.equal(r.code, 0, r.out);
        const rendered = kind === "eni"
          ? await Deno.readTextFile(`${out}/etc/network/interfaces.d/50-cloud-init`)
          : await Deno.readTextFile(`${out}/etc/netplan/50-cloud-init.yaml`);
        assert.match(rendered, /192\.0\.2\.10\/24/);
        assert.match(rendered, /198\.51\.100\.10\/24/);
        assert.match(rendered, /192\.0\.2\.1\b/);
      }
      const udev = await Deno.readTextFile(`${dir}/eni/etc/udev/rules.d/70-persistent-net.rules`);
      assert.match(udev, /be:ef:c0:00:02:0a.*NAME="eth0"/);
      assert.match(udev, /be:ef:c6:33:64:0a.*NAME="eth1"/);
      // The check can fail: every cloud-init version refuses an address that is not one.
      await Deno.writeTextFile(
        file,
        networkConfig(full()).replace("192.0.2.10/24", "192.0.2.300/24"),
      );
      const refused = await netConvert(file, "eni", `${dir}/refused`);
      assert.notEqual(refused.code, 0, refused.out);
      assert.match(refused.out, /192\.0\.2\.300/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testNeeding(PYYAML, {
  name: "PyYAML, the parser cloud-init uses, reads the documents as intended",
  fn: async () => {
    const tricky: NoCloudConfig = {
      ...full(),
      hostname: "on",
      fqdn: "yes.no",
      instanceId: "12:30",
      rootSshAuthorizedKeys: [KEY, "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ== x=y"],
      interfaces: [{
        macAddress: "12:34:56:12:34:56",
        addresses: ["192.0.2.10/24"],
        gateway: "192.0.2.1",
        nameservers: ["1:2:3:4:5:6:7:8", "2001:db8::53"],
      }],
    };
    const seen: Record<string, Loose> = {};
    for (const [name, text] of Object.entries(noCloudFiles(tricky))) {
      const r = await new Deno.Command("python3", {
        args: ["-c", "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = r.stdin.getWriter();
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
      const out = await r.output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      seen[name] = JSON.parse(new TextDecoder().decode(out.stdout));
    }
    assert.equal(seen["user-data"].hostname, "on");
    assert.equal(seen["user-data"].fqdn, "yes.no");
    assert.deepEqual(seen["user-data"].users[0].ssh_authorized_keys, tricky.rootSshAuthorizedKeys);
    assert.equal(seen["user-data"].chpasswd.users[0].password, HASH);
    assert.deepEqual(seen["meta-data"], { "instance-id": "12:30", "local-hostname": "on" });
    const eth0 = seen["network-config"].ethernets.eth0;
    assert.equal(eth0.match.macaddress, "12:34:56:12:34:56");
    assert.deepEqual(eth0.nameservers.addresses, ["1:2:3:4:5:6:7:8", "2001:db8::53"]);
    assert.deepEqual(eth0.routes, [{ to: "0.0.0.0/0", via: "192.0.2.1" }]);
  },
});

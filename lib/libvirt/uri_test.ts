import assert from "node:assert/strict";
import { DEFAULT_URI, parseUri, resolveUri } from "./uri.ts";
import { remoteProxyCommand } from "./transport.ts";

Deno.test("parseUri() maps qemu:///system to the system socket", () => {
  const u = parseUri("qemu:///system");
  assert.equal(u.transport, "unix");
  assert.equal(u.socketPath, "/var/run/libvirt/libvirt-sock");
  assert.equal(u.name, "qemu:///system");
});

Deno.test("parseUri() finds the session socket under XDG_RUNTIME_DIR, else ~/.cache", () => {
  assert.equal(
    parseUri("qemu:///session", { runtimeDir: "/run/user/1000" }).socketPath,
    "/run/user/1000/libvirt/libvirt-sock",
  );
  assert.equal(
    parseUri("qemu:///session", { runtimeDir: "", home: "/home/u" }).socketPath,
    "/home/u/.cache/libvirt/libvirt-sock",
  );
});

Deno.test("parseUri() honours ?socket= and keeps it out of the name sent to the daemon", () => {
  const u = parseUri("qemu+unix:///system?socket=/tmp/x.sock");
  assert.equal(u.transport, "unix");
  assert.equal(u.socketPath, "/tmp/x.sock");
  assert.equal(u.name, "qemu:///system");
});

Deno.test("parseUri() reads tcp host and port, default 16509", () => {
  const a = parseUri("qemu+tcp://10.0.0.5/system");
  assert.deepEqual([a.transport, a.host, a.port, a.name], [
    "tcp",
    "10.0.0.5",
    16509,
    "qemu:///system",
  ]);
  const b = parseUri("qemu+tcp://[::1]:1234/system");
  assert.deepEqual([b.host, b.port], ["::1", 1234]);
});

Deno.test("parseUri() reads ssh user, host, port and client options", () => {
  const u = parseUri(
    "qemu+ssh://admin@host.example:2222/system?keyfile=/k/id&no_verify=1&proxy=netcat",
  );
  assert.deepEqual(
    [u.transport, u.user, u.host, u.port, u.keyfile, u.noVerify, u.proxy, u.name],
    ["ssh", "admin", "host.example", 2222, "/k/id", true, "netcat", "qemu:///system"],
  );
});

Deno.test("parseUri() keeps driver parameters in the name", () => {
  assert.equal(parseUri("test:///default?foo=1&socket=/s").name, "test:///default?foo=1");
});

Deno.test("parseUri() rejects malformed URIs and unsupported transports with a reason", () => {
  assert.throws(() => parseUri("system"), /Invalid libvirt URI 'system'/);
  assert.throws(() => parseUri("qemu+tls://h/system"), /Unsupported transport 'tls'/);
  assert.throws(() => parseUri("qemu://h/system"), /Unsupported transport 'tls'/);
  assert.throws(() => parseUri("qemu+carrier://h/system"), /Unknown transport 'carrier'/);
  assert.throws(() => parseUri("qemu+ssh:///system"), /needs a host/);
  assert.throws(() => parseUri("qemu+ssh://h/system?proxy=magic"), /Invalid proxy 'magic'/);
});

Deno.test("resolveUri() prefers the flag, then FOUNDRY_URI, then LIBVIRT_DEFAULT_URI", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.equal(resolveUri("a:///x", env({ FOUNDRY_URI: "b:///y" })), "a:///x");
  assert.equal(
    resolveUri(undefined, env({ FOUNDRY_URI: "b:///y", LIBVIRT_DEFAULT_URI: "c:///z" })),
    "b:///y",
  );
  assert.equal(resolveUri(undefined, env({ LIBVIRT_DEFAULT_URI: "c:///z" })), "c:///z");
  assert.equal(resolveUri(undefined, env({})), DEFAULT_URI);
});

Deno.test("remoteProxyCommand() quotes the URI and socket for the remote shell", () => {
  const u = parseUri("qemu+ssh://h/system?socket=/run/it's.sock");
  assert.equal(remoteProxyCommand({ ...u, proxy: "native" }), "virt-ssh-helper 'qemu:///system'");
  assert.equal(remoteProxyCommand({ ...u, proxy: "netcat" }), `nc -U '/run/it'\\''s.sock'`);
  assert.match(remoteProxyCommand(u), /^sh -c '.*virt-ssh-helper.*nc -U/);
});

import assert from "node:assert/strict";
import { parseConfigFile } from "./config_file.ts";
import { hostNameProblem } from "./config_hosts.ts";
import { loadConfig } from "./config.ts";

Deno.test("hosts: flow and block entries with labels and limits", () => {
  const layer = parseConfigFile(
    `hosts:
  - {name: a, uri: qemu+ssh://root@a/system, labels: {zone: x}, limits: {maxVms: 20, reserveMemoryGiB: 2}}
  - name: b-2
    uri: qemu+tcp://10.0.0.5/system
    labels:
      zone: "y"
      rack: 7
`,
    "c.yaml",
  );
  assert.deepEqual(layer.hosts, [
    {
      name: "a",
      uri: "qemu+ssh://root@a/system",
      labels: { zone: "x" },
      limits: { maxVms: 20, reserveMemoryGiB: 2 },
    },
    { name: "b-2", uri: "qemu+tcp://10.0.0.5/system", labels: { zone: "y", rack: "7" } },
  ]);
});

Deno.test("hosts: every problem with file, line and field", () => {
  assert.throws(
    () =>
      parseConfigFile(
        `hosts:
  - {name: a, uri: qemu:///system}
  - name: a
    uri: qemu+tls://x/system
    colour: red
    limits: {maxVms: -1, burst: 2}
  - uri: qemu:///system
  - name: Bad_Name
    uri: ""
    labels: {"bad key!": v}
  - just-a-string
`,
        "c.yaml",
      ),
    (e: Error) => {
      const lines = e.message.split("\n");
      assert.deepEqual(lines, [
        `c.yaml:3:11 hosts[1].name: duplicate host name "a" (also hosts[0])`,
        `c.yaml:4:10 hosts[1].uri: Unsupported transport 'tls' in 'qemu+tls://x/system': use unix (qemu:///system), tcp or ssh`,
        `c.yaml:5:5 hosts[1].colour: unknown field "colour"; valid fields: name, uri, labels, limits`,
        `c.yaml:6:22 hosts[1].limits.maxVms: must be a whole number of 0 or more, got -1`,
        `c.yaml:6:26 hosts[1].limits.burst: unknown field "burst"; valid fields: maxVms, reserveMemoryGiB`,
        `c.yaml:7:5 hosts[2].name: is required`,
        lines[6]!,
        `c.yaml:9:10 hosts[3].uri: must be a non-empty string`,
        lines[8]!,
        `c.yaml:11:5 hosts[4]: must be a mapping {name, uri, labels, limits}`,
      ]);
      assert.match(lines[6]!, /^c\.yaml:8:11 hosts\[3\]\.name: must be lower-case letters/);
      assert.match(lines[8]!, /^c\.yaml:10:\d+ hosts\[3\]\.labels\.bad key!: /);
      return true;
    },
  );
  assert.throws(
    () => parseConfigFile("hosts: {a: 1}\n", "c.yaml"),
    /c\.yaml:1:8 hosts: must be a list/,
  );
});

Deno.test("hostNameProblem() accepts DNS-label names only", () => {
  for (const ok of ["a", "h6a", "rack-1-host-2"]) assert.equal(hostNameProblem(ok), undefined, ok);
  for (const bad of ["", "-a", "a-", "A", "a_b", "a.b", "x".repeat(64)]) {
    assert.ok(hostNameProblem(bad), bad);
  }
});

Deno.test("loadConfig() passes hosts: through; without it there is none", async () => {
  const files: Record<string, string> = {
    "/f.yaml": "uri: qemu:///session\nhosts:\n  - {name: a, uri: qemu:///system}\n",
    "/g.yaml": "uri: qemu:///session\n",
  };
  const readFile = (p: string) => Promise.resolve(files[p]);
  const env = () => undefined;
  const c = await loadConfig({ flags: { config: "/f.yaml" }, env, readFile });
  assert.equal(c.uri, "qemu:///session");
  assert.deepEqual(c.hosts, [{ name: "a", uri: "qemu:///system" }]);
  const d = await loadConfig({ flags: { config: "/g.yaml" }, env, readFile });
  assert.equal("hosts" in d, false);
});

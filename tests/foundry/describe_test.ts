/**
 * The pure parts of `foundry describe`: times from /proc and cloud-init's files, the agent
 * channel's state, the Ready condition's time, addresses by source, and the text layout.
 */
import assert from "node:assert/strict";
import {
  addressesFrom,
  agentChannelState,
  cloudInitErrors,
  cloudInitFinishedTime,
  processStartTime,
  readyCondition,
  specAddresses,
  type VmDescription,
} from "../../lib/foundry/describe.ts";
import { DomainState } from "../../lib/libvirt/mod.ts";
import { formatDescription } from "../../cli/foundry/describe.ts";

// 22 fields after the command name; field 22 (starttime) is 1234 ticks = 12.34 s after boot.
const SELF_STAT = "812 (qemu-ga (x) y) S 1 812 812 0 -1 4194560 420 0 0 0 1 2 0 0 20 0 1 0 1234 " +
  "12345678 900 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 0 0 0 0 0 0";
const PROC_STAT = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1764676800\nprocesses 7\n";

Deno.test("processStartTime() is boot time plus field 22 in ticks, after the last ')'", () => {
  // btime 1764676800 is 2025-12-02T12:00:00Z; RFC 3339 with whole seconds.
  assert.equal(processStartTime(SELF_STAT, PROC_STAT), "2025-12-02T12:00:12Z");
  assert.equal(processStartTime(SELF_STAT, "cpu 1\n"), null);
  assert.equal(processStartTime("garbage", PROC_STAT), null);
  assert.equal(processStartTime("1 (a) S 1 2", PROC_STAT), null);
});

Deno.test("cloudInitFinishedTime() reads modules-final's finish, null before it", () => {
  const done = JSON.stringify({
    v1: { "modules-final": { errors: [], finished: 1764676900.5, start: 1764676890 } },
  });
  assert.equal(cloudInitFinishedTime(done), "2025-12-02T12:01:40Z");
  const running = JSON.stringify({ v1: { "modules-final": { finished: null, start: 1 } } });
  assert.equal(cloudInitFinishedTime(running), null);
  assert.equal(cloudInitFinishedTime("{not json"), null);
});

Deno.test("cloudInitErrors() keeps at most five, each cut short", () => {
  assert.deepEqual(cloudInitErrors('{"v1":{"datasource":"x","errors":[]}}'), []);
  const many = { v1: { errors: Array.from({ length: 9 }, (_, i) => `e${i}`.repeat(100)) } };
  const got = cloudInitErrors(JSON.stringify(many))!;
  assert.equal(got.length, 5);
  assert.ok(got[0]!.length < 260, `${got[0]!.length}`);
  assert.equal(cloudInitErrors("[]"), null);
});

Deno.test("agentChannelState() finds the guest agent channel's state only", () => {
  const xml = `<domain><devices>
    <channel type='unix'><target type='virtio' name='org.other.0' state='disconnected'/></channel>
    <channel type='unix'><source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>
  </devices></domain>`;
  assert.equal(agentChannelState(xml), "connected");
  assert.equal(agentChannelState("<domain/>"), null);
});

Deno.test("readyCondition(): the recorded time, unless the guest booted well after it; else boot time or none", () => {
  const stored = {
    conditions: [{
      type: "Ready",
      status: "True" as const,
      reason: "VMRunning",
      message: "VM is running",
      lastTransitionTime: "2025-01-01T00:00:00Z",
    }],
  };
  // Booted a minute after foundry started it: that start.
  assert.equal(
    readyCondition(DomainState.RUNNING, stored, "2025-01-01T00:01:00Z").lastTransitionTime,
    "2025-01-01T00:00:00Z",
  );
  // Booted long after: restarted by another client since; its boot is the change.
  assert.equal(
    readyCondition(DomainState.RUNNING, stored, "2025-06-01T00:00:00Z").lastTransitionTime,
    "2025-06-01T00:00:00Z",
  );
  assert.equal(
    readyCondition(DomainState.RUNNING, stored, null).lastTransitionTime,
    "2025-01-01T00:00:00Z",
  );
  // Stopped by another client: the record says True, so its time is not this change's.
  const off = readyCondition(DomainState.SHUTOFF, stored, null);
  assert.deepEqual([off.status, off.lastTransitionTime], ["False", null]);
  // Started by another client: since the guest booted.
  const on = readyCondition(DomainState.RUNNING, undefined, "2025-06-01T00:00:00Z");
  assert.deepEqual([on.status, on.lastTransitionTime], ["True", "2025-06-01T00:00:00Z"]);
});

Deno.test("addresses are labelled by source; loopback is left out", () => {
  const ifaces = [
    { name: "lo", hwaddr: null, addrs: [{ type: 0, addr: "127.0.0.1", prefix: 8 }] },
    {
      name: "eth0",
      hwaddr: "52:54:00:00:00:01",
      addrs: [{ type: 0, addr: "192.0.2.5", prefix: 24 }, {
        type: 1,
        addr: "fe80::1",
        prefix: 64,
      }],
    },
  ];
  const a = addressesFrom("agent", ifaces);
  assert.deepEqual(a.map((x) => `${x.source} ${x.ip}/${x.prefix} ${x.family} ${x.interface}`), [
    "agent 192.0.2.5/24 ipv4 eth0",
    "agent fe80::1/64 ipv6 eth0",
  ]);
  assert.deepEqual(addressesFrom("lease", undefined), []);
  const vm = { spec: { networkInterfaces: [{ ip: "192.0.2.5/24" }] } } as Parameters<
    typeof specAddresses
  >[0];
  assert.deepEqual(specAddresses(vm).map((x) => [x.source, x.ip, x.prefix]), [[
    "spec",
    "192.0.2.5",
    24,
  ]]);
});

Deno.test("formatDescription() prints sections, tables and unknown times as '-'", () => {
  const d: VmDescription = {
    name: "web-01",
    uuid: "u",
    managed: true,
    labels: { role: "web" },
    annotations: {},
    spec: {
      vcpus: 2,
      memoryGiB: 1,
      bootDisk: { sizeGB: 4 },
      networkInterfaces: [{ ip: "192.0.2.5/24" }],
    } as VmDescription["spec"],
    generation: 1,
    live: {
      state: "running",
      phase: "Running",
      vcpus: 2,
      memoryMiB: 1024,
      maxMemoryMiB: 1024,
      cpuTimeSeconds: 3.21,
      autostart: true,
    },
    addresses: [{
      source: "agent",
      ip: "192.0.2.5",
      prefix: 24,
      family: "ipv4",
      interface: "eth0",
      mac: "52:54:00:00:00:01",
    }],
    disks: [
      {
        target: "vda",
        device: "disk",
        source: "p/web-01-boot",
        capacity: 2 ** 32,
        allocation: 2 ** 20,
      },
      {
        target: "vdc",
        device: "disk",
        source: "/x",
        capacity: null,
        allocation: null,
        error: "no vol",
      },
    ],
    conditions: [{
      type: "AgentConnected",
      status: "False",
      lastTransitionTime: null,
      reason: "AgentNotConnected",
      message: "m\x1b[2J",
    }],
    events: [{
      startedAt: "2026-01-02T03:04:05.000Z",
      operation: "create",
      status: "succeeded",
      durationMs: 1500,
      error: null,
    }],
  };
  const out = formatDescription(d);
  assert.match(out, /^Name:\s+web-01$/m);
  assert.match(out, /^Labels:\s+role=web$/m);
  assert.match(out, /^Spec:\n {2}vcpus: 2\n {2}memoryGiB: 1\n {2}bootDisk:\n {4}sizeGB: 4\n/m);
  assert.match(out, /^ {4}\[0\]:\n {6}ip: 192\.0\.2\.5\/24$/m);
  assert.match(out, /^ {2}agent\s+192\.0\.2\.5\/24\s+eth0\s+52:54:00:00:00:01$/m);
  assert.match(out, /^ {2}vda\s+disk\s+p\/web-01-boot\s+4\.0 GiB\s+1\.0 MiB$/m);
  assert.match(out, /^ {2}vdc\s+disk\s+\/x\s+-\s+- \(no vol\)$/m);
  assert.match(out, /^ {2}AgentConnected\s+False\s+-\s+AgentNotConnected\s+m/m);
  assert.match(out, /^ {2}2026-01-02 03:04:05\s+create\s+succeeded\s+1\.5s\s+-$/m);
  assert.ok(!out.includes("\x1b"));
});

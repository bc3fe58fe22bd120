import assert from "node:assert/strict";
import { DomainState } from "../libvirt/constants.ts";
import {
  activeOperation,
  operationMarker,
  phaseFromDomainState,
  phaseOf,
  setCondition,
  statusFromDomainState,
} from "./status.ts";

Deno.test("phaseFromDomainState() maps every libvirt state", () => {
  const phases = Object.fromEntries(
    Object.entries(DomainState).map(([name, v]) => [name, phaseFromDomainState(v)]),
  );
  assert.deepEqual(phases, {
    NOSTATE: "Pending",
    RUNNING: "Running",
    BLOCKED: "Running",
    PAUSED: "Stopped",
    SHUTDOWN: "Running",
    SHUTOFF: "Stopped",
    CRASHED: "Failed",
    PMSUSPENDED: "Stopped",
  });
  assert.equal(phaseFromDomainState(99), "Pending");
});

Deno.test("setCondition() keeps the transition time while the status holds", () => {
  const t1 = new Date("2026-01-01T10:00:00.123Z");
  const t2 = new Date("2026-01-01T11:00:00Z");
  const up = { type: "Ready", status: "True", reason: "VMRunning", message: "up" } as const;
  const a = setCondition([], up, t1);
  assert.deepEqual(a, [{ ...up, lastTransitionTime: "2026-01-01T10:00:00Z" }]);
  const b = setCondition(a, { ...up, message: "still up" }, t2);
  assert.equal(b[0]?.lastTransitionTime, "2026-01-01T10:00:00Z");
  assert.equal(b[0]?.message, "still up");
  const c = setCondition(b, { ...up, status: "False", reason: "VMStopped" }, t2);
  assert.equal(c[0]?.lastTransitionTime, "2026-01-01T11:00:00Z");
  const d = setCondition(
    c,
    { type: "AgentConnected", status: "True", reason: "r", message: "m" },
    t2,
  );
  assert.deepEqual(d.map((x) => x.type), ["Ready", "AgentConnected"]);
  assert.equal(a.length, 1, "the input is not modified");
});

Deno.test("statusFromDomainState() sets phase, Ready and observedGeneration", () => {
  const t1 = new Date("2026-01-01T10:00:00Z");
  const running = statusFromDomainState(DomainState.RUNNING, 3, t1);
  assert.equal(running.phase, "Running");
  assert.equal(running.observedGeneration, 3);
  assert.deepEqual(running.conditions?.map((c) => [c.type, c.status, c.reason]), [
    ["Ready", "True", "VMRunning"],
  ]);
  const later = statusFromDomainState(
    DomainState.RUNNING,
    3,
    new Date("2026-01-02T00:00:00Z"),
    running,
  );
  assert.equal(later.conditions?.[0]?.lastTransitionTime, "2026-01-01T10:00:00Z");
  const off = statusFromDomainState(
    DomainState.SHUTOFF,
    3,
    new Date("2026-01-03T00:00:00Z"),
    later,
  );
  assert.equal(off.phase, "Stopped");
  assert.deepEqual(
    off.conditions?.map((c) => [c.status, c.lastTransitionTime]),
    [["False", "2026-01-03T00:00:00Z"]],
  );
  assert.equal(
    statusFromDomainState(DomainState.CRASHED, 1, t1).conditions?.[0]?.reason,
    "VMCrashed",
  );
});

Deno.test("an operation marker sets the phase until it expires (a crashed create's is ignored then)", () => {
  const t0 = new Date("2026-01-01T10:00:00Z");
  const marker = operationMarker("Creating", t0, 60_000);
  assert.equal(marker.pid, Deno.pid);
  const stored = { phase: "Stopped" as const, operation: marker };
  // This process runs: the marker holds until it expires.
  assert.equal(activeOperation(stored, new Date("2026-01-01T10:00:30Z")), "Creating");
  assert.equal(phaseOf(DomainState.SHUTOFF, stored, new Date("2026-01-01T10:00:30Z")), "Creating");
  assert.equal(activeOperation(stored, new Date("2026-01-01T10:01:00Z")), undefined);
  assert.equal(phaseOf(DomainState.SHUTOFF, stored, new Date("2026-01-01T10:01:00Z")), "Stopped");
  // An unreadable time is stale.
  assert.equal(activeOperation({ operation: { ...marker, expiresAt: "soon" } }, t0), undefined);
  assert.equal(activeOperation(undefined, t0), undefined);
});

Deno.test("statusFromDomainState() reports Creating and Destroying without keeping the marker", () => {
  const t0 = new Date("2026-01-01T10:00:00Z");
  const previous = { operation: operationMarker("Destroying", t0, 60_000) };
  const s = statusFromDomainState(DomainState.RUNNING, 3, t0, previous);
  assert.equal(s.phase, "Destroying");
  assert.equal(s.conditions?.[0]?.reason, "VMDestroying");
  assert.equal(s.conditions?.[0]?.status, "False");
  assert.equal("operation" in s, false);
  const later = statusFromDomainState(
    DomainState.RUNNING,
    3,
    new Date("2026-01-02T00:00:00Z"),
    previous,
  );
  assert.equal(later.phase, "Running");
});

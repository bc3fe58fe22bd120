import assert from "node:assert/strict";
import { DomainState } from "../libvirt/mod.ts";
import { mayBeFoundrys } from "./inventory.ts";

/** A BLOCK stats record of a stopped domain; `null` is a disk libvirt gives no path for. */
const disks = (name: string, ...paths: (string | null)[]) =>
  new Map([[name, [
    { field: "block.count", value: paths.length },
    ...paths.flatMap((p, i) => [
      { field: `block.${i}.name`, value: `vd${"abcd"[i]}` },
      ...(p === null ? [] : [{ field: `block.${i}.path`, value: p }]),
    ]),
  ]]]);

Deno.test("a stopped domain is asked for foundry's spec only when a disk is named after it", () => {
  const off = DomainState.SHUTOFF;
  // foundry's own volumes: NAME_boot, NAME_data-vdb, NAME_cloudinit.
  assert.equal(mayBeFoundrys("web", off, disks("web", "/p/web_boot")), true);
  assert.equal(
    mayBeFoundrys("web", off, disks("web", "/img/base.qcow2", "/p/web_cloudinit")),
    true,
  );
  // Another tool's domain: no disks, or disks not named NAME_...
  assert.equal(mayBeFoundrys("web", off, disks("web")), false);
  assert.equal(mayBeFoundrys("web", off, disks("web", "/p/web.qcow2", "/p/webserver_boot")), false);
  // Another VM's volume does not make it foundry's.
  assert.equal(mayBeFoundrys("web", off, disks("web", "/p/db_boot")), false);
  // foundry attaches pool volumes (type="volume"): libvirt gives no path while stopped.
  assert.equal(mayBeFoundrys("web", off, disks("web", null, null)), true);
  assert.equal(mayBeFoundrys("web", off, disks("web", "/img/other.qcow2", null)), true);
});

Deno.test("running domains, and domains whose disks are unknown, are always asked", () => {
  assert.equal(mayBeFoundrys("web", DomainState.RUNNING, disks("web")), true);
  assert.equal(mayBeFoundrys("web", DomainState.PAUSED, disks("web")), true);
  // The bulk disk read failed, or the domain stopped after it.
  assert.equal(mayBeFoundrys("web", DomainState.SHUTOFF, undefined), true);
  assert.equal(mayBeFoundrys("web", DomainState.SHUTOFF, disks("other")), true);
});

import assert from "node:assert/strict";
import { parseAllDocuments } from "npm:yaml@^2.9.1";
import {
  type Column,
  formatNames,
  isListFormat,
  loadYamlWriter,
  renderListing,
} from "./listing.ts";

interface Vm {
  name: string;
  state: string;
  uuid: string;
}
const vms: Vm[] = [{ name: "a", state: "running", uuid: "u-1" }, {
  name: "bb",
  state: "shut off",
  uuid: "u-2",
}];
const columns: Column<Vm>[] = [
  { header: "NAME", value: (v) => v.name },
  { header: "STATE", value: (v) => v.state },
  { header: "UUID", value: (v) => v.uuid, wide: true },
];
const base = { columns, kind: "vm", name: (v: Vm) => v.name };

Deno.test("renderListing(): table, wide adds columns, --no-headers drops the header", () => {
  assert.equal(
    renderListing(vms, { ...base, format: "table" }).out,
    "NAME  STATE\na     running\nbb    shut off\n",
  );
  assert.equal(
    renderListing(vms, { ...base, format: "wide" }).out,
    "NAME  STATE     UUID\na     running   u-1\nbb    shut off  u-2\n",
  );
  assert.equal(
    renderListing(vms, { ...base, format: "wide", noHeaders: true }).out,
    "a     running   u-1\nbb    shut off  u-2\n",
  );
});

Deno.test("renderListing(): yaml needs the YAML writer loaded, and says so", () => {
  assert.throws(() => renderListing(vms, { ...base, format: "yaml" }), /loadYamlWriter/);
});

Deno.test("renderListing(): name prints kind/name lines; json and yaml the data", async () => {
  await loadYamlWriter();
  assert.equal(renderListing(vms, { ...base, format: "name" }).out, "vm/a\nvm/bb\n");
  assert.deepEqual(JSON.parse(renderListing(vms, { ...base, format: "json" }).out), vms);
  const y = renderListing(vms, { ...base, format: "yaml" }).out;
  assert.deepEqual(parseAllDocuments(y).map((d) => d.toJS()), [vms]);
});

Deno.test("renderListing(): nothing to list is a note on stderr, never an empty table", () => {
  for (const format of ["table", "wide", "name"] as const) {
    assert.deepEqual(renderListing([], { ...base, format }), {
      out: "",
      err: "No resources found\n",
    });
  }
  assert.equal(
    renderListing([], { ...base, format: "table", empty: "No VMs found" }).err,
    "No VMs found\n",
  );
  assert.deepEqual(renderListing([], { ...base, format: "json" }), { out: "[]\n", err: "" });
  assert.deepEqual(renderListing([], { ...base, format: "yaml" }), { out: "[]\n", err: "" });
});

Deno.test("formatNames() keeps one name per line whatever the name holds", () => {
  assert.equal(formatNames("vm", ["a\nb\x1b[2J"]), "vm/a b\n");
  assert.equal(isListFormat("wide"), true);
  assert.equal(isListFormat("xml"), false);
});

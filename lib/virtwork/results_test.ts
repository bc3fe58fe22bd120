import assert from "node:assert/strict";
import { MAX_RESULT_LINE, parseResultLine, ResultLineSplitter } from "./results.ts";

Deno.test("parseResultLine reads a marked line amid console noise", () => {
  const s = parseResultLine(
    '[   12.3] random: crng init done VIRTWORK-RESULT {"v":1,"workload":"disk","t":17,"metrics":{"write_iops":850,"read_p99_ms":4.1}}\r',
  );
  assert.deepEqual(s, { workload: "disk", t: 17, metrics: { write_iops: 850, read_p99_ms: 4.1 } });
});

Deno.test("parseResultLine keeps an error and strips control characters", () => {
  const s = parseResultLine(
    'VIRTWORK-RESULT {"v":1,"workload":"database","t":1,"error":"no \\u001b[31mpackage"}',
  );
  assert.equal(s?.error, "no  [31mpackage");
  assert.deepEqual(s?.metrics, {});
});

Deno.test("parseResultLine ignores malformed, unmarked, oversized and empty samples", () => {
  for (
    const line of [
      "plain console output",
      "VIRTWORK-RESULT not json",
      'VIRTWORK-RESULT {"v":2,"workload":"cpu","t":1,"metrics":{"a":1}}',
      'VIRTWORK-RESULT {"v":1,"workload":"CPU","t":1,"metrics":{"a":1}}',
      'VIRTWORK-RESULT {"v":1,"workload":"cpu","t":1,"metrics":{"a":"1"}}',
      'VIRTWORK-RESULT {"v":1,"workload":"cpu","t":1,"metrics":{"Bad-Name":1}}',
      'VIRTWORK-RESULT {"v":1,"workload":"cpu","t":1,"metrics":{}}',
      'VIRTWORK-RESULT {"v":1,"workload":"cpu","t":1,"metrics":{"a":1},"pad":"' +
      "x".repeat(MAX_RESULT_LINE) + '"}',
    ]
  ) assert.equal(parseResultLine(line), undefined, line.slice(0, 80));
});

Deno.test("ResultLineSplitter joins chunks, splits lines and drops an overlong one", () => {
  const sp = new ResultLineSplitter();
  const enc = new TextEncoder();
  const line = 'VIRTWORK-RESULT {"v":1,"workload":"cpu","t":2,"metrics":{"bogo_ops_per_s":12.5}}\n';
  assert.deepEqual(sp.push(enc.encode(line.slice(0, 20))), []);
  assert.equal(sp.push(enc.encode(line.slice(20))).length, 1);
  assert.deepEqual(sp.push(enc.encode("y".repeat(MAX_RESULT_LINE + 10))), []);
  assert.deepEqual(sp.push(enc.encode(line.slice(3))), []); // tail of the overlong line
  assert.equal(sp.push(enc.encode(line + line)).length, 2);
});

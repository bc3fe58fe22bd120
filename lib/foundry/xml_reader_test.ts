import assert from "node:assert/strict";
import { childElements, ownText, readXml, XmlReadError } from "./xml_reader.ts";

Deno.test("readXml() reads elements, attributes, text, references and CDATA", () => {
  const root = readXml(
    `<?xml version="1.0"?>\n<!-- c --><domain type='qemu' a="x &amp; &quot;y&quot;">\n` +
      `  <name>web&#45;01</name>\n  <metadata><f:vm xmlns:f="urn:f">{"a":"&lt;&#x3e;"}</f:vm>` +
      `<empty/><![CDATA[<raw & text>]]></metadata>\n</domain>\n<?pi x?>\n`,
  );
  assert.equal(root.name, "domain");
  assert.deepEqual(root.attributes, { type: "qemu", a: 'x & "y"' });
  const [name, metadata] = childElements(root);
  assert.equal(ownText(name!), "web-01");
  const [vm, empty] = childElements(metadata!);
  assert.deepEqual(vm, {
    name: "f:vm",
    attributes: { "xmlns:f": "urn:f" },
    children: ['{"a":"<>"}'],
  });
  assert.deepEqual(empty, { name: "empty", attributes: {}, children: [] });
  assert.equal(ownText(metadata!), "<raw & text>");
});

Deno.test("readXml() refuses XML that is not well-formed, naming the offset", () => {
  for (
    const bad of [
      "",
      "text",
      "<a>",
      "<a></b>",
      "<a><b></a></b>",
      '<a x="1" x="2"/>',
      "<a x=1/>",
      '<a x="<"/>',
      "<a>&bogus;</a>",
      "<a>& b</a>",
      "<a>&#0;</a>",
      "<a/><b/>",
      "<a/>text",
      "<!DOCTYPE a><a/>",
      "<a><!-- open</a>",
      "<a><![CDATA[x</a>",
      '<a x="1"y="2"/>',
    ]
  ) {
    assert.throws(() => readXml(bad), (e) => e instanceof XmlReadError && e.offset >= 0, bad);
  }
});

/**
 * Property-based tests of the small XML reader: random element trees written out in any of XML's
 * spellings read back as the same tree; foundry's metadata written by fast-xml-parser's builder
 * (what create stores) reads back as the VM stored; random text is read or refused with an
 * XmlReadError, nothing else escapes.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.11.0";
import { XMLBuilder } from "npm:fast-xml-parser@^5.12.1";
import { readXml, type XmlElement, XmlReadError } from "./xml_reader.ts";
import { metadataNode, withoutPasswordHash } from "./metadata.ts";
import { parseStoredDomainMetadata, parseStoredMetadataXml } from "./stored_metadata.ts";
import { sampleVm } from "./_testdata.ts";
import { propertyTests } from "../../tests/_property.ts";

const name = fc.stringMatching(/^[A-Za-z_][-A-Za-z0-9_.]{0,6}(:[A-Za-z_][-A-Za-z0-9_.]{0,6})?$/);
/** Text without the characters XML 1.0 forbids (controls other than tab, newline; CR is normalised). */
const text = fc.string({ unit: "grapheme", maxLength: 20 }).map((s) =>
  // deno-lint-ignore no-control-regex
  s.replace(/[\x00-\x08\x0b-\x1f\ufffe\uffff]/g, "")
);

const tree: fc.Arbitrary<XmlElement> = fc.letrec<{ el: XmlElement }>((tie) => ({
  el: fc.record({
    name,
    attributes: fc.dictionary(name, text, { maxKeys: 3 }).map((d) => ({ ...d })),
    children: fc.array(fc.oneof({ depthSize: "small" }, text.filter((t) => t !== ""), tie("el")), {
      maxLength: 4,
    }),
  }),
})).el;

/** Adjacent text joined, as the reader returns it. */
function normal(el: XmlElement): XmlElement {
  const children: (XmlElement | string)[] = [];
  for (const c of el.children) {
    const last = children.at(-1);
    if (typeof c === "string" && typeof last === "string") children[children.length - 1] = last + c;
    else children.push(typeof c === "string" ? c : normal(c));
  }
  return { ...el, children };
}

/** Writes `el` choosing among XML's spellings with `pick` (references, CDATA, quotes, comments). */
function write(el: XmlElement, pick: () => number): string {
  const esc = (s: string, quote: string) =>
    [...s].map((ch) => {
      const p = pick() % 4;
      if (ch === "&") return p < 2 ? "&amp;" : "&#38;";
      if (ch === "<") return p < 2 ? "&lt;" : "&#x3C;";
      if (ch === quote) {
        return p < 2 ? (quote === '"' ? "&quot;" : "&apos;") : `&#${ch.charCodeAt(0)};`;
      }
      if (ch === ">" && p === 0) return "&gt;";
      if (p === 3 && pick() % 3 === 0) return `&#x${ch.codePointAt(0)!.toString(16)};`;
      return ch;
    }).join("");
  const attrs = Object.entries(el.attributes).map(([k, v]) => {
    const q = pick() % 2 ? '"' : "'";
    return ` ${k}${pick() % 2 ? "=" : " = "}${q}${esc(v, q)}${q}`;
  }).join("");
  if (el.children.length === 0 && pick() % 2) return `<${el.name}${attrs}/>`;
  const inner = el.children.map((c) => {
    if (typeof c !== "string") return write(c, pick) + (pick() % 5 === 0 ? "<!-- x -->" : "");
    if (pick() % 4 === 0 && !c.includes("]]>")) return `<![CDATA[${c}]]>`;
    return esc(c, "");
  }).join("");
  return `<${el.name}${attrs}>${inner}</${el.name}${pick() % 3 === 0 ? " " : ""}>`;
}

propertyTests(import.meta.url, {
  "xml reader: a random tree written in any spelling reads back as itself": () => {
    fc.assert(
      fc.property(tree, fc.array(fc.nat(), { minLength: 1, maxLength: 50 }), (el, picks) => {
        let i = 0;
        const pick = () => picks[i++ % picks.length]!;
        const xml = `${pick() % 2 ? '<?xml version="1.0"?>\n' : ""}${write(el, pick)}\n`;
        assert.deepEqual(readXml(xml), normal(el), xml);
      }),
      { seed: 0x3e11, numRuns: 500 },
    );
  },

  "xml reader: foundry's metadata as create writes it reads back as the VM stored": () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9.\/-]{0,12}$/), text, { maxKeys: 4 })
          .map((d) => ({ ...d })),
        text,
        fc.option(text, { nil: undefined }),
        (labels, description, passwordHash) => {
          const base = sampleVm();
          const vm = {
            ...base,
            metadata: { ...base.metadata, labels, annotations: { note: description } },
            spec: {
              ...base.spec,
              cloudInit: {
                ...base.spec.cloudInit,
                ...(passwordHash === undefined ? {} : { passwordHash }),
              },
            },
          };
          const volumes = [{
            role: "boot" as const,
            pool: "p<&>",
            name: description || "v",
            key: "/k",
          }];
          const node = metadataNode(vm, volumes, "u-1");
          const builder = new XMLBuilder({ ignoreAttributes: false });
          const { status: _s, ...expected } = withoutPasswordHash(vm);
          const element = builder.build({ "foundry:vm": node["foundry:vm"] });
          assert.deepEqual(parseStoredMetadataXml(element)?.vm, expected);
          const domain = builder.build({
            domain: { "@_type": "qemu", name: vm.metadata.name, metadata: node },
          });
          const got = parseStoredDomainMetadata(domain);
          assert.deepEqual(got?.vm, expected);
          assert.deepEqual(got?.volumes, volumes);
          assert.equal(got?.volumesDomainUuid, "u-1");
          assert.equal(
            got?.passwordHashSha256 !== undefined,
            vm.spec.cloudInit.passwordHash !== undefined,
          );
        },
      ),
      { seed: 0x5eed, numRuns: 300 },
    );
  },

  "xml reader: random text is read or refused with an XmlReadError": () => {
    const piece = fc.constantFrom(
      "<",
      ">",
      "</",
      "/>",
      "&",
      ";",
      "&amp;",
      "&#",
      '"',
      "'",
      "=",
      "<![CDATA[",
      "]]>",
      "<!--",
      "-->",
      "<?",
      "?>",
      "a",
      " ",
      "<a>",
      "</a>",
      "x=",
      "\n",
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 100 }),
          fc.array(piece, { maxLength: 40 }).map((p) => p.join("")),
        ),
        (s) => {
          try {
            readXml(s);
          } catch (e) {
            assert.ok(e instanceof XmlReadError, `threw ${e}`);
          }
        },
      ),
      { seed: 0xbad, numRuns: 1000 },
    );
  },
});

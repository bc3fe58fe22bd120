/**
 * A small strict XML reader for the XML libvirt hands foundry back: a domain's definition and the
 * metadata element of `virDomainGetMetadata`. It reads elements, attributes, text, CDATA, comments,
 * processing instructions and the five predefined and numeric character references; it refuses
 * what is not well-formed (an unclosed or mismatched tag, a bad reference, a `<!DOCTYPE`) with an
 * {@linkcode XmlReadError} naming the offset. It loads no npm package, so `foundry list` and `get`
 * read metadata without starting Deno's Node compatibility layer.
 *
 * @example
 * ```ts
 * import { readXml } from "./xml_reader.ts";
 * const root = readXml('<vm xmlns="urn:x" a="1">text &amp; more</vm>');
 * console.log(root.name, root.attributes.a, root.children); // vm 1 ["text & more"]
 * ```
 * @module
 */

/** An element: its qualified name, attributes (qualified names, values decoded) and children. */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  /** Elements and text (adjacent text and CDATA joined), in document order. */
  children: (XmlElement | string)[];
}

/** XML that is not well-formed, with the offset where reading stopped. */
export class XmlReadError extends Error {
  /** Offset into the text. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`invalid XML at offset ${offset}: ${message}`);
    this.name = "XmlReadError";
    this.offset = offset;
  }
}

const NAME = /[A-Za-z_:\u00C0-\uFFFF][-A-Za-z0-9_:.\u00B7\u00C0-\uFFFF]*/y;
const SPACE = /[ \t\r\n]*/y;
const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

/** Decodes the character references of `raw` (text or an attribute value starting at `at`). */
function decode(raw: string, at: number): string {
  if (!raw.includes("&")) return raw;
  return raw.replace(/&([^;&<]*)(;?)/g, (whole, ref: string, semi: string, i: number) => {
    if (semi !== ";") throw new XmlReadError(`unterminated reference ${whole}`, at + i);
    const predefined = PREDEFINED[ref];
    if (predefined !== undefined) return predefined;
    const m = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(ref);
    const code = m ? parseInt(m[1] ?? m[2]!, m[1] ? 16 : 10) : NaN;
    if (!(code > 0 && code <= 0x10ffff)) {
      throw new XmlReadError(`unknown reference ${whole}`, at + i);
    }
    return String.fromCodePoint(code);
  });
}

/**
 * Reads `xml`, a document with one root element (an XML declaration, comments and processing
 * instructions around it are allowed), and returns the root.
 * @throws {XmlReadError} when it is not well-formed
 */
export function readXml(xml: string): XmlElement {
  let pos = 0;
  const fail = (message: string, at = pos): never => {
    throw new XmlReadError(message, at);
  };
  const skipSpace = () => {
    SPACE.lastIndex = pos;
    SPACE.exec(xml);
    pos = SPACE.lastIndex;
  };
  const name = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(xml);
    if (!m) return fail("expected a name");
    pos = NAME.lastIndex;
    return m[0];
  };
  const skipUntil = (end: string, what: string) => {
    const i = xml.indexOf(end, pos);
    if (i < 0) fail(`unterminated ${what}`);
    pos = i + end.length;
  };
  /** Skips comments, processing instructions and space; false at anything else. */
  const skipMisc = (): boolean => {
    if (xml.startsWith("<!--", pos)) skipUntil("-->", "comment");
    else if (xml.startsWith("<?", pos)) skipUntil("?>", "processing instruction");
    else return false;
    return true;
  };
  const element = (): XmlElement => {
    const start = pos;
    pos++; // <
    const el: XmlElement = { name: name(), attributes: {}, children: [] };
    for (;;) {
      const before = pos;
      skipSpace();
      if (xml.startsWith("/>", pos)) {
        pos += 2;
        return el;
      }
      if (xml[pos] === ">") {
        pos++;
        break;
      }
      if (pos === before) fail("expected space, '>' or '/>'");
      const attr = name();
      skipSpace();
      if (xml[pos] !== "=") fail(`expected '=' after attribute ${attr}`);
      pos++;
      skipSpace();
      const quote = xml[pos];
      if (quote !== '"' && quote !== "'") fail(`expected a quoted value of attribute ${attr}`);
      const end = xml.indexOf(quote!, pos + 1);
      if (end < 0) fail(`unterminated value of attribute ${attr}`);
      const raw = xml.slice(pos + 1, end);
      if (raw.includes("<")) fail(`'<' in the value of attribute ${attr}`, pos + 1);
      if (Object.hasOwn(el.attributes, attr)) fail(`attribute ${attr} repeated`);
      // defineProperty: an attribute named __proto__ is an attribute like any other.
      Object.defineProperty(el.attributes, attr, {
        value: decode(raw, pos + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      pos = end + 1;
    }
    let text = "";
    const flush = () => {
      if (text !== "") el.children.push(text);
      text = "";
    };
    for (;;) {
      if (pos >= xml.length) fail(`element ${el.name} (offset ${start}) is not closed`);
      const lt = xml.indexOf("<", pos);
      if (lt < 0) {
        pos = xml.length;
        continue;
      }
      if (lt > pos) {
        text += decode(xml.slice(pos, lt), pos);
        pos = lt;
      }
      if (xml.startsWith("</", pos)) {
        pos += 2;
        const closing = name();
        if (closing !== el.name) fail(`</${closing}> closes <${el.name}> (offset ${start})`);
        skipSpace();
        if (xml[pos] !== ">") fail("expected '>'");
        pos++;
        flush();
        return el;
      }
      if (xml.startsWith("<![CDATA[", pos)) {
        const end = xml.indexOf("]]>", pos);
        if (end < 0) fail("unterminated CDATA section");
        text += xml.slice(pos + 9, end);
        pos = end + 3;
        continue;
      }
      if (xml.startsWith("<!", pos) && !xml.startsWith("<!--", pos)) fail("unexpected '<!'");
      if (skipMisc()) continue;
      flush();
      el.children.push(element());
    }
  };
  if (xml.charCodeAt(0) === 0xfeff) pos = 1;
  for (;;) {
    skipSpace();
    if (!skipMisc()) break;
  }
  if (xml[pos] !== "<" || xml.startsWith("<!", pos)) fail("expected the root element");
  const root = element();
  for (;;) {
    skipSpace();
    if (!skipMisc()) break;
  }
  if (pos < xml.length) fail("content after the root element");
  return root;
}

/** The child elements of `el`, in document order. */
export function childElements(el: XmlElement): XmlElement[] {
  return el.children.filter((c): c is XmlElement => typeof c !== "string");
}

/** The text directly inside `el` (its child elements' text not included), joined. */
export function ownText(el: XmlElement): string {
  return el.children.filter((c): c is string => typeof c === "string").join("");
}

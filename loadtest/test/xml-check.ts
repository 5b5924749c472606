/**
 * A small XML well-formedness check for the charts' tests (no XML parser is installed):
 * balanced tags, one root, quoted and unique attributes, only the five named entities or
 * numeric ones. Returns the elements and decoded text, for counting bars and labels.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  /** Decoded text directly inside the element. */
  text: string;
}

const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(raw: string, where: string): string {
  for (let i = raw.indexOf('&'); i >= 0; i = raw.indexOf('&', i + 1)) {
    ENTITY.lastIndex = i;
    if (!ENTITY.test(raw)) throw new Error(`bad entity in ${where}: ${raw.slice(i, i + 12)}`);
  }
  return raw.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (_, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : NAMED[e]!);
}

export function parseXml(doc: string): XmlElement[] {
  let s = doc.replace(/^\uFEFF?<\?xml[^?]*\?>/, '');
  const elements: XmlElement[] = [];
  const stack: XmlElement[] = [];
  let roots = 0;
  let i = 0;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const textRaw = s.slice(i, lt < 0 ? s.length : lt);
    if (textRaw.trim() !== '') {
      const top = stack.at(-1);
      if (top === undefined) throw new Error(`text outside the root: ${textRaw.slice(0, 20)}`);
      top.text += decode(textRaw, 'text');
    }
    if (lt < 0) break;
    if (s.startsWith('<!--', lt)) {
      const end = s.indexOf('-->', lt);
      if (end < 0) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    const gt = s.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = s.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (open === undefined || open.name !== name) throw new Error(`</${name}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    const selfClosing = tag.endsWith('/');
    const body = selfClosing ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z_][\w.:-]*)/.exec(body);
    if (m === null) throw new Error(`bad tag <${tag.slice(0, 20)}>`);
    const attrs: Record<string, string> = {};
    let rest = body.slice(m[1]!.length);
    const attr = /^\s+([A-Za-z_][\w.:-]*)="([^"<]*)"/;
    for (let a = attr.exec(rest); a !== null; a = attr.exec(rest)) {
      if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]} on <${m[1]}>`);
      attrs[a[1]!] = decode(a[2]!, `attribute ${a[1]}`);
      rest = rest.slice(a[0].length);
    }
    if (rest.trim() !== '') throw new Error(`bad attributes on <${m[1]}>: ${rest.slice(0, 30)}`);
    const element: XmlElement = { name: m[1]!, attrs, text: '' };
    elements.push(element);
    if (stack.length === 0) roots++;
    if (roots > 1) throw new Error('more than one root element');
    if (!selfClosing) stack.push(element);
  }
  if (stack.length > 0) throw new Error(`<${stack.at(-1)!.name}> not closed`);
  if (roots !== 1) throw new Error('no root element');
  s = '';
  return elements;
}

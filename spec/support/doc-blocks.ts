/**
 * Marked hex blocks in docs/wire-protocol.md: the specs that regenerate them
 * from the real code (`wire-example`, `wire-channel`) read and rewrite them
 * with these helpers. A block is an HTML comment marker followed by a fenced
 * block (Prettier puts a blank line after the marker); its body cannot
 * contain a fence, so an empty block never swallows the next one.
 */

/** One marked block as found in the document. */
export interface DocBlock {
  readonly name: string;
  readonly lang: string;
  readonly body: string;
}

const HEX_LINE_RE = /^([0-9a-f]{2}(?: [0-9a-f]{2})*)(?: {2,}\S.*)?$/;

function blockRe(marker: string): RegExp {
  return new RegExp(
    `<!-- ${marker}: ([a-z0-9-]+) -->\\n\\n?\`\`\`(\\w+)\\n((?:(?!\`\`\`)[\\s\\S])*?)\\n?\`\`\``,
    'g',
  );
}

/** Every block marked `<!-- marker: name -->` in `doc`. */
export function docBlocks(doc: string, marker: string): DocBlock[] {
  return [...doc.matchAll(blockRe(marker))].map((m) => ({
    name: m[1]!,
    lang: m[2]!,
    body: m[3]!,
  }));
}

/** The bytes of a hex block; every line must be hex pairs, optionally followed by two spaces and a note. */
export function parseHex(name: string, body: string): Buffer {
  const bytes: number[] = [];
  for (const [i, line] of body.split('\n').entries()) {
    const m = HEX_LINE_RE.exec(line);
    if (m === null)
      throw new Error(`block ${name}, line ${i + 1} is not "hex bytes  note": ${line}`);
    for (const pair of m[1]!.split(' ')) bytes.push(parseInt(pair, 16));
  }
  return Buffer.from(bytes);
}

/** Bytes as hex pairs, 16 to a line (how the document writes them). */
export const toHex = (b: Buffer): string =>
  (b.toString('hex').match(/.{1,32}/g) ?? []).map((l) => l.replace(/(..)(?!$)/g, '$1 ')).join('\n');

/** `doc` with each marked block whose name is in `blocks` replaced by its lines. */
export function rewriteDoc(
  doc: string,
  marker: string,
  blocks: ReadonlyMap<string, { readonly lines: readonly string[] }>,
): string {
  return doc.replace(blockRe(marker), (whole, name: string, lang: string) => {
    const block = blocks.get(name);
    if (block === undefined) return whole;
    return `<!-- ${marker}: ${name} -->\n\n\`\`\`${lang}\n${block.lines.join('\n')}\n\`\`\``;
  });
}

/**
 * The defaults the docs print must be the defaults the code uses. Options
 * get tuned; this spec fails as soon as docs/guide.md or docs/api.md would
 * tell a user a value the library no longer has.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_RECEIVER_OPTIONS } from '../../lib/channel/receiver.js';
import { DEFAULT_SENDER_OPTIONS } from '../../lib/channel/sender.js';
import {
  DEFAULT_CALL_OPTIONS,
  DEFAULT_CONNECT_OPTIONS,
  DEFAULT_PUBLISHER_OPTIONS,
  DEFAULT_PUSHER_OPTIONS,
  DEFAULT_SERVE_OPTIONS,
  DEFAULT_SUBSCRIBE_OPTIONS,
  DEFAULT_SWITCHBOARD_OPTIONS,
  DEFAULT_WORKER_OPTIONS,
} from '../../lib/index.js';
import { ROOT } from './run-program.js';

const GUIDE = readFileSync(join(ROOT, 'docs/guide.md'), 'utf8');
const API = readFileSync(join(ROOT, 'docs/api.md'), 'utf8');

type Defaults = Readonly<Record<string, unknown>>;

/** The `index`-th markdown table after `heading`: option name -> default cell. */
function optionTable(markdown: string, heading: string, index = 0): Map<string, string> {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const next = markdown.indexOf('\n### ', start + heading.length + 2);
  const section = markdown.slice(start, next < 0 ? undefined : next);
  // Consecutive lines starting with `|` form one table.
  const tables: string[][] = [];
  let previous = false;
  for (const line of section.split('\n')) {
    const inTable = line.startsWith('|');
    if (inTable && !previous) tables.push([]);
    if (inTable) tables[tables.length - 1]!.push(line);
    previous = inTable;
  }
  const table = tables[index];
  if (table === undefined) throw new Error(`no table ${index} under "${heading}"`);
  const rows = new Map<string, string>();
  for (const line of table) {
    const m = /^\|\s*`(\w+)`\s*\|\s*([^|]*?)\s*\|/.exec(line);
    if (m !== null) rows.set(m[1]!, m[2]!);
  }
  return rows;
}

/** How a default should appear in a table cell: `5000`, `'block'`, `''`. */
function rendered(value: unknown): string {
  return typeof value === 'string' ? `\`'${value}'\`` : `\`${String(value)}\``;
}

const GUIDE_TABLES: Array<[string, number, Defaults]> = [
  ['### `Switchboard.start(options)`', 0, DEFAULT_SWITCHBOARD_OPTIONS],
  ['### `Switchboard.connect(options)`', 0, DEFAULT_CONNECT_OPTIONS],
  ['### Receivers', 0, DEFAULT_RECEIVER_OPTIONS],
  ['### Senders', 0, DEFAULT_SENDER_OPTIONS],
  ['### RPC', 0, DEFAULT_SERVE_OPTIONS],
  ['### RPC', 1, DEFAULT_CALL_OPTIONS],
];

describe('docs/guide.md option tables', () => {
  it.each(GUIDE_TABLES)('%s (table %d) shows the code defaults', (heading, index, defaults) => {
    const rows = optionTable(GUIDE, heading, index);
    for (const [key, value] of Object.entries(defaults)) {
      const cell = rows.get(key);
      expect({ key, documented: cell !== undefined }).toEqual({ key, documented: true });
      expect({ key, cell: cell!.startsWith(rendered(value)) }).toEqual({ key, cell: true });
    }
  });
});

const API_DEFAULTS: Record<string, Defaults> = {
  DEFAULT_SERVE_OPTIONS,
  DEFAULT_CALL_OPTIONS,
  DEFAULT_SUBSCRIBE_OPTIONS,
  DEFAULT_PUBLISHER_OPTIONS,
  DEFAULT_WORKER_OPTIONS,
  DEFAULT_PUSHER_OPTIONS,
};

/** Parses `{ a: 1, b: 'x' }` as written in the docs. */
function literal(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const m of text.matchAll(/(\w+):\s*('([^']*)'|[\d_.]+)/g))
    out[m[1]!] = m[3] ?? Number(m[2]!.replace(/_/g, ''));
  return out;
}

describe('docs/api.md defaults table', () => {
  it.each(Object.entries(API_DEFAULTS))('%s matches the code', (name, defaults) => {
    const row = new RegExp(`^\\|\\s*\`${name}\`\\s*\\|\\s*\`(\\{[^\`]*\\})\``, 'm').exec(API);
    expect({ name, documented: row !== null }).toEqual({ name, documented: true });
    expect(literal(row![1]!)).toEqual({ ...defaults });
  });
});

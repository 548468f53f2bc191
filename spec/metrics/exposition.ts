/**
 * A small strict parser of the Prometheus text exposition format (and of
 * OpenMetrics text, with `openMetrics`), for the metrics specs: every line
 * is a `# HELP`, a `# TYPE` or a sample `name{labels} value`; anything else,
 * a sample outside its declared family, a repeated series or a bad escape
 * throws.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parseExposition(text: string, openMetrics = false): Map<string, Family> {
  const families = new Map<string, Family>();
  if (text === '') return families;
  if (!text.endsWith('\n')) throw new Error('the text must end with a line feed');
  const lines = text.slice(0, -1).split('\n');
  if (openMetrics) {
    if (lines.pop() !== '# EOF') throw new Error('OpenMetrics text must end with # EOF');
    if (lines.includes('# EOF')) throw new Error('# EOF before the end');
  }
  let current: Family | undefined;
  let help: { name: string; text: string } | undefined;
  const series = new Set<string>();
  lines.forEach((line, i) => {
    const where = `line ${i + 1} (${JSON.stringify(line)})`;
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      const name = sp < 0 ? rest : rest.slice(0, sp);
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      help = { name, text: unescapeHelp(sp < 0 ? '' : rest.slice(sp + 1), where) };
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type, ...more] = line.slice(7).split(' ');
      if (name === undefined || !NAME.test(name) || more.length > 0)
        throw new Error(`${where}: bad TYPE line`);
      if (type !== 'counter' && type !== 'gauge' && type !== 'histogram')
        throw new Error(`${where}: unknown type ${String(type)}`);
      if (families.has(name)) throw new Error(`${where}: family ${name} declared twice`);
      if (help?.name !== name) throw new Error(`${where}: no HELP line right before TYPE ${name}`);
      current = { name, type, help: help.text, samples: [] };
      families.set(name, current);
      help = undefined;
      return;
    }
    if (line.startsWith('#') || line === '')
      throw new Error(`${where}: not a comment of the format`);
    const s = parseSample(line, where);
    if (current === undefined) throw new Error(`${where}: sample before any TYPE`);
    const allowed =
      current.type === 'histogram'
        ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`]
        : current.type === 'counter' && openMetrics
          ? [`${current.name}_total`]
          : [current.name];
    if (!allowed.includes(s.name))
      throw new Error(`${where}: ${s.name} outside family ${current.name}`);
    const key = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series repeated`);
    series.add(key);
    current.samples.push(s);
  });
  if (help !== undefined) throw new Error(`HELP ${help.name} without TYPE`);
  return families;
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
  const name = line.slice(0, i);
  if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      let j = i;
      while (j < line.length && line[j] !== '=') j++;
      const label = line.slice(i, j);
      if (!LABEL.test(label)) throw new Error(`${where}: bad label name ${JSON.stringify(label)}`);
      if (line[j + 1] !== '"') throw new Error(`${where}: label value not quoted`);
      let v = '';
      let k = j + 2;
      for (; k < line.length && line[k] !== '"'; k++) {
        if (line[k] === '\n') throw new Error(`${where}: raw line feed`);
        if (line[k] !== '\\') {
          v += line[k];
          continue;
        }
        const e = line[++k];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${String(e)}`);
      }
      if (k >= line.length) throw new Error(`${where}: unterminated label value`);
      if (label in labels) throw new Error(`${where}: label ${label} repeated`);
      labels[label] = v;
      i = k + 1;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`${where}: expected , or }`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`${where}: expected one space before the value`);
  const raw = line.slice(i + 1);
  const value =
    raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
  if (raw === '' || raw.includes(' ') || (Number.isNaN(value) && raw !== 'NaN'))
    throw new Error(`${where}: bad value ${JSON.stringify(raw)}`);
  return { name, labels, value };
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`${where}: bad escape in HELP`);
  });
}

/** The value of the one sample of `name` whose labels are exactly `labels`; undefined if none. */
export function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const f of families.values())
    for (const s of f.samples)
      if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)
        return s.value;
  return undefined;
}

/** One histogram series: its labels (without `le`), bounds, cumulative counts, sum and count. */
export interface HistogramSeries {
  readonly labels: Record<string, string>;
  readonly le: string[];
  readonly cumulative: number[];
  readonly sum: number | undefined;
  readonly count: number | undefined;
}

/** Every series of histogram family `name`. */
export function histograms(families: Map<string, Family>, name: string): HistogramSeries[] {
  const f = families.get(name);
  if (f === undefined || f.type !== 'histogram') return [];
  interface Building {
    labels: Record<string, string>;
    le: string[];
    cumulative: number[];
    sum: number | undefined;
    count: number | undefined;
  }
  const out = new Map<string, Building>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let h = out.get(key);
    if (h === undefined) {
      h = { labels: rest, le: [], cumulative: [], sum: undefined, count: undefined };
      out.set(key, h);
    }
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${name}_bucket without le`);
      h.le.push(le);
      h.cumulative.push(s.value);
    } else if (s.name.endsWith('_sum')) h.sum = s.value;
    else h.count = s.value;
  }
  return [...out.values()];
}

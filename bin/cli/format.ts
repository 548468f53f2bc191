/**
 * Printing: values as JSON (what a message carries is more than JSON, so
 * bytes, maps, sets and bigints get a JSON spelling), durations, and the
 * latency summary of a set of samples.
 */

/** A value as JSON can hold it: Buffers and typed arrays as `{ base64 }`, Maps as objects, Sets as arrays, bigints as strings. */
export function jsonSafe(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Error)
    return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  if (ArrayBuffer.isView(value))
    return {
      base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'),
    };
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Map)
    return Object.fromEntries([...value].map(([k, v]) => [String(k), jsonSafe(v)]));
  if (value instanceof Set || Array.isArray(value)) return [...value].map(jsonSafe);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
}

/** `value` as JSON text: indented for people, one line for scripts. */
export function toJson(value: unknown, pretty: boolean): string {
  return JSON.stringify(jsonSafe(value), null, pretty ? 2 : undefined);
}

/** Writes one line to stdout. */
export function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Writes one line to stderr. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A duration in ms with sensible precision. */
export function ms(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '-';
  if (v >= 100) return `${v.toFixed(0)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(3)} ms`;
}

/** The latency summary of a set of samples (ms). */
export interface LatencySummary {
  readonly count: number;
  readonly min: number;
  readonly avg: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Nearest-rank percentiles of `samples` (sorted in place). */
export function summarize(samples: number[]): LatencySummary | undefined {
  if (samples.length === 0) return undefined;
  samples.sort((a, b) => a - b);
  const at = (q: number): number =>
    samples[Math.min(samples.length - 1, Math.ceil(q * samples.length) - 1)]!;
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return {
    count: samples.length,
    min: round(samples[0]!),
    avg: round(samples.reduce((a, b) => a + b, 0) / samples.length),
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    p999: round(at(0.999)),
    max: round(samples.at(-1)!),
  };
}

/** An error as one line: its name, its code when it has one, its message. */
export function errorLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${err.message.split('\n')[0]}`;
}

/** Left-aligned columns. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * What the demo prints. On a terminal, a status block (peer states, the
 * running phase with its live count and rate) is redrawn in place under the
 * log; anywhere else, plain timestamped lines only, so logs and CI output
 * stay readable.
 */

const REDRAW_MS = 100;

/** One row of the summary table. */
export interface SummaryRow {
  readonly key: string;
  readonly pattern: string;
  /** Messages or calls checked; undefined when not applicable. */
  readonly messages: number | undefined;
  readonly ms: number | undefined;
  readonly result: 'ok' | 'FAILED';
  /** A short fact (distribution, detection time...) shown after the result. */
  readonly note: string;
  readonly problems: readonly string[];
}

/** Formats 12345 as "12,345". */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Formats a rate per second: "950/s", "12.3k/s", "1.20M/s". */
export function rate(n: number, ms: number): string {
  if (ms <= 0) return '-';
  const r = (n * 1000) / ms;
  if (r >= 1e6) return `${(r / 1e6).toFixed(2)}M/s`;
  if (r >= 1e4) return `${(r / 1e3).toFixed(1)}k/s`;
  return `${Math.round(r)}/s`;
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export class Display {
  private readonly began = performance.now();
  private readonly color: boolean;
  private statusLines = 0;
  private drawn = '';
  private provider: (() => string[]) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream,
    /** Redraw a live status block (a terminal) or print plain lines. */
    readonly live: boolean,
  ) {
    this.color = live && process.env.NO_COLOR === undefined;
  }

  /** Seconds since the demo started, as a log prefix. */
  private stamp(): string {
    return `[${((performance.now() - this.began) / 1000).toFixed(2).padStart(6)}s]`;
  }

  /** A permanent line (above the status block on a terminal). */
  log(line: string): void {
    this.clearStatus();
    this.out.write(`${this.paint('dim', this.stamp())} ${line}\n`);
    this.drawStatus();
  }

  /** Text with no timestamp (headers, the summary). */
  write(text: string): void {
    this.clearStatus();
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
    this.drawStatus();
  }

  /** Sets what the status block shows; redrawn every 100 ms on a terminal. */
  status(provider: (() => string[]) | undefined): void {
    this.provider = provider;
    if (!this.live) return;
    if (provider !== undefined && this.timer === undefined) {
      this.timer = setInterval(() => this.redraw(), REDRAW_MS);
      this.timer.unref();
    }
    this.redraw();
  }

  /** Removes the status block and stops redrawing. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clearStatus();
    this.provider = undefined;
  }

  paint(style: 'ok' | 'bad' | 'warn' | 'dim' | 'bold', text: string): string {
    if (!this.color) return text;
    const code = { ok: 32, bad: 31, warn: 33, dim: 2, bold: 1 }[style];
    return `\x1b[${code}m${text}\x1b[0m`;
  }

  private redraw(): void {
    // Rewrite the block only when it changed: less flicker, less output.
    const lines = this.provider?.() ?? [];
    if (this.statusLines > 0 && lines.join('\n') === this.drawn) return;
    this.clearStatus();
    this.drawStatus(lines);
  }

  private clearStatus(): void {
    if (!this.live || this.statusLines === 0) return;
    // Up to the first status line, then clear to the end of the screen.
    this.out.write(`\x1b[${this.statusLines}A\r\x1b[0J`);
    this.statusLines = 0;
  }

  private drawStatus(lines = this.provider?.()): void {
    if (!this.live || lines === undefined || lines.length === 0) return;
    this.drawn = lines.join('\n');
    this.out.write(lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
    this.statusLines = lines.length;
  }

  /** The summary table. */
  table(rows: readonly SummaryRow[]): string {
    const head = ['pattern', 'messages', 'time', 'rate', 'result'];
    const cells = rows.map((r) => [
      r.pattern,
      r.messages === undefined ? '-' : count(r.messages),
      r.ms === undefined ? '-' : seconds(r.ms),
      r.messages === undefined || r.ms === undefined || r.messages === 0
        ? '-'
        : rate(r.messages, r.ms),
      r.result + (r.note ? `  ${r.note}` : ''),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
    const right = [false, true, true, true, false];
    const fmt = (c: string[]): string =>
      c
        .map((v, i) => (right[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd();
    const lines = [this.paint('bold', fmt(head)), widths.map((w) => '-'.repeat(w)).join('  ')];
    cells.forEach((c, i) => {
      const line = fmt(c);
      const r = rows[i]!.result;
      lines.push(r === 'ok' ? line : this.paint('bad', line));
    });
    return lines.join('\n');
  }
}

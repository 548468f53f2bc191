/**
 * A node's stdout or stderr as lines: every complete line kept (up to a
 * bound, oldest dropped first), the last partial one too, so a failure
 * message shows what the node printed last even without a newline.
 */
import type { Readable } from 'node:stream';

/** The lines of one output stream of a node, across its incarnations. */
export class OutputLines {
  readonly lines: string[] = [];
  private partial = '';

  constructor(
    private readonly keep: number,
    private readonly onLine: (line: string) => void,
  ) {}

  /** Reads `stream` into the lines until it ends. */
  follow(stream: Readable): void {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.add(chunk));
    stream.on('end', () => this.flush());
  }

  /** A line of the kit's own (a restart, a signal), marked as such. */
  mark(text: string): void {
    this.flush();
    this.push(`--- ${text} ---`);
  }

  /** The lines, with a partial last one. */
  all(): string[] {
    return this.partial === '' ? this.lines : [...this.lines, this.partial];
  }

  private add(chunk: string): void {
    const parts = (this.partial + chunk).split(/\r?\n/);
    this.partial = parts.pop()!;
    for (const line of parts) this.push(line);
  }

  private flush(): void {
    if (this.partial === '') return;
    const line = this.partial;
    this.partial = '';
    this.push(line);
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
    this.onLine(line);
  }
}

/**
 * The test's handle on one node of a process cluster, across its
 * incarnations: the child process running lib/testing/child.ts, what it
 * printed and reported, the calls into it, and how it ended. The cluster
 * (lib/testing/cluster.ts) starts, signals and restarts it.
 */
import type { ChildProcess } from 'node:child_process';
import type {
  Command,
  ErrorInfo,
  EventNote,
  NodeMessage,
  PeerView,
  StartCommand,
} from './messages.js';
import { Calls } from './calls.js';
import { describeNode } from './describe.js';
import type { NodeReport } from './describe.js';
import { OutputLines } from './output.js';
import type { Launch } from './launch.js';
import { spawnNode, takeSpare, warmSpares } from './spares.js';
import { unwatchPaused, watchPaused } from './reaper.js';
import type { Changes } from './waits.js';
import { ClusterWaitError, waitFor } from './waits.js';

/** Where a node is in its life. */
export type NodeStatus =
  'starting' | 'running' | 'paused' | 'stopping' | 'stopped' | 'killed' | 'exited';

export type { Launch } from './launch.js';

/**
 * Why a node's start failed: what it threw, as it crossed IPC (the cause
 * of the start's `ClusterWaitError`; `startClient` makes a
 * `ClientConnectError` of it again).
 */
export class StartFailure extends Error {
  constructor(readonly info: ErrorInfo) {
    super(`failed to start: ${info.message}`);
    this.name = 'StartFailure';
  }
}

/** One node of a process cluster. */
export class ClusterNode {
  /** Everything the node printed, across its incarnations (restarts are marked). */
  readonly stdout: OutputLines;
  readonly stderr: OutputLines;
  /** What the module reported, in order. */
  readonly reports: NodeReport[] = [];
  /** The switchboard's events, flattened, in order. */
  readonly events: EventNote[] = [];
  status: NodeStatus = 'starting';
  /** The current process's pid. */
  pid: number | undefined;
  /** The incarnation of the switchboard now running, once started. */
  incarnation: string | undefined;
  /** The host the node's switchboard listens on now (behind its proxy). */
  host: string | undefined;
  /** The functions the module returned. */
  functions: readonly string[] = [];
  /** Every pid this node has had, for checking that none outlives the cluster. */
  readonly pids: number[] = [];
  private peerViews: readonly PeerView[] = [];
  private fatal: ErrorInfo | undefined;
  /** Whether the reaper holds this process's pid (it was paused). */
  private watched = false;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private closed: Promise<void> = Promise.resolve();
  private readonly calls: Calls;
  private readonly reportListeners = new Set<(r: NodeReport) => void>();
  private readonly eventListeners = new Set<(e: EventNote, at: number) => void>();

  constructor(
    readonly id: number,
    private readonly launch: Launch,
    private readonly changes: Changes,
    private readonly onListening: (node: ClusterNode) => void,
    private readonly onGone: (node: ClusterNode) => void,
    /** How messages name it: `node <id>` unless given (a client of `startClient`). */
    readonly name = `node ${id}`,
  ) {
    const echo = (stream: string) => (line: string) => {
      if (launch.echo) process.stderr.write(`[${name} ${stream}] ${line}\n`);
      changes.notify();
    };
    this.stdout = new OutputLines(launch.keepLines, echo('stdout'));
    this.stderr = new OutputLines(launch.keepLines, echo('stderr'));
    this.calls = new Calls(
      id,
      (c) => this.send(c),
      (what) => this.failLater(what),
    );
  }

  /** What this node last saw of its peers. */
  peers(): readonly PeerView[] {
    return this.peerViews;
  }

  /** What this node last saw of `peer`. */
  seen(peer: number): PeerView | undefined {
    return this.peerViews.find((p) => p.node === peer);
  }

  /**
   * Calls `listener` with every report as it arrives, across restarts,
   * before any wait sees it (for a test or a tool that follows the nodes
   * live). Returns the function that stops it.
   */
  onReport(listener: (report: NodeReport) => void): () => void {
    this.reportListeners.add(listener);
    return () => this.reportListeners.delete(listener);
  }

  /**
   * Calls `listener` with every switchboard event of this node as it
   * arrives, with `performance.now()` in the test process. Returns the
   * function that stops it.
   */
  onEvent(listener: (event: EventNote, at: number) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /**
   * How the node's last process ended: its exit code, or the signal that
   * ended it; undefined while it runs (or before it first started).
   */
  get exitStatus():
    { readonly code: number | null; readonly signal: NodeJS.Signals | null } | undefined {
    return this.exit;
  }

  /** True while its process runs (paused included). */
  get alive(): boolean {
    return this.proc !== undefined && this.exit === undefined;
  }

  /** Forks a new incarnation and waits until its module is ready. */
  async start(command: Omit<StartCommand, 't' | 'id'>): Promise<void> {
    if (this.alive) throw new Error(`${this.name} is already running`);
    if (this.pids.length > 0) {
      this.stdout.mark('restarted');
      this.stderr.mark('restarted');
    }
    this.status = 'starting';
    this.fatal = undefined;
    this.exit = undefined;
    this.incarnation = undefined;
    this.host = undefined;
    this.peerViews = [];
    const spare = takeSpare(this.launch, command.module);
    const proc = spare ?? spawnNode(this.launch);
    warmSpares(this.launch, command.module, this.launch.spares ?? 0);
    this.proc = proc;
    this.stdout.follow(proc.stdout!);
    this.stderr.follow(proc.stderr!);
    this.exited = new Promise((resolve) => {
      const ended = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.proc !== proc || this.exit !== undefined) return resolve();
        this.exit = { code, signal };
        this.unwatch();
        if (this.status !== 'killed' && this.status !== 'stopped') {
          this.status = this.status === 'stopping' ? 'stopped' : 'exited';
        }
        this.incarnation = undefined;
        this.onGone(this);
        this.calls.abandon(this.gone() ?? 'exited');
        this.changes.notify();
        resolve();
      };
      proc.on('exit', ended);
      proc.on('error', (err) => {
        this.stderr.mark(`spawn failed: ${err.message}`);
        ended(null, null);
      });
    });
    this.closed = new Promise((resolve) => proc.once('close', () => resolve()));
    proc.on('message', (m: NodeMessage) => this.received(m));
    if (spare === undefined) await this.waitMessage((m) => m.t === 'booted', 'its process to boot');
    this.pid = proc.pid;
    if (proc.pid !== undefined) this.pids.push(proc.pid);
    this.send({ t: 'start', id: this.id, ...command });
    await waitFor(
      this.changes,
      () => {
        if (this.status === 'running') return true;
        if (this.fatal !== undefined) throw new StartFailure(this.fatal);
        if (!this.alive) throw new Error(`${this.gone() ?? 'exited'} while starting`);
        return undefined;
      },
      {
        what: `${this.name} to start`,
        timeoutMs: this.launch.timeoutMs,
        describe: () => this.describe(),
        settle: () => this.settle(),
      },
    );
  }

  /**
   * Calls `fn(...args)` in the node (a function its module returned);
   * resolves with its result, rejects with a {@link NodeCallError} if it
   * threw, or with what the node printed if it does not answer in time.
   */
  call<T = unknown>(fn: string, ...args: unknown[]): Promise<T> {
    return this.invoke<T>(fn, args);
  }

  /** {@link call} with its own timeout. */
  invoke<T = unknown>(
    fn: string,
    args: readonly unknown[],
    options: { readonly timeoutMs?: number } = {},
  ): Promise<T> {
    if (!this.alive || this.status === 'stopping') {
      return Promise.reject(
        this.failure(`cannot call ${fn}(): the node ${this.gone() ?? 'is not running'}`),
      );
    }
    return this.calls.call<T>(
      fn,
      args,
      options.timeoutMs ?? this.launch.timeoutMs,
      () => this.status,
    );
  }

  /** Waits for a report of `kind` (matching `match`) made after the `from`-th report. */
  waitForReport<T = unknown>(
    kind: string,
    options: {
      readonly match?: (data: T) => boolean;
      readonly from?: number;
      readonly timeoutMs?: number;
    } = {},
  ): Promise<T> {
    const from = options.from ?? 0;
    return waitFor(
      this.changes,
      () => {
        const r = this.reports
          .slice(from)
          .find((x) => x.kind === kind && (options.match?.(x.data as T) ?? true));
        if (r !== undefined) return { data: r.data as T };
        if (!this.alive && this.status !== 'starting')
          throw new Error(`${this.name} ${this.gone()}`);
        return undefined;
      },
      {
        what: `${this.name} to report ${kind}`,
        timeoutMs: options.timeoutMs ?? this.launch.timeoutMs,
        describe: () => this.describe(),
        settle: () => this.settle(),
      },
    ).then((r) => r.data);
  }

  /**
   * Waits for a switchboard event of this node matching `match`, among
   * {@link events} from index `from` on (default 0: those already in count).
   */
  waitForEvent(
    match: (event: EventNote) => boolean,
    options: { readonly from?: number; readonly timeoutMs?: number; readonly what?: string } = {},
  ): Promise<EventNote> {
    const from = options.from ?? 0;
    return waitFor(
      this.changes,
      () => {
        const e = this.events.slice(from).find(match);
        if (e !== undefined) return e;
        if (!this.alive && this.status !== 'starting')
          throw new Error(`${this.name} ${this.gone()}`);
        return undefined;
      },
      {
        what: `${this.name} to see ${options.what ?? 'a matching event'}`,
        timeoutMs: options.timeoutMs ?? this.launch.timeoutMs,
        describe: () => this.describe(),
        settle: () => this.settle(),
      },
    );
  }

  /** Waits for a line of output matching `pattern` (stdout and stderr, or the one named). */
  waitForOutput(
    pattern: RegExp | string,
    options: { readonly stream?: 'stdout' | 'stderr'; readonly timeoutMs?: number } = {},
  ): Promise<string> {
    const matches = (l: string): boolean =>
      typeof pattern === 'string' ? l.includes(pattern) : pattern.test(l);
    const streams =
      options.stream === undefined ? [this.stdout, this.stderr] : [this[options.stream]];
    return waitFor(this.changes, () => streams.flatMap((s) => s.all()).find(matches), {
      what: `${this.name} to print ${String(pattern)}`,
      timeoutMs: options.timeoutMs ?? this.launch.timeoutMs,
      describe: () => this.describe(),
      settle: () => this.settle(),
    });
  }

  /** Sends `signal` to the process (nothing once it exited). */
  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.proc!.kill(signal);
  }

  /** SIGKILL, and resolves once the process is gone. */
  async kill(): Promise<void> {
    if (!this.alive) return;
    this.status = 'killed';
    this.stdout.mark('killed (SIGKILL) by the test');
    this.proc!.kill('SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>(
      (resolve) => (timer = setTimeout(() => resolve(true), this.launch.timeoutMs)),
    );
    const stuck = await Promise.race([this.exited.then(() => false), late]);
    clearTimeout(timer);
    if (stuck) throw this.failure(`still there ${this.launch.timeoutMs} ms after SIGKILL`);
  }

  /**
   * Asks the node to close its switchboard and exit; SIGKILL if it has not
   * within `timeoutMs`. With `exitByItself`, the node does not call
   * `process.exit()` after closing: it must end as a process whose every
   * handle is closed does, and a node still there at the timeout fails the
   * stop (its stderr names what kept it alive).
   */
  async stop(timeoutMs: number, exitByItself = false): Promise<void> {
    if (!this.alive) return;
    if (this.status === 'paused') this.resume();
    this.status = 'stopping';
    this.send({ t: 'stop', exitByItself });
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    const exit = this.exit;
    if (exit !== undefined && exit.code !== 0) {
      const how = exitByItself ? 'exit by itself' : 'stop cleanly';
      throw this.failure(`did not ${how} within ${timeoutMs} ms (${this.exitText()})`);
    }
  }

  pause(): void {
    if (!this.alive) throw this.failure('cannot pause: not running');
    if (!this.watched) watchPaused(this.proc!.pid!);
    this.watched = true;
    this.proc!.kill('SIGSTOP');
    this.status = 'paused';
    this.stdout.mark('paused (SIGSTOP) by the test');
  }

  resume(): void {
    if (!this.alive) throw this.failure('cannot resume: not running');
    this.proc!.kill('SIGCONT');
    this.unwatch();
    if (this.status === 'paused') this.status = 'running';
    this.stdout.mark('resumed (SIGCONT) by the test');
  }

  /** Why this node is not running, or undefined while it is (or is starting). */
  gone(): string | undefined {
    if (this.alive) return undefined;
    switch (this.status) {
      case 'killed':
        return 'was killed by the test';
      case 'stopped':
        return 'was stopped by the test';
      default:
        return this.proc === undefined ? 'was never started' : this.exitText();
    }
  }

  /** What a failure message says of this node: its state, reports, events and output. */
  describe(): string {
    const inc =
      this.incarnation === undefined ? '' : `, incarnation ${this.incarnation.slice(0, 8)}`;
    const exit = this.exit === undefined ? '' : `, ${this.exitText()}`;
    return describeNode({
      head: `${this.name} (pid ${this.pid ?? '-'}, ${this.status}${exit}${inc})`,
      fatal: this.fatal === undefined ? undefined : (this.fatal.stack ?? this.fatal.message),
      peers: this.peerViews,
      events: this.events,
      reports: this.reports,
      stdout: this.stdout.all(),
      stderr: this.stderr.all(),
    });
  }

  /** An error about this node, with {@link describe} under it. */
  failure(what: string): ClusterWaitError {
    return new ClusterWaitError(`${this.name}: ${what}\n${this.describe()}`);
  }

  /** {@link failure}, once the node's last output is in (at most half a second). */
  private async failLater(what: string): Promise<ClusterWaitError> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.settle(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 500))),
    ]);
    clearTimeout(timer);
    return this.failure(what);
  }

  /** The reaper (lib/testing/reaper.ts) need not kill this process any more. */
  private unwatch(): void {
    if (this.watched && this.proc?.pid !== undefined) unwatchPaused(this.proc.pid);
    this.watched = false;
  }

  private exitText(): string {
    const e = this.exit;
    if (e === undefined) return 'running';
    return e.signal !== null ? `exited on ${e.signal}` : `exited with code ${e.code}`;
  }

  private send(c: Command): void {
    if (this.proc?.connected === true) this.proc.send(c);
  }

  /**
   * Resolves once the node's output is all in: at once while it runs (after
   * a turn for chunks already read), when its streams close once it ended.
   */
  settle(): Promise<void> {
    if (this.alive && this.fatal === undefined)
      return new Promise((resolve) => setTimeout(resolve, 20));
    return this.closed;
  }

  private waitMessage(pick: (m: NodeMessage) => boolean, what: string): Promise<void> {
    const proc = this.proc!;
    let seen = false;
    const onMessage = (m: NodeMessage): void => {
      if (pick(m)) {
        seen = true;
        this.changes.notify();
      }
    };
    proc.on('message', onMessage);
    return waitFor(
      this.changes,
      () => {
        if (seen) return true;
        if (this.exit !== undefined) throw new Error(`${this.exitText()} before ${what}`);
        return undefined;
      },
      {
        what: `${this.name}: ${what}`,
        timeoutMs: this.launch.timeoutMs,
        describe: () => this.describe(),
        settle: () => this.settle(),
      },
    )
      .then(() => undefined)
      .finally(() => proc.off('message', onMessage));
  }

  private received(m: NodeMessage): void {
    switch (m.t) {
      case 'listening':
        this.host = m.host;
        this.incarnation = m.incarnation;
        this.onListening(this);
        break;
      case 'ready':
        this.functions = m.fns;
        if (this.status === 'starting') this.status = 'running';
        break;
      case 'peers':
        this.peerViews = m.peers;
        break;
      case 'event': {
        this.events.push(m.event);
        const at = performance.now();
        for (const l of [...this.eventListeners]) l(m.event, at);
        break;
      }
      case 'report': {
        const report = { kind: m.kind, data: m.data, at: performance.now() };
        this.reports.push(report);
        for (const l of [...this.reportListeners]) l(report);
        break;
      }
      case 'reply':
        this.calls.answered(m);
        break;
      case 'fatal':
        this.fatal = m.error;
        break;
      case 'booted':
      case 'stopped':
        break;
    }
    this.changes.notify();
  }
}

/**
 * How the kit runs a node process: the program (lib/testing/child.ts, or
 * child.js once built), the Node flags it inherits from the test process
 * (its loader, so a test under tsx runs its nodes under tsx), the
 * environment, and an optional wrapper command in front of it. Shared by
 * process clusters (lib/testing/cluster.ts) and single nodes
 * (lib/testing/start-node.ts).
 */
import { extname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** How to run a node process. */
export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Lines of stdout and of stderr kept per node. */
  readonly keepLines: number;
  /** Copy every line to the test's stderr, prefixed with the node. */
  readonly echo: boolean;
  readonly timeoutMs: number;
  /** Processes to keep booted ahead for this launch (lib/testing/spares.ts). Default 0. */
  readonly spares?: number;
}

/** How the kit runs node processes (options of `startCluster` and `startNode`). */
export interface ProcessOptions {
  /** The default timeout of every wait, call and start, ms. Default 15000. */
  readonly timeoutMs?: number;
  /**
   * Node flags for the children. Default: the test process's own loader
   * flags (`--import`, `--require`, `--loader`, `--conditions`...), so a
   * test run under tsx runs its nodes under tsx; `--import tsx` is added
   * when the module (or the kit itself) is TypeScript and no loader is given.
   */
  readonly execArgv?: readonly string[];
  /** Added to the test process's environment (never put the secret here: the kit passes it over IPC). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory of the children. Default: the test process's. */
  readonly cwd?: string;
  /** Lines of stdout and of stderr kept per node. Default 2000. */
  readonly keepLines?: number;
  /** Copy the nodes' output to the test's stderr as it comes. Default false. */
  readonly echo?: boolean;
  /**
   * Node processes to keep booted ahead, the module already imported, so
   * that a start or a restart takes one instead of waiting for a fresh
   * process (docs/testing.md, "Spare processes"). Spares are shared by
   * every cluster and node of the test process run the same way (command
   * line, environment, working directory, module). Default 0.
   */
  readonly spares?: number;
}

const HERE = fileURLToPath(import.meta.url);
/** The node program next to this file: child.ts under a TypeScript loader, child.js once built. */
const CHILD = resolve(HERE, '..', `child${extname(HERE)}`);
const TS = /\.[cm]?ts$/;

/** Loader flags of the test process worth handing down to its nodes. */
function inheritedFlags(argv: readonly string[]): string[] {
  const withValue = /^(--import|--require|-r|--loader|--experimental-loader|--conditions|-C)$/;
  const joined = /^(--import|--require|--loader|--experimental-loader|--conditions)=/;
  const bare =
    /^--(enable-source-maps|no-warnings|no-deprecation|experimental-strip-types|experimental-transform-types)$/;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (withValue.test(a) && i + 1 < argv.length) out.push(a, argv[++i]!);
    else if (joined.test(a) || bare.test(a)) out.push(a);
  }
  return out;
}

function childArgv(options: ProcessOptions, moduleUrl: string): string[] {
  const argv =
    options.execArgv === undefined ? inheritedFlags(process.execArgv) : [...options.execArgv];
  const needsTs = TS.test(CHILD) || TS.test(new URL(moduleUrl).pathname);
  const hasLoader = argv.some((a) =>
    /tsx|ts-node|experimental-strip-types|experimental-transform-types/.test(a),
  );
  return needsTs && !hasLoader ? ['--import', 'tsx', ...argv] : argv;
}

function childEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  // jest runs with --experimental-vm-modules in NODE_OPTIONS; node:test marks its children.
  const nodeOptions = (env.NODE_OPTIONS ?? '').replace(/--experimental-vm-modules/g, '').trim();
  if (nodeOptions === '') delete env.NODE_OPTIONS;
  else env.NODE_OPTIONS = nodeOptions;
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** The user's module as a URL `import()` takes. */
export function moduleUrl(module: string | URL, cwd: string): string {
  if (module instanceof URL) return module.href;
  return module.startsWith('file:') ? module : pathToFileURL(resolve(cwd, module)).href;
}

/**
 * How to run a node of `moduleUrl`: `node [flags] child`, after `prefix`
 * when one is given (a wrapper that ends by running the rest of its
 * arguments, such as `ip netns exec NS`).
 */
export function launchOf(
  options: ProcessOptions,
  moduleUrl: string,
  cwd: string,
  prefix: readonly string[] = [],
): Launch {
  const node = [process.execPath, ...childArgv(options, moduleUrl), CHILD];
  const [command, ...args] = [...prefix, ...node];
  return {
    command: command!,
    args,
    env: childEnv(options.env),
    cwd,
    keepLines: options.keepLines ?? 2_000,
    echo: options.echo === true,
    timeoutMs: options.timeoutMs ?? 15_000,
    spares: options.spares ?? 0,
  };
}

#!/usr/bin/env node
/**
 * The `switchboard` command. `npm run demo` runs it through tsx; once built
 * (`npm run build`), `npx switchboard` runs the compiled dist/bin/switchboard.js.
 */
import { DEMO_HELP, UsageError, parseDemoArgs } from './demo/options.js';
import { runDemo } from './demo/run.js';
import {
  COMMANDS,
  EXIT,
  FailedError,
  UnreachableError,
  findCommand,
  helpOf,
  runCommand,
} from './cli/index.js';

const HELP = `Usage: switchboard <command> [options]

Typed channels, RPC, pub-sub and work queues across a small cluster of
Node.js processes.

Commands against a live cluster (see docs/cli.md; each takes --help):
${COMMANDS.map((c) => `  ${c.name.padEnd(16)}${c.summary}`).join('\n')}

Other commands:
  demo [options]  start a local cluster of child processes and show every
                  pattern working (see: switchboard demo --help)
  help [command]  show this help, or a command's

Options:
  -h, --help        show this help
  -v, --version     print the version

Exit status: 0 done; 1 the operation failed; 2 bad command line;
3 could not attach to the cluster.`;

async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  // package.json sits two levels up from both bin/switchboard.ts and dist/bin/switchboard.js.
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'switchboard' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Try the next candidate.
    }
  }
  return 'unknown';
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(`${HELP}\n`);
      return command === undefined ? 2 : 0;
    case 'help': {
      const cmd = rest[0] === undefined ? undefined : findCommand(rest[0]);
      if (rest[0] !== undefined && rest[0] !== 'demo' && cmd === undefined)
        throw new UsageError(`unknown command "${rest[0]}"`);
      process.stdout.write(
        `${rest[0] === 'demo' ? DEMO_HELP : cmd !== undefined ? helpOf(cmd) : HELP}\n`,
      );
      return 0;
    }
    case '-v':
    case '--version':
      process.stdout.write(`${await version()}\n`);
      return 0;
    case 'demo': {
      const options = parseDemoArgs(rest);
      if (options.help) {
        process.stdout.write(`${DEMO_HELP}\n`);
        return 0;
      }
      return runDemo(options);
    }
    default: {
      const cmd = findCommand(command);
      if (cmd === undefined) throw new UsageError(`unknown command "${command}"`);
      return runCommand(cmd, rest);
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`switchboard: ${err.message}\nTry: switchboard --help\n`);
      process.exitCode = EXIT.USAGE;
      return;
    }
    if (err instanceof UnreachableError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exitCode = EXIT.UNREACHABLE;
      return;
    }
    if (err instanceof FailedError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      process.exitCode = EXIT.FAILED;
      return;
    }
    process.stderr.write(
      `switchboard: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);

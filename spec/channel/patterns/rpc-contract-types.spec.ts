/**
 * The type-level specs of service contracts (rpc-contract.types.ts) under
 * `npm test` too, not only under `npm run lint`: the file compiles as it
 * is, and with its `@ts-expect-error` directives taken out every line they
 * stood over fails to compile, and nothing else does. So a mistake users
 * make (a misspelt method, a wrong request shape, a wrong return type, a
 * handler of the wrong kind) that starts compiling fails here.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const HERE = dirname(fileURLToPath(import.meta.url));
const FILE = join(HERE, 'rpc-contract.types.ts');
const STRIPPED = join(HERE, 'rpc-contract.stripped.types.ts');
const ROOT = join(HERE, '../../..');
const DIRECTIVE = /^\s*\/\/ @ts-expect-error\b/;

function compilerOptions(): ts.CompilerOptions {
  const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  return { ...parsed.options, noEmit: true };
}

/** The 1-based lines of `file`'s errors, with their messages, compiling `text` in its place. */
function errors(file: string, text: string): Array<{ line: number; message: string }> {
  const options = compilerOptions();
  const host = ts.createCompilerHost(options);
  const read = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, onError, create) =>
    name === file
      ? ts.createSourceFile(name, text, language, true)
      : read(name, language, onError, create);
  host.fileExists = (
    (exists) => (name: string) =>
      name === file || exists(name)
  )(host.fileExists.bind(host));
  const program = ts.createProgram([file], options, host);
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => ({
      line: d.file!.getLineAndCharacterOfPosition(d.start ?? 0).line + 1,
      message: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
    }));
}

describe('service contract types (rpc-contract.types.ts)', () => {
  const source = readFileSync(FILE, 'utf8');
  const lines = source.split('\n');

  it('compiles as written: every @ts-expect-error is met, nothing else fails', () => {
    expect(errors(FILE, source)).toEqual([]);
  }, 60_000);

  it('without its directives, exactly the lines under them fail', () => {
    const directives = lines.flatMap((l, i) => (DIRECTIVE.test(l) ? [i + 1] : []));
    expect(directives.length).toBeGreaterThanOrEqual(15);
    // Each directive replaced by an empty comment: line numbers stay put.
    const stripped = lines.map((l) => (DIRECTIVE.test(l) ? '//' : l)).join('\n');
    const failing = new Set(errors(STRIPPED, stripped).map((e) => e.line));
    // The error of a directive's line may sit on the next line of a multi-line statement.
    const unmet = directives.filter((d) => !failing.has(d + 1) && !failing.has(d + 2));
    const unexpected = [...failing].filter(
      (l) => !directives.includes(l - 1) && !directives.includes(l - 2),
    );
    expect({ unmet, unexpected }).toEqual({ unmet: [], unexpected: [] });
  }, 60_000);
});

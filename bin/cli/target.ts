/**
 * Which cluster a command talks to, and how it authenticates: the options
 * every cluster command shares, the cluster file (docs/cli.md, "The
 * cluster file") and the secret, read from a file or the environment and
 * never from the command line, where every user of the machine can read it
 * (`ps`, shell history).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseNodes } from '../../lib/index.js';
import type { NodeSpec } from '../../lib/index.js';
import { UsageError, intFlag } from '../demo/options.js';

export { intFlag };

/** The parseArgs options every cluster command takes. */
export const COMMON_OPTIONS = {
  cluster: { type: 'string' },
  nodes: { type: 'string' },
  'secret-file': { type: 'string' },
  'client-secret-file': { type: 'string' },
  'cluster-name': { type: 'string' },
  insecure: { type: 'boolean' },
  'as-member': { type: 'string' },
  'connect-timeout': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // Known only to be refused with a clear message (see refuseSecretFlags).
  secret: { type: 'string' },
  'client-secret': { type: 'string' },
} as const;

/** The help lines of {@link COMMON_OPTIONS}. */
export const COMMON_HELP = `Cluster options:
  --cluster <file>        the cluster file: JSON with the node list and where
                          the secret is (docs/cli.md, "The cluster file")
  --nodes <list>          the members instead: host:port,host:port,... in
                          node-list order
  --cluster-name <name>   the cluster's name, if its members were given one
  --secret-file <file>    the cluster secret (its bytes; one trailing newline
                          is ignored); else SWITCHBOARD_SECRET
  --client-secret-file <file>
                          a client secret instead (SWITCHBOARD_CLIENT_SECRET)
  --insecure              the cluster runs without a secret
  --connect-timeout <s>   give up attaching after this long (default 5)
  --as-member <id>        attach as member <id> of the node list (its slot
                          must be free) instead of as a client
  --json                  machine-readable output on stdout
  -h, --help              this command's help

Environment:
  SWITCHBOARD_SECRET, SWITCHBOARD_CLIENT_SECRET
                          the secret as UTF-8 text, or "base64:" followed by
                          its bytes in base64
  SWITCHBOARD_CLUSTER     the cluster file, when --cluster is not given`;

/** The values parseArgs gives for {@link COMMON_OPTIONS}. */
export interface CommonValues {
  readonly cluster?: string | undefined;
  readonly nodes?: string | undefined;
  readonly 'secret-file'?: string | undefined;
  readonly 'client-secret-file'?: string | undefined;
  readonly 'cluster-name'?: string | undefined;
  readonly insecure?: boolean | undefined;
  readonly 'as-member'?: string | undefined;
  readonly 'connect-timeout'?: string | undefined;
  readonly json?: boolean | undefined;
  readonly secret?: string | undefined;
  readonly 'client-secret'?: string | undefined;
}

/** Everything needed to attach. */
export interface ClusterTarget {
  /** The node list, as given (validated by parseNodes). */
  readonly nodes: readonly NodeSpec[];
  readonly addresses: readonly string[];
  readonly secret: Buffer | undefined;
  readonly clientSecret: Buffer | undefined;
  readonly clusterName: string | undefined;
  readonly insecure: boolean;
  /** Attach as this member instead of as a client. */
  readonly asMember: number | undefined;
  readonly connectTimeoutMs: number;
}

/** The cluster file's fields. */
interface ClusterFile {
  nodes?: unknown;
  clusterName?: unknown;
  secretFile?: unknown;
  secretEnv?: unknown;
  clientSecretFile?: unknown;
  clientSecretEnv?: unknown;
  insecure?: unknown;
}

const FILE_FIELDS = [
  'nodes',
  'clusterName',
  'secretFile',
  'secretEnv',
  'clientSecretFile',
  'clientSecretEnv',
  'insecure',
];

/** `--secret` and `--client-secret` are never accepted: say why, and what to use instead. */
export function refuseSecretFlags(values: CommonValues): void {
  for (const flag of ['secret', 'client-secret'] as const)
    if (values[flag] !== undefined)
      throw new UsageError(
        `--${flag} is refused: a secret on the command line can be read by every user of ` +
          `this machine (ps, shell history). Use --${flag}-file <file> or the ` +
          `${flag === 'secret' ? 'SWITCHBOARD_SECRET' : 'SWITCHBOARD_CLIENT_SECRET'} environment variable.`,
      );
}

/** A number of seconds given to `--flag`, as ms. */
export function secondsFlag(
  flag: string,
  raw: string | undefined,
  dflt: number,
  max = 86_400,
): number {
  if (raw === undefined) return dflt * 1000;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0 || v > max)
    throw new UsageError(`--${flag} takes seconds, more than 0 and at most ${max}; got "${raw}"`);
  return Math.round(v * 1000);
}

function readSecretFile(path: string, what: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read the ${what} file ${path}: ${(err as Error).message}`);
  }
  // An editor or `echo` ends the file with a newline that is not part of the secret.
  if (bytes.at(-1) === 0x0a) bytes = bytes.subarray(0, bytes.at(-2) === 0x0d ? -2 : -1);
  if (bytes.length === 0) throw new UsageError(`the ${what} file ${path} is empty`);
  return bytes;
}

function secretFromEnv(name: string): Buffer | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  if (raw.startsWith('base64:')) {
    const b = Buffer.from(raw.slice(7), 'base64');
    if (b.length === 0) throw new UsageError(`${name} holds "base64:" and no bytes`);
    return b;
  }
  return Buffer.from(raw, 'utf8');
}

function readClusterFile(path: string): ClusterFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the cluster file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the cluster file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UsageError(`the cluster file ${path} must hold a JSON object`);
  const unknown = Object.keys(parsed).filter((k) => !FILE_FIELDS.includes(k));
  if (unknown.length > 0)
    throw new UsageError(
      `the cluster file ${path} has unknown field(s) ${unknown.join(', ')}; known: ${FILE_FIELDS.join(', ')}`,
    );
  return parsed;
}

function stringField(file: ClusterFile, key: keyof ClusterFile, path: string): string | undefined {
  const v = file[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '')
    throw new UsageError(`"${key}" in the cluster file ${path} must be a non-empty string`);
  return v;
}

/** Resolves the cluster, the secret and the attach mode from the common flags. */
export function resolveTarget(values: CommonValues): ClusterTarget {
  refuseSecretFlags(values);
  const clusterPath = values.cluster ?? process.env.SWITCHBOARD_CLUSTER;
  if (values.nodes !== undefined && values.cluster !== undefined)
    throw new UsageError('give either --cluster or --nodes, not both');
  let nodes: ClusterTarget['nodes'];
  let file: ClusterFile = {};
  let base = process.cwd();
  if (values.nodes !== undefined) {
    nodes = values.nodes
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  } else if (clusterPath !== undefined) {
    file = readClusterFile(clusterPath);
    base = dirname(resolve(clusterPath));
    if (!Array.isArray(file.nodes))
      throw new UsageError(`the cluster file ${clusterPath} needs "nodes": an array of members`);
    nodes = file.nodes as ClusterTarget['nodes'];
  } else {
    throw new UsageError(
      'which cluster? Give --cluster <file>, --nodes <host:port,...>, or SWITCHBOARD_CLUSTER',
    );
  }
  let addresses: string[];
  try {
    addresses = parseNodes(nodes).map((n) =>
      n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`,
    );
  } catch (err) {
    throw new UsageError(`bad node list: ${(err as Error).message}`);
  }
  const where = clusterPath ?? '';
  const fromFile = (key: 'secretFile' | 'clientSecretFile'): string | undefined => {
    const p = stringField(file, key, where);
    return p === undefined ? undefined : resolve(base, p);
  };
  const secretPath = values['secret-file'] ?? fromFile('secretFile');
  const clientPath = values['client-secret-file'] ?? fromFile('clientSecretFile');
  const secret =
    secretPath !== undefined
      ? readSecretFile(secretPath, 'secret')
      : secretFromEnv(stringField(file, 'secretEnv', where) ?? 'SWITCHBOARD_SECRET');
  const clientSecret =
    clientPath !== undefined
      ? readSecretFile(clientPath, 'client secret')
      : secretFromEnv(stringField(file, 'clientSecretEnv', where) ?? 'SWITCHBOARD_CLIENT_SECRET');
  if (file.insecure !== undefined && typeof file.insecure !== 'boolean')
    throw new UsageError(`"insecure" in the cluster file ${where} must be true or false`);
  const insecure = values.insecure === true || file.insecure === true;
  if (!insecure && secret === undefined && clientSecret === undefined)
    throw new UsageError(
      'no secret: give --secret-file <file>, set SWITCHBOARD_SECRET, or name one in the cluster ' +
        'file (--insecure for a cluster without one)',
    );
  const asMember =
    values['as-member'] === undefined
      ? undefined
      : intFlag('as-member', values['as-member'], 0, addresses.length - 1, 0);
  if (asMember !== undefined && secret === undefined && !insecure)
    throw new UsageError('--as-member needs the cluster secret, not a client secret');
  return {
    nodes,
    addresses,
    secret,
    clientSecret,
    clusterName: values['cluster-name'] ?? stringField(file, 'clusterName', where),
    insecure,
    asMember,
    connectTimeoutMs: secondsFlag('connect-timeout', values['connect-timeout'], 5, 3_600),
  };
}

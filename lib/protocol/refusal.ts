/**
 * Explaining a failure: when encodeValue() or checkEncodable() (codec.ts)
 * fails, locate() walks the value again, as encoding does but without
 * recursion, and builds the EncodeError that names where the offending value
 * sits (its `path`), why it is refused, and what to send instead. Only the
 * failure path comes here: the hot path keeps no path and calls nothing in
 * this file. No module state: each walk keeps its frames in locals.
 */
import { types } from 'node:util';

import { Tag } from 'cbor-x';

import { EncodeError } from '../errors.js';
import { MAX_CODEC_DEPTH, describe } from './codec-types.js';
import type { PortableHandle } from './codec-types.js';
import {
  C_COPY_DATE,
  C_COPY_MAP,
  C_COPY_PLAIN,
  C_COPY_SET,
  C_COPY_TYPED,
  C_HANDLE,
  C_ITERATED,
  C_LEAF,
  C_PLAIN,
  C_SET,
  REFUSED,
  TYPED_ARRAYS,
  classify,
  isValidRef,
  typedArrayName,
} from './payload-rule.js';

const { getPrototypeOf } = Object;

/** One container on the path from the top-level value to the one examined. */
interface Frame {
  readonly container: object;
  /** Advances to the next child (setting `segment` before reading it); false at the end. */
  readonly children: Iterator<void>;
  /** How the path goes from `container` to `child`. */
  segment: string;
  child: unknown;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function propertySegment(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function mapValueSegment(key: unknown, index: number): string {
  switch (typeof key) {
    case 'string':
      return `.get(${JSON.stringify(key)})`;
    case 'number':
    case 'boolean':
    case 'undefined':
      return `.get(${String(key)})`;
    case 'bigint':
      return `.get(${key}n)`;
    default:
      return key === null ? '.get(null)' : `.values()[${index}]`;
  }
}

function* properties(frame: Frame, o: Record<string, unknown>): Generator<void> {
  for (const key in o) {
    // eslint-disable-next-line no-prototype-builtins -- the very call cbor-x makes
    if (typeof o.hasOwnProperty !== 'function' || o.hasOwnProperty(key)) {
      frame.segment = propertySegment(key);
      frame.child = o[key];
      yield;
    }
  }
}

function* entries(frame: Frame, entries: Iterable<readonly [unknown, unknown]>): Generator<void> {
  let index = 0;
  for (const [k, v] of entries) {
    frame.segment = `.keys()[${index}]`;
    frame.child = k;
    yield;
    frame.segment = mapValueSegment(k, index);
    frame.child = v;
    yield;
    index++;
  }
}

function* members(frame: Frame, items: Iterable<unknown>): Generator<void> {
  let index = 0;
  frame.segment = '[0]';
  for (const item of items) {
    frame.segment = `[${index++}]`;
    frame.child = item;
    yield;
  }
}

function* elements(frame: Frame, items: unknown[]): Generator<void> {
  const length = items.length;
  for (let i = 0; i < length; i++) {
    frame.segment = `[${i}]`;
    frame.child = items[i];
    yield;
  }
}

/** Why a value is refused; `cause` is what user code threw, if that is why. */
interface Offence {
  readonly reason: string;
  readonly cause?: unknown;
  readonly hasCause: boolean;
}

function offence(reason: string): Offence {
  return { reason, hasCause: false };
}

function threw(what: string, err: unknown): Offence {
  return { reason: `${what} threw: ${describe(err)}`, cause: err, hasCause: true };
}

/** What walking into `value` means: its children as encoding visits them, a refusal, or nothing (a leaf). */
type Opening = ((frame: Frame) => Iterator<void>) | Offence | undefined;

function open(value: object): Opening {
  const c: unknown = value.constructor;
  if (c === Object) return (f) => properties(f, value as Record<string, unknown>);
  if (c === Array) return (f) => elements(f, value as unknown[]);
  if (c === Map) return (f) => entries(f, value as Map<unknown, unknown>);
  switch (classify(value)) {
    case C_LEAF:
    case C_COPY_DATE:
    case C_COPY_TYPED:
      return undefined;
    case C_PLAIN:
      return (f) => properties(f, value as Record<string, unknown>);
    case C_SET:
    case C_COPY_SET: {
      const items = Array.from(value as Set<unknown>);
      return (f) => members(f, items);
    }
    case C_ITERATED:
      return (f) => members(f, value as unknown[]);
    case C_COPY_MAP: {
      const copy = new Map(value as Map<unknown, unknown>);
      return (f) => entries(f, copy);
    }
    case C_COPY_PLAIN: {
      const copy = Object.fromEntries(Object.entries(value)) as Record<string, unknown>;
      return (f) => properties(f, copy);
    }
    case C_HANDLE: {
      let ref: unknown;
      try {
        ref = (value as PortableHandle).toHandleRef();
      } catch (err) {
        return threw('its toHandleRef()', err);
      }
      return isValidRef(ref)
        ? undefined
        : offence(
            'an invalid handle ref: kind must be a string, node and id non-negative safe integers, name a string',
          );
    }
    default:
      return offence(refusal(value));
  }
}

function unsupported(what: string, hint?: string): string {
  return `${what} is not a supported payload type${hint === undefined ? '' : ` (${hint})`}`;
}

function constructorName(value: object): string | undefined {
  try {
    const C: unknown = (getPrototypeOf(value) as { constructor?: unknown } | null)?.constructor;
    const name: unknown = typeof C === 'function' ? C.name : undefined;
    return typeof name === 'string' && name !== '' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** Why the rule refuses `value`, an object classify() refused, with what to send instead. */
function refusal(value: object): string {
  const name = constructorName(value);
  // "a Promise", or "a Promise (MyPromise)" for a subclass.
  const named = (article: string, noun: string): string =>
    `${article} ${noun}${name === undefined || name === noun ? '' : ` (${name})`}`;
  if (types.isBoxedPrimitive(value)) {
    const primitive = typeof (value as { valueOf(): unknown }).valueOf();
    return unsupported(`a boxed ${primitive}`, 'send the primitive: value.valueOf()');
  }
  if (types.isPromise(value)) return unsupported(named('a', 'Promise'), 'await it first');
  if (types.isNativeError(value) || value instanceof Error) {
    return unsupported(named('an', 'Error'), 'send its name, message and code as plain fields');
  }
  if (types.isRegExp(value)) return unsupported(named('a', 'RegExp'), 'send its source and flags');
  if (value instanceof Tag)
    return unsupported('a cbor-x Tag', 'arbitrary CBOR tags are not carried');
  if (types.isArrayBuffer(value)) {
    return unsupported(
      'an ArrayBuffer',
      'send a Buffer or a Uint8Array over it: new Uint8Array(buffer)',
    );
  }
  if (types.isSharedArrayBuffer(value)) {
    return unsupported(
      'a SharedArrayBuffer',
      'send a copy of its bytes: Buffer.from(new Uint8Array(buffer))',
    );
  }
  if (types.isDataView(value)) {
    return unsupported(
      'a DataView',
      'send the bytes it views: new Uint8Array(view.buffer, view.byteOffset, view.byteLength)',
    );
  }
  const typed = typedArrayName(value);
  if (typed !== undefined) {
    if (!TYPED_ARRAYS.has(typed)) return unsupported(`a ${typed}`);
    return unsupported(named('a subclass of', typed), `send a plain ${typed}: new ${typed}(value)`);
  }
  if (types.isMap(value))
    return unsupported(named('a subclass of', 'Map'), 'send a plain Map: new Map(value)');
  if (types.isSet(value))
    return unsupported(named('a subclass of', 'Set'), 'send a plain Set: new Set(value)');
  if (types.isDate(value)) {
    return unsupported(
      named('a subclass of', 'Date'),
      'send a plain Date: new Date(value.getTime())',
    );
  }
  if (Array.isArray(value)) {
    return unsupported(named('a subclass of', 'Array'), 'send a plain array: Array.from(value)');
  }
  if (types.isWeakMap(value) || types.isWeakSet(value)) {
    return unsupported(
      named('a', types.isWeakMap(value) ? 'WeakMap' : 'WeakSet'),
      'its entries cannot be listed',
    );
  }
  if (value instanceof WeakRef) return unsupported('a WeakRef', 'send what deref() returns');
  if (value instanceof URL) return unsupported(named('a', 'URL'), 'send url.href');
  if (value instanceof URLSearchParams) {
    return unsupported(named('a', 'URLSearchParams'), 'send params.toString()');
  }
  if (value instanceof Blob) {
    return unsupported(named('a', 'Blob'), 'send its bytes: Buffer.from(await blob.arrayBuffer())');
  }
  const v = value as Record<symbol, unknown>;
  if (v[Symbol.iterator]) {
    const what = types.isGeneratorObject(value) ? 'a generator' : named('an', 'iterable');
    return unsupported(what, 'send an array: Array.from(value)');
  }
  if (v[Symbol.asyncIterator]) {
    const what = types.isGeneratorObject(value) ? 'an async generator' : 'an async iterable';
    return unsupported(what, 'collect it into an array first');
  }
  if (name !== undefined && name !== 'Object') {
    return unsupported(
      `a class instance (${name})`,
      'it would arrive without its prototype: spread it into a plain object, { ...value }',
    );
  }
  return unsupported(
    'an object with a custom prototype',
    'it would arrive without its prototype: spread it into a plain object, { ...value }',
  );
}

/** The path of the value examined: the segments of every open frame. */
function pathOf(frames: readonly Frame[], upTo = frames.length): string {
  let path = '';
  for (let i = 0; i < upTo; i++) path += frames[i]!.segment;
  return path;
}

function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message);
}

/**
 * The EncodeError for a value whose encoding (or check) failed with
 * `failure`: walks the value again, as encoding does but without recursion,
 * and names the first offending place. Containers on the current path are
 * tracked to spot a cycle where it closes; containers already walked are not
 * walked again, so shared references cost nothing more.
 */
export function locate(root: unknown, failure: unknown): EncodeError {
  try {
    return search(root, failure);
  } catch (err) {
    // Only if the walk itself fails (no stack left, a value that changes
    // under inspection): report what encoding said.
    return new EncodeError('', describe(failure), { cause: err });
  }
}

function search(root: unknown, failure: unknown): EncodeError {
  const frames: Frame[] = [];
  const onPath = new Set<object>();
  const walked = new Set<object>();
  let deepest = 0;
  let value = root;
  const fail = (problem: Offence): EncodeError =>
    new EncodeError(
      pathOf(frames),
      problem.reason,
      problem.hasCause ? { cause: problem.cause } : undefined,
    );
  for (;;) {
    // Examine `value`, the child of the innermost frame (or the root).
    if (typeof value === 'function') return fail(offence(unsupported('a function')));
    if (typeof value === 'symbol') return fail(offence(unsupported('a symbol')));
    if (typeof value === 'object' && value !== null && !walked.has(value)) {
      if (onPath.has(value)) {
        const at = frames.findIndex((f) => f.container === value);
        const target = at === 0 ? 'the top-level value' : `the value at ${pathOf(frames, at)}`;
        return fail(offence(`a cycle: it refers back to ${target}`));
      }
      let opening: Opening;
      try {
        opening = open(value);
      } catch (err) {
        return fail(threw('reading it', err));
      }
      if (typeof opening === 'function') {
        const frame = { container: value, segment: '', child: undefined } as Frame & {
          children: Iterator<void>;
        };
        frame.children = opening(frame);
        frames.push(frame);
        onPath.add(value);
        if (frames.length > deepest) deepest = frames.length;
      } else if (opening !== undefined) {
        return fail(opening);
      }
    }
    // Move to the next child, closing the frames that have none left.
    for (;;) {
      const frame = frames[frames.length - 1];
      if (frame === undefined) return unexplained(failure, deepest);
      let done: boolean | undefined;
      try {
        done = frame.children.next().done;
      } catch (err) {
        return fail(threw('reading it', err));
      }
      if (!done) {
        value = frame.child;
        break;
      }
      frames.pop();
      onPath.delete(frame.container);
      walked.add(frame.container);
    }
  }
}

/** The error when the walk finds nothing to blame: depth, or what cbor-x said. */
function unexplained(failure: unknown, deepest: number): EncodeError {
  if (isStackOverflow(failure)) {
    return new EncodeError(
      '',
      `nested too deeply to encode: ${deepest} levels overflow the stack (a receiver accepts at most ${MAX_CODEC_DEPTH})`,
    );
  }
  if (failure === REFUSED) {
    return new EncodeError('', 'refused, but the value changed while it was inspected again');
  }
  return new EncodeError('', describe(failure), { cause: failure });
}

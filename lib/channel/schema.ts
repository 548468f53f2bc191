import { ErrorCode, SwitchboardError } from '../errors.js';
import type { SwitchboardErrorOptions } from '../errors.js';

/**
 * The Standard Schema interface (v1), declared here so that zod, valibot,
 * arktype and any other conforming library fit without being a dependency.
 * Every type below is as wide as the specification's own: under
 * `exactOptionalPropertyTypes` a narrower one (an issue `path` without
 * `| undefined`, say) would refuse a library's schema outright.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': StandardSchemaProps<Input, Output>;
}

/** The `~standard` property of a schema. */
export interface StandardSchemaProps<Input = unknown, Output = Input> {
  readonly version: 1;
  /** The schema library's name. */
  readonly vendor: string;
  readonly validate: (
    value: unknown,
    options?: StandardValidateOptions,
  ) => StandardResult<Output> | Promise<StandardResult<Output>>;
  /** Carries the input and output types; never read at run time. */
  readonly types?: StandardTypes<Input, Output> | undefined;
}

/** The optional second argument of `validate`: options for one library. */
export interface StandardValidateOptions {
  readonly libraryOptions?: Record<string, unknown> | undefined;
}

/** The input and output types of a schema. */
export interface StandardTypes<Input = unknown, Output = Input> {
  readonly input: Input;
  readonly output: Output;
}

/** A validation outcome: a value, or issues. */
export type StandardResult<Output> = StandardSuccessResult<Output> | StandardFailureResult;

/** A value that passed; `issues` is absent or undefined. */
export interface StandardSuccessResult<Output> {
  readonly value: Output;
  readonly issues?: undefined;
}

/** A value that did not pass, and why. */
export interface StandardFailureResult {
  readonly issues: ReadonlyArray<StandardIssue>;
}

/** One reason a value did not pass, and where in it. */
export interface StandardIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | StandardPathSegment> | undefined;
}

/** A path step given as an object rather than a bare key. */
export interface StandardPathSegment {
  readonly key: PropertyKey;
}

/** A message refused by an endpoint's validator. */
export class ValidationError extends SwitchboardError {
  /** The validator's issues, as it reported them (`path` included when it gave one). */
  readonly issues: ReadonlyArray<StandardIssue>;
  /** Which endpoint, or which part of which call, refused it (the message's prefix). */
  readonly where: string;

  constructor(
    where: string,
    issues: ReadonlyArray<StandardIssue>,
    options?: SwitchboardErrorOptions,
  ) {
    super(
      ErrorCode.VALIDATION,
      `${where}: invalid message: ${issues.map((i) => i.message).join('; ')}`,
      options,
    );
    this.issues = issues;
    this.where = where;
  }
}

/**
 * Validates synchronously. Asynchronous validators are refused: a channel
 * delivers in order, and waiting on a promise per message would reorder or
 * stall the stream.
 * @throws {ValidationError}
 */
export function validateSync<T>(
  schema: StandardSchemaV1<unknown, T>,
  value: unknown,
  where: string,
): T {
  let result: StandardResult<T> | Promise<StandardResult<T>>;
  try {
    result = schema['~standard'].validate(value);
  } catch (err) {
    // A validator that throws (a bug in it) still refuses only this message, with a typed error.
    const message = err instanceof Error ? err.message : String(err);
    throw new ValidationError(where, [{ message: `validator threw: ${message}` }], { cause: err });
  }
  if (result instanceof Promise) {
    // Not awaited: keep a rejection of it from becoming an unhandled one.
    result.catch(() => undefined);
    throw new ValidationError(where, [{ message: 'asynchronous validators are not supported' }]);
  }
  if (result.issues !== undefined) throw new ValidationError(where, result.issues);
  return result.value;
}

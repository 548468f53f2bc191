import { ErrorCode, SwitchboardError } from '../errors.js';
import type { SwitchboardErrorOptions } from '../errors.js';

/**
 * The Standard Schema interface (v1), declared here so that zod, valibot,
 * arktype and any other conforming library fit without being a dependency.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** A validation outcome: a value, or issues. */
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | {
      readonly issues: ReadonlyArray<{
        readonly message: string;
        readonly path?: ReadonlyArray<unknown>;
      }>;
    };

/** A message refused by an endpoint's validator. */
export class ValidationError extends SwitchboardError {
  readonly issues: ReadonlyArray<{ readonly message: string }>;

  constructor(
    where: string,
    issues: ReadonlyArray<{ readonly message: string }>,
    options?: SwitchboardErrorOptions,
  ) {
    super(
      ErrorCode.VALIDATION,
      `${where}: invalid message: ${issues.map((i) => i.message).join('; ')}`,
      options,
    );
    this.issues = issues;
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

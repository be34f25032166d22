/**
 * Assertions for tests, on `node:assert/strict` (JSR's `@std/assert` is not
 * reachable from our machines; see docs/development.md, "Dependencies").
 */
import nodeAssert from "node:assert/strict";

/** Fails unless `value` is truthy. */
export function assert(value: unknown, message?: string): asserts value {
  nodeAssert.ok(value, message);
}

/** Fails unless `actual` and `expected` are deeply, strictly equal. */
export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Fails unless `text` contains `part`. */
export function assertIncludes(text: string, part: string, message?: string): void {
  nodeAssert.ok(
    text.includes(part),
    message ?? `expected ${JSON.stringify(text.slice(0, 300))} to include ${JSON.stringify(part)}`,
  );
}

/** Fails unless `fn` throws (or rejects); returns the error. */
export async function assertRejects(fn: () => unknown, message?: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  nodeAssert.fail(message ?? "expected an error");
}

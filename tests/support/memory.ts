/**
 * Heap measurements that mean something: the heap in use right after a full
 * garbage collection, so what a test compares is what is still reachable,
 * not what the collector has not got round to yet.
 */
import v8 from "node:v8";
import vm from "node:vm";

let gc: (() => void) | undefined;

/** Runs a full garbage collection (V8's `gc`, exposed for this process on first use). */
export function collectGarbage(): void {
  if (!gc) {
    v8.setFlagsFromString("--expose-gc");
    gc = vm.runInNewContext("gc") as () => void;
  }
  gc();
}

/** Bytes of JS heap in use after a full collection. */
export function liveHeapBytes(): number {
  collectGarbage();
  return Deno.memoryUsage().heapUsed;
}

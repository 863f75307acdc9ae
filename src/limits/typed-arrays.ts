/** Growing the typed arrays that hold per-key state (key-table.ts, lease-arbiter.ts). */

export type SlotArray = Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

/** A copy of `array` with room for `length` elements, the new ones zero. */
export function resize<T extends SlotArray>(array: T, length: number): T {
  const bigger = new (array.constructor as new (length: number) => T)(length);
  bigger.set(array);
  return bigger;
}

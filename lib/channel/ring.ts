/**
 * A growable FIFO ring. `shift()` is O(1) without the array re-indexing of
 * `Array.prototype.shift`, and the ring never shrinks below what it held, so
 * a steady stream allocates nothing. The capacity is a power of two, so
 * positions wrap with a mask instead of a division.
 */
export class Ring<T> {
  private items: Array<T | undefined>;
  private mask: number;
  private head = 0;
  private count = 0;

  constructor(initialCapacity = 16) {
    let capacity = 16;
    while (capacity < initialCapacity) capacity *= 2;
    this.items = new Array<T | undefined>(capacity);
    this.mask = capacity - 1;
  }

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) & this.mask] = item;
    this.count++;
  }

  /** Removes and returns the oldest item; undefined when empty. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.count--;
    return item;
  }

  /** Removes the `n` oldest items (all of them if fewer), in one pass. */
  discard(n: number): void {
    const k = Math.min(Math.max(0, Math.floor(n)), this.count);
    if (k === 0) return;
    const end = this.head + k;
    const cap = this.items.length;
    // Cleared, not just skipped: the ring must not keep values alive.
    if (end <= cap) this.items.fill(undefined, this.head, end);
    else {
      this.items.fill(undefined, this.head, cap);
      this.items.fill(undefined, 0, end - cap);
    }
    this.head = end & this.mask;
    this.count -= k;
  }

  /** The oldest item without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  /** The item `i` places from the oldest (0 is the oldest); undefined past the end. */
  at(i: number): T | undefined {
    return i < 0 || i >= this.count ? undefined : this.items[(this.head + i) & this.mask];
  }

  /** Removes and returns the item `i` places from the oldest. O(n), for rare removals. */
  removeAt(i: number): T | undefined {
    if (i < 0 || i >= this.count) return undefined;
    const item = this.items[(this.head + i) & this.mask];
    // Close the gap from the head side: items before `i` move one place on.
    for (let k = i; k > 0; k--)
      this.items[(this.head + k) & this.mask] = this.items[(this.head + k - 1) & this.mask];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.count--;
    return item;
  }

  /** Removes every item, returning them oldest first. */
  drain(): T[] {
    const out: T[] = [];
    while (this.count > 0) out.push(this.shift()!);
    return out;
  }

  /** Removes the first item equal to `item`; true if found. O(n), for rare removals. */
  remove(item: T): boolean {
    const all = this.drain();
    const at = all.indexOf(item);
    if (at >= 0) all.splice(at, 1);
    for (const x of all) this.push(x);
    return at >= 0;
  }

  private grow(): void {
    const next = new Array<T | undefined>(this.items.length * 2);
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) & this.mask];
    this.items = next;
    this.mask = next.length - 1;
    this.head = 0;
  }
}

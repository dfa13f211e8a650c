// One seeded pseudo-random generator drives every random choice of a torture run: which process
// dies at which step, what the proxies do to each chunk, what Mercado Pago gets wrong. The same
// seed replays the same choices in the same order (as FoundationDB's and TigerBeetle's
// simulators do), so a violation found once can be replayed, fixed and kept as a case.
//
// Streams are forked by name (`fork('proxy:agent:conn3')`), so the decisions of one part do not
// shift when another part draws more or fewer numbers (a connection that lives longer on a busy
// machine does not change which fault the next cycle gets). sfc32 seeded through splitmix32.

export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  readonly seed: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative whole number, got ${seed}`);
    this.seed = seed;
    let s = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A fresh seed for a run when none was given: printed, so the run can be replayed. */
  static freshSeed(): number {
    return Math.floor(Math.random() * 2 ** 31);
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** [0, 1) */
  next(): number {
    return this.u32() / 2 ** 32;
  }

  /** integer in [min, max] */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** picks by weight: [[item, weight], ...] */
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    const total = items.reduce((s, [, w]) => s + w, 0);
    let r = this.next() * total;
    for (const [item, w] of items) {
      r -= w;
      if (r < 0) return item;
    }
    return items[items.length - 1]![0];
  }

  /** An independent stream named `label`, the same for the same seed whatever else was drawn. */
  fork(label: string): Prng {
    let h = 0x811c9dc5 ^ (this.seed >>> 0);
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
    return new Prng((h >>> 0) + (this.seed % 2 ** 20) * 2 ** 32);
  }
}

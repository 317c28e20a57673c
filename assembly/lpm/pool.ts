// A block pool for the route tables: blocks of 1..maxUnits units (a unit is 2^unitShift bytes, and blocks are aligned
// to it), carved from slabs taken from the heap on demand, with one free list per size so blocks are reused under
// churn. Slabs are never returned (stub runtime) but `reset` reuses them all, so re-initialising a table does not grow
// memory. A free block's first word links to the next free block of its size.

export class BlockPool {
  private readonly freeLists: usize;
  private firstSlab: usize = 0;
  private currentSlab: usize = 0;
  private cursor: usize = 0;
  private end: usize = 0;
  slabCount: u32 = 0;

  constructor(
    private readonly unitShift: u32,
    private readonly maxUnits: u32,
    private readonly slabBytes: usize,
  ) {
    const bytes = <usize>(maxUnits + 1) << alignof<usize>();
    this.freeLists = heap.alloc(bytes);
    memory.fill(this.freeLists, 0, bytes);
  }

  /** Forgets every block; slabs already taken are carved again from the start. */
  reset(): void {
    memory.fill(this.freeLists, 0, <usize>(this.maxUnits + 1) << alignof<usize>());
    this.currentSlab = 0;
    this.cursor = 0;
    this.end = 0;
  }

  alloc(units: u32): usize {
    const head = this.freeLists + (<usize>units << alignof<usize>());
    const free = load<usize>(head);
    if (free != 0) {
      store<usize>(head, load<usize>(free));
      return free;
    }
    const bytes = <usize>units << this.unitShift;
    if (this.cursor + bytes > this.end) this.nextSlab();
    const block = this.cursor;
    this.cursor += bytes;
    return block;
  }

  free(block: usize, units: u32): void {
    const head = this.freeLists + (<usize>units << alignof<usize>());
    store<usize>(block, load<usize>(head));
    store<usize>(head, block);
  }

  /** Bytes taken from the heap for slabs. */
  reservedBytes(): usize {
    return <usize>this.slabCount * (this.slabBytes + (<usize>1 << this.unitShift));
  }

  private nextSlab(): void {
    const unit = <usize>1 << this.unitShift;
    let next = this.currentSlab != 0 ? load<usize>(this.currentSlab) : this.firstSlab;
    if (next == 0) {
      // The first unit holds the link to the next slab; blocks follow, aligned to the unit.
      const raw = heap.alloc(this.slabBytes + unit);
      next = (raw + unit - 1) & ~(unit - 1);
      store<usize>(next, 0);
      if (this.currentSlab != 0) store<usize>(this.currentSlab, next);
      else this.firstSlab = next;
      this.slabCount++;
    }
    this.currentSlab = next;
    this.cursor = next + unit;
    this.end = next + this.slabBytes;
  }
}

// The honest baseline: a plain TypeScript binary trie, one bit per step, nodes packed in an Int32Array
// (left child, right child, value; 0 = no child, -1 = no value). Lookups walk at most 32 (IPv4) or 128 (IPv6) nodes and
// keep the last value seen.

const STRIDE = 3;

class NodePool {
  nodes = new Int32Array(STRIDE * 1024);
  count = 1;

  constructor() {
    this.nodes[2] = -1;
  }

  child(node: number, bit: number): number {
    const at = node * STRIDE + bit;
    let next = this.nodes[at];
    if (next === 0) {
      next = this.grow();
      this.nodes[at] = next;
    }
    return next;
  }

  private grow(): number {
    if ((this.count + 1) * STRIDE > this.nodes.length) {
      const bigger = new Int32Array(this.nodes.length * 2);
      bigger.set(this.nodes);
      this.nodes = bigger;
    }
    const node = this.count++;
    this.nodes[node * STRIDE + 2] = -1;
    return node;
  }

  get bytes(): number {
    return this.nodes.byteLength;
  }
}

export class BinaryTrie4 {
  private readonly pool = new NodePool();

  insert(addr: number, len: number, value: number): void {
    let node = 0;
    for (let i = 0; i < len; i++) node = this.pool.child(node, (addr >>> (31 - i)) & 1);
    this.pool.nodes[node * STRIDE + 2] = value;
  }

  lookup(addr: number): number {
    const nodes = this.pool.nodes;
    let node = 0;
    let best = nodes[2];
    for (let i = 0; i < 32; i++) {
      node = nodes[node * STRIDE + ((addr >>> (31 - i)) & 1)];
      if (node === 0) break;
      const value = nodes[node * STRIDE + 2];
      if (value >= 0) best = value;
    }
    return best;
  }

  get memoryBytes(): number {
    return this.pool.bytes;
  }
}

/** IPv6 addresses as four big-endian u32 words, at `at` in `words`. */
export class BinaryTrie6 {
  private readonly pool = new NodePool();

  insert(words: Uint32Array, at: number, len: number, value: number): void {
    let node = 0;
    for (let i = 0; i < len; i++) node = this.pool.child(node, (words[at + (i >>> 5)] >>> (31 - (i & 31))) & 1);
    this.pool.nodes[node * STRIDE + 2] = value;
  }

  lookup(words: Uint32Array, at: number): number {
    const nodes = this.pool.nodes;
    let node = 0;
    let best = nodes[2];
    for (let w = 0; w < 4; w++) {
      const word = words[at + w];
      for (let b = 31; b >= 0; b--) {
        node = nodes[node * STRIDE + ((word >>> b) & 1)];
        if (node === 0) return best;
        const value = nodes[node * STRIDE + 2];
        if (value >= 0) best = value;
      }
    }
    return best;
  }

  get memoryBytes(): number {
    return this.pool.bytes;
  }
}

// A binary min-heap of items by (deadline, insertion order): the schedule of the work queue and the order
// of the issuance pacer's waiting keys. Entries are never removed from the middle; callers drop stale ones
// when they surface (lazy deletion), by comparing with their own record of each key.

export interface HeapItem<K> {
  deadline: number;
  seq: number;
  key: K;
}

export class DeadlineHeap<K> {
  private readonly items: HeapItem<K>[] = [];

  get length(): number {
    return this.items.length;
  }

  /** The earliest item, without removing it. */
  peek(): HeapItem<K> | undefined {
    return this.items[0];
  }

  push(item: HeapItem<K>): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): HeapItem<K> | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(l, m)) m = l;
        if (r < a.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }

  private swap(i: number, j: number): void {
    const a = this.items;
    const t = a[i] as HeapItem<K>;
    a[i] = a[j] as HeapItem<K>;
    a[j] = t;
  }

  private less(i: number, j: number): boolean {
    const x = this.items[i] as HeapItem<K>;
    const y = this.items[j] as HeapItem<K>;
    return x.deadline < y.deadline || (x.deadline === y.deadline && x.seq < y.seq);
  }
}

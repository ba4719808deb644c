// BuddyCore: the page-level buddy algorithm itself, in two modes, with no guest imports so
// the same file compiles into the kernel and into the host tests (Tests/BuddyTests links it).
//
// Geometry: `chunks` blocks of the top order (2^maxOrder pages each) from `base`. Order k
// blocks are 2^k pages, aligned to 2^k pages relative to `base`; a block's buddy is found by
// flipping bit k of its page index.
//
//  * Locked (Unikraft PR #801): one free list per order, each under its own lock. A free
//    block keeps {next, prev} in its first 16 bytes; `state[page] = k + 1` marks the head of
//    a free order-k block. Every change to or from k + 1 happens under order k's lock, so a
//    reader holding lock k sees k + 1 exactly when the block is on list k. The same byte also
//    serves other orders (a page heads blocks of several orders) and is written under their
//    locks meanwhile, so it is a relaxed atomic: those writes race with the reader's load, but
//    can never make it read k + 1 or lose it. Allocation searches
//    upward one order lock at a time, then pushes the split halves under the lower locks;
//    free merges one order lock per step.
//  * Lock-free (NBBS, arXiv 1804.03436, 1lvl-nb): a forest of implicit binary trees, one per
//    top-order chunk (node 1 = the chunk, children 2i and 2i+1), one 64-bit state word per
//    node (OCC_R 1, OCC_L 2, COAL_R 4, COAL_L 8, OCC 16); try_alloc marks a zero node 0x13 and
//    climbs setting OCC_side, rolling back on a conflict; release announces with COAL bits,
//    clears the node, then unmarks upward. CAS retries are counted per order.
//
// Statistics go to caller-provided words laid out like `struct smptop_alloc_order`
// (10 x UInt64 per order) and one `pages_free` word, so the guest can point them straight at
// its inspection-ABI records.

import Synchronization

#if !SMP_GUEST
  /// Host stand-in for the guest's BuddyLock (BuddyLock.swift): a plain spinlock.
  struct BuddyLock: ~Copyable {
    private let word = Atomic<UInt32>(0)
    init() {}
    func lock() -> Bool {
      while !word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
        while word.load(ordering: .relaxed) != 0 {}
      }
      return false
    }
    func unlock(restoring: Bool) { word.store(0, ordering: .releasing) }
  }
#endif

/// Which algorithm a BuddyCore runs (raw values = enum smptop_alloc_mode).
enum BuddyMode: UInt32 {
  case locked = 0
  case lockFree = 1
}

/// Word offsets inside one order's statistics record (= struct smptop_alloc_order).
enum BuddyStat {
  static let order = 0, blockBytes = 1, freeBlocks = 2, usedBlocks = 3, allocs = 4, frees = 5
  static let splits = 6, merges = 7, failures = 8, casRetries = 9
  /// Words per order record.
  static let words = 10
}

/// The buddy allocator over one contiguous region. A plain value of pointers: copies share
/// the same metadata, so it can live in a global without a heap.
struct BuddyCore {
  /// Bytes of an order-0 block.
  static let pageBytes: UInt64 = 4096
  static let pageShift: UInt64 = 12

  // NBBS node bits.
  static let occRight: UInt64 = 0x01
  static let occLeft: UInt64 = 0x02
  static let coalRight: UInt64 = 0x04
  static let coalLeft: UInt64 = 0x08
  static let occupied: UInt64 = 0x10
  static let busyNode: UInt64 = 0x13

  let mode: BuddyMode
  /// First managed address.
  let base: UInt64
  /// Highest order (a chunk is one block of this order).
  let maxOrder: Int
  /// Top-order blocks managed.
  let chunks: Int
  /// Per-order statistics, BuddyStat.words words per order.
  let stats: UnsafeMutablePointer<Atomic<UInt64>>
  /// Pages currently free.
  let freePages: UnsafeMutablePointer<Atomic<UInt64>>

  // Locked mode.
  let state: UnsafeMutablePointer<Atomic<UInt8>>
  let heads: UnsafeMutablePointer<UInt64>
  let locks: UnsafeMutablePointer<BuddyLock>
  // Lock-free mode: chunks x 2^(maxOrder+1) node words (index 0 of each tree unused).
  let nodes: UnsafeMutablePointer<Atomic<UInt64>>

  var orders: Int { maxOrder + 1 }
  var pagesPerChunk: Int { 1 << maxOrder }
  var pagesManaged: Int { chunks << maxOrder }
  var nodesPerChunk: Int { 2 << maxOrder }

  /// Metadata bytes `init` carves out of `metadata` for this geometry.
  static func metadataBytes(mode: BuddyMode, maxOrder: Int, chunks: Int) -> Int {
    switch mode {
    case .locked:
      return (chunks << maxOrder) + 16 * 8 + 16 * MemoryLayout<BuddyLock>.stride + 64
    case .lockFree:
      return chunks * (2 << maxOrder) * 8 + 64
    }
  }

  /// Builds the allocator with every page free. `metadata` must hold metadataBytes(...)
  /// bytes, `stats` (maxOrder + 1) x 10 words and `freePages` one word, all 8-byte aligned.
  init(
    mode: BuddyMode, base: UInt64, maxOrder: Int, chunks: Int, metadata: UnsafeMutableRawPointer,
    stats: UnsafeMutableRawPointer, freePages: UnsafeMutableRawPointer
  ) {
    self.mode = mode
    self.base = base
    self.maxOrder = maxOrder
    self.chunks = chunks
    let words = (maxOrder + 1) * BuddyStat.words
    self.stats = stats.bindMemory(to: Atomic<UInt64>.self, capacity: words)
    self.freePages = freePages.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
    for i in 0..<words { self.stats[i].store(0, ordering: .relaxed) }
    for k in 0...maxOrder {
      self.stats[k * BuddyStat.words + BuddyStat.order].store(UInt64(k), ordering: .relaxed)
      self.stats[k * BuddyStat.words + BuddyStat.blockBytes].store(
        Self.pageBytes << UInt64(k), ordering: .relaxed)
    }
    self.freePages[0].store(UInt64(chunks << maxOrder), ordering: .relaxed)
    let pages = chunks << maxOrder
    switch mode {
    case .locked:
      state = metadata.bindMemory(to: Atomic<UInt8>.self, capacity: pages)
      for i in 0..<pages { state[i].store(0, ordering: .relaxed) }
      let h = (pages + 7) & ~7
      heads = (metadata + h).bindMemory(to: UInt64.self, capacity: 16)
      for i in 0..<16 { heads[i] = 0 }
      let l = h + 16 * 8
      let a = MemoryLayout<BuddyLock>.alignment
      let lockOffset = (l + a - 1) / a * a
      locks = (metadata + lockOffset).bindMemory(to: BuddyLock.self, capacity: 16)
      for i in 0..<16 { (locks + i).initialize(to: BuddyLock()) }
      nodes = UnsafeMutableRawPointer(heads).bindMemory(to: Atomic<UInt64>.self, capacity: 1)  // unused
      for c in 0..<chunks {
        let page = c << maxOrder
        push(page, order: maxOrder)
        state[page].store(UInt8(maxOrder + 1), ordering: .relaxed)
      }
      stat(maxOrder, BuddyStat.freeBlocks, UInt64(chunks))
    case .lockFree:
      let n = chunks * (2 << maxOrder)
      nodes = metadata.bindMemory(to: Atomic<UInt64>.self, capacity: n)
      for i in 0..<n { nodes[i].store(0, ordering: .relaxed) }
      state = metadata.bindMemory(to: Atomic<UInt8>.self, capacity: 1)  // unused
      heads = metadata.bindMemory(to: UInt64.self, capacity: 1)  // unused
      locks = UnsafeMutableRawPointer(metadata).bindMemory(to: BuddyLock.self, capacity: 1)  // unused
      stat(maxOrder, BuddyStat.freeBlocks, UInt64(chunks))
    }
  }

  // MARK: statistics

  @inline(__always)
  func stat(_ order: Int, _ field: Int, _ delta: UInt64) {
    stats[order * BuddyStat.words + field].wrappingAdd(delta, ordering: .relaxed)
  }
  @inline(__always)
  func statSub(_ order: Int, _ field: Int, _ delta: UInt64) {
    stats[order * BuddyStat.words + field].wrappingSubtract(delta, ordering: .relaxed)
  }
  /// One statistics word.
  func read(_ order: Int, _ field: Int) -> UInt64 {
    stats[order * BuddyStat.words + field].load(ordering: .relaxed)
  }
  /// Pages free now.
  var pagesFree: UInt64 { freePages[0].load(ordering: .relaxed) }

  // MARK: public operations

  /// Allocates one block of 2^order pages; `cpu`/`cpus` spread lock-free searches.
  /// Returns its address or nil when no block is free.
  func allocate(order: Int, cpu: Int = 0, cpus: Int = 1) -> UInt64? {
    guard order >= 0, order <= maxOrder else { return nil }
    let page: Int?
    switch mode {
    case .locked: page = lockedAllocate(order)
    case .lockFree: page = nbAllocate(order, cpu: cpu, cpus: max(1, cpus))
    }
    guard let p = page else {
      stat(order, BuddyStat.failures, 1)
      return nil
    }
    stat(order, BuddyStat.allocs, 1)
    stat(order, BuddyStat.usedBlocks, 1)
    freePages[0].wrappingSubtract(UInt64(1) << UInt64(order), ordering: .relaxed)
    return base &+ (UInt64(p) << Self.pageShift)
  }

  /// Returns a block `allocate(order:)` handed out.
  func free(_ address: UInt64, order: Int) {
    let page = Int((address &- base) >> Self.pageShift)
    stat(order, BuddyStat.frees, 1)
    statSub(order, BuddyStat.usedBlocks, 1)
    freePages[0].wrappingAdd(UInt64(1) << UInt64(order), ordering: .relaxed)
    switch mode {
    case .locked: lockedFree(page, order)
    case .lockFree: nbFree(page, order)
    }
  }

  /// Whether `address` lies in the managed range.
  func contains(_ address: UInt64) -> Bool {
    address >= base && address < base &+ (UInt64(pagesManaged) << Self.pageShift)
  }

  // MARK: locked mode (per-order locks)

  @inline(__always) func blockPointer(_ page: Int) -> UnsafeMutablePointer<UInt64> {
    UnsafeMutablePointer<UInt64>(bitPattern: UInt(base &+ (UInt64(page) << Self.pageShift)))!
  }

  /// Links a block at the head of order k's list (caller holds lock k).
  func push(_ page: Int, order k: Int) {
    let b = blockPointer(page)
    let addr = UInt64(UInt(bitPattern: b))
    let first = heads[k]
    b[0] = first
    b[1] = 0
    if first != 0 { UnsafeMutablePointer<UInt64>(bitPattern: UInt(first))![1] = addr }
    heads[k] = addr
  }

  /// Unlinks a block from order k's list (caller holds lock k).
  func remove(_ page: Int, order k: Int) {
    let b = blockPointer(page)
    let next = b[0]
    let prev = b[1]
    if prev != 0 { UnsafeMutablePointer<UInt64>(bitPattern: UInt(prev))![0] = next } else { heads[k] = next }
    if next != 0 { UnsafeMutablePointer<UInt64>(bitPattern: UInt(next))![1] = prev }
  }

  func lockedAllocate(_ order: Int) -> Int? {
    for k in order...maxOrder {
      let irq = locks[k].lock()
      let head = heads[k]
      if head == 0 {
        locks[k].unlock(restoring: irq)
        continue
      }
      let page = Int((head &- base) >> Self.pageShift)
      remove(page, order: k)
      state[page].store(0, ordering: .relaxed)
      statSub(k, BuddyStat.freeBlocks, 1)
      locks[k].unlock(restoring: irq)
      var cur = k
      while cur > order {
        stat(cur, BuddyStat.splits, 1)
        cur -= 1
        let buddy = page + (1 << cur)
        let irq2 = locks[cur].lock()
        push(buddy, order: cur)
        state[buddy].store(UInt8(cur + 1), ordering: .relaxed)
        stat(cur, BuddyStat.freeBlocks, 1)
        locks[cur].unlock(restoring: irq2)
      }
      return page
    }
    return nil
  }

  func lockedFree(_ page: Int, _ order: Int) {
    var b = page
    var k = order
    while true {
      let irq = locks[k].lock()
      if k < maxOrder {
        let buddy = b ^ (1 << k)
        if state[buddy].load(ordering: .relaxed) == UInt8(k + 1) {
          remove(buddy, order: k)
          state[buddy].store(0, ordering: .relaxed)
          statSub(k, BuddyStat.freeBlocks, 1)
          locks[k].unlock(restoring: irq)
          stat(k, BuddyStat.merges, 1)
          b = min(b, buddy)
          k += 1
          continue
        }
      }
      push(b, order: k)
      state[b].store(UInt8(k + 1), ordering: .relaxed)
      stat(k, BuddyStat.freeBlocks, 1)
      locks[k].unlock(restoring: irq)
      return
    }
  }

  // MARK: lock-free mode (NBBS 1lvl)

  /// Tree level of node i: 1 for the chunk root.
  @inline(__always) static func level(_ i: Int) -> Int { Int.bitWidth - i.leadingZeroBitCount }
  /// Order of the blocks at tree level l.
  @inline(__always) func orderOf(level l: Int) -> Int { maxOrder - (l - 1) }
  @inline(__always) func word(_ chunk: Int, _ i: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
    nodes + (chunk * nodesPerChunk + i)
  }

  /// Marks node n (of `chunk`) allocated; 0 on success, else the node where it failed.
  func tryAlloc(_ chunk: Int, _ n: Int) -> Int {
    guard
      word(chunk, n)[0].compareExchange(expected: 0, desired: Self.busyNode, ordering: .acquiringAndReleasing)
        .exchanged
    else { return n }
    var cur = n
    while cur > 1 {
      let p = cur >> 1
      let right = cur & 1 == 1
      let occSide = right ? Self.occRight : Self.occLeft
      let coalSide = right ? Self.coalRight : Self.coalLeft
      let w = word(chunk, p)
      var old = w[0].load(ordering: .acquiring)
      while true {
        if old & Self.occupied != 0 {
          release(chunk, n, upper: Self.level(p) + 1)
          return p
        }
        let new = (old & ~coalSide) | occSide
        if new == old { break }
        let (done, seen) = w[0].compareExchange(expected: old, desired: new, ordering: .acquiringAndReleasing)
        if done {
          if old & (Self.occLeft | Self.occRight) == 0 {
            stat(orderOf(level: Self.level(p)), BuddyStat.splits, 1)
          }
          break
        }
        stat(orderOf(level: Self.level(p)), BuddyStat.casRetries, 1)
        old = seen
      }
      cur = p
    }
    return 0
  }

  /// NBBS release of node n, touching ancestors down to level `upper` (1 = a real free).
  func release(_ chunk: Int, _ n: Int, upper: Int) {
    // Phase 1: announce the release with COAL bits.
    var cur = n
    while Self.level(cur) > upper {
      let p = cur >> 1
      let right = cur & 1 == 1
      let coalSide = right ? Self.coalRight : Self.coalLeft
      let occSibling = right ? Self.occLeft : Self.occRight
      let coalSibling = right ? Self.coalLeft : Self.coalRight
      let old = word(chunk, p)[0].bitwiseOr(coalSide, ordering: .acquiringAndReleasing).oldValue
      if old & occSibling != 0 && old & coalSibling == 0 { break }
      cur = p
    }
    // Phase 2: the node itself.
    word(chunk, n)[0].store(0, ordering: .releasing)
    // Phase 3: unmark.
    guard Self.level(n) > upper else { return }
    cur = n
    while true {
      let p = cur >> 1
      let right = cur & 1 == 1
      let occSide = right ? Self.occRight : Self.occLeft
      let coalSide = right ? Self.coalRight : Self.coalLeft
      let occSibling = right ? Self.occLeft : Self.occRight
      let w = word(chunk, p)
      var old = w[0].load(ordering: .acquiring)
      var new: UInt64 = 0
      while true {
        if old & coalSide == 0 { return }  // an allocation took this side over
        new = old & ~(coalSide | occSide)
        let (done, seen) = w[0].compareExchange(expected: old, desired: new, ordering: .acquiringAndReleasing)
        if done { break }
        stat(orderOf(level: Self.level(p)), BuddyStat.casRetries, 1)
        old = seen
      }
      if new & (Self.occLeft | Self.occRight) == 0 {
        stat(orderOf(level: Self.level(p) + 1), BuddyStat.merges, 1)
      }
      cur = p
      if Self.level(cur) <= upper || new & occSibling != 0 { return }
    }
  }

  func nbAllocate(_ order: Int, cpu: Int, cpus: Int) -> Int? {
    let lvl = maxOrder - order + 1
    let first = 1 << (lvl - 1)  // level's first node index = nodes in the level
    let total = chunks * first
    let start = (cpu % cpus) * (total / cpus)
    var pos = start
    var scanned = 0
    while scanned < total {
      let chunk = pos / first
      let n = first + pos % first
      var next: Int
      if word(chunk, n)[0].load(ordering: .relaxed) != 0 {
        next = pos + 1
      } else {
        let failed = tryAlloc(chunk, n)
        if failed == 0 {
          return (chunk << maxOrder) + ((n - first) << order)
        }
        // Skip the subtree of the failing node: first level node after it.
        let skipTo = (failed + 1) << (lvl - Self.level(failed))
        next = chunk * first + (skipTo - first)
      }
      let step = next - pos
      scanned += step
      pos = next >= total ? next - total : next
    }
    return nil
  }

  func nbFree(_ page: Int, _ order: Int) {
    let chunk = page >> maxOrder
    let lvl = maxOrder - order + 1
    let first = 1 << (lvl - 1)
    let n = first + ((page & (pagesPerChunk - 1)) >> order)
    release(chunk, n, upper: 1)
  }

  // MARK: quiescent audit

  /// Walks the structure (only meaningful while no operation is in flight) and returns, per
  /// order, maximal free blocks and (lock-free) allocated blocks; `usedOut`/`freeOut` get the
  /// counts written as UInt64 arrays of `orders` entries, so the guest needs no heap.
  func audit(freeOut: UnsafeMutablePointer<UInt64>, usedOut: UnsafeMutablePointer<UInt64>) -> UInt64 {
    for k in 0...maxOrder {
      freeOut[k] = 0
      usedOut[k] = 0
    }
    var free: UInt64 = 0
    switch mode {
    case .locked:
      for k in 0...maxOrder {
        let irq = locks[k].lock()
        var b = heads[k]
        var guardCount = 0
        while b != 0 && guardCount <= pagesManaged {
          freeOut[k] += 1
          free += UInt64(1) << UInt64(k)
          b = UnsafeMutablePointer<UInt64>(bitPattern: UInt(b))![0]
          guardCount += 1
        }
        locks[k].unlock(restoring: irq)
        usedOut[k] = read(k, BuddyStat.usedBlocks)
      }
    case .lockFree:
      for c in 0..<chunks {
        for i in 1..<nodesPerChunk {
          // Visible when every ancestor is partially occupied (not a block, not free).
          var visible = true
          var a = i >> 1
          while a >= 1 {
            let w = word(c, a)[0].load(ordering: .acquiring)
            if w & Self.occupied != 0 || w & (Self.occLeft | Self.occRight) == 0 {
              visible = false
              break
            }
            a >>= 1
          }
          guard visible else { continue }
          let v = word(c, i)[0].load(ordering: .acquiring)
          let order = orderOf(level: Self.level(i))
          if v & Self.occupied != 0 {
            usedOut[order] += 1
          } else if v & (Self.occLeft | Self.occRight) == 0 {
            freeOut[order] += 1
            free += UInt64(1) << UInt64(order)
          }
        }
      }
    }
    return free
  }
}

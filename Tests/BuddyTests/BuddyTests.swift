// Host checks of BuddyCore.swift (linked here through a symlink): randomized alloc/free
// sequences over a plain memory region in both modes, with the invariants checked after
// every step, and a multi-threaded churn with owner tags.
// Needs `.testTarget(name: "BuddyTests")` in Package.swift.

import Dispatch
import Testing

extension BuddyCore: @unchecked Sendable {}

/// A region plus its allocator, freed at the end of a test.
final class Arena: @unchecked Sendable {
  let core: BuddyCore
  let region: UnsafeMutableRawPointer
  let meta: UnsafeMutableRawPointer
  let stats: UnsafeMutableRawPointer
  let free: UnsafeMutableRawPointer

  init(mode: BuddyMode, maxOrder: Int, chunks: Int) {
    let bytes = chunks << (maxOrder + 12)
    region = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
    meta = UnsafeMutableRawPointer.allocate(
      byteCount: BuddyCore.metadataBytes(mode: mode, maxOrder: maxOrder, chunks: chunks), alignment: 64)
    stats = UnsafeMutableRawPointer.allocate(byteCount: 16 * 80, alignment: 64)
    free = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
    core = BuddyCore(
      mode: mode, base: UInt64(UInt(bitPattern: region)), maxOrder: maxOrder, chunks: chunks,
      metadata: meta, stats: stats, freePages: free)
  }
  deinit {
    region.deallocate()
    meta.deallocate()
    stats.deallocate()
    free.deallocate()
  }

  /// (free pages walked, free blocks per order, used blocks per order)
  func audit() -> (UInt64, [UInt64], [UInt64]) {
    var f = [UInt64](repeating: 0, count: core.orders)
    var u = [UInt64](repeating: 0, count: core.orders)
    let n = f.withUnsafeMutableBufferPointer { fp in
      u.withUnsafeMutableBufferPointer { up in core.audit(freeOut: fp.baseAddress!, usedOut: up.baseAddress!)
      }
    }
    return (n, f, u)
  }
}

/// Deterministic xorshift64.
struct Rng {
  var x: UInt64
  mutating func next() -> UInt64 {
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    return x
  }
}

@Suite struct BuddyTests {
  static let modes: [BuddyMode] = [.locked, .lockFree]

  @Test(arguments: modes, [1, 2, 3])
  func randomizedSequenceKeepsInvariants(mode: BuddyMode, seed: UInt64) {
    let maxOrder = 6
    let chunks = 4
    let arena = Arena(mode: mode, maxOrder: maxOrder, chunks: chunks)
    let core = arena.core
    let managed = UInt64(core.pagesManaged)
    #expect(arena.audit().0 == managed)
    var live: [(addr: UInt64, order: Int)] = []
    var rng = Rng(x: 0x9E37_79B9_7F4A_7C15 &* seed)
    for step in 0..<3000 {
      let r = rng.next()
      if !live.isEmpty && (r % 3 == 0 || live.count > 60) {
        let i = Int(r >> 8) % live.count
        let b = live.remove(at: i)
        core.free(b.addr, order: b.order)
      } else {
        let order = min(Int((r >> 16).trailingZeroBitCount), maxOrder)
        if let a = core.allocate(order: order, cpu: Int(r % 4), cpus: 4) {
          live.append((a, order))
        } else {
          // A failure is only legal when no free block of that order or above exists.
          let (_, f, _) = arena.audit()
          #expect(f[order...].allSatisfy { $0 == 0 }, "step \(step): spurious failure at order \(order)")
        }
      }
      // Invariants: in range, aligned, no overlap; free + used = managed; counters agree.
      var owner = [Int](repeating: -1, count: core.pagesManaged)
      var usedPages: UInt64 = 0
      for (j, b) in live.enumerated() {
        #expect(core.contains(b.addr))
        let page = Int((b.addr - core.base) >> 12)
        #expect(page % (1 << b.order) == 0, "misaligned block")
        for p in page..<(page + (1 << b.order)) {
          #expect(owner[p] == -1, "step \(step): page \(p) handed out twice")
          owner[p] = j
        }
        usedPages += 1 << UInt64(b.order)
      }
      let (walked, f, u) = arena.audit()
      #expect(walked == core.pagesFree, "step \(step): walk \(walked) vs counter \(core.pagesFree)")
      #expect(walked + usedPages == managed, "step \(step)")
      var blocks: UInt64 = 0
      for k in 0...maxOrder {
        blocks += (f[k] + u[k]) << UInt64(k)
        #expect(u[k] == UInt64(live.filter { $0.order == k }.count))
        #expect(core.read(k, BuddyStat.usedBlocks) == u[k])
        if mode == .locked { #expect(core.read(k, BuddyStat.freeBlocks) == f[k]) }
      }
      #expect(blocks == managed)
    }
    for b in live { core.free(b.addr, order: b.order) }
    let (walked, f, u) = arena.audit()
    #expect(walked == managed)
    #expect(f[maxOrder] == UInt64(chunks), "coalesced back to whole chunks")
    #expect(f[0..<maxOrder].allSatisfy { $0 == 0 })
    #expect(u.allSatisfy { $0 == 0 })
  }

  @Test(arguments: modes)
  func exhaustAndCoalesce(mode: BuddyMode) {
    let arena = Arena(mode: mode, maxOrder: 4, chunks: 2)
    let core = arena.core
    var pages: [UInt64] = []
    while let p = core.allocate(order: 0) { pages.append(p) }
    #expect(pages.count == 32)
    #expect(Set(pages).count == 32)
    #expect(core.pagesFree == 0)
    #expect(core.read(0, BuddyStat.failures) == 1)
    for p in pages.reversed() { core.free(p, order: 0) }
    let (walked, f, _) = arena.audit()
    #expect(walked == 32)
    #expect(f[4] == 2)
    #expect(core.allocate(order: 4) != nil)
    #expect(core.allocate(order: 4) != nil)
    #expect(core.allocate(order: 4) == nil)
  }

  @Test(arguments: modes)
  func concurrentChurnWithOwnerTags(mode: BuddyMode) {
    let maxOrder = 8
    let arena = Arena(mode: mode, maxOrder: maxOrder, chunks: 8)
    let core = arena.core
    let threads = 4
    let bad = UnsafeMutablePointer<Int>.allocate(capacity: threads)
    bad.initialize(repeating: 0, count: threads)
    defer { bad.deallocate() }
    nonisolated(unsafe) let badBox = bad
    DispatchQueue.concurrentPerform(iterations: threads) { t in
      var rng = Rng(x: 0x1234_5678 &+ UInt64(t) &* 0x9E37_79B9)
      var held: [(UInt64, Int, UInt64)] = []
      for i in 0..<20000 {
        let r = rng.next()
        if held.count > 16 || (!held.isEmpty && r & 1 == 0) {
          let (a, order, tag) = held.removeLast()
          for pg in 0..<(1 << order) {
            let w = UnsafeMutablePointer<UInt64>(bitPattern: UInt(a) + UInt(pg << 12))!
            if w[2] != tag { badBox[t] += 1 }
          }
          core.free(a, order: order)
        } else {
          let order = min(Int((r >> 8).trailingZeroBitCount), 5)
          guard let a = core.allocate(order: order, cpu: t, cpus: threads) else { continue }
          let tag = UInt64(t) << 48 | UInt64(i)
          for pg in 0..<(1 << order) {
            UnsafeMutablePointer<UInt64>(bitPattern: UInt(a) + UInt(pg << 12))![2] = tag
          }
          held.append((a, order, tag))
        }
      }
      for (a, order, _) in held { core.free(a, order: order) }
    }
    #expect((0..<threads).allSatisfy { bad[$0] == 0 }, "no block handed out twice")
    let (walked, f, u) = arena.audit()
    #expect(walked == UInt64(core.pagesManaged))
    #expect(core.pagesFree == UInt64(core.pagesManaged))
    #expect(u.allSatisfy { $0 == 0 })
    // NBBS may leave stale COAL bits that keep a node from being taken whole until an
    // allocation passes; the walk still counts the memory free.
    if mode == .locked { #expect(f[maxOrder] == 8) }
  }
}

// BuddyHeap: the Swift runtime's heap (posix_memalign/free in runtime.c) on top of the buddy
// allocator. Requests up to 2 KiB come from eight power-of-two size classes, each a free
// list under its own BuddyLock, refilled one buddy page at a time; larger ones are whole
// buddy blocks. `free` really returns memory: objects to their class list, blocks to the
// buddy allocator. Before the allocator is up, runtime.c's bump heap serves (and its
// memory is never freed). Pages of the class lists stay with the heap (not given back).

#if SMP_GUEST
  import KernelSupport
  import Synchronization

  /// The kernel heap over the buddy allocator.
  enum BuddyHeap {
    static let classes = 8
    static let smallest = 16
    /// Set once the heap can serve.
    static let ready = Atomic<Bool>(false)
    /// Pages the heap holds from the buddy allocator (class pages, large blocks, its map).
    static let pages = Atomic<UInt64>(0)
    /// Per managed page: 0 = not the heap's, 1...8 = a class page, 0x80 | order = a block.
    nonisolated(unsafe) static var kind: UnsafeMutablePointer<UInt8>? = nil
    nonisolated(unsafe) static var heads: UnsafeMutablePointer<UInt64>? = nil
    nonisolated(unsafe) static var locks: UnsafeMutablePointer<BuddyLock>? = nil

    /// Takes the page map and the class lists from the buddy allocator.
    static func initialize() {
      guard let c = Buddy.core else { return }
      let mapOrder = orderFor(bytes: c.pagesManaged)
      guard let map = Buddy.allocate(order: mapOrder), let ctl = Buddy.allocate(order: 0) else { return }
      _ = pages.wrappingAdd((UInt64(1) << UInt64(mapOrder)) + 1, ordering: .relaxed)
      let k = UnsafeMutablePointer<UInt8>(bitPattern: UInt(map))!
      for i in 0..<c.pagesManaged { k[i] = 0 }
      let raw = UnsafeMutableRawPointer(bitPattern: UInt(ctl))!
      let h = raw.bindMemory(to: UInt64.self, capacity: classes)
      for i in 0..<classes { h[i] = 0 }
      let l = (raw + 128).bindMemory(to: BuddyLock.self, capacity: classes)
      for i in 0..<classes { (l + i).initialize(to: BuddyLock()) }
      kind = k
      heads = h
      locks = l
      ready.store(true, ordering: .releasing)
    }

    /// Smallest order whose block holds `bytes`.
    static func orderFor(bytes: Int) -> Int {
      var order = 0
      while (Int(BuddyCore.pageBytes) << order) < bytes { order += 1 }
      return order
    }

    static func pageIndex(_ c: BuddyCore, _ p: UInt64) -> Int { Int((p &- c.base) >> BuddyCore.pageShift) }

    static func allocate(size: Int, align: Int) -> UnsafeMutableRawPointer? {
      guard ready.load(ordering: .acquiring), let c = Buddy.core, let kind, let heads, let locks else {
        return nil
      }
      let need = max(size, align, smallest)
      let a = abi_alloc()
      if need <= smallest << (classes - 1) {
        var cls = 0
        while smallest << cls < need { cls += 1 }
        let bytes = smallest << cls
        var irq = locks[cls].lock()
        if heads[cls] == 0 {
          locks[cls].unlock(restoring: irq)
          guard let page = Buddy.allocate(order: 0) else { return nil }
          _ = pages.wrappingAdd(1, ordering: .relaxed)
          kind[pageIndex(c, page)] = UInt8(cls + 1)
          irq = locks[cls].lock()
          var off = Int(BuddyCore.pageBytes) - bytes
          while off >= 0 {
            let o = UnsafeMutablePointer<UInt64>(bitPattern: UInt(page) + UInt(off))!
            o[0] = heads[cls]
            heads[cls] = page &+ UInt64(off)
            off -= bytes
          }
        }
        let obj = heads[cls]
        heads[cls] = UnsafeMutablePointer<UInt64>(bitPattern: UInt(obj))![0]
        locks[cls].unlock(restoring: irq)
        _ = atomic_add_u64(&a.pointee.heap_bytes_in_use, UInt64(bytes))
        _ = atomic_add_u64(&a.pointee.heap_allocs, 1)
        return UnsafeMutableRawPointer(bitPattern: UInt(obj))
      }
      guard align <= Int(BuddyCore.pageBytes) else { return nil }
      let order = orderFor(bytes: need)
      guard let block = Buddy.allocate(order: order) else { return nil }
      _ = pages.wrappingAdd(UInt64(1) << UInt64(order), ordering: .relaxed)
      kind[pageIndex(c, block)] = 0x80 | UInt8(order)
      _ = atomic_add_u64(&a.pointee.heap_bytes_in_use, BuddyCore.pageBytes << UInt64(order))
      _ = atomic_add_u64(&a.pointee.heap_allocs, 1)
      return UnsafeMutableRawPointer(bitPattern: UInt(block))
    }

    /// Frees `p`; false when it is not the heap's (the early bump heap).
    static func free(_ p: UnsafeMutableRawPointer) -> Bool {
      guard ready.load(ordering: .acquiring), let c = Buddy.core, let kind, let heads, let locks else {
        return false
      }
      let addr = UInt64(UInt(bitPattern: p))
      guard c.contains(addr) else { return false }
      let page = pageIndex(c, addr)
      let k = kind[page]
      let a = abi_alloc()
      if k & 0x80 != 0 {
        let order = Int(k & 0x7F)
        kind[page] = 0
        Buddy.free(addr, order: order)
        _ = pages.wrappingSubtract(UInt64(1) << UInt64(order), ordering: .relaxed)
        _ = atomic_add_u64(&a.pointee.heap_bytes_in_use, 0 &- (BuddyCore.pageBytes << UInt64(order)))
      } else if k >= 1 && k <= UInt8(classes) {
        let cls = Int(k) - 1
        let irq = locks[cls].lock()
        p.assumingMemoryBound(to: UInt64.self)[0] = heads[cls]
        heads[cls] = addr
        locks[cls].unlock(restoring: irq)
        _ = atomic_add_u64(&a.pointee.heap_bytes_in_use, 0 &- UInt64(smallest << cls))
      } else {
        return false
      }
      _ = atomic_add_u64(&a.pointee.heap_frees, 1)
      return true
    }
  }

  /// runtime.c's posix_memalign: nil until the heap is up (the bump heap serves then).
  @c func buddy_heap_alloc(_ size: Int, _ align: Int) -> UnsafeMutableRawPointer? {
    BuddyHeap.allocate(size: size, align: align)
  }

  /// runtime.c's free: whether the pointer was the heap's.
  @c func buddy_heap_free(_ p: UnsafeMutableRawPointer) -> Bool {
    BuddyHeap.free(p)
  }
#endif

// Buddy: the kernel's page allocator. Finds the largest usable RAM range above the kernel
// image in the multiboot memory map, carves the allocator's metadata from its start and
// hands the rest, in 4 MiB (order 10) chunks, to BuddyCore in the mode the command line
// chose (alloc=locked | alloc=lockfree). Statistics live straight in the inspection
// records smptop_alloc_record / smptop_alloc_orders (tables ALLOC and ALLOC_ORDER).

#if SMP_GUEST
  import KernelSupport

  /// The kernel's buddy allocator and its inspection records.
  enum Buddy {
    /// Highest order: 2^10 pages = 4 MiB.
    static let maxOrder = 10
    /// Mode chosen on the command line.
    nonisolated(unsafe) static var mode: BuddyMode = .locked
    /// alloc.spread=off: every lcpu starts its lock-free search at the same node (contention).
    nonisolated(unsafe) static var spread = true
    /// The allocator once `initialize` ran.
    nonisolated(unsafe) static var core: BuddyCore? = nil

    /// Applies an `alloc=` word; false when the value is unknown.
    static func configure(_ word: KernelCommandLine.Word) -> Bool {
      let v = KernelCommandLine.ValueView(word: word)
      if v == "locked" { mode = .locked; return true }
      if v == "lockfree" { mode = .lockFree; return true }
      return false
    }

    /// Applies an `alloc.spread=` word.
    static func configureSpread(_ word: KernelCommandLine.Word) -> Bool {
      let v = KernelCommandLine.ValueView(word: word)
      if v == "on" { spread = true; return true }
      if v == "off" { spread = false; return true }
      return false
    }

    /// Brings up the allocator, then the heap and the churn that sit on it.
    static func start() {
      initialize()
      BuddyHeap.initialize()
      AllocChurn.initialize()
    }

    /// Sets the allocator up over the largest usable range above the kernel image.
    static func initialize() {
      let (start, end) = largestRange()
      let chunkBytes = BuddyCore.pageBytes << UInt64(maxOrder)
      guard end > start else {
        Console.log("buddy: no usable memory above the kernel")
        return
      }
      let size = end - start
      let perChunk = chunkBytes + UInt64(BuddyCore.metadataBytes(mode: mode, maxOrder: maxOrder, chunks: 1))
      var chunks = Int(size / perChunk)
      while chunks > 0 {
        let meta = UInt64(BuddyCore.metadataBytes(mode: mode, maxOrder: maxOrder, chunks: chunks))
        let base = (start + meta + BuddyCore.pageBytes - 1) & ~(BuddyCore.pageBytes - 1)
        if base + UInt64(chunks) * chunkBytes <= end { break }
        chunks -= 1
      }
      guard chunks > 0 else {
        Console.log("buddy: less than one 4 MiB chunk of memory")
        return
      }
      let meta = UInt64(BuddyCore.metadataBytes(mode: mode, maxOrder: maxOrder, chunks: chunks))
      let base = (start + meta + BuddyCore.pageBytes - 1) & ~(BuddyCore.pageBytes - 1)
      let a = abi_alloc()
      let c = BuddyCore(
        mode: mode, base: base, maxOrder: maxOrder, chunks: chunks,
        metadata: UnsafeMutableRawPointer(bitPattern: UInt(start))!,
        stats: UnsafeMutableRawPointer(abi_alloc_orders()),
        // The record's pages_free field by address (an inout conversion would be a
        // temporary pointer).
        freePages: UnsafeMutableRawPointer(abi_alloc_pages_free()))
      core = c
      a.pointee.mode = mode.rawValue
      a.pointee.orders = UInt32(maxOrder + 1)
      a.pointee.base = base
      a.pointee.page_bytes = BuddyCore.pageBytes
      a.pointee.pages_managed = UInt64(c.pagesManaged)
      a.pointee.largest_free_order = UInt64(maxOrder)
      Console.log(
        "buddy: \(mode == .locked ? "locked" : "lockfree"), \(chunks) x 4 MiB at \(hex: base), metadata \(meta / 1024) KiB at \(hex: start)"
      )
    }

    /// The largest type-1 range of the multiboot map, clipped to [kernel_end, 4 GiB).
    static func largestRange() -> (UInt64, UInt64) {
      guard boot_multiboot_magic() == BootInfo.multibootMagic,
        let info = PhysicalMemory(boot_multiboot_info(), length: 52),
        info.u32(0) & (1 << 6) != 0,
        let m = PhysicalMemory(UInt64(info.u32(48)), length: UInt64(info.u32(44)))
      else { return (0, 0) }
      let low = (kernel_end_addr() + 0xFFF) & ~0xFFF
      var best: (UInt64, UInt64) = (0, 0)
      var offset = 0
      while offset + 24 <= m.length {
        let size = Int(m.u32(offset))
        if m.u32(offset + 20) == 1 {
          var s = m.u64(offset + 4)
          var e = s &+ m.u64(offset + 12)
          if s < low { s = low }
          if e > PhysicalMemory.limit { e = PhysicalMemory.limit }
          if e > s && e - s > best.1 - best.0 { best = (s, e) }
        }
        guard size >= 20 else { break }
        offset += size + 4
      }
      return best
    }

    /// Fills the ALLOC and ALLOC_ORDER slots of the root's table directory.
    static func registerTables() {
      guard let c = core else { return }
      let t = abi_root_table(UInt32(SMPTOP_TABLE_ALLOC.rawValue))
      t.pointee.addr = UInt64(UInt(bitPattern: abi_alloc()))
      t.pointee.count = 1
      t.pointee.stride = abi_alloc_stride()
      let o = abi_root_table(UInt32(SMPTOP_TABLE_ALLOC_ORDER.rawValue))
      o.pointee.addr = UInt64(UInt(bitPattern: abi_alloc_orders()))
      o.pointee.count = UInt32(c.orders)
      o.pointee.stride = abi_alloc_order_stride()
      let r = Inspect.root
      r.pointee.table_count = max(r.pointee.table_count, UInt32(SMPTOP_TABLE_ALLOC_ORDER.rawValue) + 1)
    }

    /// Allocates 2^order pages for the running lcpu; counts it in lcpu_allocs.
    static func allocate(order: Int) -> UInt64? {
      guard let c = core else { return nil }
      let i = Int(LCPU.currentIndex)
      let p = c.allocate(order: order, cpu: i, cpus: spread ? Int(max(1, LCPU.count)) : 1)
      if p != nil { abi_inc(abi_alloc_lcpu_allocs() + i) }
      if p == nil && Trace.on(SMPTOP_TRACE_ALLOC) {
        Trace.emit(SMPTOP_TRACE_ALLOC_FAIL, object: UInt64(order), arg: BuddyCore.pageBytes << UInt64(order))
      }
      return p
    }

    /// Frees a block; counts it in lcpu_frees.
    static func free(_ address: UInt64, order: Int) {
      guard let c = core else { return }
      c.free(address, order: order)
      abi_inc(abi_alloc_lcpu_frees() + Int(LCPU.currentIndex))
    }

    /// Recomputes largest_free_order (and, lock-free, the free/used block counts) from a walk
    /// of the structure; returns the free pages the walk found. Call while quiescent.
    static func audit() -> UInt64 {
      guard let c = core else { return 0 }
      var free = (
        UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
        UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0)
      )
      var used = free
      let found = withUnsafeMutableBytes(of: &free) { f in
        withUnsafeMutableBytes(of: &used) { u in
          c.audit(
            freeOut: f.baseAddress!.assumingMemoryBound(to: UInt64.self),
            usedOut: u.baseAddress!.assumingMemoryBound(to: UInt64.self))
        }
      }
      var largest = UInt64.max
      withUnsafeBytes(of: &free) { f in
        let fp = f.baseAddress!.assumingMemoryBound(to: UInt64.self)
        withUnsafeBytes(of: &used) { u in
          let up = u.baseAddress!.assumingMemoryBound(to: UInt64.self)
          for k in 0..<c.orders {
            if fp[k] != 0 { largest = UInt64(k) }
            if c.mode == .lockFree {
              abi_store(&abi_alloc_orders()[k].free_blocks, fp[k])
              abi_store(&abi_alloc_orders()[k].used_blocks, up[k])
            }
          }
        }
      }
      abi_store(&abi_alloc().pointee.largest_free_order, largest)
      return found
    }
  }
#endif

// Trace: per-lcpu event trace rings (smptop_abi.h, table 9). Each lcpu owns one ring and is
// its only writer; interrupts are off while a record is written, so a handler on the same
// lcpu cannot interleave with it. The ring overwrites its oldest records; `head` counts every
// record ever written and is stored after the record, and each record's `seq` is its position
// + 1 (0 while it is being written), so a reader finds out what it lost and never takes a
// half-written slot for an event.
//
// Which classes of events are traced is one word, smptop_root.trace_control, set at boot from
// `trace=all` or `trace=locks,irq,sched,timer,virtio,alloc` (default: nothing) and writable by
// smptop when its user asks. While its class is off a trace point costs one instruction that
// loads and tests the word (read through a hidden alias of smptop_root, so without a GOT
// entry) and one branch not taken:  if Trace.on(SMPTOP_TRACE_IRQ) { Trace.emitIRQsOff(...) }
// The lock operations decide once per operation and keep a copy of their body without trace
// records (LockCore.swift, "Tracing").
//
// Built with `-Xswiftc -DSMPTOP_NO_TRACE` the guest has no trace points at all: `on` is a
// constant false, so every guarded emit is dead code the optimizer removes. The rings and the
// control word stay (the same memory layout and ABI), they only never fill. That build is the
// baseline the cost of trace points compiled in but off is measured against (README, "When").
//
// The ring is generic: a record is a kind, a subject lcpu and four 64-bit words.

#if SMP_GUEST
  import KernelSupport

  /// The event trace rings.
  enum Trace {
    /// Whether events of class `c` are being traced (one load, one test).
    @inline(__always)
    static func on(_ c: smptop_trace_class) -> Bool {
      #if SMPTOP_NO_TRACE
        false
      #else
        trace_control() & UInt64(c.rawValue) != 0
      #endif
    }

    /// Appends one record to this lcpu's ring, interrupts off while it is written.
    @inline(never)
    static func emit(_ kind: smptop_trace_kind, object: UInt64, arg: UInt64) {
      let irqOn = cpu_irqs_enabled()
      cpu_cli()
      emitIRQsOff(kind, object: object, arg: arg, arg2: 0)
      if irqOn { cpu_sti() }
    }

    /// `emit` for a caller that already runs with interrupts off (interrupt handlers, the
    /// scheduler): no flag save and restore. No parameter has a default value: the compiler
    /// calls a default value's generator at the call site, and those calls would make the
    /// trace point's caller keep more registers across them even while tracing is off.
    @inline(never)
    static func emitIRQsOff(_ kind: smptop_trace_kind, object: UInt64, arg: UInt64, arg2: UInt64) {
      let me = LCPU.currentIndex
      write(kind, tsc: rdtsc(), ring: me, lcpu: me, object: object, arg: arg, arg2: arg2, site: 0)
    }

    /// `emitIRQsOff` of a record with one argument.
    @inline(__always)
    static func emitIRQsOff(_ kind: smptop_trace_kind, object: UInt64, arg: UInt64) {
      emitIRQsOff(kind, object: object, arg: arg, arg2: 0)
    }

    /// `emitIRQsOff` of a record with no argument.
    @inline(__always)
    static func emitIRQsOff(_ kind: smptop_trace_kind, object: UInt64) {
      emitIRQsOff(kind, object: object, arg: 0, arg2: 0)
    }

    /// Writes one record into ring `ring` (this lcpu's; interrupts off) with a time the caller
    /// already read: the body of every emit, inlined into the lock paths, whose records reuse
    /// the TSC their bookkeeping reads anyway. The caller keeps each ring's times in order: no
    /// other record of this lcpu is written between reading `tsc` and this write.
    @inline(__always)
    static func write(
      _ kind: smptop_trace_kind, tsc: UInt64, ring me: UInt32, lcpu: UInt32, object: UInt64, arg: UInt64,
      arg2: UInt64, site: UInt64
    ) {
      let ring = trace_ring(me)
      guard ring.pointee.capacity != 0 else { return }  // no ring (yet): nothing is recorded
      let position = ring.pointee.head
      let slot = trace_slot(ring, position)
      trace_store_seq(slot, 0)
      slot.pointee.tsc = tsc
      slot.pointee.kind = UInt16(truncatingIfNeeded: kind.rawValue)
      slot.pointee.flags = 0
      slot.pointee.lcpu = lcpu
      slot.pointee.object = object
      slot.pointee.arg = arg
      slot.pointee.arg2 = arg2
      slot.pointee.site = site
      trace_store_seq(slot, position &+ 1)
      trace_publish_head(ring, position &+ 1)
    }

    /// Gives every present lcpu a ring (buddy pages, kept for good) and publishes table 9:
    /// SMPTOP_TRACE_SLOTS records each (4 MiB), halved until all rings together take at most a
    /// quarter of the managed memory.
    static func registerTable() {
      let n = allocateRings(
        trace_ring, recordBytes: UInt64(abi_trace_record_stride()), slots: UInt64(SMPTOP_TRACE_SLOTS),
        budgetDivisor: 4)
      Inspect.registerTable(
        SMPTOP_TABLE_TRACE, addr: abi_addr(trace_ring(0)), count: n, stride: abi_trace_ring_stride())
    }

    /// Gives every present lcpu's ring header (`ring(i)`) a record array of buddy pages, kept
    /// for good: `slots` records of `recordBytes` each, halved (down to 256) until all rings
    /// together take at most 1/`budgetDivisor` of the managed memory. A ring whose memory could
    /// not be had keeps capacity 0 (its lcpu records nothing). The pages are taken before the
    /// allocator churn starts, so they leave its starting free-page count (start_free_pages) as
    /// well. Returns the number of ring headers filled in (the lcpu count).
    static func allocateRings(
      _ ring: (UInt32) -> UnsafeMutablePointer<smptop_trace_ring>, recordBytes: UInt64,
      slots maxSlots: UInt64,
      budgetDivisor: UInt64
    ) -> UInt32 {
      let n = LCPU.count
      let budget = UInt64(Buddy.core?.pagesManaged ?? 0) * BuddyCore.pageBytes / budgetDivisor
      var slots = maxSlots
      while slots > 256 && slots * recordBytes * UInt64(max(n, 1)) > budget {
        slots /= 2
      }
      let bytes = slots * recordBytes
      var order = 0
      while (BuddyCore.pageBytes << UInt64(order)) < bytes { order += 1 }
      var taken: UInt64 = 0
      for i in 0..<n {
        let r = ring(i)
        r.pointee.lcpu = i
        r.pointee.stride = recordBytes
        guard let pages = Buddy.allocate(order: order),
          let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(pages))
        else { continue }
        taken &+= UInt64(1) << UInt64(order)
        for w in 0..<Int(bytes / 8) { words[w] = 0 }
        r.pointee.records = pages
        compiler_barrier()
        r.pointee.capacity = UInt32(slots)  // last: a writer writes only into a complete ring
      }
      let a = abi_alloc()
      if a.pointee.start_free_pages >= taken {
        abi_store(&a.pointee.start_free_pages, a.pointee.start_free_pages &- taken)
      }
      return n
    }

    /// Applies `trace=all` / `trace=off` / `trace=locks,irq,...`; false for an unknown class.
    static func configure(_ word: KernelCommandLine.Word) -> Bool {
      var mask: UInt64 = 0
      var from = word.separator + 1
      guard from < word.end else { return false }
      while from < word.end {
        var to = from
        while to < word.end, word.text[to] != 0x2C { to += 1 }
        guard let bits = classBits(word.text, from, to) else { return false }
        mask |= bits
        from = to + 1
      }
      trace_set_control(mask)
      return true
    }

    /// The bits one class name stands for, or nil.
    static func classBits(_ text: UnsafeMutablePointer<CChar>, _ from: Int, _ to: Int) -> UInt64? {
      func named(_ s: StaticString) -> Bool { KernelCommandLine.equal(text, from, to, s) }
      if named("all") { return 0x3F }
      if named("off") { return 0 }
      if named("locks") { return UInt64(SMPTOP_TRACE_LOCKS.rawValue) }
      if named("irq") { return UInt64(SMPTOP_TRACE_IRQ.rawValue) }
      if named("sched") { return UInt64(SMPTOP_TRACE_SCHED.rawValue) }
      if named("timer") { return UInt64(SMPTOP_TRACE_TIMER.rawValue) }
      if named("virtio") { return UInt64(SMPTOP_TRACE_VIRTIO.rawValue) }
      if named("alloc") { return UInt64(SMPTOP_TRACE_ALLOC.rawValue) }
      return nil
    }
  }
#endif

// AllocChurn: the allocator workload. Inside every busy stretch of the work pattern
// (Work.swift calls `stretch(until:)` once), each lcpu allocates and frees blocks of mixed
// orders (order k with probability 2^-(k+1)) in 64 slots of its own, tagging every page of
// a block with an owner word (lcpu, serial) that is checked on free: a block handed out
// twice shows up as a tag mismatch. Each stretch ends by freeing all its blocks. About once
// a second a quiescent checkpoint runs: new stretches stay out, the last lcpu to leave walks
// the allocator and checks that free memory is back at its starting value and that
// free + used blocks x block size = managed pages. Results: churn_checks/churn_failures.
//
// alloc.churn=on (default) | off | full (stretches of 1 s: near-continuous churn, for
// throughput measurements). alloc.churn_s=N stops the churn N seconds after boot; one last
// checkpoint then runs and the allocator stays quiescent (for checks at a stopped VM).

#if SMP_GUEST
  import KernelSupport
  import Synchronization

  /// A heap object the churn creates and drops (swift_allocObject -> posix_memalign).
  final class ChurnNode {
    let value: UInt64
    init(_ v: UInt64) { value = v }
  }

  /// Mixed-order allocation churn with self-checks.
  enum AllocChurn {
    static let slots = 64
    static let tagMagic: UInt64 = 0xA110_C000_0000_0000
    static let freedMagic: UInt64 = 0xF4EE_D000_0000_0000
    /// 0 = off, 1 = on, 2 = full.
    nonisolated(unsafe) static var setting = 1
    /// Low bits: lcpus inside a stretch; `requested`: a checkpoint is waiting; `checking`.
    static let gate = Atomic<UInt64>(0)
    static let requested: UInt64 = 1 << 62
    static let checking: UInt64 = 1 << 61
    static let nextCheck = Atomic<UInt64>(0)
    /// slots x (address, tag) per lcpu, from the buddy allocator.
    nonisolated(unsafe) static var table: UnsafeMutablePointer<UInt64>? = nil
    nonisolated(unsafe) static var startHeapPages: UInt64 = 0
    /// alloc.churn_s: seconds after boot the churn stops (0 = never).
    nonisolated(unsafe) static var stopSeconds: UInt64 = 0
    /// Whether the final checkpoint after alloc.churn_s ran.
    static let finalDone = Atomic<Bool>(false)

    /// Applies an `alloc.churn=` word.
    static func configure(_ word: KernelCommandLine.Word) -> Bool {
      let v = KernelCommandLine.ValueView(word: word)
      if v == "off" { setting = 0; return true }
      if v == "on" { setting = 1; return true }
      if v == "full" { setting = 2; return true }
      return false
    }

    /// Applies an `alloc.churn_s=` word.
    static func configureStop(_ word: KernelCommandLine.Word) -> Bool {
      guard let n = word.number else { return false }
      stopSeconds = n
      return true
    }

    /// Past alloc.churn_s: runs the final checkpoint once (when no stretch is inside).
    static func stopped(_ now: UInt64) -> Bool {
      guard stopSeconds != 0, now &- boot_entry_tsc() >= stopSeconds &* 1000 &* Timer.tscPerMs else {
        return false
      }
      if !finalDone.load(ordering: .relaxed),
        gate.compareExchange(expected: 0, desired: checking, ordering: .acquiring).exchanged
      {
        if !finalDone.load(ordering: .relaxed) {
          checkpoint()
          finalDone.store(true, ordering: .relaxed)
          Console.log(
            "alloc churn: stopped after \(stopSeconds) s, checks \(abi_alloc().pointee.churn_checks) failures \(abi_alloc().pointee.churn_failures)"
          )
        }
        gate.store(0, ordering: .releasing)
      }
      return true
    }

    /// Takes the slot table and records the starting free pages.
    static func initialize() {
      guard setting != 0, Buddy.core != nil else { return }
      let bytes = Int(SMPTOP_MAX_LCPUS) * slots * 16
      guard let t = Buddy.allocate(order: BuddyHeap.orderFor(bytes: bytes)) else { return }
      let p = UnsafeMutablePointer<UInt64>(bitPattern: UInt(t))!
      for i in 0..<(bytes / 8) { p[i] = 0 }
      table = p
      startHeapPages = BuddyHeap.pages.load(ordering: .relaxed)
      abi_store(&abi_alloc().pointee.start_free_pages, Buddy.core!.pagesFree)
      _ = Buddy.audit()
    }

    /// Churns until `end` (tsc), or for 1 s with alloc.churn=full. Interrupts are on.
    static func stretch(until end: UInt64) {
      guard setting != 0, let table, let core = Buddy.core, !stopped(rdtsc()) else { return }
      // Enter unless a checkpoint is pending.
      var g = gate.load(ordering: .relaxed)
      while true {
        if g & (requested | checking) != 0 { return }
        let (ok, seen) = gate.compareExchange(expected: g, desired: g + 1, ordering: .acquiring)
        if ok { break }
        g = seen
      }
      let me = LCPU.currentIndex
      let mine = table + Int(me) * slots * 2
      let t0 = rdtsc()
      var stop = setting == 2 ? t0 &+ 1000 &* Timer.tscPerMs : end
      if stopSeconds != 0 { stop = min(stop, boot_entry_tsc() &+ stopSeconds &* 1000 &* Timer.tscPerMs) }
      var serial: UInt64 = 0
      while rdtsc() < stop {
        exerciseHeap(Work.random())
        for _ in 0..<64 {
          let r = Work.random()
          let s = Int(r % UInt64(slots))
          if mine[2 * s] != 0 {
            release(mine, s)
          } else {
            let order = min(Int((r >> 8).trailingZeroBitCount), core.maxOrder)
            guard let b = Buddy.allocate(order: order) else { continue }
            serial &+= 1
            let tag = tagMagic | UInt64(me) << 40 | UInt64(order) << 32 | (serial & 0xFFFF_FFFF)
            let pages = 1 << order
            for i in 0..<pages {
              let w = UnsafeMutablePointer<UInt64>(bitPattern: UInt(b) + UInt(i << 12))!
              if w[2] & 0xFFFF_F000_0000_0000 == tagMagic && w[3] == ~w[2] { fail("block handed out twice") }
              w[2] = tag
              w[3] = ~tag
            }
            mine[2 * s] = b
            mine[2 * s + 1] = tag
          }
        }
      }
      for s in 0..<slots where mine[2 * s] != 0 { release(mine, s) }
      abi_add(alloc_churn_tsc() + Int(me), rdtsc() &- t0)
      // Leave; ask for a checkpoint when one is due; the last one out runs it.
      let now = rdtsc()
      if now >= nextCheck.load(ordering: .relaxed) { gate.bitwiseOr(requested, ordering: .relaxed) }
      let left = gate.wrappingSubtract(1, ordering: .releasing).newValue
      if left == requested,
        gate.compareExchange(expected: requested, desired: requested | checking, ordering: .acquiring)
          .exchanged
      {
        checkpoint()
        nextCheck.store(rdtsc() &+ 1000 &* Timer.tscPerMs, ordering: .relaxed)
        gate.store(0, ordering: .releasing)
      }
    }

    /// Swift runtime allocations through runtime.c's posix_memalign/free: a class instance and
    /// an array of 8..4096 words (small classes and whole pages), checked and dropped.
    static func exerciseHeap(_ r: UInt64) {
      let node = ChurnNode(r)
      let count = 8 << Int(r % 10)
      var words = [UInt64](repeating: r, count: count)
      words[count - 1] = node.value
      if words[0] != r || words[count - 1] != r || node.value != r { fail("heap object corrupted") }
    }

    /// Verifies and frees slot `s` of an lcpu's table.
    static func release(_ mine: UnsafeMutablePointer<UInt64>, _ s: Int) {
      let b = mine[2 * s]
      let tag = mine[2 * s + 1]
      let order = Int((tag >> 32) & 0xFF)
      for i in 0..<(1 << order) {
        let w = UnsafeMutablePointer<UInt64>(bitPattern: UInt(b) + UInt(i << 12))!
        if w[2] != tag || w[3] != ~tag { fail("owner tag overwritten") }
        w[2] = freedMagic
      }
      Buddy.free(b, order: order)
      mine[2 * s] = 0
    }

    static func fail(_ what: StaticString) {
      _ = atomic_add_u64(&abi_alloc().pointee.churn_failures, 1)
      Console.log("alloc churn: check failed on lcpu \(LCPU.currentIndex): \(what)")
    }

    /// The quiescent check: no stretch runs and none can start.
    static func checkpoint() {
      guard let core = Buddy.core else { return }
      let a = abi_alloc()
      let heap0 = BuddyHeap.pages.load(ordering: .relaxed)
      let walked = Buddy.audit()
      let counted = core.pagesFree
      let heap1 = BuddyHeap.pages.load(ordering: .relaxed)
      var total: UInt64 = 0
      for k in 0..<core.orders {
        let o = abi_alloc_orders()[k]
        total &+= (o.free_blocks &+ o.used_blocks) << UInt64(k)
      }
      Sched.preemptDisable()  // the seq must not stay odd while another context runs here
      abi_seq_begin(&a.pointee.seq)
      abi_store(&a.pointee.churn_checks, a.pointee.churn_checks &+ 1)
      abi_seq_end(&a.pointee.seq)
      Sched.preemptEnable()
      guard heap0 == heap1 else { return }  // the heap moved meanwhile: inconclusive, not a failure
      let start = a.pointee.start_free_pages
      if walked != counted || counted &+ heap1 != start &+ startHeapPages
        || total != UInt64(core.pagesManaged)
      {
        _ = atomic_add_u64(&a.pointee.churn_failures, 1)
        Console.log(
          "alloc churn: checkpoint failed: walked \(walked) counted \(counted) heap \(heap1) start \(start)+\(startHeapPages) blocks \(total)/\(core.pagesManaged)"
        )
      }
    }
  }
#endif

// Profile: per-lcpu stack samples (smptop_abi.h, table 10). With `prof_hz=N` on the command
// line (100..10000; default off) each lcpu takes N samples a second in its own timer
// interrupt: the interrupted rip, the return addresses of its frame-pointer chain (at most
// SMPTOP_PROF_FRAMES, each frame inside the interrupted context's stack), the thread that ran
// and whether the lcpu was idle. A sample is one record of a ring built like the trace rings
// (Trace.swift): single producer (interrupts are off in the handler), overwrite-oldest,
// `seq` 0 while written, the head stored last, so smptop drains it live and counts its loss.
//
// The sampling clock rides on the timer: each lcpu keeps a profile deadline next to its timer
// queue, and the LAPIC timer is armed for whichever comes first (Timer.arm). The scheduler
// tick keeps its own deadline and period, so `ticks` and the tick hooks are unchanged.
// Samples come at random gaps (Profile.gap), and a late interrupt's deadlines are dated by the
// lcpu's last IDLE/BUSY changes (Profile.interrupt): those of the other state become an UNSEEN
// sample without a stack.

#if SMP_GUEST
  import KernelSupport

  /// The stack-sampling profiler.
  enum Profile {
    /// Samples per second per lcpu (0 = off).
    nonisolated(unsafe) static var hz: UInt64 = 0
    /// Sampling period in TSC counts (0 = off).
    nonisolated(unsafe) static var periodTSC: UInt64 = 0

    /// Applies `prof_hz=N`: 0 turns profiling off, 100..10000 sets the rate; anything else
    /// leaves it off and returns false (the caller reports the word on the console).
    static func configure(_ word: KernelCommandLine.Word) -> Bool {
      guard let n = word.number, n == 0 || (n >= 100 && n <= 10_000) else {
        hz = 0
        Console.log("profile: prof_hz must be 0 or 100..10000 samples per second; profiling stays off")
        return false
      }
      hz = n
      return true
    }

    /// Gives every lcpu a profile ring and publishes table 10 and root.prof_hz, when profiling
    /// is on (after the timer's calibration): SMPTOP_PROF_SLOTS samples each, halved until all
    /// rings together take at most an eighth of the managed memory.
    static func registerTable() {
      guard hz != 0, Timer.tscPerMs != 0 else { return }
      periodTSC = max(1, Timer.tscPerMs &* 1000 / hz)
      let n = Trace.allocateRings(
        prof_ring, recordBytes: UInt64(abi_prof_sample_stride()), slots: UInt64(SMPTOP_PROF_SLOTS),
        budgetDivisor: 8)
      prof_set_hz(hz)
      Inspect.registerTable(
        SMPTOP_TABLE_PROFILE, addr: abi_addr(prof_ring(0)), count: n, stride: abi_trace_ring_stride())
      Console.log("profile: \(hz) samples/s per lcpu, \(prof_ring(0).pointee.capacity) samples per ring")
    }

    /// Starts this lcpu's sampling clock (Timer.start): the first sample one random gap from
    /// now, from a random sequence of its own (xorshift, seeded by the lcpu index; never 0).
    static func start(_ a: UnsafeMutablePointer<lcpu_area>, now: UInt64) {
      guard periodTSC != 0, prof_ring(a.pointee.index).pointee.capacity != 0 else { return }
      let seed = 0x9E37_79B9_7F4A_7C15 ^ (UInt64(a.pointee.index) &+ 1) &* 0xBF58_476D_1CE4_E5B9
      a.pointee.prof_random = seed | 1
      a.pointee.prof_deadline = now &+ gap(a)
    }

    /// The time to the next sample: uniform in [period/2, 3·period/2), so the mean rate is
    /// `hz` while no sample keeps a fixed phase to the tick, to the other lcpus' samples or to
    /// anything periodic in the workload (a fixed period sees such a pattern at the same points
    /// every time, which biases the busy share).
    static func gap(_ a: UnsafeMutablePointer<lcpu_area>) -> UInt64 {
      var x = a.pointee.prof_random
      x ^= x << 13
      x ^= x >> 7
      x ^= x << 17
      a.pointee.prof_random = x
      return periodTSC / 2 &+ x % periodTSC
    }

    /// From the timer interrupt: takes the samples of every profile deadline that has passed
    /// and moves the deadline on.
    ///
    /// A deadline that passed while interrupts were off, or while the host did not run this
    /// vCPU, is taken late, often after the lcpu changed from IDLE to BUSY or back (the idle
    /// loop switching to a woken thread, a thread blocking, a vCPU that halted before its late
    /// interrupt came). Each deadline counts for the state the lcpu was in at that time, told
    /// by the number of state changes since (LCPU.setCurrentDepth keeps the last few): an even
    /// number, the state this interrupt found, sampled with its stack; an odd number, the
    /// other state, whose stack nobody saw (an UNSEEN sample); a deadline older than the changes
    /// kept is not sampled. Entering this handler from idle was a change too, and is skipped.
    static func interrupt(
      _ frame: UnsafeMutablePointer<trap_frame>, _ a: UnsafeMutablePointer<lcpu_area>, now: UInt64
    ) {
      var deadline = a.pointee.prof_deadline
      guard deadline != 0, deadline <= now else { return }
      // The handler's busyEnter made the depth one more than the interrupted context's.
      let foundIdle = a.pointee.record.pointee.busy_depth <= 1
      let changes = lcpu_state_changes(a)
      let kept = Int(LCPU_STATE_CHANGES)
      let first = foundIdle ? 1 : 0
      var found: UInt64 = 0
      var other: UInt64 = 0
      var passed = 0
      while deadline <= now && passed < 1000 {
        var k = first
        while k < kept && deadline < changes[k] { k += 1 }
        if k < kept {
          if (k - first) & 1 == 0 { found += 1 } else { other += 1 }
        }
        deadline &+= gap(a)
        passed += 1
      }
      if deadline <= now { deadline = now &+ gap(a) }  // far behind: start afresh
      a.pointee.prof_deadline = deadline
      if found != 0 { sample(frame, a, now: now, periods: found, idle: foundIdle) }
      if other != 0, let record = begin(a, now: now, thread: 0, periods: other, rip: 0) {
        // Deadlines of the state the lcpu had left: no stack (rip 0, depth 0, thread 0).
        var flags = UInt16(SMPTOP_PROF_UNSEEN.rawValue)
        if !foundIdle { flags |= UInt16(SMPTOP_PROF_IDLE.rawValue) }
        publish(record, depth: 0, flags: flags)
      }
    }

    /// A sample being written: its ring, its slot and its position in the ring.
    typealias Record = (
      ring: UnsafeMutablePointer<smptop_trace_ring>, slot: UnsafeMutablePointer<smptop_prof_sample>,
      position: UInt64
    )

    /// Starts a sample in this lcpu's ring (`seq` 0 while written) with the fields every sample
    /// has; nil when the lcpu has no ring.
    static func begin(
      _ a: UnsafeMutablePointer<lcpu_area>, now: UInt64, thread: UInt64, periods: UInt64, rip: UInt64
    ) -> Record? {
      let ring = prof_ring(a.pointee.index)
      guard ring.pointee.capacity != 0 else { return nil }
      let position = ring.pointee.head
      let slot = prof_slot(ring, position)
      prof_store_seq(slot, 0)
      slot.pointee.tsc = now
      slot.pointee.thread = thread
      slot.pointee.periods = periods
      slot.pointee.lcpu = a.pointee.index
      slot.pointee.rip = rip
      return (ring, slot, position)
    }

    /// Finishes a sample `begin` started: its depth and flags, then its `seq`, then the head.
    static func publish(_ record: Record, depth: Int, flags: UInt16) {
      record.slot.pointee.depth = UInt16(depth)
      record.slot.pointee.flags = flags
      prof_store_seq(record.slot, record.position &+ 1)
      trace_publish_head(record.ring, record.position &+ 1)
    }

    /// Writes one sample of the context `frame` interrupted into this lcpu's ring, standing
    /// for `periods` sampling periods (more than 1 when the interrupt came late and deadlines
    /// passed in the state it found: the context found is the one that held the lcpu meanwhile,
    /// so the sample is weighted by time). `idle`: the interrupted context was the lcpu's idle.
    static func sample(
      _ frame: UnsafeMutablePointer<trap_frame>, _ a: UnsafeMutablePointer<lcpu_area>, now: UInt64,
      periods: UInt64, idle: Bool
    ) {
      let s = Sched.me
      let thread = s.pointee.current
      guard let record = begin(a, now: now, thread: thread, periods: periods, rip: frame.pointee.rip) else {
        return
      }
      var flags: UInt16 = 0
      if idle { flags |= UInt16(SMPTOP_PROF_IDLE.rawValue) }
      if s.pointee.irq_depth > 1 { flags |= UInt16(SMPTOP_PROF_NESTED.rawValue) }
      var bottom = a.pointee.stack_bottom
      var top = a.pointee.stack_top
      if thread != 0 {
        let t = Sched.record(thread)
        bottom = t.pointee.stack_bottom
        top = t.pointee.stack_top
      }
      let frames = prof_frames(record.slot)
      let textStart = text_start_addr()
      let textEnd = text_end_addr()
      var depth = 0
      var fp = frame.pointee.rbp
      while fp >= bottom && fp &+ 16 <= top && fp & 7 == 0,
        let words = UnsafePointer<UInt64>(bitPattern: UInt(fp))
      {
        let ret = words[1]
        guard ret >= textStart, ret < textEnd else { break }
        if depth == Int(SMPTOP_PROF_FRAMES) {
          flags |= UInt16(SMPTOP_PROF_TRUNCATED.rawValue)
          break
        }
        frames[depth] = ret
        depth += 1
        let next = words[0]
        guard next > fp else { break }
        fp = next
      }
      publish(record, depth: depth, flags: flags)
    }
  }
#endif

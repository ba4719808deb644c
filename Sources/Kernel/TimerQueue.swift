// TimerQueue: each lcpu's sorted queue of deadlines. Entries are the scheduler
// tick (owner 0) and the sleeps of the lcpu's own threads; only the owning lcpu touches
// its queue, with interrupts off, so it needs no lock. The LAPIC timer is always armed
// for the earliest entry (one-shot), so an idle lcpu halts until exactly then.
// Published per lcpu as struct smptop_timerq (the TIMERQ table) under its seq.

#if SMP_GUEST
  import KernelSupport

  extension Timer {
    /// Inserts a deadline into this lcpu's queue (interrupts off) and re-arms if it is earliest.
    static func add(deadline: UInt64, thread: UInt64) {
      let s = Sched.me
      let q = ksched_timers(s)
      var n = Int(s.pointee.ntimers)
      if n >= Int(KTIMERQ_MAX) { n -= 1 }  // full: the latest entry is dropped (never with the pool sizes used)
      var i = n
      while i > 0 && q[i - 1].deadline > deadline {
        q[i] = q[i - 1]
        i -= 1
      }
      q[i] = ktimer(deadline: deadline, thread: thread)
      s.pointee.ntimers = UInt32(n + 1)
      if i == 0 { arm(deadline) }
      publishQueue(fired: nil)
    }

    /// Removes this lcpu's entries owned by `thread` (a timeout that lost the race; interrupts off).
    static func cancel(thread: UInt64) {
      let s = Sched.me
      let q = ksched_timers(s)
      let n = Int(s.pointee.ntimers)
      var out = 0
      for i in 0..<n where q[i].thread != thread {
        q[out] = q[i]
        out += 1
      }
      guard out != n else { return }
      s.pointee.ntimers = UInt32(out)
      if out > 0 { arm(q[0].deadline) }
      publishQueue(fired: nil)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    static func popDue(_ now: UInt64) -> ktimer? {
      let s = Sched.me
      let n = Int(s.pointee.ntimers)
      guard n > 0 else { return nil }
      let q = ksched_timers(s)
      let first = q[0]
      guard first.deadline <= now else { return nil }
      for i in 0..<(n - 1) { q[i] = q[i + 1] }
      s.pointee.ntimers = UInt32(n - 1)
      return first
    }

    /// The earliest deadline queued, 0 = none.
    static var earliest: UInt64 {
      let s = Sched.me
      return s.pointee.ntimers > 0 ? ksched_timers(s)[0].deadline : 0
    }

    /// Lateness bucket: <1us <10us <100us <1ms <10ms <100ms <1s >=1s.
    static func bucket(_ lateTSC: UInt64) -> Int {
      let perUs = max(1, tscPerMs / 1000)
      let us = lateTSC / perUs
      var limit: UInt64 = 1
      for b in 0..<7 {
        if us < limit { return b }
        limit &*= 10
      }
      return 7
    }

    /// Publishes this lcpu's queue; `fired` adds one expiry with that lateness.
    static func publishQueue(fired late: UInt64?) {
      let s = Sched.me
      let r = ktimerq_record(LCPU.currentIndex)
      let q = ksched_timers(s)
      let n = s.pointee.ntimers
      abi_seq_begin(&r.pointee.seq)
      r.pointee.lcpu = LCPU.currentIndex
      r.pointee.pending = n
      r.pointee.next_deadline_tsc = n > 0 ? q[0].deadline : 0
      if let l = late {
        r.pointee.fired &+= 1
        r.pointee.late_total_tsc &+= l
        if l > r.pointee.late_max_tsc { r.pointee.late_max_tsc = l }
        abi_timerq_hist(r)[bucket(l)] &+= 1
      }
      for i in 0..<UInt32(SMPTOP_TIMER_SLOTS) {
        if i < n {
          abi_timerq_set(r, i, q[Int(i)].deadline, q[Int(i)].thread)
        } else {
          abi_timerq_set(r, i, 0, 0)
        }
      }
      abi_seq_end(&r.pointee.seq)
    }
  }
#endif

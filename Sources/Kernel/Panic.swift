// Panic: a CPU exception stops its lcpu for good, loudly. The handler fills the lcpu's
// panic record under its seq (odd while writing, even and nonzero when complete), marks
// the lcpu HALTED with error_code = vector + 1, prints the record on the console and
// halts with interrupts off. Other lcpus keep running.
//
// The `panic=N` command-line key makes lcpu N raise an exception on purpose about
// 0.5 s after boot (`panic.kind` picks which; see CommandLine.swift).

#if SMP_GUEST
  import KernelSupport

  /// Exceptions that stop an lcpu, and the deliberate ones the command line asks for.
  enum Panic {
    /// Kinds of deliberate exception (`panic.kind=`).
    enum Kind: Equatable {
      /// #UD from `ud2`.
      case invalidOpcode
      /// #PF from a load at `Panic.unmappedAddress`.
      case pageFault
      /// #DE from a division by zero.
      case divideError
      /// #GP from a non-canonical address.
      case generalProtection
      /// #DF from a kernel stack overflow into its guard page.
      case stackOverflow
    }

    /// The address the `pf` kind reads: canonical, but only 0-4 GiB is mapped.
    static let unmappedAddress: UInt64 = 0x0000_00de_adbe_f000

    /// lcpu that raises the deliberate exception, if any.
    nonisolated(unsafe) static var demoLCPU: UInt32? = nil
    /// Which exception it raises.
    nonisolated(unsafe) static var demoKind: Kind = .invalidOpcode
    /// How long after kernel entry it raises it.
    static let demoDelayMs: UInt64 = 500

    /// Records the exception in `frame`, reports it and halts this lcpu.
    static func exception(_ frame: UnsafeMutablePointer<trap_frame>) -> Never {
      let area = LCPU.current
      let r = area.pointee.record
      let vector = frame.pointee.vector
      // A fault inside this handler: the record is already (being) written; just stop.
      guard r.pointee.panic.seq == 0 else { cpu_halt_forever() }

      // The panic record lies inside the lcpu record: write it inside the lcpu record's seq
      // too (still open if the exception interrupted an update of the record, which will
      // never finish now), so a reader checking that seq never accepts it half-written.
      if r.pointee.seq & 1 == 0 { abi_seq_begin(&r.pointee.seq) }
      let p = abi_lcpu_panic(r)
      abi_seq_begin(&p.pointee.seq)
      p.pointee.vector = vector
      p.pointee.error_code = frame.pointee.error_code
      p.pointee.rip = frame.pointee.rip
      p.pointee.rsp = frame.pointee.rsp
      p.pointee.rbp = frame.pointee.rbp
      p.pointee.rflags = frame.pointee.rflags
      p.pointee.cr2 = vector == 14 ? read_cr2() : 0
      p.pointee.tsc = rdtsc()
      p.pointee.frames = backtrace(from: frame.pointee.rbp, area: area, into: abi_panic_backtrace(p))
      abi_seq_end(&p.pointee.seq)
      abi_seq_end(&r.pointee.seq)

      LCPU.halt(errorCode: vector &+ 1)
      report(area.pointee.index, p)
      cpu_halt_forever()
    }

    /// Walks the frame-pointer chain from `rbp`, keeping return addresses inside the kernel
    /// text; stops at a frame outside this lcpu's stacks, a non-increasing frame or 0.
    static func backtrace(
      from rbp: UInt64, area: UnsafeMutablePointer<lcpu_area>, into out: UnsafeMutablePointer<UInt64>
    ) -> UInt64 {
      let textStart = text_start_addr()
      let textEnd = text_end_addr()
      var fp = rbp
      var n = 0
      while n < Int(SMPTOP_PANIC_FRAMES), fp & 7 == 0, onStack(fp, area) {
        guard let frame = UnsafePointer<UInt64>(bitPattern: UInt(fp)) else { break }
        let ret = frame[1]
        guard ret >= textStart, ret < textEnd else { break }
        out[n] = ret
        n += 1
        let next = frame[0]
        guard next > fp else { break }
        fp = next
      }
      return UInt64(n)
    }

    /// Whether a 16-byte frame at `fp` lies inside one of this lcpu's stacks.
    static func onStack(_ fp: UInt64, _ area: UnsafeMutablePointer<lcpu_area>) -> Bool {
      let a = area.pointee
      return (fp >= a.stack_bottom && fp &+ 16 <= a.stack_top)
        || (fp >= a.ist_bottom && fp &+ 16 <= a.ist_top)
    }

    /// Prints a panic record on the console.
    static func report(_ index: UInt32, _ p: UnsafeMutablePointer<smptop_panic>) {
      let v = p.pointee.vector
      Console.emergency(
        "PANIC lcpu \(index): \(mnemonic(v)) (vector \(v)) error \(hex: p.pointee.error_code) rip \(hex: p.pointee.rip) cr2 \(hex: p.pointee.cr2)"
      )
      Console.emergency(
        "PANIC lcpu \(index): rsp \(hex: p.pointee.rsp) rbp \(hex: p.pointee.rbp) rflags \(hex: p.pointee.rflags) tsc \(p.pointee.tsc)"
      )
      let frames = abi_panic_backtrace(p)
      var line: LogLine = "PANIC lcpu "
      line.appendDecimal(UInt64(index))
      line.append(": backtrace")
      for i in 0..<Int(p.pointee.frames) {
        line.append(" ")
        line.appendHex(frames[i])
      }
      Console.emergency(line)
      Console.emergency("PANIC lcpu \(index): halted (error_code \(v + 1))")
    }

    /// The mnemonic of an exception vector.
    static func mnemonic(_ vector: UInt64) -> StaticString {
      switch vector {
      case 0: return "#DE divide error"
      case 1: return "#DB debug"
      case 2: return "NMI"
      case 3: return "#BP breakpoint"
      case 4: return "#OF overflow"
      case 5: return "#BR bound range"
      case 6: return "#UD invalid opcode"
      case 7: return "#NM device not available"
      case 8: return "#DF double fault"
      case 10: return "#TS invalid TSS"
      case 11: return "#NP segment not present"
      case 12: return "#SS stack fault"
      case 13: return "#GP general protection"
      case 14: return "#PF page fault"
      case 16: return "#MF x87 error"
      case 17: return "#AC alignment check"
      case 18: return "#MC machine check"
      case 19: return "#XM SIMD error"
      case 20: return "#VE virtualization"
      case 21: return "#CP control protection"
      default: return "reserved exception"
      }
    }

    /// Arms the deliberate exception for lcpu `index`, `kind`, about 0.5 s after boot.
    static func scheduleDemo(lcpu index: UInt32, kind: Kind) {
      demoLCPU = index
      demoKind = kind
    }

    /// From the timer: marks this lcpu's deliberate exception due once its time has come.
    static func tick(now: UInt64) {
      guard let target = demoLCPU, target == LCPU.currentIndex,
        LCPU.current.pointee.fault_pending == 0,
        now &- boot_entry_tsc() >= demoDelayMs &* Timer.tscPerMs
      else { return }
      LCPU.current.pointee.fault_pending = 1
    }

    /// From the idle loop: raises the deliberate exception if it is due on this lcpu.
    static func demonstrateIfDue() {
      let area = LCPU.current
      guard area.pointee.fault_pending == 1 else { return }
      area.pointee.fault_pending = 2
      Console.log("lcpu \(area.pointee.index): raising the requested exception")
      LCPU.busyEnter()
      raise(demoKind)
    }

    /// Raises the exception `kind` (a few Swift frames deep, for the backtrace).
    @inline(never)
    static func raise(_ kind: Kind) {
      switch kind {
      case .invalidOpcode: fault_invalid_opcode()
      case .pageFault: _ = fault_page_fault(unmappedAddress)
      case .divideError: _ = fault_divide_error(42)
      case .generalProtection: _ = fault_general_protection()
      case .stackOverflow: _ = fault_stack_overflow(0)
      }
    }
  }
#endif

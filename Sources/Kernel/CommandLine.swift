// CommandLine: the kernel command line (QEMU -append), already copied into
// smptop_root.cmdline by BootInfo.swift. Words are separated by spaces. Keys:
//
//   panic=N            lcpu N raises a CPU exception about 0.5 s after boot
//   panic.kind=K       which one: ud (#UD, default), pf (#PF at an unmapped address),
//                      de (#DE, division by zero), gp (#GP, non-canonical address),
//                      stack (#DF after a kernel stack overflow into its guard page)
//   shutdown=SECONDS   power off that many seconds after boot (isa-debug-exit)
//   quiet              less console output (no per-lcpu lines, no shutdown summary)
//   net.ip=A.B.C.D     virtio-net address (default 10.0.2.15, QEMU user networking)
//   tick_us=N          timer tick period in microseconds (1000..1000000, default 10000)
//   alloc=MODE         buddy allocator: locked (default; per-order spinlocks, Unikraft PR
//                      #801) or lockfree (NBBS: CAS on tree node words). Buddy.swift
//   alloc.churn=C      allocator workload in the busy stretches: on (default), off, or full
//                      (1 s stretches, near-continuous: for throughput). AllocChurn.swift
//   alloc.churn_s=N    stop the churn N s after boot (final checkpoint, then quiescent)
//   alloc.spread=off   lock-free searches all start at the same node (default on: per lcpu)
//   workload=W         lock workload (Workload.swift): default, deadlock, isr-misuse, convoy,
//                      wake-race, irq-reentry, panic-console (each adds its scenario's threads to the
//                      default ones), scale (1024 dynamic locks and one toucher thread per
//                      lcpu instead of the default threads; ScaleScenario.swift) or none
//   trace=CLASSES      event trace rings (Trace.swift): all, off, or a comma list of locks,
//                      irq, sched, timer, virtio, alloc (default off)
//   prof_hz=N          stack samples per second per lcpu (Profile.swift): 0 = off (default),
//                      100..10000
//
// Unknown words and bad values are reported on the console and otherwise ignored.

#if SMP_GUEST
  import KernelSupport

  /// Parser for the kernel command line.
  enum KernelCommandLine {
    /// Applies every recognised key of smptop_root.cmdline.
    static func parse() {
      let text = abi_root_cmdline()
      var panicLCPU: UInt64? = nil
      var kind = Panic.Kind.invalidOpcode
      var start = 0
      while start < Int(SMPTOP_CMDLINE_BYTES), text[start] != 0 {
        var end = start
        while end < Int(SMPTOP_CMDLINE_BYTES), text[end] != 0, text[end] != 0x20 { end += 1 }
        if end > start {
          let word = Word(text: text, start: start, end: end)
          if word.key == "panic" {
            panicLCPU = word.number
            if panicLCPU == nil { complain(word) }
          } else if word.key == "panic.kind" {
            if let k = word.panicKind { kind = k } else { complain(word) }
          } else if word.key == "shutdown" {
            if let s = word.number { Power.scheduleShutdown(afterSeconds: s) } else { complain(word) }
          } else if word.key == "tick_us" {
            if let us = word.number, us >= 1000, us <= 1_000_000 {
              Timer.tickMicroseconds = us
            } else {
              complain(word)
            }
          } else if word.key == "alloc" {
            if !Buddy.configure(word) { complain(word) }
          } else if word.key == "alloc.churn" {
            if !AllocChurn.configure(word) { complain(word) }
          } else if word.key == "alloc.churn_s" {
            if !AllocChurn.configureStop(word) { complain(word) }
          } else if word.key == "alloc.spread" {
            if !Buddy.configureSpread(word) { complain(word) }
          } else if word.key == "net.ip" {
            if let a = NetStack.parseIPv4(text, word.separator + 1, end) {
              NetStack.ip = a
            } else {
              complain(word)
            }
          } else if word.key == "workload" {
            if !Workload.choose(ValueView(word: word)) { complain(word) }
          } else if word.key == "trace" {
            if !Trace.configure(word) { complain(word) }
          } else if word.key == "prof_hz" {
            if !Profile.configure(word) { complain(word) }
          } else if word.key == "quiet" {
            Console.quiet = true
          } else {
            complain(word)
          }
        }
        start = end
        while start < Int(SMPTOP_CMDLINE_BYTES), text[start] == 0x20 { start += 1 }
      }
      if let n = panicLCPU {
        Panic.scheduleDemo(lcpu: UInt32(truncatingIfNeeded: min(n, 0xFFFF_FFFF)), kind: kind)
      }
    }

    /// Reports a word the parser could not use.
    static func complain(_ word: Word) {
      var line: LogLine = "cmdline: ignoring \""
      for i in word.start..<word.end { line.append(byte: UInt8(bitPattern: word.text[i])) }
      line.append("\"")
      Console.log(line)
    }

    /// One `key` or `key=value` word of the command line.
    struct Word {
      /// The whole command line.
      let text: UnsafeMutablePointer<CChar>
      /// Index of the word's first character in `text`.
      let start: Int
      /// Index just past the word's last character.
      let end: Int

      /// Index of the `=`, or `end` when there is none.
      var separator: Int {
        var i = start
        while i < end, text[i] != 0x3D { i += 1 }
        return i
      }

      /// The key, compared as a static string.
      var key: KeyView { KeyView(word: self) }

      /// The value parsed as a decimal number without overflow, or nil.
      var number: UInt64? {
        let from = separator + 1
        guard from < end else { return nil }
        var value: UInt64 = 0
        for i in from..<end {
          let c = UInt8(bitPattern: text[i])
          guard c >= 0x30, c <= 0x39 else { return nil }
          let (times10, o1) = value.multipliedReportingOverflow(by: 10)
          let (sum, o2) = times10.addingReportingOverflow(UInt64(c - 0x30))
          guard !o1, !o2 else { return nil }
          value = sum
        }
        return value
      }

      /// The value parsed as a panic kind, or nil.
      var panicKind: Panic.Kind? {
        let v = ValueView(word: self)
        if v == "ud" { return .invalidOpcode }
        if v == "pf" { return .pageFault }
        if v == "de" { return .divideError }
        if v == "gp" { return .generalProtection }
        if v == "stack" { return .stackOverflow }
        return nil
      }
    }

    /// The key part of a word, comparable with a static string.
    struct KeyView {
      /// The word whose key this is.
      let word: Word
      /// Whether the key is exactly `s`.
      static func == (lhs: KeyView, rhs: StaticString) -> Bool {
        equal(lhs.word.text, lhs.word.start, lhs.word.separator, rhs)
      }
    }

    /// The value part of a word, comparable with a static string.
    struct ValueView {
      /// The word whose value this is.
      let word: Word
      /// Whether the value is exactly `s`.
      static func == (lhs: ValueView, rhs: StaticString) -> Bool {
        equal(lhs.word.text, lhs.word.separator + 1, lhs.word.end, rhs)
      }
    }

    /// Whether text[from..<to] spells `s`.
    static func equal(_ text: UnsafeMutablePointer<CChar>, _ from: Int, _ to: Int, _ s: StaticString)
      -> Bool
    {
      guard to >= from, to - from == s.utf8CodeUnitCount else { return false }
      return s.withUTF8Buffer { b in
        for i in 0..<b.count where UInt8(bitPattern: text[from + i]) != b[i] { return false }
        return true
      }
    }
  }
#endif

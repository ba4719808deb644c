import ELFSymbols

/// One path from an interrupt entry to something that must not run in interrupt context.
public struct ISRFinding: Sendable, Hashable, Codable {
  /// What was reached.
  public enum Kind: String, Sendable, Hashable, Codable {
    /// A function the rules declare unsafe (sleeping lock, blocking wait, scheduler sleep).
    case unsafe
    /// A call through a pointer: its target is unknown, so the path cannot be proven safe.
    case indirect
    /// A plain (not IRQ-save) spinlock that is also taken outside interrupt context.
    case spinlock
  }

  /// What was reached.
  public var kind: Kind
  /// Function names from the entry to the reached function (the last element; `<indirect: …>`
  /// for an indirect call).
  public var path: [String]
  /// The address of the last call instruction (in the second-to-last function).
  public var callSite: UInt64
  /// Where that call is in the source (`Workload.swift:422`, the line in the physical caller), or
  /// nil without line information.
  public var location: String?
  /// The call's source frames, innermost (inlined) first: `SpinLock.withLock(_:) (SpinLock.swift:108)`.
  public var sourceFrames: [String] = []
  /// The lock object's symbol: for a spinlock finding always, for an unsafe call when its first
  /// argument is a data object (`Mutex.lock()` on `klock_work_mutex`).
  public var lock: String?
  /// The lock object's address, when known: what the inspection ABI's lock records call `address`.
  public var lockAddress: UInt64?
  /// The rule comment that makes this a finding.
  public var reason: String
  /// Whether an `expected` rule declares it.
  public var expected: Bool
  /// The comment of that `expected` rule.
  public var expectedBecause: String?

  /// `isr_stubs → isr_common → … → Mutex.lock() (Workload.swift:422)`.
  public var text: String {
    var line = path.joined(separator: " → ")
    if let lock { line += " [\(lock)]" }
    if let location { line += " (\(location))" }
    return line
  }
}

/// The result of a check: findings in order (shortest path first) and what was analysed.
public struct ISRReport: Sendable, Hashable, Codable {
  /// All findings, shortest path first, then by text.
  public var findings: [ISRFinding]
  /// How many functions the graph has.
  public var functions: Int
  /// How many of them are reachable from an interrupt entry.
  public var reachableFunctions: Int
  /// How many call sites the graph has.
  public var callSites: Int
  /// Declarations that matched nothing (an `expected` without its finding, an `indirect` or
  /// `calls-argument` naming no function), as `line N: …`: stale rules to update.
  public var unmatchedExpectations: [String]
  /// Spinlock calls in interrupt context whose lock the machine code computes (a lock created
  /// at run time, a field of a struct): not judged, listed as paths.
  public var unresolvedSpinlocks: [String]

  /// Whether every finding is declared expected.
  public var allExpected: Bool { findings.allSatisfy(\.expected) }

  /// What the findings say about each lock object, for the dashboard's locks pane: lock address →
  /// `sleep-in-irq` (a sleeping lock reachable from an interrupt), `irq-unsafe` (a plain spinlock
  /// shared with threads), or both, comma-separated; the names of the guest's run-time counters.
  public var lockSummary: [UInt64: String] {
    var kinds: [UInt64: Set<String>] = [:]
    for finding in findings {
      guard let address = finding.lockAddress else { continue }
      switch finding.kind {
      case .unsafe: kinds[address, default: []].insert("sleep-in-irq")
      case .spinlock: kinds[address, default: []].insert("irq-unsafe")
      case .indirect: break
      }
    }
    return kinds.mapValues { $0.sorted().joined(separator: ",") }
  }
}

/// Walks the call graph from the interrupt entries and applies the rules.
public struct ISRAnalysis: Sendable {
  /// The call graph.
  public let graph: CallGraph
  /// The rules.
  public let rules: ISRRules
  /// The ELF (for lock flags).
  public let elf: ELFFile

  /// Prepares an analysis.
  public init(graph: CallGraph, rules: ISRRules, elf: ELFFile) {
    self.graph = graph
    self.rules = rules
    self.elf = elf
  }

  /// Builds the graph of `elf` and analyses it.
  public static func run(elf: ELFFile, rules: ISRRules, locator: SourceLocator?) throws(ISRCheckError)
    -> ISRReport
  {
    let graph = try CallGraph(elf: elf)
    return try ISRAnalysis(graph: graph, rules: rules, elf: elf).report(locator: locator)
  }

  /// Runs the check; `locator` turns call sites into file:line (nil: no locations).
  public func report(locator: SourceLocator?) throws(ISRCheckError) -> ISRReport {
    if let field = rules.irqsaveFlag, field.offset == nil {
      throw ISRCheckError(
        .rules,
        "irqsave-flag \(field.member.map { "\($0.type).\($0.field)" } ?? "?") is not resolved to an offset "
          + "(ISRRules.resolvingFieldOffsets(elfPath:))")
    }
    let functions = graph.functions
    var entries: [Int] = []
    for rule in rules.entries {
      let matching = functions.indices.filter { ISRRules.matches(rule.pattern, functions[$0].matchNames) }
      guard !matching.isEmpty else {
        throw ISRCheckError(
          .elf, "the entry `\(rule.pattern)` (rules line \(rule.line)) is not a code symbol of the ELF")
      }
      entries += matching
    }
    let unsafe = functions.indices.map { index in
      rules.unsafe.first { ISRRules.matches($0.pattern, functions[index].matchNames) }
    }
    let spinlock = functions.indices.map { index in
      rules.spinlocks.first { ISRRules.matches($0.pattern, functions[index].matchNames) }
    }

    // Edges: direct calls, plus what the rules declare for calls through pointers.
    var edges = [[(call: Int, callee: Int)]](repeating: [], count: functions.count)
    var declaredIndirect: [Int: String] = [:]  // call index -> the rule comment that covers it
    for (index, call) in graph.calls.enumerated() {
      if case .function(let callee) = call.target { edges[call.caller].append((index, callee)) }
    }
    var unknownArgument: [Int: String] = [:]  // call index -> the register the callee calls
    var staleRules: [String] = []
    for rule in rules.argumentCalls {
      let called = Set(functions.indices.filter { ISRRules.matches(rule.pattern, functions[$0].matchNames) })
      if called.isEmpty {
        staleRules.append("line \(rule.line): calls-argument \(rule.pattern) matches no function")
      }
      for (index, call) in graph.calls.enumerated() {
        if called.contains(call.caller), case .indirect = call.target {
          declaredIndirect[index] = rule.reason
        }
        guard case .function(let callee) = call.target, called.contains(callee) else { continue }
        // The argument must be a function the code names; otherwise this call is the unknown one.
        guard case .address(let address) = call.arguments[rule.register],
          let target = graph.function(startingAt: address)
        else {
          unknownArgument[index] = rule.register
          continue
        }
        edges[call.caller].append((index, target))
      }
    }
    for rule in rules.indirectTargets {
      let targets = functions.indices.filter { ISRRules.matches(rule.callee, functions[$0].matchNames) }
      let sites = graph.calls.indices.filter { index in
        guard case .indirect = graph.calls[index].target else { return false }
        return ISRRules.matches(rule.caller, functions[graph.calls[index].caller].matchNames)
      }
      // A declaration that names no target or no call through a pointer declares nothing.
      guard !targets.isEmpty, !sites.isEmpty else {
        staleRules.append(
          "line \(rule.line): indirect \(rule.caller) -> \(rule.callee) matches "
            + (sites.isEmpty ? "no call through a pointer" : "no target function"))
        continue
      }
      for index in sites {
        declaredIndirect[index] = rule.reason
        for target in targets { edges[graph.calls[index].caller].append((index, target)) }
      }
    }

    // Breadth-first from all entries at once: `previous[f]` is the call that reached f first, so
    // following it back gives a shortest path. Unsafe functions are reported, not entered.
    let inInterrupt = reach(from: entries, edges: edges, stopAt: { unsafe[$0] != nil })
    let previous = inInterrupt.previous

    // Thread context: everything reachable from functions nobody calls directly (thread entries,
    // boot code) other than the interrupt entries.
    let entrySet = Set(entries)
    let roots = functions.indices.filter { graph.callers[$0].isEmpty && !entrySet.contains($0) }
    let inThread = reach(from: roots, edges: edges, stopAt: { _ in false }).reached

    var lockTakenInThread = Set<String>()
    for call in graph.calls where inThread.contains(call.caller) {
      if case .function(let callee) = call.target, spinlock[callee] != nil {
        lockTakenInThread.insert(lockName(call))
      }
    }

    var findings: [ISRFinding] = []
    var unresolved: [String] = []
    for caller in inInterrupt.reached.sorted() where unsafe[caller] == nil {
      let pathToCaller = path(to: caller, previous: previous)
      for callIndex in graph.callsFrom[caller] {
        let call = graph.calls[callIndex]
        switch call.target {
        case .function(let callee):
          if let register = unknownArgument[callIndex] {
            findings.append(
              finding(
                .indirect, pathToCaller + [functions[callee].name, "<indirect: \(register)>"], call,
                reason: "\(functions[callee].name) calls its \(register) argument, which the code computes"))
          }
          if let rule = unsafe[callee] {
            var result = finding(.unsafe, pathToCaller + [functions[callee].name], call, reason: rule.reason)
            if let object = dataObject(call) {
              result.lock = object.name
              result.lockAddress = object.address
            }
            findings.append(result)
          } else if let rule = spinlock[callee] {
            let lock = lockName(call)
            if isIRQSave(call) { continue }
            guard lock != "?", !lock.hasPrefix("*") else {
              unresolved.append((pathToCaller + [functions[callee].name]).joined(separator: " → "))
              continue
            }
            guard lockTakenInThread.contains(lock) else { continue }
            var result = finding(
              .spinlock, pathToCaller + [functions[callee].name], call, reason: rule.reason)
            result.lock = lock
            result.lockAddress = dataObject(call)?.address
            findings.append(result)
          }
        case .indirect(let operand):
          var result = finding(
            .indirect, pathToCaller + ["<indirect: \(call.instruction)>"], call,
            reason: "a call through a pointer (\(operand)): its target is unknown")
          if let because = declaredIndirect[callIndex] {
            result.expected = true
            result.expectedBecause = because
          }
          findings.append(result)
        case .address(let address):
          findings.append(
            finding(
              .indirect, pathToCaller + ["<0x\(String(address, radix: 16))>"], call,
              reason: "a call to an address outside every known function"))
        }
      }
    }

    // Declared findings.
    var used = Set<Int>()
    for index in findings.indices where !findings[index].expected {
      let f = findings[index]
      let callerNames = graph.functions[graph.calls.first { $0.address == f.callSite }?.caller ?? 0]
        .matchNames
      let calleeNames: [String] =
        f.kind == .indirect ? ["<indirect>"] : [f.path.last ?? ""] + calleeSymbols(f)
      for (ruleIndex, rule) in rules.expected.enumerated()
      where ISRRules.matches(rule.caller, callerNames) && ISRRules.matches(rule.callee, calleeNames)
        && (rule.lock == nil || ISRRules.matches(rule.lock ?? "", [f.lock ?? ""]))
      {
        findings[index].expected = true
        findings[index].expectedBecause = rule.reason
        used.insert(ruleIndex)
        break
      }
    }

    if let locator {
      let answers = locator.frames(at: findings.map(\.callSite))
      for index in findings.indices {
        let frames = answers[findings[index].callSite] ?? []
        findings[index].location = frames.last(where: \.hasLine)?.shortLocation
        findings[index].sourceFrames = frames.map { frame in
          let name = CallGraph.displayName(SwiftDemangler.shared.simplifiedName(frame.function))
          return name + (frame.shortLocation.map { " (\($0))" } ?? "")
        }
      }
    }
    findings.sort { lhs, rhs in
      lhs.path.count != rhs.path.count ? lhs.path.count < rhs.path.count : lhs.text < rhs.text
    }
    let unmatched =
      staleRules
      + rules.expected.enumerated().filter { !used.contains($0.offset) }.map {
        "line \($0.element.line): \($0.element.caller) -> \($0.element.callee)"
          + ($0.element.lock.map { " " + $0 } ?? "")
      }
    return ISRReport(
      findings: findings, functions: functions.count, reachableFunctions: inInterrupt.reached.count,
      callSites: graph.calls.count, unmatchedExpectations: unmatched, unresolvedSpinlocks: unresolved.sorted()
    )
  }

  /// Breadth-first reachability over `edges`.
  private func reach(from roots: [Int], edges: [[(call: Int, callee: Int)]], stopAt: (Int) -> Bool)
    -> (reached: Set<Int>, previous: [Int: Int])
  {
    var reached = Set(roots)
    var previous: [Int: Int] = [:]
    var queue = roots
    var head = 0
    while head < queue.count {
      let function = queue[head]
      head += 1
      if stopAt(function) { continue }
      for (callIndex, callee) in edges[function] where !reached.contains(callee) {
        reached.insert(callee)
        previous[callee] = callIndex
        queue.append(callee)
      }
    }
    return (reached, previous)
  }

  private func path(to function: Int, previous: [Int: Int]) -> [String] {
    var names = [graph.functions[function].name]
    var current = function
    var guardCount = 0
    while let callIndex = previous[current], guardCount < graph.functions.count {
      current = graph.calls[callIndex].caller
      names.append(graph.functions[current].name)
      guardCount += 1
    }
    return names.reversed()
  }

  private func finding(_ kind: ISRFinding.Kind, _ path: [String], _ call: CallSite, reason: String)
    -> ISRFinding
  {
    ISRFinding(
      kind: kind, path: path, callSite: call.address, location: nil, lock: nil, lockAddress: nil,
      reason: reason,
      expected: false, expectedBecause: nil)
  }

  private func calleeSymbols(_ finding: ISRFinding) -> [String] {
    guard let call = graph.calls.first(where: { $0.address == finding.callSite }),
      case .function(let callee) = call.target
    else { return [] }
    return [graph.functions[callee].symbol]
  }

  /// The lock a spinlock call takes: the symbol its argument points at, `*variable` when it was
  /// loaded from a global variable (set at run time, so not judged), `?` when the code computes it.
  func lockName(_ call: CallSite) -> String {
    if let address = call.argument {
      guard let match = elf.lookup(address), match.offset == 0 else {
        return "0x" + String(address, radix: 16)
      }
      return match.name
    }
    if let variable = call.argumentLoadedFrom {
      if let stored = graph.constantVariables[variable], let match = elf.lookup(stored), match.offset == 0 {
        return match.name
      }
      guard let match = elf.lookup(variable), match.offset == 0 else {
        return "*0x" + String(variable, radix: 16)
      }
      return "*" + SwiftDemangler.shared.simplifiedName(match.name)
    }
    return "?"
  }

  /// The data object the call's first argument points at (a lock object passed to a lock
  /// function): a symbol that starts exactly there, in an allocated section that is not code.
  func dataObject(_ call: CallSite) -> (name: String, address: UInt64)? {
    guard let address = call.argument ?? call.argumentLoadedFrom.flatMap({ graph.constantVariables[$0] }),
      let match = elf.lookup(address), match.offset == 0,
      elf.sections.contains(where: {
        $0.isAllocated && $0.flags & 0x4 == 0 && $0.addressRange.contains(address)
      })
    else { return nil }
    return (match.name, address)
  }

  /// Whether the call's lock is a static object whose flags (read from the ELF) say IRQ-save.
  func isIRQSave(_ call: CallSite) -> Bool {
    guard let field = rules.irqsaveFlag, let offset = field.offset,
      let address = call.argument ?? call.argumentLoadedFrom.flatMap({ graph.constantVariables[$0] }),
      let bytes = try? elf.bytes(atVirtualAddress: address &+ offset, count: 4)
    else { return false }
    let flags = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    return flags & field.mask != 0
  }
}

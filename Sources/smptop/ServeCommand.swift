import ArgumentParser
import Exposition
import Foundation
import Inspector

/// `smptop serve`: Prometheus metrics of one or more guests over HTTP.
struct ServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Serve Prometheus metrics of one or more guests at http://HOST:PORT/metrics.",
    discussion: """
      Every scrape reads each guest live from its shared RAM file (--memory-file): the guest is never \
      paused. With --qmp, a QEMU that exits is noticed at the next scrape (smptop_target_up 0) and \
      smptop keeps serving, reconnecting when the target's sockets come back.

      One target: the usual target options, labelled target="--name". Several: repeat \
      --target NAME=KEY=VALUE,KEY=VALUE… with the keys gdb, qmp, kernel, symbols, memory-file, machine, \
      e.g. --target a=qmp=/run/a/qmp.sock,memory-file=/run/a/ram,kernel=guest.elf
      """)

  @Option(help: "Where to listen: HOST:PORT, [V6]:PORT or :PORT (127.0.0.1). Port 0 picks a free port.")
  var listen = "127.0.0.1:9464"

  @Flag(help: "Allow a listen address that is not loopback (the metrics carry no authentication).")
  var allowRemote = false

  @Option(help: "The target label of the single target given with the target options.")
  var name = "guest"

  @Option(
    name: .customLong("target"),
    help:
      "NAME=KEY=VALUE,… : one more target (repeatable; keys gdb, qmp, kernel, symbols, memory-file, machine)."
  )
  var targets: [String] = []

  @Option(
    name: .customLong("gdb"), help: "QEMU's gdbstub (only for symbols' sake; serve never stops the VM).")
  var gdb: String?

  @Option(help: "QEMU's QMP socket: noticing a QEMU that exited.")
  var qmp: String?

  @Option(help: "The guest kernel ELF (the inspection ABI root).")
  var kernel: String?

  @Option(name: .customLong("memory-file"), help: "The file behind QEMU's memory-backend-file,share=on.")
  var memoryFile: String?

  @Option(help: "The machine type (pc or q35).")
  var machine = "pc"

  func validate() throws {
    guard let address = ListenAddress(parsing: listen) else {
      throw ValidationError("--listen takes HOST:PORT, [V6]:PORT or :PORT (got \(listen))")
    }
    if !address.isLoopback && !allowRemote {
      throw ValidationError("--listen \(address) is not loopback; add --allow-remote to serve it anyway")
    }
    _ = try Self.sources(self)
  }

  /// Every target, named, from the command line.
  static func sources(_ c: ServeCommand) throws -> [(String, TargetOptions)] {
    var list: [(String, TargetOptions)] = []
    if c.memoryFile != nil || c.kernel != nil || c.qmp != nil {
      var o = TargetOptions()
      o.gdb = c.gdb
      o.qmp = c.qmp
      o.kernel = c.kernel
      o.memoryFile = c.memoryFile
      o.machine = c.machine
      list.append((c.name, o))
    }
    for spec in c.targets { list.append(try parseTarget(spec)) }
    if list.isEmpty {
      throw ValidationError("give a target: --memory-file PATH --kernel ELF [--qmp ADDR], or --target")
    }
    var seen = Set<String>()
    for (name, o) in list {
      guard seen.insert(name).inserted else { throw ValidationError("two targets are named \(name)") }
      guard o.memoryFile != nil else {
        throw ValidationError(
          "target \(name) needs memory-file: serve reads guests live and never pauses them")
      }
      guard o.kernel != nil else {
        throw ValidationError("target \(name) needs kernel (the ABI root symbol)")
      }
    }
    return list
  }

  /// Parses `NAME=KEY=VALUE,KEY=VALUE…`.
  static func parseTarget(_ spec: String) throws -> (String, TargetOptions) {
    guard let eq = spec.firstIndex(of: "="), !spec[..<eq].isEmpty else {
      throw ValidationError("--target takes NAME=KEY=VALUE,… (got \(spec))")
    }
    let name = String(spec[..<eq])
    var o = TargetOptions()
    for pair in spec[spec.index(after: eq)...].split(separator: ",") {
      let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
      guard kv.count == 2, !kv[1].isEmpty else {
        throw ValidationError("--target \(name): \(pair) is not KEY=VALUE")
      }
      switch kv[0] {
      case "gdb": o.gdb = kv[1]
      case "qmp": o.qmp = kv[1]
      case "kernel": o.kernel = kv[1]
      case "symbols": o.systemMap = kv[1]
      case "memory-file": o.memoryFile = kv[1]
      case "machine": o.machine = kv[1]
      default:
        throw ValidationError(
          "--target \(name): unknown key \(kv[0]) (gdb, qmp, kernel, symbols, memory-file, machine)")
      }
    }
    return (name, o)
  }

  func run() async throws {
    guard let address = ListenAddress(parsing: listen) else { throw CLIError("bad --listen", code: .usage) }
    let sources = try Self.sources(self).map { name, options in
      let live = LiveTarget(options: options)
      return ScrapeSource(name: name) { await live.snapshot() }
    }
    try await serveMetrics(sources, on: address)
  }
}

/// Serves `sources` on `address`: until SIGINT/SIGTERM printing the URL once listening (`smptop serve`),
/// or quietly until the task is cancelled (`smptop run --serve`, beside the dashboard).
func serveMetrics(_ sources: [ScrapeSource], on address: ListenAddress, standalone: Bool = true) async throws
{
  let exporter = MetricsExporter()
  // A first snapshot of each target now, so the first scrape already has a busy ratio.
  for source in sources {
    if let snap = await source.snapshot() { exporter.setBaseline(target: source.name, snapshot: snap) }
  }
  let scraper = Scraper(sources: sources, exporter: exporter)
  do {
    try await MetricsServer.run(scraper, on: address, handleSignals: standalone) { port in
      guard standalone else { return }
      let shown = ListenAddress(host: address.host, port: port)
      FileHandle.standardOutput.write(
        Data("smptop: serving Prometheus metrics at http://\(shown)/metrics\n".utf8))
    }
  } catch {
    throw CLIError("cannot serve on \(address): \(error)", code: .usage)
  }
}

/// One guest read live for `smptop serve`: opened lazily, reopened after QEMU went away.
actor LiveTarget {
  /// How to reach it.
  let options: TargetOptions
  /// Extra liveness check (a QEMU this process launched), if any.
  let alive: (@Sendable () -> Bool)?
  private var target: Target?
  private var lastAttempt: ContinuousClock.Instant?

  /// A target opened on first use.
  init(options: TargetOptions, alive: (@Sendable () -> Bool)? = nil) {
    self.options = options
    self.alive = alive
  }

  /// A live snapshot, or nil when the guest cannot be read (its QEMU exited, a socket or file is gone).
  func snapshot() async -> Snapshot? {
    if let alive, !alive() {
      drop()
      return nil
    }
    if target == nil {
      // Reopen at most once a second: a scrape must not wait on a QEMU that is not there.
      if let last = lastAttempt, ContinuousClock.now - last < .seconds(1) { return nil }
      lastAttempt = .now
      target = try? await Target.open(options)
    }
    guard let t = target else { return nil }
    // QMP's reader thread sees the socket close as soon as QEMU exits.
    if let qmp = t.qmp, !qmp.isConnected {
      drop()
      return nil
    }
    guard let snap = try? t.liveSnapshot() else {
      drop()
      return nil
    }
    return snap
  }

  /// Forgets the target (closing its QMP socket); the next scrape opens it again.
  private func drop() {
    target?.qmp?.close()
    target = nil
  }
}

import Foundation
import Glibc
import NIOConcurrencyHelpers

/// A deterministic pseudo-random generator (SplitMix64), so every "random" test is repeatable.
struct SeededGenerator: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A fake QMP server on a unix socket that plays a script of recorded QEMU output.
///
/// It accepts one client and runs the steps in order on its own thread: raw sends, replies to
/// the next command(s) with `@ID@` replaced by the id the client sent, pauses, and closing.
/// Output can be cut into random small chunks (with short pauses, so the client sees many
/// partial reads). Whatever the peer finds wrong is collected in `problems`.
final class FakeQMPPeer: Sendable {
  enum Step: Sendable {
    /// Send these bytes as they are.
    case send(String)
    /// Read the next command, check its name, answer with the templates.
    case reply(to: String, with: [String])
    /// Read one command per entry of `answers` (in any order), then answer them in the reverse
    /// of their arrival order, sending `between` before each answer.
    case replyReversed(answers: [String: [String]], between: String)
    /// Wait.
    case pause(milliseconds: Int)
    /// Close the connection.
    case close
  }

  enum Chunking: Sendable {
    case whole
    case random(seed: UInt64, maxChunk: Int, pauseMicroseconds: UInt32)
  }

  /// How long the peer waits for the client to connect or send its next command. Long on
  /// purpose: in a full `swift test` on 2 cores, blocking tests elsewhere can keep the
  /// cooperative pool (and so the client's test task) from running for many seconds.
  static let patienceMilliseconds: Int32 = 120_000

  let directory: String
  let path: String
  private let listenFD: Int32
  private let received = NIOLockedValueBox<[String]>([])
  private let problemList = NIOLockedValueBox<[String]>([])
  private let done = NIOLockedValueBox<Bool>(false)

  /// Commands received so far (one JSON text each).
  var commands: [String] { received.withLockedValue { $0 } }
  /// What the peer found wrong (unexpected commands, socket errors).
  var problems: [String] { problemList.withLockedValue { $0 } }
  /// Whether the script has finished.
  var isDone: Bool { done.withLockedValue { $0 } }

  init(steps: [Step], chunking: Chunking = .whole) throws {
    var template = Array("/tmp/qmp-fake-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) }
    }
    guard let made else {
      throw POSIXError(.EIO)
    }
    let directory = String(cString: made)
    let path = directory + "/qmp.sock"
    self.directory = directory
    self.path = path
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      let bytes = Array(path.utf8)
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let bound = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard bound == 0, listen(fd, 4) == 0 else {
      close(fd)
      throw POSIXError(.EADDRINUSE)
    }
    listenFD = fd
    let thread = Thread { [self] in run(steps: steps, chunking: chunking) }
    thread.start()
  }

  deinit {
    close(listenFD)
    unlink(path)
    rmdir(directory)
  }

  /// Waits until the script has finished (or `timeout` passes).
  func waitUntilDone(timeout: Duration = .seconds(60)) {
    let deadline = ContinuousClock.now + timeout
    while !isDone && ContinuousClock.now < deadline { usleep(1000) }
  }

  private func problem(_ text: String) { problemList.withLockedValue { $0.append(text) } }

  private func run(steps: [Step], chunking: Chunking) {
    defer { done.withLockedValue { $0 = true } }
    var listener = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
    guard poll(&listener, 1, Self.patienceMilliseconds) == 1 else {
      problem("no client connected")
      return
    }
    let fd = accept(listenFD, nil, nil)
    guard fd >= 0 else {
      problem("accept failed")
      return
    }
    var closed = false
    defer { if !closed { drainUntilEOF(fd); close(fd) } }
    var generator: SeededGenerator?
    if case .random(let seed, _, _) = chunking { generator = SeededGenerator(seed: seed) }
    var inbox: [UInt8] = []

    func send(_ text: String) {
      let bytes = Array(text.utf8)
      var offset = 0
      while offset < bytes.count {
        var size = bytes.count - offset
        var pause: UInt32 = 0
        if case .random(_, let maxChunk, let micros) = chunking, var rng = generator {
          size = min(size, Int.random(in: 1...max(1, maxChunk), using: &rng))
          generator = rng
          pause = micros
        }
        let written = bytes[offset..<offset + size].withUnsafeBytes {
          Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
        }
        if written <= 0 {
          problem("send failed: errno \(errno)")
          return
        }
        offset += written
        if pause > 0 { usleep(pause) }
      }
    }

    func readCommand() -> (name: String, idText: String)? {
      while true {
        if let newline = inbox.firstIndex(of: 0x0A) {
          let line = Array(inbox[..<newline])
          inbox.removeSubrange(...newline)
          let text = String(decoding: line, as: UTF8.self)
          received.withLockedValue { $0.append(text) }
          guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
            let name = object["execute"] as? String
          else {
            problem("not a command: \(text)")
            return nil
          }
          var idText = "null"
          if let id = object["id"],
            let data = try? JSONSerialization.data(withJSONObject: id, options: .fragmentsAllowed)
          {
            idText = String(decoding: data, as: UTF8.self)
          }
          return (name, idText)
        }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Self.patienceMilliseconds) == 1 else {
          problem("no command arrived")
          return nil
        }
        var chunk = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &chunk, chunk.count)
        guard count > 0 else {
          problem("client closed while a command was expected")
          return nil
        }
        inbox += chunk[0..<count]
      }
    }

    func answer(_ templates: [String], id: String) -> String {
      templates.map { $0.replacingOccurrences(of: "@ID@", with: id) }.joined()
    }

    for step in steps {
      switch step {
      case .send(let text):
        send(text)
      case .reply(let expected, let templates):
        guard let command = readCommand() else { return }
        if command.name != expected { problem("expected \(expected), got \(command.name)") }
        send(answer(templates, id: command.idText))
      case .replyReversed(let answers, let between):
        var arrived: [(name: String, idText: String)] = []
        for _ in answers {
          guard let command = readCommand() else { return }
          if answers[command.name] == nil { problem("unexpected command \(command.name)") }
          arrived.append(command)
        }
        var text = ""
        for command in arrived.reversed() {
          text += between + answer(answers[command.name] ?? [], id: command.idText)
        }
        send(text)
      case .pause(let milliseconds):
        usleep(UInt32(milliseconds) * 1000)
      case .close:
        close(fd)
        closed = true
        return
      }
    }
  }

  /// Keeps reading until the client closes (bounded), so the client sees no reset.
  private func drainUntilEOF(_ fd: Int32) {
    var chunk = [UInt8](repeating: 0, count: 4096)
    let deadline = ContinuousClock.now + .milliseconds(Int(Self.patienceMilliseconds))
    while ContinuousClock.now < deadline {
      var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      if poll(&entry, 1, 100) == 1 && read(fd, &chunk, chunk.count) <= 0 { return }
    }
  }
}

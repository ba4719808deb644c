import Hummingbird
import Logging
import Model

/// One target the server reads on each scrape.
public struct ScrapeSource: Sendable {
  /// The value of the `target` label.
  public var name: String
  /// A fresh snapshot, read without pausing the guest; nil when the target cannot be read.
  public var snapshot: @Sendable () async -> Snapshot?

  /// A source from its parts.
  public init(name: String, snapshot: @escaping @Sendable () async -> Snapshot?) {
    self.name = name
    self.snapshot = snapshot
  }
}

/// Reads every source and renders the exposition, one scrape at a time.
public actor Scraper {
  /// The sources, in label order.
  public let sources: [ScrapeSource]
  /// Where the series live between scrapes.
  public let exporter: MetricsExporter

  /// A scraper over `sources`.
  public init(sources: [ScrapeSource], exporter: MetricsExporter = MetricsExporter()) {
    self.sources = sources
    self.exporter = exporter
  }

  /// Reads every source (a source that fails is marked down) and renders the exposition.
  public func scrape() async -> String {
    for source in sources {
      if let snapshot = await source.snapshot() {
        exporter.update(target: source.name, snapshot: snapshot)
      } else {
        exporter.markDown(target: source.name)
      }
    }
    return exporter.render()
  }
}

/// Where `smptop serve` listens.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
  /// The host name or IP address (without brackets).
  public var host: String
  /// The TCP port (0 = any free port).
  public var port: Int

  /// An address from its parts.
  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback); nil when it is none of these.
  public init?(parsing text: String) {
    var hostPart: Substring
    var portPart: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
        return nil
      }
      hostPart = text[text.index(after: text.startIndex)..<close]
      portPart = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
      hostPart = text[..<colon]
      portPart = text[text.index(after: colon)...]
    }
    if hostPart.isEmpty { hostPart = "127.0.0.1" }
    guard let port = Int(portPart), (0...65535).contains(port), !hostPart.contains(where: \.isWhitespace)
    else {
      return nil
    }
    self.init(host: String(hostPart), port: port)
  }

  /// True for 127.0.0.0/8, ::1 and localhost.
  public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

  /// `host:port`, with brackets around an IPv6 host.
  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The HTTP side of `smptop serve`: `GET /metrics` answers with the exposition, `GET /` with a pointer
/// to it; any other path is 404 and any other method on these paths is 405.
public enum MetricsServer {
  /// The content type of the text exposition format.
  public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

  /// Serves `scraper` on `address` until the task is cancelled (or, with `handleSignals`, until SIGINT
  /// or SIGTERM); `onListening` gets the bound port. Only critical errors are logged, on stderr.
  public static func run(
    _ scraper: Scraper, on address: ListenAddress, handleSignals: Bool = true,
    onListening: @escaping @Sendable (Int) async -> Void
  ) async throws {
    let router = Router()
    router.get("metrics") { _, _ -> Response in
      let text = await scraper.scrape()
      return Response(
        status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("/") { _, _ -> String in
      "smptop: Prometheus metrics at /metrics\n"
    }
    for path in ["metrics", "/"] {
      for method in [HTTPRequest.Method.post, .put, .delete, .patch] {
        router.on(RouterPath(path), method: method) { _, _ -> Response in
          Response(status: .methodNotAllowed, headers: [.allow: "GET, HEAD"])
        }
      }
    }
    let app = Application(
      router: router,
      configuration: .init(address: .hostname(address.host, port: address.port), serverName: "smptop"),
      onServerRunning: { channel in await onListening(channel.localAddress?.port ?? address.port) },
      logger: quietLogger)
    try await app.runService(gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [])
  }

  /// A logger that prints only critical errors, on stderr (a cancelled server is not one).
  static var quietLogger: Logger {
    var logger = Logger(label: "smptop.serve") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .critical
    return logger
  }
}

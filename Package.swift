// swift-tools-version: 6.1
// One manifest for the host tool and the bare-metal guest. The guest targets carry no
// settings: every bare-metal flag lives in Resources/toolset.json, which only the guest
// build passes, and the guest sources compile to an empty stub on the host (SMP_GUEST).
import PackageDescription

/// The one lock type of the host modules (see the swift-nio dependency below).
let locks = Target.Dependency.product(name: "NIOConcurrencyHelpers", package: "swift-nio")

let package = Package(
  name: "smptop",
  products: [
    .executable(name: "smptop", targets: ["smptop"]),
    .executable(name: "Kernel", targets: ["Kernel"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    // NIOLockedValueBox: a pthread mutex, which the thread sanitizer sees (it does not see
    // Synchronization.Mutex's futex on Linux and reports the accesses it guards as races).
    .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
  ],
  targets: [
    // The inspection ABI: one C header shared by the guest build and the host decoder.
    .target(name: "InspectABI"),

    // Guest: Embedded Swift SMP unikernel (built with Resources/toolset.json).
    .target(name: "KernelSupport", dependencies: ["InspectABI"]),
    .executableTarget(name: "Kernel", dependencies: ["KernelSupport"]),

    // Host protocol and file-format layers: one each, no knowledge of the guest.
    // Socket addresses, connect with a deadline, write-all, poll: the one socket layer of every protocol.
    .target(name: "Transport"),
    .target(name: "GDBRemote", dependencies: ["Transport", locks]),
    .target(name: "QMP", dependencies: ["Transport", locks]),
    .target(name: "ELFSymbols", dependencies: [locks]),
    // Builds the bundled guest and launches QEMU with its sockets in a private directory.
    .target(name: "QEMULaunch", dependencies: ["Transport", locks]),
    // The data every output renders: Snapshot, records, rates, GuestClock, row models. No dependencies.
    .target(name: "Model"),
    // Snapshot engine, ABI decoder, memory sources, deltas.
    .target(
      name: "Inspector",
      dependencies: ["Model", "InspectABI", "GDBRemote", "QMP", "ELFSymbols", "QEMULaunch", locks]),
    // Prometheus exposition of the model, served over HTTP (`smptop serve`).
    .target(
      name: "Exposition",
      dependencies: [
        "Model", locks,
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    // C libraries from Debian: ncurses (terminal) and Capstone (disassembly).
    .systemLibrary(name: "CNcurses", providers: [.apt(["libncurses-dev"])]),
    .systemLibrary(name: "CCapstone", providers: [.apt(["libcapstone-dev"])]),
    // x86-64 disassembly around RIP (Capstone), returned as Sendable values.
    .target(name: "Disassembly", dependencies: ["CCapstone"]),
    // Dashboard: state, key reducer and pure views that render a Snapshot into a character grid.
    .target(name: "Dashboard", dependencies: ["Model", locks]),
    // Static ISR-safety check: call graph from the machine code, rules, findings.
    .target(name: "ISRCheck", dependencies: ["ELFSymbols", "Disassembly"]),
    // The ncurses backend: grid to screen, keys in. Nothing else.
    .target(name: "Terminal", dependencies: ["CNcurses", "Dashboard"]),
    .executableTarget(
      name: "smptop",
      dependencies: [
        "Inspector", "QEMULaunch", "Dashboard", "Terminal", "Disassembly", "ISRCheck", "Exposition", locks,
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      plugins: ["GitVersion"]),
    // The Terminal backend driven by synthetic snapshots, for the tmux end-to-end script.
    .executableTarget(name: "DashboardDemo", dependencies: ["Dashboard", "Terminal", "Inspector"]),
    // Records `git describe` at build time for `smptop --version`.
    .plugin(name: "GitVersion", capability: .buildTool()),

    .testTarget(name: "TransportTests", dependencies: ["Transport"]),
    .testTarget(name: "GDBRemoteTests", dependencies: ["GDBRemote", "QEMULaunch", locks]),
    .testTarget(name: "QMPTests", dependencies: ["QMP", "QEMULaunch", locks]),
    .testTarget(name: "ELFSymbolsTests", dependencies: ["ELFSymbols", "QEMULaunch"]),
    .testTarget(name: "InspectorTests", dependencies: ["Inspector", "InspectABI"]),
    // Synthetic model records shared by the model's and the exposition's tests.
    .target(name: "ModelFixtures", dependencies: ["Model"], path: "Tests/ModelFixtures"),
    .testTarget(name: "ModelTests", dependencies: ["Model", "ModelFixtures"]),
    // `smptop serve` scraped by a real Prometheus, and the exposition of synthetic snapshots.
    .testTarget(name: "ServeTests", dependencies: ["Exposition", "Model", "ModelFixtures", "QEMULaunch"]),
    // The guest's buddy algorithm (Sources/Kernel/BuddyCore.swift, linked in) tested on the host.
    .testTarget(name: "BuddyTests"),
    .testTarget(
      name: "DashboardTests", dependencies: ["Dashboard", "Inspector", "Disassembly"],
      exclude: ["__Snapshots__", "e2e"]),
    // The built smptop binary run as users run it, against the real guest in real QEMU.
    .testTarget(name: "CommandTests", dependencies: ["QEMULaunch", "QMP", locks]),
    .testTarget(
      name: "ISRCheckTests", dependencies: ["ISRCheck", "ELFSymbols", "QEMULaunch", "Inspector", "Dashboard"]),
    .testTarget(
      name: "IntegrationTests",
      dependencies: ["Inspector", "QEMULaunch", "GDBRemote", "QMP", "ELFSymbols"]),
  ]
)

// swift-tools-version: 6.1
// The host modules that boot no guest and their test suites, for the thread sanitizer.
// Sources/ and Tests/ here are symbolic links into the repository's own: the same code as the
// main package, without the executable, the HTTP exposition and the argument parser, so a TSan
// build in CI compiles only what the sanitized suites run. Resources/test.sh drives it; keep the
// targets below in step with ../../Package.swift.
import PackageDescription

/// The one lock type of the host modules, as in the main manifest.
let locks = Target.Dependency.product(name: "NIOConcurrencyHelpers", package: "swift-nio")

let package = Package(
  name: "smptop-tsan",
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio", from: "2.80.0")
  ],
  targets: [
    .target(name: "InspectABI"),
    .target(name: "Transport"),
    .target(name: "GDBRemote", dependencies: ["Transport", locks]),
    .target(name: "QMP", dependencies: ["Transport", locks]),
    .target(
      name: "ELFSymbols", dependencies: [locks]),
    .target(
      name: "QEMULaunch", dependencies: ["Transport", locks]),
    .target(name: "Model"),
    .target(
      name: "Inspector",
      dependencies: [
        "Model", "InspectABI", "GDBRemote", "QMP", "ELFSymbols", "QEMULaunch",
        locks,
      ]),
    .systemLibrary(name: "CCapstone", providers: [.apt(["libcapstone-dev"])]),
    .target(name: "Disassembly", dependencies: ["CCapstone"]),
    .target(
      name: "Dashboard",
      dependencies: ["Model", "Inspector", locks]),

    .testTarget(name: "TransportTests", dependencies: ["Transport"]),
    .testTarget(
      name: "GDBRemoteTests",
      dependencies: ["GDBRemote", "QEMULaunch", locks]),
    .testTarget(
      name: "QMPTests",
      dependencies: ["QMP", "QEMULaunch", locks]),
    .testTarget(name: "ELFSymbolsTests", dependencies: ["ELFSymbols", "QEMULaunch"]),
    .testTarget(
      name: "InspectorTests",
      dependencies: ["Inspector", "InspectABI"]),
    .target(name: "ModelFixtures", dependencies: ["Model"], path: "Tests/ModelFixtures"),
    .testTarget(name: "ModelTests", dependencies: ["Model", "ModelFixtures"]),
    .testTarget(name: "BuddyTests"),
    .testTarget(
      name: "DashboardTests", dependencies: ["Dashboard", "Inspector", "Disassembly"],
      exclude: ["__Snapshots__", "e2e"]),
  ]
)

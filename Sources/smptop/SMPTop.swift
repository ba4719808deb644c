import ArgumentParser

/// The smptop command line.
@main struct SMPTop: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "smptop", abstract: "Live inspection of an SMP unikernel running in QEMU.")
}

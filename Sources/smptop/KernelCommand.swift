import ArgumentParser
import QEMULaunch

/// `smptop kernel`: builds the bundled guest if needed and prints its ELF path.
struct KernelCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kernel",
    abstract: "Build the bundled unikernel if needed and print the path of its ELF.",
    discussion: """
      For users who launch QEMU their own way and then attach, e.g.

        qemu-system-x86_64 -smp 4 -kernel "$(smptop kernel)" \\
          -gdb tcp::1234 -qmp unix:/tmp/qmp.sock,server=on,wait=off
      """)

  func run() throws {
    do {
      print(try GuestKernel.build())
    } catch let error as QEMULaunchError {
      throw CLIError(error.message, code: .build)
    }
  }
}

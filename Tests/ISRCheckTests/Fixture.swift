import Foundation
import QEMULaunch

/// A tiny freestanding x86-64 kernel built in the test: IDT-like stubs in assembly that jump to a
/// common path calling `isr_dispatch`, a timer handler with a deliberately unsafe call, an IPI
/// handler calling through a function pointer, and a thread that shares a plain spinlock.
enum Fixture {
  /// Why a fixture could not be built.
  struct BuildError: Error, CustomStringConvertible {
    var description: String
  }

  /// The C part; `// MARK:` comments name lines the tests look up.
  static let cSource = """
    struct klock { unsigned long word; unsigned flags; };
    struct klock plain_lock = {0, 0};
    struct klock irqsave_lock = {0, 1};
    struct klock isr_only_lock = {0, 0};
    volatile unsigned long sink;

    __attribute__((noinline)) void mutex_lock(void) { sink++; }
    __attribute__((noinline)) void sleep_wait(void) { sink += 2; }
    __attribute__((noinline)) void spin_lock(struct klock *k) { sink += k->flags; }
    __attribute__((noinline)) void run_once(void (*init)(void)) { init(); }
    __attribute__((noinline)) void once_init(void) { sleep_wait(); }
    __attribute__((noinline)) void log_tick(void) { spin_lock(&irqsave_lock); }
    __attribute__((noinline)) void tick_helper(void) {
      mutex_lock(); // MARK: unsafe-call
      sink++;
    }
    __attribute__((noinline)) void timer_interrupt(void) {
      log_tick();
      spin_lock(&isr_only_lock);
      tick_helper();
      run_once(once_init);
      spin_lock(&plain_lock); // MARK: plain-lock
    }
    void (*volatile ipi_hook)(void);
    void (*volatile init_hook)(void);
    __attribute__((noinline)) void ipi_interrupt(void) {
      ipi_hook(); // MARK: indirect-call
      run_once(init_hook); // MARK: unknown-argument
      sink++;
    }
    void isr_dispatch(unsigned long vector) {
      if (vector == 32) timer_interrupt();
      else if (vector == 33) ipi_interrupt();
    }
    __attribute__((noinline)) void thread_main(void) {
      spin_lock(&plain_lock);
      spin_lock(&irqsave_lock);
      mutex_lock();
    }
    void _start(void) { thread_main(); for (;;) {} }
    """

  /// The assembly part: two 16-byte stubs and the common entry path.
  static let asmSource = """
            .section .text.isr, "ax"
            .global isr_stubs
            .align 16
    isr_stubs:
            pushq $0
            pushq $32
            jmp isr_common
            .align 16
            pushq $0
            pushq $33
            jmp isr_common
    isr_common:
            movq (%rsp), %rdi
            call isr_dispatch
            addq $16, %rsp
            iretq
            .section .note.GNU-stack, "", @progbits
    """

  /// The rules for the fixture, without `expected` lines.
  static let rules = """
    entry isr_stubs        # the stubs
    unsafe mutex_lock      # sleeping lock
    unsafe sleep_wait      # blocking wait
    spinlock spin_lock     # rdi is the lock
    irqsave-flag 8 0x1     # struct klock.flags, bit 0
    """

  /// The 1-based line of the C source holding `// MARK: name`.
  static func line(_ mark: String) -> Int {
    let lines = cSource.split(separator: "\n", omittingEmptySubsequences: false)
    return (lines.firstIndex { $0.contains("// MARK: \(mark)") } ?? -1) + 1
  }

  /// The fixture's C file compiled for AArch64 (an object file); returns its path.
  static func buildForAArch64() throws -> String {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("isrcheck-fixture-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try cSource.write(toFile: directory + "/fixture.c", atomically: true, encoding: .utf8)
    guard let clang = QEMUInstance.findExecutable("clang") else {
      throw BuildError(description: "clang must be in PATH (the Swift toolchain has it)")
    }
    try run(
      clang,
      [
        "-target", "aarch64-unknown-none-elf", "-ffreestanding", "-c", "-o", directory + "/a64.o",
        "fixture.c",
      ],
      in: directory)
    return directory + "/a64.o"
  }

  /// Compiles and links the fixture into a fresh directory; returns the ELF's path.
  static func build() throws -> String {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("isrcheck-fixture-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try cSource.write(toFile: directory + "/fixture.c", atomically: true, encoding: .utf8)
    try asmSource.write(toFile: directory + "/stubs.S", atomically: true, encoding: .utf8)
    guard let clang = QEMUInstance.findExecutable("clang"), let lld = QEMUInstance.findExecutable("ld.lld")
    else { throw BuildError(description: "clang and ld.lld must be in PATH (the Swift toolchain has both)") }
    let flags = [
      "-target", "x86_64-unknown-none-elf", "-ffreestanding", "-fno-pic", "-mno-red-zone", "-O1", "-g", "-c",
    ]
    try run(clang, flags + ["-o", directory + "/fixture.o", directory + "/fixture.c"], in: directory)
    try run(clang, flags + ["-o", directory + "/stubs.o", directory + "/stubs.S"], in: directory)
    try run(
      lld,
      [
        "-static", "-e", "_start", "-o", directory + "/fixture.elf", directory + "/fixture.o",
        directory + "/stubs.o",
      ],
      in: directory)
    return directory + "/fixture.elf"
  }

  /// Runs a build tool in `directory`; throws with its stderr when it fails.
  static func run(_ tool: String, _ arguments: [String], in directory: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let errors = Pipe()
    process.standardError = errors
    try process.run()
    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw BuildError(description: "\(tool) \(arguments.joined(separator: " ")) failed: \(text)")
    }
  }
}

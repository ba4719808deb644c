/// The guest's entry point on the host: an empty stub (the real kernel is built with SMP_GUEST).
@main struct Kernel { static func main() {} }

import Foundation

/// Server-to-client lines recorded from the real QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3,
/// `-accel tcg -smp 2 -m 64 -nodefaults -S`, with `-device virtio-net-pci,id=net0` or
/// `-device pvpanic -action panic=pause`), byte for byte, including QEMU's `\r\n` line ends and
/// `", "` separators. `@ID@` stands for the request id, which the fake peer substitutes with
/// the id the client sent (QEMU echoes it verbatim).
enum Recorded {
  static let crlf = "\r\n"

  static let greeting =
    #"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#
    + crlf

  static let emptyReturn = #"{"return": {}, "id": @ID@}"# + crlf

  static let notNegotiated =
    #"{"id": @ID@, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#
    + crlf

  static let statusPrelaunch =
    #"{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": @ID@}"# + crlf
  static let statusRunning =
    #"{"return": {"status": "running", "singlestep": false, "running": true}, "id": @ID@}"# + crlf
  static let statusPaused =
    #"{"return": {"status": "paused", "singlestep": false, "running": false}, "id": @ID@}"# + crlf
  static let statusGuestPanicked =
    #"{"return": {"status": "guest-panicked", "singlestep": false, "running": false}, "id": @ID@}"# + crlf

  static let cpusFast =
    #"{"return": [{"thread-id": 7185, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}, {"thread-id": 7186, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}], "id": @ID@}"#
    + crlf

  static let virtioList =
    #"{"return": [{"name": "virtio-net", "path": "/machine/peripheral/net0/virtio-backend"}], "id": @ID@}"#
    + crlf

  static let virtioStatus =
    #"{"return": {"device-endian": "little", "bus-name": "", "disable-legacy-check": false, "name": "virtio-net", "started": false, "device-id": 1, "backend-features": {"dev-features": [], "transports": []}, "start-on-kick": false, "isr": 0, "broken": false, "status": {"statuses": []}, "num-vqs": 3, "guest-features": {"dev-features": [], "transports": []}, "host-features": {"unknown-dev-features": 1099511627776, "dev-features": ["VHOST_USER_F_PROTOCOL_FEATURES: Vhost-user protocol features negotiation supported", "VIRTIO_NET_F_GSO: Handling GSO-type packets supported", "VIRTIO_NET_F_CTRL_MAC_ADDR: MAC address set through control channel", "VIRTIO_NET_F_GUEST_ANNOUNCE: Driver sending gratuitous packets supported", "VIRTIO_NET_F_CTRL_RX_EXTRA: Extra RX mode control supported", "VIRTIO_NET_F_CTRL_VLAN: Control channel VLAN filtering supported", "VIRTIO_NET_F_CTRL_RX: Control channel RX mode supported", "VIRTIO_NET_F_CTRL_VQ: Control channel available", "VIRTIO_NET_F_STATUS: Configuration status field available", "VIRTIO_NET_F_MRG_RXBUF: Driver can merge receive buffers", "VIRTIO_NET_F_MAC: Device has given MAC address", "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS: Control channel offloading reconfig. supported"], "transports": ["VIRTIO_RING_F_EVENT_IDX: Used & avail. event fields enabled", "VIRTIO_RING_F_INDIRECT_DESC: Indirect descriptors supported", "VIRTIO_F_VERSION_1: Device compliant for v1 spec (legacy)", "VIRTIO_F_ANY_LAYOUT: Device accepts arbitrary desc. layouts", "VIRTIO_F_NOTIFY_ON_EMPTY: Notify when device runs out of avail. descs. on VQ"]}, "use-guest-notifier-mask": true, "vm-running": false, "queue-sel": 0, "disabled": false, "vhost-started": false, "use-started": true}, "id": @ID@}"#
    + crlf

  static let virtioQueueStatus =
    #"{"return": {"signalled-used": 0, "inuse": 0, "name": "virtio-net", "vring-align": 4096, "vring-desc": 0, "signalled-used-valid": false, "vring-num-default": 256, "vring-avail": 0, "queue-index": 0, "last-avail-idx": 0, "vring-used": 0, "used-idx": 0, "shadow-avail-idx": 0, "vring-num": 256}, "id": @ID@}"#
    + crlf

  static let invalidQueue =
    #"{"id": @ID@, "error": {"class": "GenericError", "desc": "Invalid virtqueue number 99"}}"# + crlf
  static let notVirtio =
    #"{"id": @ID@, "error": {"class": "GenericError", "desc": "Path /nope is not a VirtIODevice"}}"# + crlf
  static let commandNotFound =
    #"{"id": @ID@, "error": {"class": "CommandNotFound", "desc": "The command no-such-command has not been found"}}"#
    + crlf
  static let unexpectedParameter =
    #"{"id": @ID@, "error": {"class": "GenericError", "desc": "Parameter 'bogus' is unexpected"}}"# + crlf
  static let deviceNotFound =
    #"{"id": @ID@, "error": {"class": "DeviceNotFound", "desc": "Device 'nonexistent' not found"}}"# + crlf

  static let infoCPUs =
    #"{"return": "* CPU #0: thread_id=7185\r\n  CPU #1: thread_id=7186\r\n", "id": @ID@}"# + crlf
  static let emptyString = #"{"return": "", "id": @ID@}"# + crlf

  static let resume =
    #"{"timestamp": {"seconds": 1795708727, "microseconds": 883794}, "event": "RESUME"}"# + crlf
  static let stop = #"{"timestamp": {"seconds": 1795708728, "microseconds": 185023}, "event": "STOP"}"# + crlf
  static let resetHost =
    #"{"timestamp": {"seconds": 1795708728, "microseconds": 187647}, "event": "RESET", "data": {"guest": false, "reason": "host-qmp-system-reset"}}"#
    + crlf
  static let resetGuest =
    #"{"timestamp": {"seconds": 1795708728, "microseconds": 413753}, "event": "RESET", "data": {"guest": true, "reason": "guest-reset"}}"#
    + crlf
  static let shutdownQuit =
    #"{"timestamp": {"seconds": 1795708729, "microseconds": 95599}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#
    + crlf
  static let shutdownSignal =
    #"{"timestamp": {"seconds": 1795708999, "microseconds": 733805}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-signal"}}"#
    + crlf
  static let guestPanicked =
    #"{"timestamp": {"seconds": 1795708994, "microseconds": 935861}, "event": "GUEST_PANICKED", "data": {"action": "pause"}}"#
    + crlf
  static let stopAfterPanic =
    #"{"timestamp": {"seconds": 1795708994, "microseconds": 935954}, "event": "STOP"}"# + crlf

  /// The whole server side of one recorded session (ids filled in as 1, 2, ...), for splitter tests.
  static var session: String {
    let replies = [
      greeting, fill(emptyReturn, 1), resume, fill(emptyReturn, 2), fill(statusRunning, 3), stop,
      fill(emptyReturn, 4), fill(cpusFast, 5), fill(virtioList, 6), fill(virtioStatus, 7),
      fill(virtioQueueStatus, 8), fill(infoCPUs, 9), fill(commandNotFound, 10), guestPanicked,
      stopAfterPanic, fill(emptyString, 11), fill(statusGuestPanicked, 12), resetHost, resetGuest,
      fill(emptyReturn, 13), shutdownQuit, fill(emptyReturn, 14),
    ]
    return replies.joined()
  }

  static func fill(_ template: String, _ id: Int) -> String {
    template.replacingOccurrences(of: "@ID@", with: String(id))
  }
}

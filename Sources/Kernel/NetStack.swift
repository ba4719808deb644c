// NetStack: the smallest IPv4 responder on top of VirtioNet. It answers, on the queue pair
// the frame arrived on:
//   ARP requests for its own address (and learns nothing: replies go to the requester),
//   ICMP echo requests (type 8) addressed to it,
//   UDP datagrams to port 7 (echo): the same payload back, from port 7, checksum 0.
// The address is 10.0.2.15 (QEMU user networking) unless `net.ip=A.B.C.D` is on the
// command line (Resources/netns-mq.sh uses 192.0.2.2). Frames are parsed in the RX buffer
// and replies built straight into a TX buffer; every pair owner also sends a gratuitous
// ARP (broadcast request for its own address) once a second.

#if SMP_GUEST
  import KernelSupport

  /// ARP, ICMP echo and UDP echo.
  enum NetStack {
    nonisolated(unsafe) static var ip: UInt32 = 0x0A00_020F  // 10.0.2.15
    static let echoPort: UInt16 = 7

    static func get16(_ p: UnsafeMutablePointer<UInt8>, _ o: Int) -> UInt16 {
      UInt16(p[o]) << 8 | UInt16(p[o + 1])
    }
    static func get32(_ p: UnsafeMutablePointer<UInt8>, _ o: Int) -> UInt32 {
      UInt32(get16(p, o)) << 16 | UInt32(get16(p, o + 2))
    }
    static func put16(_ p: UnsafeMutablePointer<UInt8>, _ o: Int, _ v: UInt16) {
      p[o] = UInt8(v >> 8)
      p[o + 1] = UInt8(truncatingIfNeeded: v)
    }
    static func put32(_ p: UnsafeMutablePointer<UInt8>, _ o: Int, _ v: UInt32) {
      put16(p, o, UInt16(v >> 16))
      put16(p, o + 2, UInt16(truncatingIfNeeded: v))
    }
    static func putMAC(_ p: UnsafeMutablePointer<UInt8>, _ o: Int) {
      let m = VirtioNet.mac
      p[o] = m.0; p[o + 1] = m.1; p[o + 2] = m.2; p[o + 3] = m.3; p[o + 4] = m.4; p[o + 5] = m.5
    }
    static func copy(_ to: UnsafeMutablePointer<UInt8>, _ from: UnsafeMutablePointer<UInt8>, _ n: Int) {
      for i in 0..<n { to[i] = from[i] }
    }

    /// The Internet checksum of `n` bytes.
    static func checksum(_ p: UnsafeMutablePointer<UInt8>, _ n: Int) -> UInt16 {
      var sum: UInt32 = 0
      var i = 0
      while i + 1 < n {
        sum &+= UInt32(get16(p, i))
        i += 2
      }
      if i < n { sum &+= UInt32(p[i]) << 8 }
      while sum >> 16 != 0 { sum = (sum & 0xFFFF) &+ (sum >> 16) }
      return ~UInt16(truncatingIfNeeded: sum)
    }

    /// Handles one received Ethernet frame on `pair`.
    static func receive(_ f: UnsafeMutablePointer<UInt8>, _ n: Int, _ pair: NetPair) {
      switch get16(f, 12) {
      case 0x0806: arp(f, n, pair)
      case 0x0800: ipv4(f, n, pair)
      default: break
      }
    }

    static func arp(_ f: UnsafeMutablePointer<UInt8>, _ n: Int, _ pair: NetPair) {
      guard n >= 42, get16(f, 14) == 1, get16(f, 16) == 0x0800, get16(f, 20) == 1, get32(f, 38) == ip
      else { return }
      pair.transmit { o in
        copy(o, f + 6, 6)  // to the requester
        putMAC(o, 6)
        put16(o, 12, 0x0806)
        put16(o, 14, 1); put16(o, 16, 0x0800); o[18] = 6; o[19] = 4
        put16(o, 20, 2)  // reply
        putMAC(o, 22)
        put32(o, 28, ip)
        copy(o + 32, f + 22, 10)  // target = the sender's MAC and IP
        for i in 42..<60 { o[i] = 0 }
        return 60
      }
    }

    static func ipv4(_ f: UnsafeMutablePointer<UInt8>, _ n: Int, _ pair: NetPair) {
      guard n >= 34, f[14] >> 4 == 4 else { return }
      let ihl = Int(f[14] & 0xF) * 4
      let total = Int(get16(f, 16))
      guard ihl >= 20, total >= ihl, 14 + total <= n, get32(f, 30) == ip,
        get16(f, 20) & 0x3FFF == 0  // no fragments
      else { return }
      let proto = f[23]
      let l4 = 14 + ihl
      let l4Length = total - ihl
      if proto == 1 {
        guard l4Length >= 8, f[l4] == 8 else { return }
        reply(f, total, pair) { o in
          o[l4] = 0
          put16(o, l4 + 2, 0)
          put16(o, l4 + 2, checksum(o + l4, l4Length))
        }
      } else if proto == 17 {
        guard l4Length >= 8, get16(f, l4 + 2) == echoPort else { return }
        reply(f, total, pair) { o in
          let src = get16(o, l4)
          put16(o, l4, echoPort)
          put16(o, l4 + 2, src)
          put16(o, l4 + 6, 0)
        }
      }
    }

    /// Sends `f` back to where it came from (MACs and IPs swapped, TTL 64), after `patch`
    /// rewrote the transport header.
    static func reply(
      _ f: UnsafeMutablePointer<UInt8>, _ total: Int, _ pair: NetPair,
      _ patch: (UnsafeMutablePointer<UInt8>) -> Void
    ) {
      pair.transmit { o in
        let n = 14 + total
        copy(o, f, n)
        copy(o, f + 6, 6)
        putMAC(o, 6)
        let ihl = Int(f[14] & 0xF) * 4
        copy(o + 26, f + 30, 4)
        copy(o + 30, f + 26, 4)
        o[22] = 64
        put16(o, 24, 0)
        put16(o, 24, checksum(o + 14, ihl))
        patch(o)
        if n < 60 { for i in n..<60 { o[i] = 0 } }
        return max(n, 60)
      }
    }

    /// Broadcasts "who-has <ip> tell <ip>" from this pair's TX queue.
    static func sendGratuitousARP(_ pair: NetPair) {
      pair.transmit { o in
        for i in 0..<6 { o[i] = 0xFF }
        putMAC(o, 6)
        put16(o, 12, 0x0806)
        put16(o, 14, 1); put16(o, 16, 0x0800); o[18] = 6; o[19] = 4
        put16(o, 20, 1)
        putMAC(o, 22)
        put32(o, 28, ip)
        for i in 32..<38 { o[i] = 0 }
        put32(o, 38, ip)
        for i in 42..<60 { o[i] = 0 }
        return 60
      }
    }

    /// Parses "A.B.C.D"; nil when malformed.
    static func parseIPv4(_ text: UnsafeMutablePointer<CChar>, _ from: Int, _ to: Int) -> UInt32? {
      var value: UInt32 = 0
      var part: UInt32 = 0
      var digits = 0
      var dots = 0
      for i in from..<to {
        let c = UInt8(bitPattern: text[i])
        if c == 0x2E {
          guard digits > 0, dots < 3 else { return nil }
          value = value << 8 | part
          part = 0; digits = 0; dots += 1
        } else if c >= 0x30, c <= 0x39 {
          part = part * 10 + UInt32(c - 0x30)
          digits += 1
          guard part <= 255, digits <= 3 else { return nil }
        } else {
          return nil
        }
      }
      guard dots == 3, digits > 0 else { return nil }
      return value << 8 | part
    }
  }
#endif

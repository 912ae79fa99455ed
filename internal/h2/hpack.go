package h2

// podpin's HPACK encoding (RFC 7541) of what it sends: every field a
// literal that is not indexed, its name by its index in the static table
// when it is there, no string Huffman-coded; a field that is an entry of
// the static table as a whole (":status: 200", ":method: GET") as that
// entry's index. HAProxy's encoder makes the same choices. Nothing is added
// to the peer's dynamic table, which podpin sets to size 0 once at the
// start (and again after the peer's SETTINGS_HEADER_TABLE_SIZE), as
// decoders such as nghttp2's expect after a change of the setting. Against
// x/net's encoder, which Huffman-codes each literal it can shorten and
// looks every field up in its tables, the header of a gRPC answer takes
// about 100 ns to encode instead of 560 (BenchmarkEncodeAnswer), for a
// few more bytes on the wire.

// blockStartLocked begins a header block in hbuf.
func (w *wire) blockStartLocked() {
	w.hbuf = w.hbuf[:0]
	if w.sizeUpdate {
		w.hbuf = append(w.hbuf, 0x20) // dynamic table size update: 0
		w.sizeUpdate = false
	}
}

// text is a field's name or value, as a string or as bytes.
type text interface{ ~string | ~[]byte }

// appendField appends the field name: value (name in lower case) to the
// header block.
func appendField[T text](w *wire, name, value T) {
	if i := staticField(name, value); i > 0 {
		w.hbuf = appendInt(w.hbuf, 7, 0x80, uint64(i)) // indexed field
		return
	}
	if i := staticName(name); i > 0 {
		// A literal without indexing, the name indexed.
		w.hbuf = appendInt(w.hbuf, 4, 0x00, uint64(i))
	} else {
		// A literal without indexing, a new name.
		w.hbuf = append(w.hbuf, 0x00)
		w.hbuf = appendString(w.hbuf, name)
	}
	w.hbuf = appendString(w.hbuf, value)
}

// appendInt appends v as an HPACK integer with an n-bit prefix, the first
// byte's other bits from first (RFC 7541, 5.1).
func appendInt(dst []byte, n uint, first byte, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(limit))
	for v -= limit; v >= 128; v >>= 7 {
		dst = append(dst, byte(v&0x7f|0x80))
	}
	return append(dst, byte(v))
}

// appendString appends s as an HPACK string literal, not Huffman-coded
// (RFC 7541, 5.2).
func appendString[T text](dst []byte, s T) []byte {
	dst = appendInt(dst, 7, 0, uint64(len(s)))
	return append(dst, s...)
}

// staticField is the index of name: value in the static table, or 0.
func staticField[T text](name, value T) int {
	switch string(name) {
	case ":method":
		switch string(value) {
		case "GET":
			return 2
		case "POST":
			return 3
		}
	case ":path":
		switch string(value) {
		case "/":
			return 4
		case "/index.html":
			return 5
		}
	case ":scheme":
		switch string(value) {
		case "http":
			return 6
		case "https":
			return 7
		}
	case ":status":
		switch string(value) {
		case "200":
			return 8
		case "204":
			return 9
		case "206":
			return 10
		case "304":
			return 11
		case "400":
			return 12
		case "404":
			return 13
		case "500":
			return 14
		}
	case "accept-encoding":
		if string(value) == "gzip, deflate" {
			return 16
		}
	}
	return 0
}

// staticName is the index of the first entry of the static table named
// name, or 0.
func staticName[T text](name T) int {
	switch string(name) {
	case ":authority":
		return 1
	case ":method":
		return 2
	case ":path":
		return 4
	case ":scheme":
		return 6
	case ":status":
		return 8
	case "accept-charset":
		return 15
	case "accept-encoding":
		return 16
	case "accept-language":
		return 17
	case "accept-ranges":
		return 18
	case "accept":
		return 19
	case "access-control-allow-origin":
		return 20
	case "age":
		return 21
	case "allow":
		return 22
	case "authorization":
		return 23
	case "cache-control":
		return 24
	case "content-disposition":
		return 25
	case "content-encoding":
		return 26
	case "content-language":
		return 27
	case "content-length":
		return 28
	case "content-location":
		return 29
	case "content-range":
		return 30
	case "content-type":
		return 31
	case "cookie":
		return 32
	case "date":
		return 33
	case "etag":
		return 34
	case "expect":
		return 35
	case "expires":
		return 36
	case "from":
		return 37
	case "host":
		return 38
	case "if-match":
		return 39
	case "if-modified-since":
		return 40
	case "if-none-match":
		return 41
	case "if-range":
		return 42
	case "if-unmodified-since":
		return 43
	case "last-modified":
		return 44
	case "link":
		return 45
	case "location":
		return 46
	case "max-forwards":
		return 47
	case "proxy-authenticate":
		return 48
	case "proxy-authorization":
		return 49
	case "range":
		return 50
	case "referer":
		return 51
	case "refresh":
		return 52
	case "retry-after":
		return 53
	case "server":
		return 54
	case "set-cookie":
		return 55
	case "strict-transport-security":
		return 56
	case "transfer-encoding":
		return 57
	case "user-agent":
		return 58
	case "vary":
		return 59
	case "via":
		return 60
	case "www-authenticate":
		return 61
	}
	return 0
}

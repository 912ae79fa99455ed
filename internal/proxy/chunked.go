package proxy

import "errors"

// chunkState follows a chunked body (RFC 9112, section 7.1) as it passes
// unchanged, to find where it ends: its last chunk and trailer section.
type chunkState struct {
	phase  uint8
	size   int64 // bytes left in the current chunk's data
	digits int
	// plain: reframe appends the data alone, without framing, and
	// keeps the trailer section in trailer (for an HTTP/2 stream).
	plain   bool
	trailer []byte
}

const (
	chunkSize uint8 = iota
	chunkExt
	chunkSizeLF
	chunkData
	chunkDataCR
	chunkDataLF
	chunkTrailerStart
	chunkTrailerLine
	chunkEndLF
)

var errChunked = errors.New("malformed chunked body")

// reframe reads b, the next bytes of the body, and appends the same body
// to dst in podpin's framing: each run of chunk data as a chunk of its
// own, without the pod's extensions or chunk sizes; the last chunk and the
// trailer fields as they came. It returns dst, how many of b's bytes
// belong to the body, and whether the body ended there.
func (s *chunkState) reframe(dst, b []byte) ([]byte, int, bool, error) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.phase {
		case chunkSize:
			switch {
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
				if s.digits++; s.digits > 15 {
					return dst, i, false, errChunked
				}
				s.size = s.size<<4 | int64(unhex(c))
			case s.digits > 0 && (c == ';' || c == ' ' || c == '\t'):
				s.phase = chunkExt
			case s.digits > 0 && c == '\r':
				s.phase = chunkSizeLF
			default:
				return dst, i, false, errChunked
			}
		case chunkExt:
			switch c {
			case '\r':
				s.phase = chunkSizeLF
			case '\n':
				return dst, i, false, errChunked
			}
		case chunkSizeLF:
			if c != '\n' {
				return dst, i, false, errChunked
			}
			s.digits = 0
			s.phase = chunkData
			if s.size == 0 {
				s.phase = chunkTrailerStart
				if !s.plain {
					dst = append(dst, "0\r\n"...)
				}
			}
		case chunkData:
			take := min(s.size, int64(len(b)-i))
			if s.plain {
				dst = append(dst, b[i:i+int(take)]...)
			} else {
				dst = appendChunk(dst, b[i:i+int(take)])
			}
			i += int(take) - 1
			if s.size -= take; s.size == 0 {
				s.phase = chunkDataCR
			}
		case chunkDataCR:
			if c != '\r' {
				return dst, i, false, errChunked
			}
			s.phase = chunkDataLF
		case chunkDataLF:
			if c != '\n' {
				return dst, i, false, errChunked
			}
			s.phase = chunkSize
		case chunkTrailerStart:
			dst = s.keep(dst, c)
			s.phase = chunkTrailerLine
			if c == '\r' {
				s.phase = chunkEndLF
			}
		case chunkTrailerLine:
			dst = s.keep(dst, c)
			if c == '\n' {
				s.phase = chunkTrailerStart
			}
		case chunkEndLF:
			if c != '\n' {
				return dst, i, false, errChunked
			}
			return s.keep(dst, c), i + 1, true, nil
		}
	}
	return dst, len(b), false, nil
}

// keep appends c, a byte of the trailer section, to dst, or in plain
// mode to s.trailer.
func (s *chunkState) keep(dst []byte, c byte) []byte {
	if s.plain {
		s.trailer = append(s.trailer, c)
		return dst
	}
	return append(dst, c)
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// appendChunk appends b as one chunk of a chunked body.
func appendChunk(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	var size [16]byte
	i := len(size)
	for n := len(b); ; n >>= 4 {
		i--
		size[i] = hex[n&0xf]
		if n < 16 {
			break
		}
	}
	dst = append(dst, size[i:]...)
	dst = append(dst, "\r\n"...)
	dst = append(dst, b...)
	return append(dst, "\r\n"...)
}

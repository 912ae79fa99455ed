package table

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"

	"github.com/dchest/siphash"
)

// Key is the 128-bit digest of (route, raw key value). The table shards on
// Hi and indexes on Lo; both halves are compared for equality.
type Key struct{ Hi, Lo uint64 }

// Digester turns raw session keys into Keys with SipHash-2-4-128
// (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012).
//
// A Digester is a small value, safe for concurrent use and cheap to copy.
// Its output depends only on the secret and the input, so replicas that
// share a secret compute the same Key for the same session in any process.
// The zero Digester equals NewDigester(nil).
type Digester struct{ k0, k1 uint64 }

// stackDigestMax is the longest route+0+value input hashed from a stack
// buffer with siphash.Hash128; longer inputs are streamed.
const stackDigestMax = 512

// NewDigester returns a Digester keyed by secret: the SipHash key is the
// first 16 bytes of SHA-256(secret), read as two little-endian uint64s.
//
// An empty secret selects a fixed, public all-zero SipHash key. Anyone can
// then compute the Key of a value, and so craft values that land in one
// shard; that is fine for session ids the application issues, but use a
// secret when clients choose their own values.
func NewDigester(secret []byte) Digester {
	if len(secret) == 0 {
		return Digester{}
	}
	sum := sha256.Sum256(secret)
	return Digester{
		k0: binary.LittleEndian.Uint64(sum[0:8]),
		k1: binary.LittleEndian.Uint64(sum[8:16]),
	}
}

// Key returns the digest of the route's bytes, one 0 byte, then value.
// The 0 byte keeps ("ab", "c") and ("a", "bc") apart as long as routes
// contain no 0 byte. Key does not allocate, whatever the input length.
func (d Digester) Key(route string, value []byte) Key {
	n := len(route) + 1 + len(value)
	if n <= stackDigestMax {
		var buf [stackDigestMax]byte
		c := copy(buf[:], route)
		buf[c] = 0
		copy(buf[c+1:], value)
		hi, lo := siphash.Hash128(d.k0, d.k1, buf[:n])
		return Key{Hi: hi, Lo: lo}
	}
	s := newSipStream(d.k0, d.k1)
	s.writeString(route)
	s.writeByte(0)
	s.write(value)
	hi, lo := s.sum128()
	return Key{Hi: hi, Lo: lo}
}

// sipStream computes SipHash-2-4 with 128-bit output over input written in
// pieces. It holds at most 7 pending bytes, so it needs no buffer and does
// not allocate. Its output equals siphash.Hash128 of the concatenation.
type sipStream struct {
	v0, v1, v2, v3 uint64
	tail           uint64 // pending bytes, little endian
	ntail          int    // number of pending bytes, 0 to 7
	n              uint64 // total bytes written
}

func newSipStream(k0, k1 uint64) sipStream {
	return sipStream{
		v0: k0 ^ 0x736f6d6570736575,
		v1: k1 ^ 0x646f72616e646f6d ^ 0xee,
		v2: k0 ^ 0x6c7967656e657261,
		v3: k1 ^ 0x7465646279746573,
	}
}

// sipRound is one SipRound. It works on values rather than on a sipStream
// so that the state stays in registers.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// block compresses one 8-byte message word with two SipRounds.
func (s *sipStream) block(m uint64) {
	v0, v1, v2, v3 := s.v0, s.v1, s.v2, s.v3^m
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	s.v0, s.v1, s.v2, s.v3 = v0^m, v1, v2, v3
}

func (s *sipStream) writeByte(c byte) {
	s.tail |= uint64(c) << (8 * s.ntail)
	s.ntail++
	s.n++
	if s.ntail == 8 {
		s.block(s.tail)
		s.tail, s.ntail = 0, 0
	}
}

func (s *sipStream) writeString(p string) {
	for i := 0; i < len(p); i++ {
		s.writeByte(p[i])
	}
}

func (s *sipStream) write(p []byte) {
	for s.ntail != 0 && len(p) > 0 {
		s.writeByte(p[0])
		p = p[1:]
	}
	if len(p) >= 8 {
		s.n += uint64(len(p) &^ 7)
		v0, v1, v2, v3 := s.v0, s.v1, s.v2, s.v3
		for ; len(p) >= 8; p = p[8:] {
			m := binary.LittleEndian.Uint64(p)
			v3 ^= m
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
			v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
			v0 ^= m
		}
		s.v0, s.v1, s.v2, s.v3 = v0, v1, v2, v3
	}
	for _, c := range p {
		s.writeByte(c)
	}
}

// sum128 returns the two output words in the order siphash.Hash128 does.
func (s *sipStream) sum128() (uint64, uint64) {
	s.block(s.n<<56 | s.tail)
	v0, v1, v2, v3 := s.v0, s.v1, s.v2^0xee, s.v3
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	r0 := v0 ^ v1 ^ v2 ^ v3
	v1 ^= 0xdd
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return r0, v0 ^ v1 ^ v2 ^ v3
}

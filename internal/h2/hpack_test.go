package h2

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestHeaderBlocksDecodeAsWritten: x/net's HPACK decoder reads podpin's
// header blocks back field for field: static entries, indexed names, new
// names, empty values and values of every length around the integer
// prefixes' limits; the table size update starts the first block, and the
// first after the peer's SETTINGS_HEADER_TABLE_SIZE, and no other.
func TestHeaderBlocksDecodeAsWritten(t *testing.T) {
	var w wire
	w.init(nil, nil, nil)
	dec := hpack.NewDecoder(4096, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{":status", ":method", ":path", ":scheme", ":authority", "content-type", "accept-encoding", "set-cookie", "www-authenticate", "x-session", "grpc-status", strings.Repeat("n", 200)}
	values := []string{"", "200", "204", "418", "GET", "PUT", "/", "/index.html", "http", "https", "gzip, deflate", "application/grpc"}
	for _, n := range []int{1, 14, 15, 126, 127, 128, 255, 16383, 16384, 70000} {
		values = append(values, strings.Repeat("v", n))
	}
	for block := range 200 {
		var want []hpack.HeaderField
		w.blockStartLocked()
		if block == 0 && (len(w.hbuf) != 1 || w.hbuf[0] != 0x20) {
			t.Fatalf("the first block starts with %x, want the table size update 20", w.hbuf)
		}
		if block == 100 {
			w.sizeUpdate = true // as after the peer's SETTINGS_HEADER_TABLE_SIZE
			w.blockStartLocked()
		}
		if block > 0 && block != 100 && len(w.hbuf) != 0 {
			t.Fatalf("block %d starts with %x, want nothing", block, w.hbuf)
		}
		for range 1 + rng.IntN(8) {
			f := hpack.HeaderField{Name: names[rng.IntN(len(names))], Value: values[rng.IntN(len(values))]}
			w.appendField(f.Name, f.Value)
			want = append(want, f)
		}
		got, err := dec.DecodeFull(w.hbuf)
		if err != nil {
			t.Fatalf("block %d: %v", block, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("block %d: decoded %v, want %v", block, got, want)
		}
		for _, f := range got {
			if f.Sensitive {
				t.Fatalf("block %d: %s never-indexed, want without indexing", block, f.Name)
			}
		}
	}
	// The first entry of the dynamic table, were there one.
	if got, err := dec.DecodeFull([]byte{0x80 | 62}); err == nil {
		t.Errorf("the peer's dynamic table holds %v, want nothing", got)
	}
}

// BenchmarkEncodeAnswer is the header block of a gRPC answer.
func BenchmarkEncodeAnswer(b *testing.B) {
	var w wire
	w.init(nil, nil, nil)
	fields := []HeaderField{
		{Name: "content-type", Value: "application/grpc"},
		{Name: "x-session", Value: "hot-00042"},
		{Name: "x-podpin-pod", Value: "g-2"},
		{Name: "grpc-accept-encoding", Value: "gzip"},
		{Name: "date", Value: "Fri, 04 Dec 2026 17:50:00 GMT"},
	}
	b.ReportAllocs()
	for b.Loop() {
		w.blockStartLocked()
		w.appendField(":status", "200")
		w.encodeLocked(fields)
	}
}

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
			appendField(&w, f.Name, f.Value)
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
		appendField(&w, ":status", "200")
		w.encodeLocked(fields)
	}
}

// Fields given as bytes are encoded as the same fields given as strings:
// names in lower case, connection-specific fields and a TE other than
// "trailers" left out; and encoding them allocates nothing.
func TestFieldsAsBytesEncodeAsStrings(t *testing.T) {
	fields := []HeaderField{
		{Name: "Content-Type", Value: "text/html"},
		{Name: "Connection", Value: "keep-alive"},
		{Name: "TE", Value: "gzip"},
		{Name: "te", Value: "trailers"},
		{Name: "Set-Cookie", Value: "a=1"},
		{Name: "X-" + strings.Repeat("Long", 30), Value: "v"},
		{Name: "Content-Length", Value: "5"},
	}
	seq := func(yield func(name, value []byte) bool) {
		for _, f := range fields {
			if !yield([]byte(f.Name), []byte(f.Value)) {
				return
			}
		}
	}
	var a, b wire
	a.init(nil, nil, nil)
	b.init(nil, nil, nil)
	a.blockStartLocked()
	a.encodeLocked(fields)
	b.blockStartLocked()
	b.encodeBytesLocked(seq)
	if string(a.hbuf) != string(b.hbuf) {
		t.Fatalf("as bytes: %x\nas strings: %x", b.hbuf, a.hbuf)
	}
	got, err := hpack.NewDecoder(4096, nil).DecodeFull(b.hbuf)
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, f := range got {
		text = append(text, f.Name+": "+f.Value)
	}
	if want := "content-type: text/html, te: trailers, set-cookie: a=1, x-" + strings.Repeat("long", 30) + ": v, content-length: 5"; strings.Join(text, ", ") != want {
		t.Errorf("decoded %s, want %s", strings.Join(text, ", "), want)
	}
	names := [][]byte{[]byte("Content-Type"), []byte("Date"), []byte("X-Podpin-Pod")}
	values := [][]byte{[]byte("text/html"), []byte("Fri, 04 Dec 2026 17:50:00 GMT"), []byte("web-0")}
	short := func(yield func(name, value []byte) bool) {
		for i := range names {
			if !yield(names[i], values[i]) {
				return
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		b.blockStartLocked()
		b.encodeBytesLocked(short)
	}); n != 0 {
		t.Errorf("encoding fields as bytes allocates %v times, want none", n)
	}
}

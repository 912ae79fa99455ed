// Package snapshot saves stick tables to a file and reads them back, so a
// restart, an upgrade or a crash loses at most the sessions made since the
// last save.
//
// A file is written whole to a temporary name, synced and renamed over the
// old one, so a reader sees the old file or the new one, never a mix. It is
// read whole and checked (magic, version, checksum, structure) before any of
// it is used: a corrupt or foreign file is an error and nothing of it loads.
//
// Format (integers are unsigned varints unless noted):
//
//	magic "podpin-state\n", version byte 1
//	fingerprint: 16 bytes naming the key digest in use (a file written under
//	  another secret holds digests that can never match)
//	route count; per route: name, pod name count, pod names, entry count;
//	  per entry: digest (16 bytes), pod index, created, last used (Unix
//	  seconds), hits, raw key (length-prefixed; empty when not kept)
//	CRC-32C of everything before it, 4 bytes little endian
//
// A Keeper does this for a running podpin: it restores the tables at start
// (a missing, corrupt or foreign file is logged and ignored), saves them
// every Interval (state.interval, default 10s) and when asked at shutdown,
// and counts saves (podpin_state_saves_total) through SaveCounter. It
// reaches the tables through the small Tables interface:
//
//	k := snapshot.NewKeeper(snapshot.KeeperOptions{File: "/var/lib/podpin/state", Interval: 10 * time.Second, Tables: proxy})
//	k.Restore()
//	go k.Run(ctx)
//	// at shutdown, once requests are done:
//	k.Save()
package snapshot

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/podpin/podpin/internal/table"
)

const (
	magic   = "podpin-state\n"
	version = 1
	// maxString bounds a name or raw key, so a corrupt length cannot make
	// the reader allocate without limit.
	maxString = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Route is one route's table.
type Route struct {
	Name    string
	Entries []table.Entry
}

// State is a whole snapshot.
type State struct {
	Fingerprint [16]byte
	Routes      []Route
}

// Encode writes s to w.
func Encode(w io.Writer, s *State) error {
	h := crc32.New(castagnoli)
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	e := encoder{w: bw}
	e.bytes([]byte(magic))
	e.bytes([]byte{version})
	e.bytes(s.Fingerprint[:])
	e.uint(uint64(len(s.Routes)))
	for _, r := range s.Routes {
		e.string(r.Name)
		index := map[string]uint64{}
		var pods []string
		for _, en := range r.Entries {
			if _, ok := index[en.Pod]; !ok {
				index[en.Pod] = uint64(len(pods))
				pods = append(pods, en.Pod)
			}
		}
		e.uint(uint64(len(pods)))
		for _, p := range pods {
			e.string(p)
		}
		e.uint(uint64(len(r.Entries)))
		var k [16]byte
		for _, en := range r.Entries {
			binary.BigEndian.PutUint64(k[:8], en.Key.Hi)
			binary.BigEndian.PutUint64(k[8:], en.Key.Lo)
			e.bytes(k[:])
			e.uint(index[en.Pod])
			e.uint(uint64(max(en.Created.Unix(), 0)))
			e.uint(uint64(max(en.LastUsed.Unix(), 0)))
			e.uint(en.Hits)
			e.string(en.Raw)
		}
	}
	if e.err != nil {
		return e.err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], h.Sum32())
	_, err := w.Write(sum[:])
	return err
}

// Decode reads a whole snapshot. Any defect is an error wrapping ErrCorrupt.
func Decode(data []byte) (*State, error) {
	if len(data) < len(magic)+1+16+4 || !bytes.HasPrefix(data, []byte(magic)) {
		return nil, fmt.Errorf("%w: no podpin header", ErrCorrupt)
	}
	if v := data[len(magic)]; v != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, version)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := decoder{b: body[len(magic)+1:]}
	s := &State{}
	copy(s.Fingerprint[:], d.next(16))
	nr := d.count(1)
	for range nr {
		r := Route{Name: d.string()}
		pods := make([]string, d.count(1))
		for i := range pods {
			pods[i] = d.string()
		}
		n := d.count(21) // the smallest entry: digest and five one-byte fields
		if d.err != nil {
			break
		}
		r.Entries = make([]table.Entry, 0, n)
		for range n {
			k := d.next(16)
			var en table.Entry
			if len(k) == 16 {
				en.Key = table.Key{Hi: binary.BigEndian.Uint64(k[:8]), Lo: binary.BigEndian.Uint64(k[8:])}
			}
			pi := d.uint()
			if pi >= uint64(len(pods)) {
				d.fail("pod index out of range")
				break
			}
			en.Pod = pods[pi]
			en.Created = time.Unix(int64(d.uint()&(1<<62-1)), 0).UTC()
			en.LastUsed = time.Unix(int64(d.uint()&(1<<62-1)), 0).UTC()
			en.Hits = d.uint()
			en.Raw = d.string()
			r.Entries = append(r.Entries, en)
		}
		s.Routes = append(s.Routes, r)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// Save writes s to path atomically: a temporary file in the same folder,
// synced, then renamed over path.
func Save(path string, s *State) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := Encode(tmp, s); err != nil {
		tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

// Load reads the snapshot at path. A missing file is os.ErrNotExist.
func Load(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

type encoder struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) uint(v uint64) {
	n := binary.PutUvarint(e.buf[:], v)
	e.bytes(e.buf[:n])
}

func (e *encoder) string(s string) {
	e.uint(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, why)
	}
	d.b = nil
}

func (d *decoder) next(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.fail("truncated")
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length whose items take at least size bytes each, failing
// when the rest of the input cannot hold that many.
func (d *decoder) count(size int) int {
	n := d.uint()
	if n > uint64(len(d.b)/size) {
		d.fail("count larger than the file")
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uint()
	if n > maxString {
		d.fail("string too long")
		return ""
	}
	return string(d.next(int(n)))
}

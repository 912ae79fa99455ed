package snapshot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/table"
)

func sample() *State {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	return &State{
		Fingerprint: [16]byte{1, 2, 3},
		Routes: []Route{
			{Name: "default", Entries: []table.Entry{
				{Key: table.Key{Hi: 1, Lo: 2}, Pod: "web-0", Created: t0, LastUsed: t0.Add(time.Minute), Hits: 7},
				{Key: table.Key{Hi: 3, Lo: 4}, Pod: "web-1", Created: t0, LastUsed: t0, Hits: 0, Raw: "alice"},
				{Key: table.Key{Hi: 5, Lo: 6}, Pod: "web-0", Created: t0, LastUsed: t0, Hits: 1 << 40},
			}},
			{Name: "empty"},
		},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := sample()
	want.Routes[1].Entries = []table.Entry{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDefectiveFilesAreRejectedWhole(t *testing.T) {
	var buf bytes.Buffer
	Encode(&buf, sample())
	good := buf.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"an empty file", nil},
		{"another program's file", []byte("{\"sessions\": []}\n and some more bytes to pass the size check")},
		{"a newer version", flip(len(magic))},
		{"a flipped byte in an entry", flip(len(good) - 20)},
		{"a truncated file", good[:len(good)-9]},
		{"a flipped checksum", flip(len(good) - 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Decode(c.data)
			if !errors.Is(err, ErrCorrupt) || s != nil {
				t.Errorf("got %v, %v; want nil and ErrCorrupt", s, err)
			}
		})
	}
}

func TestSaveReplacesTheFileAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := Save(path, sample()); err != nil {
		t.Fatal(err)
	}
	s := sample()
	s.Routes = s.Routes[:1]
	if err := Save(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Routes) != 1 {
		t.Errorf("got %d routes, want the second save's 1", len(got.Routes))
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Errorf("folder holds %d files, want only the state file (no temporaries)", len(files))
	}
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
}

// FuzzDecode checks that no input crashes the decoder, that whatever it
// accepts encodes back to the same bytes, and that a valid file with any
// byte changed is refused.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, sample())
	f.Add(buf.Bytes())
	f.Add([]byte(magic + "\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var again bytes.Buffer
		if err := Encode(&again, s); err != nil {
			t.Fatal(err)
		}
		s2, err := Decode(again.Bytes())
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("round trip changed the state")
		}
	})
}

package proxy

import (
	"encoding/binary"

	"github.com/podpin/podpin/internal/snapshot"
	"github.com/podpin/podpin/internal/table"
)

// fingerprint names the key digest in use, so a snapshot written under
// another secret is recognised.
func (p *Proxy) fingerprint() [16]byte {
	k := p.digest.Key("podpin", []byte("state fingerprint"))
	var f [16]byte
	binary.BigEndian.PutUint64(f[:8], k.Hi)
	binary.BigEndian.PutUint64(f[8:], k.Lo)
	return f
}

// Snapshot copies every route's live table entries.
func (p *Proxy) Snapshot() *snapshot.State {
	s := &snapshot.State{Fingerprint: p.fingerprint()}
	for _, r := range p.state.Load().routes {
		sr := snapshot.Route{Name: r.Name, Entries: make([]table.Entry, 0, r.Table.Len())}
		r.Table.Range(func(e table.Entry) bool {
			sr.Entries = append(sr.Entries, e)
			return true
		})
		s.Routes = append(s.Routes, sr)
	}
	return s
}

// Restore loads a snapshot's entries into the routes of the same name,
// skipping entries that expired meanwhile. It returns how many it loaded and
// how many it dropped (expired, or of routes that no longer exist).
func (p *Proxy) Restore(s *snapshot.State) (loaded, dropped int, err error) {
	if s.Fingerprint != p.fingerprint() {
		return 0, 0, errForeignDigest
	}
	for _, sr := range s.Routes {
		r, err := p.route(sr.Name)
		if err != nil {
			dropped += len(sr.Entries)
			continue
		}
		for _, e := range sr.Entries {
			if r.Table.Restore(e) {
				loaded++
			} else {
				dropped++
			}
		}
	}
	return loaded, dropped, nil
}

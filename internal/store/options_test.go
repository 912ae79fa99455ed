package store

import (
	"crypto/x509"
	"testing"
)

func TestOptionsBecomeClientSettings(t *testing.T) {
	roots := x509.NewCertPool()
	for _, tt := range []struct {
		name     string
		o        Options
		addrs    []string
		password string
		db       int
		tls      bool
	}{
		{name: "a URL gives the address, database and password", o: Options{URL: "redis://u:urlpw@10.0.0.1:6380/3"}, addrs: []string{"10.0.0.1:6380"}, password: "urlpw", db: 3},
		{name: "a password given replaces the URL's", o: Options{URL: "redis://u:urlpw@10.0.0.1:6380", Password: "filepw"}, addrs: []string{"10.0.0.1:6380"}, password: "filepw"},
		{name: "rediss turns TLS on", o: Options{URL: "rediss://10.0.0.1:6380", RootCAs: roots}, addrs: []string{"10.0.0.1:6380"}, tls: true},
		{name: "addresses without a URL", o: Options{Addrs: []string{"s-0:26379", "s-1:26379"}, MasterName: "main", DB: 2, Password: "pw", TLS: true}, addrs: []string{"s-0:26379", "s-1:26379"}, password: "pw", db: 2, tls: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uo, err := universalOptions(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(uo.Addrs) != len(tt.addrs) || uo.Addrs[0] != tt.addrs[0] || uo.Password != tt.password || uo.DB != tt.db {
				t.Errorf("got addrs %v, password %q, db %d; want %v, %q, %d", uo.Addrs, uo.Password, uo.DB, tt.addrs, tt.password, tt.db)
			}
			if (uo.TLSConfig != nil) != tt.tls || tt.tls && uo.TLSConfig.RootCAs != tt.o.RootCAs {
				t.Errorf("got TLS %+v, want TLS %v with the roots given", uo.TLSConfig, tt.tls)
			}
			if uo.MaxRetries != -1 {
				t.Errorf("got %d retries, want none: a slow Redis costs a request one timeout", uo.MaxRetries)
			}
		})
	}
}

func TestZeroOptionsTakeTheDefaults(t *testing.T) {
	s, err := New(Options{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.prefix != DefaultKeyPrefix || s.channel != DefaultKeyPrefix+"invalidate" || s.timeout != DefaultTimeout {
		t.Errorf("got prefix %q, channel %q, timeout %v; want %q, %q, %v", s.prefix, s.channel, s.timeout, DefaultKeyPrefix, DefaultKeyPrefix+"invalidate", DefaultTimeout)
	}
	if _, err := New(Options{URL: "redis://127.0.0.1:1/notadb"}); err == nil {
		t.Error("a URL with a bad database: got no error")
	}
}

package adminclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/podpin/podpin/internal/admin"
	"github.com/podpin/podpin/internal/adminclient"
	"github.com/podpin/podpin/internal/admintest"
)

func newClient(t *testing.T, o adminclient.Options) *adminclient.Client {
	t.Helper()
	c, err := adminclient.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientReadsAndEditsSessions(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, adminclient.Options{Address: admintest.Start(t, "").Listener.Addr().String(), UserAgent: "podpin-test"})
	keys := []string{"alice", "bob", "carol/1?x=%2F", "dave"}
	for i, k := range keys {
		s, err := c.Pin(ctx, "default", k, fmt.Sprintf("web-%d", i%2))
		if err != nil || s.Key != k || s.Pod != fmt.Sprintf("web-%d", i%2) || len(s.Digest) != 32 {
			t.Fatalf("pin %q: got %+v, %v", k, s, err)
		}
	}
	if s, err := c.Session(ctx, "default", "carol/1?x=%2F"); err != nil || s.Pod != "web-0" {
		t.Errorf("session of carol: got %+v, %v; want it on web-0", s, err)
	}

	page, err := c.Sessions(ctx, "default", admin.SessionQuery{Limit: 1})
	if err != nil || len(page.Sessions) != 1 || page.Next == "" {
		t.Fatalf("a page of one: got %+v, %v; want one session and a cursor", page, err)
	}
	all, err := c.AllSessions(ctx, "default", admin.SessionQuery{Limit: 1})
	if err != nil || len(all.Sessions) != len(keys) || all.Next != "" {
		t.Fatalf("every page: got %+v, %v; want the %d sessions and no cursor", all, err, len(keys))
	}
	seen := map[string]bool{}
	for _, s := range all.Sessions {
		seen[s.Key] = true
	}
	for _, k := range keys {
		if !seen[k] {
			t.Errorf("every page: %q missing from %+v", k, all.Sessions)
		}
	}
	if all, err := c.AllSessions(ctx, "default", admin.SessionQuery{Pod: "web-1", Prefix: "b"}); err != nil || len(all.Sessions) != 1 || all.Sessions[0].Key != "bob" {
		t.Errorf("filtered by pod and prefix: got %+v, %v; want bob alone", all, err)
	}

	if err := c.Unpin(ctx, "default", "bob"); err != nil {
		t.Errorf("unpin bob: %v", err)
	}
	cleared, err := c.Clear(ctx, "default", "web-0")
	if err != nil || cleared.Cleared != 2 {
		t.Errorf("clear web-0: got %+v, %v; want 2 cleared", cleared, err)
	}
	pods, err := c.Pods(ctx, "default")
	if err != nil || len(pods.Pods) != 2 || pods.Pods[0].Sessions != 0 || pods.Pods[1].Sessions != 1 {
		t.Errorf("pods: got %+v, %v; want web-0 with none, web-1 with dave", pods, err)
	}
	routes, err := c.Routes(ctx)
	if err != nil || len(routes.Routes) != 1 || routes.Routes[0].Table.Entries != 1 {
		t.Errorf("routes: got %+v, %v; want the default route with one entry", routes, err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	open := newClient(t, adminclient.Options{Address: admintest.Start(t, "").Listener.Addr().String()})
	locked := admintest.Start(t, "s3cret").Listener.Addr().String()
	for _, tt := range []struct {
		name     string
		call     func() error
		wantCode int // 0: no answer
		want     string
	}{
		{"an unknown route is the API's 404", func() error { _, err := open.Pods(ctx, "nope"); return err }, 404, `no such route: "nope"`},
		{"an unpinned key is the API's 404", func() error { return open.Unpin(ctx, "default", "zed") }, 404, "key is not pinned"},
		{"an unknown pod is the API's 400", func() error { _, err := open.Pin(ctx, "default", "k", "web-9"); return err }, 400, `pod: no such pod in the route: "web-9"`},
		{"a bad limit is the API's 400", func() error {
			_, err := open.Sessions(ctx, "default", admin.SessionQuery{Limit: 5000})
			return err
		}, 400, `limit: "5000" must be a number from 1 to 1000`},
		{"a missing token is the API's 401", func() error {
			_, err := newClient(t, adminclient.Options{Address: locked}).Routes(ctx)
			return err
		}, 401, "missing or wrong bearer token"},
		{"the token opens the API", func() error {
			_, err := newClient(t, adminclient.Options{Address: locked, Token: "s3cret"}).Routes(ctx)
			return err
		}, 0, ""},
		{"nothing listening names where the client looked", func() error {
			_, err := newClient(t, adminclient.Options{Address: "https://127.0.0.1:1/ignored"}).Routes(ctx)
			return err
		}, 0, "cannot reach the admin API at https://127.0.0.1:1: connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var se *adminclient.StatusError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.want == "":
			case err == nil || err.Error() != tt.want:
				t.Errorf("got error %v, want %q", err, tt.want)
			case tt.wantCode != 0 && (!errors.As(err, &se) || se.Code != tt.wantCode):
				t.Errorf("got %#v, want a StatusError with code %d", err, tt.wantCode)
			case tt.wantCode == 0 && !errors.Is(err, adminclient.ErrUnreachable):
				t.Errorf("got %v, want ErrUnreachable", err)
			}
		})
	}
}

func TestNewRefusesWhatIsNotAnAddress(t *testing.T) {
	for _, addr := range []string{"", "ftp://127.0.0.1:21", "http://", "http://[::1"} {
		if _, err := adminclient.New(adminclient.Options{Address: addr}); !errors.Is(err, adminclient.ErrAddress) {
			t.Errorf("New(%q): got %v, want ErrAddress", addr, err)
		}
	}
}

func TestClientSendsItsUserAgent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("User-Agent")
		w.Write([]byte(`{"routes": []}`))
	}))
	defer srv.Close()
	c := newClient(t, adminclient.Options{Address: strings.TrimPrefix(srv.URL, "http://"), UserAgent: "podpin-cli/v9"})
	if _, err := c.Routes(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ua := <-got; ua != "podpin-cli/v9" {
		t.Errorf("got User-Agent %q, want podpin-cli/v9", ua)
	}
}

// Package adminclient talks to a running podpin's admin API: its routes,
// pods and sessions, with listings followed page by page. It reads and
// writes the API's JSON through the admin package's types. podpin's
// commands for operators (podpin sessions, pods, routes) are built on it.
//
//	c, err := adminclient.New(adminclient.Options{Address: "127.0.0.1:9901"})
//	page, err := c.Sessions(ctx, "default", admin.SessionQuery{Pod: "web-1"})
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/podpin/podpin/internal/admin"
)

// Options say which admin API to talk to, and how.
type Options struct {
	// Address is the admin listener: host:port, or http://host:port or
	// https://host:port (a path is ignored). Required.
	Address string
	// Token is sent as "Authorization: Bearer <token>". Empty: no token.
	Token string
	// UserAgent names the client in its requests. Empty: Go's default.
	UserAgent string
	// Timeout bounds each request, its answer included. Default 30s.
	Timeout time.Duration
}

// DefaultTimeout is the default of Options.Timeout.
const DefaultTimeout = 30 * time.Second

// maxAnswer bounds the answer body read.
const maxAnswer = 64 << 20

// Client is a client of one admin API. Safe for concurrent use.
type Client struct {
	base      string // scheme://host:port
	token     string
	userAgent string
	http      *http.Client
}

// New returns a client of the API at o.Address. It does not connect: an
// unreachable API shows in the first request.
func New(o Options) (*Client, error) {
	base := o.Address
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, ErrAddress
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return &Client{
		base:      u.Scheme + "://" + u.Host,
		token:     o.Token,
		userAgent: o.UserAgent,
		http:      &http.Client{Timeout: o.Timeout},
	}, nil
}

// Routes returns every route, in configuration order.
func (c *Client) Routes(ctx context.Context) (admin.RouteList, error) {
	var list admin.RouteList
	return list, c.do(ctx, http.MethodGet, "/api/v1/routes", nil, &list)
}

// Pods returns the pods of a route.
func (c *Client) Pods(ctx context.Context, route string) (admin.PodList, error) {
	var list admin.PodList
	return list, c.do(ctx, http.MethodGet, routePath(route)+"/pods", nil, &list)
}

// Sessions returns one page of a route's sessions: q's filters, from
// q.Cursor.
func (c *Client) Sessions(ctx context.Context, route string, q admin.SessionQuery) (admin.SessionPage, error) {
	var page admin.SessionPage
	return page, c.do(ctx, http.MethodGet, routePath(route)+"/sessions?"+q.Values().Encode(), nil, &page)
}

// AllSessions follows a listing from q.Cursor to its end, q.Limit sessions
// a request, and returns every session in one page with no Next.
func (c *Client) AllSessions(ctx context.Context, route string, q admin.SessionQuery) (admin.SessionPage, error) {
	all := admin.SessionPage{Sessions: []admin.Session{}}
	for {
		page, err := c.Sessions(ctx, route, q)
		if err != nil {
			return admin.SessionPage{}, err
		}
		all.Sessions = append(all.Sessions, page.Sessions...)
		if page.Next == "" {
			return all, nil
		}
		q.Cursor = page.Next
	}
}

// Session returns the session of a raw key.
func (c *Client) Session(ctx context.Context, route, key string) (admin.Session, error) {
	var s admin.Session
	return s, c.do(ctx, http.MethodGet, sessionPath(route, key), nil, &s)
}

// Pin pins a raw key to pod and returns its session.
func (c *Client) Pin(ctx context.Context, route, key, pod string) (admin.Session, error) {
	var s admin.Session
	return s, c.do(ctx, http.MethodPut, sessionPath(route, key), admin.PinRequest{Pod: pod}, &s)
}

// Unpin removes the session of a raw key.
func (c *Client) Unpin(ctx context.Context, route, key string) error {
	return c.do(ctx, http.MethodDelete, sessionPath(route, key), nil, nil)
}

// Clear removes every session pinned to pod and says how many there were.
func (c *Client) Clear(ctx context.Context, route, pod string) (admin.Cleared, error) {
	var res admin.Cleared
	path := routePath(route) + "/sessions?" + url.Values{"pod": {pod}}.Encode()
	return res, c.do(ctx, http.MethodDelete, path, nil, &res)
}

// routePath is the API path of a route, with its name escaped.
func routePath(route string) string {
	return "/api/v1/routes/" + url.PathEscape(route)
}

func sessionPath(route, key string) string {
	return routePath(route) + "/sessions/" + url.PathEscape(key)
}

// do sends a request to the API, in (when not nil) as JSON, and decodes a
// 2xx answer into out (when not nil). Any other answer is a *StatusError
// with the API's one-line message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.reachError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &StatusError{Code: resp.StatusCode, Message: resp.Status}
		var eb admin.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			e.Message = eb.Error
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding the answer of %s: %w", path, err)
		}
	}
	return nil
}

// reachError turns a transport failure into one line that says where the
// client looked.
func (c *Client) reachError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && errors.Is(err, syscall.ECONNREFUSED) {
		err = errors.New("connection refused")
	}
	return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
}

package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/podpin/podpin/internal/proxy"
)

// maxBody bounds a request body of the API.
const maxBody = 64 << 10

// routeAPI mounts the JSON API. Each path takes its methods explicitly, so
// a GET never reaches a handler that changes state.
func (s *Server) routeAPI() {
	s.mux.Handle("/api/", methods{}) // unknown API paths: JSON 404
	s.mux.Handle("/api/v1/routes", methods{http.MethodGet: s.listRoutes})
	s.mux.Handle("/api/v1/routes/{route}", methods{http.MethodGet: s.getRoute})
	s.mux.Handle("/api/v1/routes/{route}/pods", methods{http.MethodGet: s.listPods})
	s.mux.Handle("/api/v1/routes/{route}/sessions", methods{
		http.MethodGet:    s.listSessions,
		http.MethodDelete: s.clearSessions,
	})
	s.mux.Handle("/api/v1/routes/{route}/sessions/{key}", methods{
		http.MethodGet:    s.getSession,
		http.MethodPut:    s.pinSession,
		http.MethodDelete: s.unpinSession,
	})
}

// methods dispatches a path by method, answering 405 in JSON otherwise. An
// empty methods is a JSON 404.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(m) == 0 {
		writeError(w, http.StatusNotFound, "no such API path: "+r.URL.Path)
		return
	}
	if h, ok := m[r.Method]; ok {
		h(w, r)
		return
	}
	allow := make([]string, 0, len(m))
	for name := range m {
		allow = append(allow, name)
	}
	slices.Sort(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed here; allowed: %s", r.Method, strings.Join(allow, ", ")))
}

func (s *Server) listRoutes(w http.ResponseWriter, _ *http.Request) {
	routes := s.proxy.Routes()
	list := RouteList{Routes: make([]Route, len(routes))}
	for i, rs := range routes {
		list.Routes[i] = routeOf(rs)
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getRoute(w http.ResponseWriter, r *http.Request) {
	rs, err := s.proxy.Route(r.PathValue("route"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, routeOf(rs))
}

func (s *Server) listPods(w http.ResponseWriter, r *http.Request) {
	route := r.PathValue("route")
	rs, err := s.proxy.Route(route)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PodList{Route: route, Pods: podsOf(rs.Pods)})
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	route := r.PathValue("route")
	rs, err := s.proxy.Route(route)
	if err != nil {
		s.fail(w, err)
		return
	}
	q, err := ParseSessionQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Prefix != "" && !rs.Table.KeepRawKeys {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("prefix: route %q does not keep raw keys (table.keepRawKeys), so it cannot filter by them", route))
		return
	}
	pq, err := q.proxyQuery(s.now())
	if err != nil {
		s.fail(w, err)
		return
	}
	page, err := s.proxy.Sessions(route, pq)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(page))
}

func (s *Server) clearSessions(w http.ResponseWriter, r *http.Request) {
	route := r.PathValue("route")
	if _, err := s.proxy.Route(route); err != nil {
		s.fail(w, err)
		return
	}
	v := r.URL.Query()
	for name := range v {
		if name != "pod" {
			writeError(w, http.StatusBadRequest, name+": unknown parameter; clearing takes only pod")
			return
		}
	}
	pod := v.Get("pod")
	if pod == "" {
		writeError(w, http.StatusBadRequest, "pod: is required (the pod whose sessions are cleared)")
		return
	}
	n, err := s.proxy.ClearPod(route, pod)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("sessions cleared", "route", route, "pod", pod, "cleared", n)
	writeJSON(w, http.StatusOK, Cleared{Cleared: n})
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	e, err := s.proxy.Session(r.PathValue("route"), r.PathValue("key"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionOf(e))
}

func (s *Server) pinSession(w http.ResponseWriter, r *http.Request) {
	route := r.PathValue("route")
	if _, err := s.proxy.Route(route); err != nil {
		s.fail(w, err)
		return
	}
	var body PinRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+jsonProblem(err))
		return
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		writeError(w, http.StatusBadRequest, "body: want one JSON object such as {\"pod\": \"web-1\"}")
		return
	}
	if body.Pod == "" {
		writeError(w, http.StatusBadRequest, "pod: is required, as in {\"pod\": \"web-1\"}")
		return
	}
	e, err := s.proxy.Pin(route, r.PathValue("key"), body.Pod)
	if err != nil {
		s.fail(w, err)
		return
	}
	sess := sessionOf(e)
	// The key itself is never logged: it may be a credential.
	s.log.Info("session pinned", "route", route, "pod", body.Pod, "digest", sess.Digest)
	writeJSON(w, http.StatusOK, sess)
}

// jsonProblem describes a decoding error in one line without echoing the
// body, which may hold anything.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return "is empty; want {\"pod\": \"web-1\"}"
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type)
	case errors.As(err, &tooBig):
		return fmt.Sprintf("larger than %d bytes", tooBig.Limit)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "; want {\"pod\": \"web-1\"}"
	}
	return "invalid JSON; want {\"pod\": \"web-1\"}"
}

func (s *Server) unpinSession(w http.ResponseWriter, r *http.Request) {
	route := r.PathValue("route")
	ok, err := s.proxy.Unpin(route, r.PathValue("key"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if !ok {
		s.fail(w, proxy.ErrNoSuchSession)
		return
	}
	s.log.Info("session unpinned", "route", route)
	w.WriteHeader(http.StatusNoContent)
}

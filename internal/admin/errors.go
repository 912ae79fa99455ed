package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/podpin/podpin/internal/proxy"
)

// errBadCursor means a listing's cursor is not one the API gave.
var errBadCursor = errors.New("invalid cursor")

// fail answers an error of the inspection API with its status: 404 for an
// unknown route or an unpinned key, 400 for an unknown pod or a bad cursor,
// 500 (logged, not shown) for anything else.
func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, proxy.ErrNoSuchRoute), errors.Is(err, proxy.ErrNoSuchSession):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, proxy.ErrNoSuchPod):
		writeError(w, http.StatusBadRequest, "pod: "+err.Error())
	case errors.Is(err, errBadCursor):
		writeError(w, http.StatusBadRequest, "cursor: "+err.Error()+"; pass the next value of the previous page")
	default:
		s.log.Error("admin request failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal error; see podpin's log")
	}
}

// writeError answers {"error": msg}, msg on one line.
func writeError(w http.ResponseWriter, code int, msg string) {
	msg = strings.Join(strings.Fields(msg), " ")
	writeJSON(w, code, ErrorBody{Error: msg})
}

// writeJSON answers v as indented JSON, readable with curl.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error": "encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

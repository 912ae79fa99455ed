package admin

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// consoleFiles is the web console: plain HTML, CSS and JavaScript that read
// the JSON API from the same origin. Nothing is fetched from elsewhere.
//
//go:embed console
var consoleFiles embed.FS

// consolePolicy keeps the console to its own origin: no other site's
// scripts, styles, connections or frames, and no framing by other sites.
const consolePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// routeConsole mounts the console at / and /ui/.
func (s *Server) routeConsole() {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded folder is part of the build
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	s.mux.Handle("GET /{$}", consoleHeaders(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(index)
	})))
	s.mux.Handle("GET /ui/", consoleHeaders(files))
}

func consoleHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", consolePolicy)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// isConsoleFile reports whether r asks for one of the console's static
// files, which hold no data and are served without the token so that the
// page can ask for it.
func isConsoleFile(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/" || r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/")
}

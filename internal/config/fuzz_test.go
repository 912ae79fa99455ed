package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents to Parse: it never panics, returns a
// configuration or an error, and every validation error names a field.
// Seeds are testdata/*.yaml and testdata/fuzz/FuzzParse
// (testdata/fuzz/README.md).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"good", "bad", "unknown"} {
		if data, err := os.ReadFile("testdata/" + name + ".yaml"); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		var errs Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				// An empty YAML key is reported at the empty path of
				// the level it sits at (load.go names it by its text).
				if (e.Path == "" && !strings.HasPrefix(e.Msg, "unknown field")) || e.Msg == "" {
					t.Fatalf("error %q does not name a field", e.Error())
				}
			}
		}
		if c != nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("a parsed config fails validation: %v", err)
			}
		}
	})
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Rules say what a configuration must hold beyond being well formed. The
// zero value is what Load, Parse and Validate check: at least one route.
type Rules struct {
	// RoutesOptional accepts a configuration without routes, as an Ingress
	// controller's may be: the Ingresses bring them. Default false: at least
	// one route is required.
	RoutesOptional bool
}

// Load reads, decodes, defaults and validates the configuration file at path.
func Load(path string) (*Config, error) { return Rules{}.Load(path) }

// Parse decodes a configuration strictly, applies defaults and validates it.
// A returned Errors value lists every problem with its field path.
func Parse(data []byte) (*Config, error) { return Rules{}.Parse(data) }

// Load reads, decodes, defaults and validates the configuration file at path
// under the rules.
func (r Rules) Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return r.Parse(data)
}

// Parse decodes a configuration strictly, applies defaults and validates it
// under the rules.
func (r Rules) Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("config is not valid YAML: %w", err)
	}
	if errs := unknownFields(&root, reflect.TypeFor[Config](), ""); len(errs) > 0 {
		return nil, errs
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(err)
	}
	c.SetDefaults()
	if err := r.Validate(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// unknownFields walks the YAML tree beside the struct type and reports every
// key the struct does not declare, with its field path and line.
func unknownFields(n *yaml.Node, t reflect.Type, path string) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		var errs Errors
		for _, c := range n.Content {
			errs = append(errs, unknownFields(c, t, path)...)
		}
		return errs
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return nil
		}
		var errs Errors
		for i, c := range n.Content {
			errs = append(errs, unknownFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil
		}
		var errs Errors
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			name := key.Value
			if name == "" || strings.ContainsAny(name, ". []") {
				name = fmt.Sprintf("%q", name)
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			f, ok := fieldByTag(t, key.Value)
			if !ok {
				errs = append(errs, FieldError{Path: p, Msg: fmt.Sprintf("unknown field (line %d)", key.Line)})
				continue
			}
			errs = append(errs, unknownFields(val, f.Type, p)...)
		}
		return errs
	}
	return nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// decodeError rewrites the YAML library's type errors into one line each,
// keeping their line numbers.
func decodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("decoding config: %w", err)
	}
	lines := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		lines[i] = strings.TrimPrefix(e, "yaml: ")
	}
	return fmt.Errorf("decoding config:\n%s", strings.Join(lines, "\n"))
}

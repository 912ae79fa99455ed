package config

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// ParseBackend parses the short form of a static backend, NAME=URL
// ("web-0=http://10.0.0.10:8080", "g-0=h2c://10.0.0.5:50051",
// "web-1=https://10.0.0.11:8443"). The URL is checked by Validate.
func ParseBackend(v string) (Backend, error) {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return Backend{}, errors.New("must be name=URL, the URL http://, h2c:// or https://host:port")
	}
	return Backend{Name: name, URL: url}, nil
}

// ParseService parses the short form of a Service, NAMESPACE/NAME:PORT,
// the port by name or number. The namespace may be left out; SetDefaults
// then makes it "default".
func ParseService(v string) (*Service, error) {
	nsName, port, ok := strings.Cut(v, ":")
	ns, name, hasNS := strings.Cut(nsName, "/")
	if !hasNS {
		ns, name = "", nsName
	}
	if !ok || name == "" || port == "" || (hasNS && ns == "") || strings.ContainsAny(name+port, "/:") {
		return nil, errors.New("want NAMESPACE/NAME:PORT, the port by name or number")
	}
	return &Service{Namespace: ns, Name: name, Port: port}, nil
}

// ParseDNS parses the short form of a DNS name: NAME:PORT for A and AAAA
// records, or an SRV name _SERVICE._PROTO.NAME without a port.
func ParseDNS(v string) (*DNS, error) {
	if strings.HasPrefix(v, "_") && !strings.Contains(v, ":") {
		return &DNS{Name: v}, nil
	}
	host, port, err := net.SplitHostPort(v)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return nil, errors.New("want NAME:PORT, or an SRV name _SERVICE._PROTO.NAME")
	}
	return &DNS{Name: host, Port: n}, nil
}

package k8stest

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
)

// serveTCP runs echo-basic's TCP server on TCP_PORT, and over TLS on
// TLS_PORT when TLS_SERVER_CERT and TLS_SERVER_PRIV_KEY are set. Each
// connection is greeted with a line, then answers TEST with the JSON echo
// of the pod's context, IS_TLS with true or false, and PING with PONG.
func (ec *echoContainer) serveTCP(ctx context.Context) error {
	tcpPort, err := ec.port("TCP_PORT", 3000)
	if err != nil {
		return err
	}
	tlsPort, err := ec.port("TLS_PORT", 8443)
	if err != nil {
		return err
	}
	var cfg *tls.Config
	if ec.env["TLS_SERVER_CERT"] != "" && ec.env["TLS_SERVER_PRIV_KEY"] != "" {
		if cfg, err = ec.tlsConfig(ctx, "TLS_SERVER_CERT", "TLS_SERVER_PRIV_KEY"); err != nil {
			return err
		}
	}
	info := tcpEchoContext{echoContext: ec.ctx, TCPPort: strconv.Itoa(tcpPort)}
	if cfg != nil {
		info.TLSPort = strconv.Itoa(tlsPort)
	}
	l, err := ec.pod.Listen(tcpPort)
	if err != nil {
		return err
	}
	go acceptLines(l, info)
	if cfg == nil {
		return nil
	}
	tl, err := ec.pod.Listen(tlsPort)
	if err != nil {
		return err
	}
	go acceptLines(tls.NewListener(tl, cfg), info)
	return nil
}

type tcpEchoContext struct {
	echoContext
	TCPPort string `json:"tcpport"`
	TLSPort string `json:"tlsport,omitempty"`
}

type tcpEchoTLS struct {
	Version            string `json:"version"`
	ServerName         string `json:"serverName"`
	NegotiatedProtocol string `json:"negotiatedProtocol,omitempty"`
	Curves             string `json:"curves,omitempty"`
	CipherSuite        string `json:"cipherSuite"`
}

// acceptLines serves the TCP echo's line protocol on l until it is closed.
func acceptLines(l net.Listener, info tcpEchoContext) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go serveLines(conn, info)
	}
}

func serveLines(conn net.Conn, info tcpEchoContext) {
	defer conn.Close()
	answer := struct {
		tcpEchoContext
		IsTLS bool        `json:"isTLS"`
		TLS   *tcpEchoTLS `json:"tls,omitempty"`
	}{tcpEchoContext: info}
	if tc, ok := conn.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return
		}
		st := tc.ConnectionState()
		answer.IsTLS = true
		answer.TLS = &tcpEchoTLS{
			Version:            tls.VersionName(st.Version),
			ServerName:         st.ServerName,
			NegotiatedProtocol: st.NegotiatedProtocol,
			Curves:             st.CurveID.String(),
			CipherSuite:        tls.CipherSuiteName(st.CipherSuite),
		}
	}
	test, err := json.Marshal(answer)
	if err != nil {
		return
	}
	fmt.Fprint(conn, "Gateway API Test TCP Server\n")
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		switch sc.Text() {
		case "TEST":
			fmt.Fprintf(conn, "%s\n", test)
		case "IS_TLS":
			fmt.Fprintf(conn, "%t\n", answer.IsTLS)
		case "PING":
			fmt.Fprint(conn, "PONG\n")
		}
	}
}

// serveUDP answers each datagram on port with a JSON echo of it and of
// the pod's context, as echo-basic's UDP server does.
func (ec *echoContainer) serveUDP(port int) error {
	c, err := ec.pod.ListenPacket(port)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 1024)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			answer, err := json.Marshal(struct {
				Request string `json:"request"`
				echoContext
			}{string(buf[:n]), ec.ctx})
			if err == nil {
				c.WriteTo(answer, from)
			}
		}
	}()
	return nil
}
